//! The tiers a `get` walks and a guard's drop walks back: private slot,
//! magazine, depot, `make`.

use super::magazine::Magazine;
use super::private::Private;
use super::{MAX_MAGAZINE_SIZE, WorkerPool};
use crate::observe::{Mark, Site};
use crate::pool::Arrival;
use crate::reset::Recycle;
use crate::slot::{Slot, free_all};
use crate::thread::{HINT_HERE, shard_hint};
use crate::worker::registry::{NO_ID, raw_worker_id, worker_id};

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
        elsewhere: impl FnOnce() -> Option<Slot<T>>,
    ) -> Option<Slot<T>> {
        let Some(mag) = self.mags.get(w) else {
            return elsewhere();
        };
        // SAFETY: `w` is the calling thread's worker number, so it owns the
        // magazine.
        if let Some(slot) = unsafe { mag.owned() }.pop() {
            return Some(slot);
        }
        self.refill(w, mag, make)
    }

    /// [`take`](Self::take) for the calling thread: its private slot, else
    /// its magazine (out of line).
    ///
    /// `site` is the getter's caller: only the depot tier reads it, to
    /// record the hold when the pool has a hold warning (such a pool has no
    /// private slots and no magazines, so every get of it ends there).
    #[inline(always)]
    pub(super) fn take_private(
        &self,
        private: impl Private<T>,
        make: bool,
        site: Site,
    ) -> Option<Slot<T>> {
        if let Some(slot) = private.take() {
            return Some(slot);
        }
        if private.first_use() {
            return self.take_first_use(private, make, site);
        }
        self.take_from_magazine(make, site)
    }

    /// A static's private slot, not looked at yet on this thread: give it a
    /// slot (and take the orphan its number's last holder left, if any),
    /// then go on to the magazine.
    #[cold]
    #[inline(never)]
    pub(super) fn take_first_use(
        &self,
        private: impl Private<T>,
        make: bool,
        site: Site,
    ) -> Option<Slot<T>> {
        // Threads that are not workers stay unchecked: one look at the
        // number serves the check and the take.
        let worker = worker_id();
        if worker.is_some_and(|id| private.enable(self.private, id)) {
            if let Some(slot) = private.take() {
                return Some(slot);
            }
        }
        self.take(worker, make, site)
    }

    /// The magazine tier for the calling thread: the raw thread-local
    /// number is the index, and a thread not numbered yet (or not a
    /// worker) goes to the cold path, which numbers it if it is a worker.
    #[inline(never)]
    pub(super) fn take_from_magazine(&self, make: bool, site: Site) -> Option<Slot<T>> {
        self.take_at(raw_worker_id(), make, || self.take_unnumbered(make, site))
    }

    #[cold]
    #[inline(never)]
    pub(super) fn take_unnumbered(&self, make: bool, site: Site) -> Option<Slot<T>> {
        self.take(worker_id(), make, site)
    }

    #[inline(always)]
    pub(crate) fn take(&self, worker: Option<usize>, make: bool, site: Site) -> Option<Slot<T>> {
        self.take_at(worker.unwrap_or(NO_ID), make, || {
            self.take_from_depot(worker, make, site)
        })
    }

    /// The depot tier; where a pool with a hold warning records its holds.
    #[cold]
    #[inline(never)]
    pub(super) fn take_from_depot(
        &self,
        worker: Option<usize>,
        make: bool,
        site: Site,
    ) -> Option<Slot<T>> {
        let hint = worker.unwrap_or_else(shard_hint);
        let slot = if make {
            Some(self.depot.take_or_make(hint))
        } else {
            let slot = self.depot.idle.pop_slot(hint);
            if slot.is_none() {
                self.depot.idle.count_miss(hint);
            }
            slot
        };
        if let (Some(holds), Some(slot)) = (&self.depot.holds, &slot) {
            holds.taken(slot.addr(), site, Mark::default());
        }
        slot
    }

    /// The magazine is empty: refill half of it from the depot in one batch,
    /// else make a new object (a miss).
    #[cold]
    #[inline(never)]
    pub(super) fn refill(&self, w: usize, mag: &Magazine<T>, make: bool) -> Option<Slot<T>> {
        let half = self.mag_size.div_ceil(2);
        // SAFETY: the caller owns magazine `w`.
        let mut owned = unsafe { mag.owned() };
        // `pop_into` only moves slots under the depot's shard locks: no user
        // code runs while the magazine is borrowed.
        let got = owned.with_slots(|slots, len| {
            debug_assert_eq!(len, 0, "refills only an empty magazine");
            self.depot.idle.pop_into(w, &mut slots[..half])
        });
        if got > 0 {
            Magazine::<T>::add(&mag.pushed, got as u64);
            Magazine::<T>::add(&mag.refills, 1);
            Magazine::<T>::add(&mag.refilled, got as u64);
            return owned.pop();
        }
        Magazine::<T>::add(&mag.misses, 1);
        if make {
            Some(self.depot.make_slot(w))
        } else {
            self.depot.idle.count_miss(w);
            None
        }
    }

    /// Resets the object in `slot` and keeps it in the magazine of
    /// `worker`, else in the depot, or drops it.
    ///
    /// (The loom models' entry: they pass worker numbers in.)
    #[cfg_attr(not(all(test, loom)), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn give_back(&self, slot: Slot<T>, worker: Option<usize>) {
        let hint = worker.unwrap_or_else(shard_hint);
        // The reset runs user code, outside any magazine.
        if let Some(slot) = self.depot.reset_slot(slot, hint) {
            self.place(slot, worker);
        }
    }

    /// [`give_back`](Self::give_back) for the calling thread: reset, then
    /// its private slot, else its magazine (out of line).
    #[inline(always)]
    pub(super) fn give_back_private(&self, slot: Slot<T>, private: impl Private<T>) {
        // The reset runs user code, outside any magazine and private slot.
        // The hint only picks the shard that counts a drop: worked out
        // there, off the hot path.
        let Some(slot) = self.depot.reset_slot(slot, HINT_HERE) else {
            return;
        };
        let Err(slot) = private.park(slot) else {
            return;
        };
        if private.first_use() {
            return self.give_back_first_use(slot, private);
        }
        self.place_in_magazine(slot);
    }

    /// A static's private slot, not looked at yet on this thread: give it a
    /// slot and park the object there, else place it by worker number.
    #[cold]
    #[inline(never)]
    pub(super) fn give_back_first_use(&self, slot: Slot<T>, private: impl Private<T>) {
        let worker = worker_id();
        let mut slot = slot;
        if worker.is_some_and(|id| private.enable(self.private, id)) {
            match private.park(slot) {
                Ok(()) => return,
                Err(back) => slot = back,
            }
        }
        self.place(slot, worker);
    }

    /// The magazine tier of [`give_back_private`](Self::give_back_private), as
    /// [`take_from_magazine`](Self::take_from_magazine) does it.
    #[inline(never)]
    pub(super) fn place_in_magazine(&self, slot: Slot<T>) {
        self.place_at(slot, raw_worker_id(), |slot| self.place_unnumbered(slot));
    }

    #[cold]
    #[inline(never)]
    pub(super) fn place_unnumbered(&self, slot: Slot<T>) {
        self.place(slot, worker_id());
    }

    /// Keeps the object in `slot`, reset, in the magazine of `worker`, else
    /// in the depot, or drops it. `worker` is the calling thread's number
    /// (or, in the loom models, one only this model thread uses).
    #[inline(always)]
    pub(super) fn place(&self, slot: Slot<T>, worker: Option<usize>) {
        self.place_at(slot, worker.unwrap_or(NO_ID), |slot| {
            self.place_in_depot(slot, worker)
        });
    }

    /// Keeps the reset object in `slot` in magazine `w` when `w` indexes
    /// one (spilling half the magazine if it is full); else hands `slot` to
    /// `elsewhere`. `w` is as for [`take_at`](Self::take_at).
    #[inline(always)]
    pub(super) fn place_at(&self, slot: Slot<T>, w: usize, elsewhere: impl FnOnce(Slot<T>)) {
        let Some(mag) = self.mags.get(w) else {
            return elsewhere(slot);
        };
        // SAFETY: `w` is the calling thread's worker number: it owns
        // magazine `w`.
        if let Err(slot) = unsafe { mag.owned() }.push(slot, self.mag_size) {
            self.spill(w, mag, slot);
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn place_in_depot(&self, slot: Slot<T>, worker: Option<usize>) {
        // A pool with a hold warning gives every object back here (it has
        // no private slots or magazines): the hold ends before the object
        // can go to its next holder.
        if let Some(holds) = &self.depot.holds {
            holds.returned(slot.addr(), |_| None);
        }
        let hint = worker.unwrap_or_else(shard_hint);
        if let Err(slot) = self.depot.idle.push_slot(hint, slot, Arrival::Returned) {
            self.depot.drop_slot(slot, hint, |c| &c.drops_full);
        }
    }

    /// The magazine is full: move the colder (bottom) half of its stack to
    /// the depot in one batch, drop what the depot has no room for, then put
    /// `homeless` (an object [`Magazine::push`] counted in but could not
    /// place) on the stack. `w` is the calling thread's worker number.
    #[cold]
    #[inline(never)]
    pub(super) fn spill(&self, w: usize, mag: &Magazine<T>, homeless: Slot<T>) {
        let mut overflow: [Option<Slot<T>>; MAX_MAGAZINE_SIZE] =
            [const { None }; MAX_MAGAZINE_SIZE];
        // SAFETY: `w` is the calling thread's worker number: it owns
        // magazine `w`.
        let mut owned = unsafe { mag.owned() };
        // `push_from` only moves slots under shard locks. Dropping the
        // overflow (user code) waits until the magazine is released.
        let (half, moved) = owned.with_slots(|slots, counted| {
            // `homeless` is counted but not on the stack.
            let len = counted - 1;
            let half = len.div_ceil(2);
            let moved = self.depot.idle.push_from(w, &mut slots[..half]);
            for (place, slot) in overflow.iter_mut().zip(&mut slots[moved..half]) {
                *place = slot.take();
            }
            // The colder half is out (all `None` now): the rest moves down.
            slots[..len].rotate_left(half);
            slots[len - half] = Some(homeless);
            (half, moved)
        });
        Magazine::<T>::add(&mag.popped, half as u64);
        Magazine::<T>::add(&mag.spills, 1);
        Magazine::<T>::add(&mag.spilled, half as u64);
        let dropped = half - moved;
        if dropped > 0 {
            self.depot.idle.count(w, |c| &c.drops_full, dropped as u64);
            // They left the magazine and the depot has no room for them.
            free_all(overflow.into_iter().flatten());
        }
    }
}
