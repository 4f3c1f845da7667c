//! Waiting for capacity in a class: [`Waiter`] holds the protocol, used by
//! [`Slab::alloc_wait`] and [`Slab::ready`] (with the wake-up pinned on
//! their stack) and by [`SlabWait`] (with the wake-up boxed, so that it is
//! `Unpin`).
//!
//! A waiter arms its wake-up, then counts itself, then looks at every shard
//! under its lock; a chunk's return reads the waiter count under the lock of
//! the shard it goes into, and a page's release reads it after lowering the
//! page count. Whichever comes second sees the other (Dekker's pattern), so
//! a waiter never sleeps through a free chunk or a freed page.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::futures::OwnedNotified;

use super::Slab;
use super::class::Class;

/// Where a waiter's wake-up lives between polls.
type Wakeup = Option<OwnedNotified>;

/// One waiter on a class; counted in the class's waiters while its wake-up
/// is armed, and uncounted when it ends or is dropped.
struct Waiter {
    class: Arc<Class>,
    registered: bool,
}

impl Waiter {
    fn new(class: Arc<Class>) -> Self {
        Waiter {
            class,
            registered: false,
        }
    }

    /// Ready when the class has capacity (its shards looked at under their
    /// locks) or, with `hint`, when lock-free gauges say it seems to have
    /// some. `wakeup` must be the same slot at every poll.
    fn poll(&mut self, mut wakeup: Pin<&mut Wakeup>, cx: &mut Context<'_>, hint: bool) -> Poll<()> {
        loop {
            if self.registered {
                if let Some(notified) = wakeup.as_mut().as_pin_mut() {
                    if notified.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                self.unregister(wakeup.as_mut());
            }
            if hint && self.class.has_capacity_hint() {
                return Poll::Ready(());
            }
            // Armed before the check, so a wake-up that follows the check is
            // not lost (`notify_waiters` wakes every `Notified` enabled
            // before it).
            self.class.notify_steps.step();
            wakeup
                .as_mut()
                .set(Some(Arc::clone(&self.class.notify).notified_owned()));
            if let Some(notified) = wakeup.as_mut().as_pin_mut() {
                notified.enable();
            }
            self.class.register_waiter();
            self.registered = true;
            if self.class.has_capacity() {
                self.unregister(wakeup);
                return Poll::Ready(());
            }
        }
    }

    fn unregister(&mut self, mut wakeup: Pin<&mut Wakeup>) {
        if std::mem::take(&mut self.registered) {
            self.class.unregister_waiter();
        }
        wakeup.set(None);
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.registered {
            self.class.unregister_waiter();
        }
    }
}

impl Slab {
    /// Waits until class `i` has capacity. Allocates nothing.
    pub(super) async fn wait_class(&self, i: usize) {
        let mut waiter = Waiter::new(Arc::clone(&self.shared.classes[i]));
        let mut wakeup = pin!(None);
        poll_fn(|cx| waiter.poll(wakeup.as_mut(), cx, false)).await;
    }
}

/// A reusable, pollable wait for capacity in one class (the `Backpressure`
/// stream of the `codec` feature keeps one). `Unpin`: its `Notified` lives
/// in a box made at the first wait and reused by every later one.
pub(crate) struct SlabWait {
    waiter: Option<Waiter>,
    wakeup: Option<Pin<Box<Wakeup>>>,
}

#[cfg_attr(not(feature = "codec"), allow(dead_code))]
impl SlabWait {
    /// A wait for a chunk of `len` bytes from `slab`; never waits over the
    /// largest class.
    pub(crate) fn new(slab: &Slab, len: usize) -> Self {
        SlabWait {
            waiter: slab
                .class_index(len)
                .map(|i| Waiter::new(Arc::clone(&slab.shared.classes[i]))),
            wakeup: None,
        }
    }

    /// Ready when the class has (or, from a lock-free hint, seems to have)
    /// capacity. Allocates nothing unless it has to wait, and then only
    /// once per `SlabWait`.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(waiter) = self.waiter.as_mut() else {
            return Poll::Ready(());
        };
        if !waiter.registered && waiter.class.has_capacity_hint() {
            return Poll::Ready(());
        }
        let wakeup = self.wakeup.get_or_insert_with(|| Box::pin(None));
        waiter.poll(wakeup.as_mut(), cx, true)
    }
}

impl fmt::Debug for SlabWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registered = self.waiter.as_ref().is_some_and(|w| w.registered);
        f.debug_struct("SlabWait")
            .field("registered", &registered)
            .finish_non_exhaustive()
    }
}
