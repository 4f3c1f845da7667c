//! The tiers a `get` walks and a guard's drop walks back: private slot,
//! magazine, depot, `make`.

use std::ptr::{self, NonNull};

use super::magazine::Magazine;
use super::{MAX_MAGAZINE_SIZE, WorkerPool};
use crate::pool::Arrival;
use crate::reset::Recycle;
use crate::shard::free_all;
use crate::thread::{HINT_HERE, shard_hint};
use crate::worker::registry::{self as hot, NO_ID, raw_worker_id, worker_id};

impl<T, R: Recycle<T>> WorkerPool<T, R> {
    // ---- the tiers. `worker` is the calling thread's worker number (or,
    // in the loom models, a number that only one model thread uses).

    /// Takes from magazine `w` (pop, else refill) when `w` indexes one;
    /// else `elsewhere` serves the get. One compare on the way to the
    /// magazine: `NO_ID` and numbers past the array fall through.
    ///
    /// `w` is the calling thread's worker number (or, in the loom models, a
    /// number that only one model thread uses), so it owns the magazine.
    #[inline(always)]
    pub(super) fn take_at(
        &self,
        w: usize,
        make: bool,
        elsewhere: impl FnOnce() -> Option<NonNull<T>>,
    ) -> Option<NonNull<T>> {
        let Some(mag) = self.mags.get(w) else {
            return elsewhere();
        };
        // SAFETY: `w` is the calling thread's worker number, so it owns the
        // magazine; `pop` calls no user code.
        if let Some(slot) = unsafe { mag.pop() } {
            return Some(slot);
        }
        self.refill(w, mag, make)
    }

    /// [`take`](Self::take) for the calling thread: its private slot, else
    /// its magazine (out of line).
    #[inline(always)]
    pub(super) fn take_here(&self, make: bool) -> Option<NonNull<T>> {
        // SAFETY: `self.slot` came from `register_pool` (or is `NO_SLOT`).
        if let Some(slot) = unsafe { hot::take(self.slot) } {
            return Some(slot.cast());
        }
        self.take_from_magazine(make)
    }

    /// [`take_here`](Self::take_here) for a [`worker_pool!`](crate::worker_pool)
    /// static, whose private slot on this thread is `entry`.
    ///
    /// # Safety
    /// `entry` is the calling thread's own entry of this pool's static.
    #[inline(always)]
    pub(crate) unsafe fn take_via(&self, entry: &hot::SlotEntry, make: bool) -> Option<NonNull<T>> {
        if let Some(slot) = hot::take_entry(entry) {
            return Some(slot.cast());
        }
        // SAFETY: forwarded.
        unsafe { self.take_via_cold(entry, make) }
    }

    /// The entry is empty, off, or not looked at yet on this thread: give
    /// it a slot in the last case, then go on to the magazine.
    ///
    /// # Safety
    /// As for [`take_via`](Self::take_via).
    #[inline(never)]
    pub(super) unsafe fn take_via_cold(
        &self,
        entry: &hot::SlotEntry,
        make: bool,
    ) -> Option<NonNull<T>> {
        if !hot::unchecked(entry) {
            return self.take_from_magazine(make);
        }
        // Threads that are not workers stay unchecked: one look at the
        // number serves the check and the take.
        let worker = worker_id();
        // SAFETY: forwarded; `self.slot` is the static's index.
        if worker.is_some_and(|id| unsafe { hot::enable_here(self.slot, entry, id) }) {
            // An orphan its number's last holder left, if any.
            if let Some(slot) = hot::take_entry(entry) {
                return Some(slot.cast());
            }
        }
        self.take(worker, make)
    }

    /// [`give_back_here`](Self::give_back_here) for a
    /// [`worker_pool!`](crate::worker_pool) static.
    ///
    /// # Safety
    /// As for [`give_back`](Self::give_back); `entry` as for
    /// [`take_via`](Self::take_via).
    #[inline(always)]
    pub(crate) unsafe fn give_back_via(&self, slot: NonNull<T>, entry: &hot::SlotEntry) {
        // SAFETY: as in `give_back_here`.
        if !unsafe { self.depot.reset_slot(slot, HINT_HERE) } {
            return;
        }
        // SAFETY: the object is reset, idle and ours to hand over; `entry`
        // is this thread's for this pool.
        if unsafe { hot::park_entry(entry, slot.cast()) } {
            return;
        }
        // SAFETY: forwarded.
        unsafe { self.give_back_via_cold(slot, entry) }
    }

