//! The future under `get`: claims a free slot, or waits for one in the
//! ring's FIFO with its node inside the future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use pin_project_lite::pin_project;

use super::slots::Claimed;
use super::wait_list::{GRANT_CLOSED, NOT_GRANTED, Waiter};
use super::{GetError, RingPool, TryGetError};
use crate::guard::sealed::Lent;
use crate::loom::Ordering;
use crate::reset::Recycle;
use crate::thread::shard_hint;

/// What [`AcquireProj::enqueue`] did.
enum Enqueued {
    /// A slot was free after all.
    Claimed(Claimed),
    /// Queued; the `nth` wait of the ring.
    Queued {
        nth: u64,
    },
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcquireState {
    Start,
    Queued,
    Done,
}

/// One wait in this many is timed for
/// [`RingStats::wait_time`](super::RingStats::wait_time).
const WAIT_SAMPLE: u64 = 8;

pin_project! {
    /// The future that claims a slot, waiting in the ring's FIFO if need be.
    ///
    /// It holds its FIFO node in place: it is `!Unpin` (the node is), the
    /// node joins only this ring's list, and dropping the future while
    /// queued takes the node out (cancel safety). Other threads may hold
    /// pointers into `node` and write its links (under the lock) while a
    /// `Pin<&mut Self>` exists: sound because the node is `!Unpin`
    /// (`PhantomPinned`), for which `&mut` is not assumed unique, as in
    /// tokio's intrusive waiter lists.
    #[project = AcquireProj]
    pub(super) struct Acquire<'a, T, R: Recycle<T>> {
        ring: &'a RingPool<T, R>,
        state: AcquireState,
        // When a timed wait began (one wait in `WAIT_SAMPLE`).
        since: Option<Instant>,
        #[pin]
        node: Waiter,
    }

    impl<'a, T, R: Recycle<T>> PinnedDrop for Acquire<'a, T, R> {
        fn drop(this: Pin<&mut Self>) {
            this.project().cancel();
        }
    }
}

impl<T, R: Recycle<T>> RingPool<T, R> {
    /// The slot-claiming future under `get`, `get_owned` and `get_timeout`.
    #[inline]
    pub(super) fn acquire(&self) -> Acquire<'_, T, R> {
        Acquire {
            ring: self,
            state: AcquireState::Start,
            since: None,
            node: Waiter::new(),
        }
    }
}

impl<T, R: Recycle<T>> Future for Acquire<'_, T, R> {
    type Output = Result<Lent<T, RingPool<T, R>>, GetError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let ring = *this.ring;
        match *this.state {
            AcquireState::Start => {
                *this.state = AcquireState::Done;
                match ring.try_claim() {
                    Ok(slot) => return Poll::Ready(Ok(slot)),
                    Err(TryGetError::Closed) => return Poll::Ready(Err(GetError(()))),
                    Err(TryGetError::Empty) => {}
                }
                match this.enqueue(cx.waker()) {
                    Enqueued::Claimed(slot) => Poll::Ready(Ok(ring.lend(slot))),
                    Enqueued::Closed => Poll::Ready(Err(GetError(()))),
                    Enqueued::Queued { nth } => {
                        // Reading the clock twice costs a tenth of a
                        // contended get: time one wait in `WAIT_SAMPLE`
                        // (the first one included) and scale.
                        if nth % WAIT_SAMPLE == 0 {
                            *this.since = Some(Instant::now());
                        }
                        Poll::Pending
                    }
                }
            }
            AcquireState::Queued => match this.poll_grant(cx.waker()) {
                None => Poll::Pending,
                Some(grant) => {
                    this.leave_queue();
                    if grant == GRANT_CLOSED {
                        Poll::Ready(Err(GetError(())))
                    } else {
                        // SAFETY: the slot was granted to our node, and we
                        // left the queued state above: this is the one time
                        // the grant is taken.
                        let slot = unsafe { Claimed::assume(grant) };
                        Poll::Ready(Ok(ring.lend(slot)))
                    }
                }
            },
            AcquireState::Done => panic!("`RingPool` get future polled after completion"),
        }
    }
}

