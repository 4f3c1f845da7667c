//! Freeing a slot: to the bitmap, or straight to the first waiter; and the
//! way back from a guard ([`Home`]), with the replacement of objects that
//! are not kept.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::RingPool;
use super::slots::Claimed;
use super::wait_list::GRANT_CLOSED;
use crate::guard::sealed::{Home, Lent};
use crate::loom::{Ordering, dekker_fence};
use crate::reset::Recycle;

impl<T, R> RingPool<T, R> {
    /// Frees the slot: to the bitmap when no task waits, else to the first
    /// waiter.
    #[inline]
    pub(super) fn release(&self, slot: Claimed) {
        let slot = if self.wait.has_waiters() {
            slot
        } else {
            let index = slot.index();
            self.slots.free(slot);
            dekker_fence();
            if !self.wait.has_waiters() {
                return;
            }
            // A task registered meanwhile and may have looked before the bit
            // was set: hand the slot over, unless someone claimed it.
            match self.slots.take_bit(index) {
                Some(slot) => slot,
                None => return,
            }
        };
        self.hand_off(slot);
    }

    /// Grants the slot to the first waiter and wakes it; with none queued
    /// (they got slots or left), frees it to the bitmap, under the lock,
    /// where the next task to register will look.
    #[cold]
    #[inline(never)]
    fn hand_off(&self, slot: Claimed) {
        self.grant_first(Some(slot));
    }

    /// Takes the first queued waiter, hands it `slot` (with `None`: tells
    /// it the ring closed) and wakes it; `true` if there was one. With none,
    /// frees `slot` to the bitmap under the list's lock and returns `false`.
    ///
    /// Once the ring is closed a slot is not granted (it goes to the
    /// bitmap): `close` fails every queued waiter, also those queued when a
    /// release races with it.
    pub(super) fn grant_first(&self, slot: Option<Claimed>) -> bool {
        let mut list = self.wait.lock();
        let popped = if slot.is_some() && self.closed.load(Ordering::SeqCst) {
            None
        } else {
            list.pop_front()
        };
        let Some((node, waker)) = popped else {
            if let Some(slot) = slot {
                self.slots.free(slot);
            }
            return false;
        };
        self.wait.sub_waiter();
        // The last touch of the node: its task may free it from now on.
        node.grant(slot.map_or(GRANT_CLOSED, Claimed::into_index));
        drop(list);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Puts a fresh object in the slot in place of the old one, frees the
    /// slot, then hands back the old object.
    ///
    /// If the constructor panics, the slot stays claimed (its object is in
    /// an unknown state and must not reach another holder): the ring loses
    /// that slot's capacity.
    fn replace(&self, slot: Claimed) -> T {
        let old = self.slots.swap_value(&slot, (self.make)());
        self.release(slot);
        old
    }
}

impl<T, R: Recycle<T>> Home<T> for RingPool<T, R> {
    #[inline]
    fn recycle(&self, object: Lent<T, Self>) {
        self.hold_returned(&object);
        let ptr = object.into_raw();
        // SAFETY: this ring lent the object, claimed, to the guard that now
        // gives it back (`Lent::from_raw`'s contract).
        let slot = unsafe { Claimed::assume(self.slots.index_of(ptr)) };
        // SAFETY: the guard hands us its slot: only we touch the value.
        let value = unsafe { &mut *ptr.as_ptr() };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.recycle.reset(value);
            self.recycle.retained_bytes(value)
        }));
        match outcome {
            Ok(retained) if retained <= self.retention_limit => self.release(slot),
            Ok(retained) => {
                crate::observe::trace::dropped_oversized(
                    self.label,
                    retained,
                    self.retention_limit,
                );
                self.counters
                    .replaced_oversized
                    .fetch_add(1, Ordering::Relaxed);
                drop(self.replace(slot));
            }
            Err(panic) => {
                self.counters
                    .replaced_discarded
                    .fetch_add(1, Ordering::Relaxed);
                drop(self.replace(slot));
                resume_unwind(panic);
            }
        }
    }

    fn discard(&self, object: Lent<T, Self>) {
        self.hold_returned(&object);
        self.counters
            .replaced_discarded
            .fetch_add(1, Ordering::Relaxed);
        // SAFETY: as in `recycle`.
        let slot = unsafe { Claimed::assume(self.slots.index_of(object.into_raw())) };
        drop(self.replace(slot));
    }

    fn detach(&self, object: Lent<T, Self>) -> T {
        self.hold_returned(&object);
        self.counters.detached.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as in `recycle`.
        let slot = unsafe { Claimed::assume(self.slots.index_of(object.into_raw())) };
        self.replace(slot)
    }
}