    /// # Safety
    /// As for [`give_back_via`](Self::give_back_via), with the object reset.
    #[inline(never)]
    pub(super) unsafe fn give_back_via_cold(&self, slot: NonNull<T>, entry: &hot::SlotEntry) {
        if !hot::unchecked(entry) {
            // SAFETY: forwarded.
            return unsafe { self.place_in_magazine(slot) };
        }
        let worker = worker_id();
        // SAFETY: forwarded; `self.slot` is the static's index.
        if worker.is_some_and(|id| unsafe { hot::enable_here(self.slot, entry, id) })
            // SAFETY: as in `give_back_via`.
            && unsafe { hot::park_entry(entry, slot.cast()) }
        {
            return;
        }
        // SAFETY: forwarded; `worker` is the calling thread's number.
        unsafe { self.place(slot, worker) }
    }

    /// The magazine tier for the calling thread: the raw thread-local
    /// number is the index, and a thread not numbered yet (or not a
    /// worker) goes to the cold path, which numbers it if it is a worker.
    #[inline(never)]
    pub(super) fn take_from_magazine(&self, make: bool) -> Option<NonNull<T>> {
        self.take_at(raw_worker_id(), make, || self.take_unnumbered(make))
    }

    #[cold]
    #[inline(never)]
    pub(super) fn take_unnumbered(&self, make: bool) -> Option<NonNull<T>> {
        self.take(worker_id(), make)
    }

    #[inline(always)]
    pub(crate) fn take(&self, worker: Option<usize>, make: bool) -> Option<NonNull<T>> {
        self.take_at(worker.unwrap_or(NO_ID), make, || {
            self.take_from_depot(worker, make)
        })
    }

    #[cold]
    #[inline(never)]
    pub(super) fn take_from_depot(&self, worker: Option<usize>, make: bool) -> Option<NonNull<T>> {
        let hint = worker.unwrap_or_else(shard_hint);
        if make {
            Some(self.depot.take_or_make(hint))
        } else {
            let slot = self.depot.pop_slot(hint);
            if slot.is_none() {
                self.depot.count_miss(hint);
            }
            slot
        }
    }

    /// The magazine is empty: refill half of it from the depot in one batch,
    /// else make a new object (a miss).
    #[cold]
    #[inline(never)]
    pub(super) fn refill(&self, w: usize, mag: &Magazine<T>, make: bool) -> Option<NonNull<T>> {
        let half = self.mag_size.div_ceil(2);
        // SAFETY: the caller owns the magazine; `pop_into` only moves
        // pointers under the depot's shard locks and calls no user code.
        let got = unsafe {
            mag.with_slots(|slots, len| {
                debug_assert_eq!(len, 0, "refills only an empty magazine");
                self.depot.pop_into(w, &mut slots[..half])
            })
        };
        if got > 0 {
            Magazine::<T>::add(&mag.pushed, got as u64);
            Magazine::<T>::add(&mag.refills, 1);
            Magazine::<T>::add(&mag.refilled, got as u64);
            // SAFETY: as above.
            return unsafe { mag.pop() };
        }
        Magazine::<T>::add(&mag.misses, 1);
        if make {
            Some(self.depot.make_slot(w))
        } else {
            self.depot.count_miss(w);
            None
        }
    }

    /// Resets the object in `slot` and keeps it in the magazine of
    /// `worker`, else in the depot, or drops it.
    ///
    /// # Safety
    /// `slot` belongs to this pool and nothing else uses it.
    /// (The loom models' entry: they pass worker numbers in.)
    #[cfg_attr(not(all(test, loom)), allow(dead_code))]
    #[inline(always)]
    pub(crate) unsafe fn give_back(&self, slot: NonNull<T>, worker: Option<usize>) {
        let hint = worker.unwrap_or_else(shard_hint);
        // SAFETY: forwarded; the reset runs user code, outside any magazine.
        if !unsafe { self.depot.reset_slot(slot, hint) } {
            return;
        }
        // SAFETY: forwarded.
        unsafe { self.place(slot, worker) }
    }

    /// [`give_back`](Self::give_back) for the calling thread: reset, then
    /// its private slot, else its magazine (out of line).
    ///
    /// # Safety
    /// As for [`give_back`](Self::give_back).
    #[inline(always)]
    pub(super) unsafe fn give_back_here(&self, slot: NonNull<T>) {
        // Read before the reset, whose stores the compiler cannot tell
        // apart from the pool's fields: one load, not two.
        let index = self.slot;
        // SAFETY: forwarded; the reset runs user code, outside any magazine
        // and private slot. The hint only picks the shard that counts a
        // drop: worked out there, off the hot path.
        if !unsafe { self.depot.reset_slot(slot, HINT_HERE) } {
            return;
        }
        // SAFETY: `index` as in `take_here`; the object is reset, idle and
        // ours to hand over.
        if unsafe { hot::park(index, slot.cast()) } {
            return;
        }
        // SAFETY: forwarded.
        unsafe { self.place_in_magazine(slot) }
    }