impl<T, R: Recycle<T>> AcquireProj<'_, '_, T, R> {
    /// The node, at its pinned address.
    #[inline]
    fn node(&self) -> &Waiter {
        self.node.as_ref().get_ref()
    }

    /// Queues the node at the tail of the FIFO, unless a slot is free
    /// (looked at under the lock, after counting the task as a waiter) or
    /// the ring is closed.
    #[cold]
    #[inline(never)]
    fn enqueue(&mut self, waker: &Waker) -> Enqueued {
        let ring = *self.ring;
        // Cloned before the lock: a waker's clone is foreign code. (A
        // re-poll with a different waker clones it under the lock, in
        // `set_waker`: rare, and a clone does not reach the ring.)
        let waker = waker.clone();
        let mut list = ring.wait.lock();
        if ring.closed.load(Ordering::SeqCst) {
            return Enqueued::Closed;
        }
        ring.wait.add_waiter();
        if let Some(slot) = ring.slots.claim(shard_hint()) {
            ring.wait.sub_waiter();
            return Enqueued::Claimed(slot);
        }
        // SAFETY: the node is this future's, which joins only this ring's
        // list, and is queued nowhere yet (the future was `Start`). It is
        // pinned, and the state is `Queued` from here until it leaves the
        // list, so the future's drop takes it out before it goes.
        unsafe { list.with_node(self.node()) }.push_back(waker);
        *self.state = AcquireState::Queued;
        Enqueued::Queued {
            nth: ring.wait.count_wait(),
        }
    }

    /// The grant of the queued node, or `None` (with its waker updated)
    /// while it waits.
    fn poll_grant(&self, waker: &Waker) -> Option<usize> {
        let node = self.node();
        let grant = node.granted();
        if grant != NOT_GRANTED {
            return Some(grant);
        }
        let mut list = self.ring.wait.lock();
        // Grants are made under the lock: this look is final.
        let grant = node.granted();
        if grant != NOT_GRANTED {
            return Some(grant);
        }
        // SAFETY: the node joins only this ring's list, is pinned, and the
        // future's drop takes it out while it is queued.
        let stale = unsafe { list.with_node(node) }.set_waker(waker);
        drop(list);
        drop(stale);
        None
    }

    /// Takes a queued node out of the FIFO (the `get` was dropped); a slot
    /// granted to it meanwhile goes to the next waiter. Does nothing unless
    /// the node is queued.
    #[cold]
    fn cancel(&mut self) {
        if *self.state != AcquireState::Queued {
            return;
        }
        let ring = *self.ring;
        let node = self.node();
        let mut grant = node.granted();
        if grant == NOT_GRANTED {
            let mut list = ring.wait.lock();
            grant = node.granted();
            if grant == NOT_GRANTED {
                // SAFETY: the node joins only this ring's list; not
                // granted, so still queued in it, and still in place (drop
                // runs before a pinned value's memory is reused).
                let waker = unsafe { list.with_node(node) }.unlink();
                ring.wait.sub_waiter();
                drop(list);
                drop(waker);
                self.leave_queue();
                return;
            }
        }
        if grant != GRANT_CLOSED {
            // SAFETY: the slot was granted to our node and never taken (the
            // future is still `Queued`).
            ring.release(unsafe { Claimed::assume(grant) });
        }
        self.leave_queue();
    }

    /// Leaves the queued state: records the wait's time if it was timed.
    fn leave_queue(&mut self) {
        *self.state = AcquireState::Done;
        if let Some(since) = self.since.take() {
            let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.ring
                .counters
                .wait_nanos
                .fetch_add(nanos.saturating_mul(WAIT_SAMPLE), Ordering::Relaxed);
        }
    }
}