    /// The magazine tier of [`give_back_here`](Self::give_back_here), as
    /// [`take_from_magazine`](Self::take_from_magazine) does it.
    ///
    /// # Safety
    /// As for [`place`](Self::place).
    #[inline(never)]
    pub(super) unsafe fn place_in_magazine(&self, slot: NonNull<T>) {
        // SAFETY: forwarded.
        unsafe { self.place_at(slot, raw_worker_id(), |slot| self.place_unnumbered(slot)) }
    }

    /// # Safety
    /// As for [`place`](Self::place).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn place_unnumbered(&self, slot: NonNull<T>) {
        // SAFETY: forwarded.
        unsafe { self.place(slot, worker_id()) }
    }

    /// Keeps the object in `slot`, reset, in the magazine of `worker`, else
    /// in the depot, or drops it.
    ///
    /// # Safety
    /// `slot` belongs to this pool, nothing else uses it, and its object is
    /// reset; `worker` is the calling thread's number (or, in the loom
    /// models, one only this model thread uses).
    #[inline(always)]
    pub(super) unsafe fn place(&self, slot: NonNull<T>, worker: Option<usize>) {
        // SAFETY: forwarded.
        unsafe {
            self.place_at(slot, worker.unwrap_or(NO_ID), |slot| {
                self.place_in_depot(slot, worker)
            })
        }
    }

    /// Keeps the reset object in `slot` in magazine `w` when `w` indexes
    /// one (spilling half the magazine if it is full); else hands `slot` to
    /// `elsewhere`.
    ///
    /// # Safety
    /// As for [`place`](Self::place); `w` is as for
    /// [`take_at`](Self::take_at); `elsewhere` takes the slot over.
    #[inline(always)]
    pub(super) unsafe fn place_at(
        &self,
        slot: NonNull<T>,
        w: usize,
        elsewhere: impl FnOnce(NonNull<T>),
    ) {
        let Some(mag) = self.mags.get(w) else {
            return elsewhere(slot);
        };
        // SAFETY: `w` is the calling thread's worker number: it owns
        // magazine `w`; `push` runs no user code.
        match unsafe { mag.push(slot, self.mag_size) } {
            Ok(()) => {}
            // SAFETY: forwarded.
            Err(slot) => unsafe { self.spill(w, mag, slot) },
        }
    }

    /// # Safety
    /// As for [`place`](Self::place).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn place_in_depot(&self, slot: NonNull<T>, worker: Option<usize>) {
        let hint = worker.unwrap_or_else(shard_hint);
        if let Err(slot) = self.depot.push_slot(hint, slot, Arrival::Returned) {
            // SAFETY: the slot came back to us: ours alone.
            unsafe { self.depot.drop_slot(slot, hint, |c| &c.drops_full) };
        }
    }

    /// The magazine is full: move the colder (bottom) half of its stack to
    /// the depot in one batch, drop what the depot has no room for, then put
    /// `homeless` (an object [`Magazine::push`] counted in but could not
    /// place) on the stack.
    ///
    /// # Safety
    /// The caller owns magazine `w`; `homeless` is ours alone.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn spill(&self, w: usize, mag: &Magazine<T>, homeless: NonNull<T>) {
        let mut overflow = [ptr::null_mut(); MAX_MAGAZINE_SIZE];
        // SAFETY: the caller owns the magazine; `push_from` only moves
        // pointers under shard locks. Dropping the overflow (user code) waits
        // until the magazine is released.
        let (half, moved) = unsafe {
            mag.with_slots(|slots, counted| {
                // `homeless` is counted but not on the stack.
                let len = counted - 1;
                let half = len.div_ceil(2);
                let moved = self.depot.push_from(w, &slots[..half]);
                overflow[..half - moved].copy_from_slice(&slots[moved..half]);
                slots.copy_within(half..len, 0);
                slots[len - half] = homeless.as_ptr();
                (half, moved)
            })
        };
        Magazine::<T>::add(&mag.popped, half as u64);
        Magazine::<T>::add(&mag.spills, 1);
        Magazine::<T>::add(&mag.spilled, half as u64);
        let dropped = &overflow[..half - moved];
        if !dropped.is_empty() {
            self.depot.count_full_drops(w, dropped.len() as u64);
            // SAFETY: they left the magazine and the depot has no room for
            // them: ours alone.
            unsafe { free_all(dropped.iter().filter_map(|&p| NonNull::new(p))) };
        }
    }
}
