//! [`Depot`]: sharded, bounded stacks of idle slots, the storage `Pool`
//! (and through it `WorkerPool`) and the `Slab`'s size classes share.

use std::mem;

use crossbeam_utils::CachePadded;

use super::{MAX_SHARDS, Pool};
use crate::loom::{AtomicU64, Ordering};
use crate::reset::Recycle;
use crate::shard::{Counters, Shard, ShardGuard, Stack};
use crate::slot::{Slot, free_all};
use crate::stats::PoolStats;
use crate::thread::{HINT_HERE, default_parallelism, shard_hint};

/// How a slot came to a shard, for the counters.
#[derive(Clone, Copy)]
pub(crate) enum Arrival {
    /// A guard gave it back.
    Returned,
    /// `put` handed it in.
    Adopted,
    /// The builder made it.
    Prefilled,
}

impl<T> ShardGuard<'_, T> {
    /// Pops a slot, counting a hit.
    #[inline]
    fn pop_hit(&mut self) -> Option<Slot<T>> {
        let slot = self.with(Stack::pop)?;
        self.bump(|c| &c.hits, 1);
        Some(slot)
    }

    /// Pushes a slot, counting its arrival.
    #[inline]
    fn push_counted(&mut self, slot: Slot<T>, arrival: Arrival) -> Result<(), Slot<T>> {
        self.with(|stack| stack.push(slot))?;
        match arrival {
            Arrival::Returned => self.bump(|c| &c.returns, 1),
            Arrival::Adopted => self.bump(|c| &c.adopted, 1),
            Arrival::Prefilled => {}
        }
        Ok(())
    }
}

/// Sharded, bounded stacks of idle [`Slot`]s, each behind a try-lock, with
/// the shards' counters. A depot makes nothing and resets nothing: a
/// [`Pool`] adds its constructor, its reset and its retention limit, and a
/// slab size class carves its own chunks.
pub(crate) struct Depot<T> {
    pub(super) shards: Box<[CachePadded<Shard<T>>]>,
    pub(super) mask: usize,
}

// SAFETY: the depot owns its idle objects (as slots) and hands each to one
// taker at a time; sharing it between threads moves objects between them,
// hence `T: Send`. Shard stacks are only touched under their lock.
unsafe impl<T: Send> Send for Depot<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Depot<T> {}

impl<T> Depot<T> {
    /// `shards` shards (the default parallelism if `None`; at most
    /// [`MAX_SHARDS`], rounded up to a power of two) sharing `max_idle`
    /// places.
    pub(crate) fn new(shards: Option<usize>, max_idle: usize) -> Self {
        let n = shards
            .unwrap_or_else(default_parallelism)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two();
        let shards: Box<[_]> = (0..n)
            .map(|i| Shard::new(max_idle / n + usize::from(i < max_idle % n)))
            .collect();
        Depot {
            shards,
            mask: n - 1,
        }
    }

    /// The number of shards (a power of two).
    pub(crate) fn num_shards(&self) -> usize {
        self.shards.len()
    }

    /// Whether every shard is full, as of the last change (no lock taken).
    pub(crate) fn looks_full(&self) -> bool {
        self.shards.iter().all(|s| s.idle() >= s.cap)
    }

    /// Adds `n` to a counter of shard `hint` ([`HINT_HERE`]: the calling
    /// thread's), from any thread.
    #[inline]
    pub(crate) fn count(&self, hint: usize, counter: impl FnOnce(&Counters) -> &AtomicU64, n: u64) {
        let hint = if hint == HINT_HERE {
            shard_hint()
        } else {
            hint
        };
        Counters::add(counter(&self.shards[hint & self.mask].counters), n);
    }

    /// Counts a get that found no idle object (whether or not one is made).
    #[cold]
    pub(crate) fn count_miss(&self, hint: usize) {
        self.count(hint, |c| &c.misses, 1);
    }

    /// Wraps a value made outside the depot in a new slot, counting it as
    /// created (the [`Slab`](crate::Slab) carves chunks this way).
    #[cold]
    pub(crate) fn adopt(&self, hint: usize, value: T) -> Slot<T> {
        self.count(hint, |c| &c.created, 1);
        Slot::new(value)
    }

    /// Drops the idle objects that stayed idle since the previous trim;
    /// returns how many.
    pub(crate) fn trim(&self) -> usize {
        let aged = self.take_aged();
        let n = aged.len();
        // Freed once no lock is held.
        free_all(aged);
        n
    }

    /// A snapshot of the shards' counters.
    pub(crate) fn stats(&self) -> PoolStats {
        let mut s = PoolStats::default();
        for shard in self.shards.iter() {
            let c = &shard.counters;
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            s.hit_count += load(&c.hits);
            s.miss_count += load(&c.misses);
            s.created_count += load(&c.created);
            s.return_count += load(&c.returns);
            s.adopt_count += load(&c.adopted);
            s.detach_count += load(&c.detached);
            s.drop_full_count += load(&c.drops_full);
            s.drop_oversized_count += load(&c.drops_oversized);
            s.drop_discarded_count += load(&c.drops_discarded);
            s.drop_aged_count += load(&c.drops_aged);
            s.num_idle += shard.idle() as u64;
        }
        s.derive_in_use()
    }

    /// Pops an idle slot: from the home shard, else from any other.
    #[inline(always)]
    pub(crate) fn pop_slot(&self, hint: usize) -> Option<Slot<T>> {
        let home = hint & self.mask;
        if let Some(mut guard) = self.shards[home].try_lock() {
            if let Some(slot) = guard.pop_hit() {
                return Some(slot);
            }
            drop(guard);
            return self.pop_slow(home, false);
        }
        self.pop_slow(home, true)
    }

    /// The home shard was empty or busy. First a pass over the other shards
    /// that skips those that look empty or busy; then, before giving up, a
    /// pass that waits for each lock and trusts no hint (the idle gauges are
    /// read without the lock and may be stale).
    #[cold]
    #[inline(never)]
    fn pop_slow(&self, home: usize, home_busy: bool) -> Option<Slot<T>> {
        let n = self.shards.len();
        for k in 1..n {
            let shard = &self.shards[(home + k) & self.mask];
            if shard.idle() == 0 {
                continue;
            }
            if let Some(slot) = shard.try_lock().and_then(|mut g| g.pop_hit()) {
                return Some(slot);
            }
        }
        let start = if home_busy { 0 } else { 1 };
        (start..n).find_map(|k| self.shards[(home + k) & self.mask].lock().pop_hit())
    }

    /// Pushes a slot on the home shard, else on any other with room; hands
    /// it back if every shard is full. `arrival` says what to count.
    #[inline(always)]
    pub(crate) fn push_slot(
        &self,
        hint: usize,
        slot: Slot<T>,
        arrival: Arrival,
    ) -> Result<(), Slot<T>> {
        // SAFETY: `&self` keeps the pool alive through the whole call.
        unsafe { Self::push_slot_gated(self, hint, slot, arrival, || true) }
    }

    /// [`push_slot`](Self::push_slot), but `gate` runs first while holding
    /// the lock of the shard that would take the slot, and the slot is
    /// handed back if it says no.
    ///
    /// The [`Slab`](crate::Slab) reads its closed flag and waiter count in
    /// `gate`: in the same critical section as the push, so that a thread
    /// that set the flag (or registered as a waiter) and then locked every
    /// shard either saw the slot or is seen by `gate`.
    ///
    /// The pool is reached through a raw pointer, and no reference to it
    /// (nor any `gate` captures) may outlive the unlock: once the slot is in
    /// a shard and the lock released, another thread may take the slot and
    /// drop with it the last owner of the pool (a slab chunk keeps its
    /// class, and so the class's pool, alive). The push is then the last
    /// use, as the decrement is in `Arc::drop`.
    ///
    /// # Safety
    /// `this` points to a live pool until the slot is in a shard or handed
    /// back; it may be freed by another thread right after the unlock.
    #[inline(always)]
    pub(crate) unsafe fn push_slot_gated(
        this: *const Self,
        hint: usize,
        slot: Slot<T>,
        arrival: Arrival,
        mut gate: impl FnMut() -> bool,
    ) -> Result<(), Slot<T>> {
        // SAFETY: the caller keeps the pool alive until the push; `pool` is
        // a local (no protected argument) not used past the unlock below.
        let pool = unsafe { &*this };
        let home = hint & pool.mask;
        let pushed = {
            // The guard drops in place at the end of this block (not moved
            // into `drop`, whose argument would stay protected past the
            // unlock).
            let Some(mut guard) = pool.shards[home].try_lock() else {
                // SAFETY: forwarded from our caller.
                return unsafe { Self::push_slow(this, home, slot, arrival, gate, true) };
            };
            if !gate() {
                return Err(slot);
            }
            guard.push_counted(slot, arrival)
        };
        match pushed {
            Ok(()) => {
                race_window();
                Ok(())
            }
            // SAFETY: the slot is still ours, so is the pool (see above).
            Err(slot) => unsafe { Self::push_slow(this, home, slot, arrival, gate, false) },
        }
    }

    /// The home shard was full or busy: as [`pop_slow`](Self::pop_slow), a
    /// pass on hints and try-locks, then one that waits for each lock, so
    /// that an object is dropped only when every shard really is full.
    ///
    /// # Safety
    /// As for [`push_slot_gated`](Self::push_slot_gated).
    #[cold]
    #[inline(never)]
    unsafe fn push_slow(
        this: *const Self,
        home: usize,
        mut slot: Slot<T>,
        arrival: Arrival,
        mut gate: impl FnMut() -> bool,
        home_busy: bool,
    ) -> Result<(), Slot<T>> {
        // SAFETY: as in `push_slot_gated`: alive until the push, and `pool`
        // is not used past the unlock.
        let pool = unsafe { &*this };
        let n = pool.shards.len();
        let start = if home_busy { 0 } else { 1 };
        // A pass on hints and try-locks, then one that waits for each lock.
        let passes = (1..n)
            .map(|k| (k, false))
            .chain((start..n).map(|k| (k, true)));
        for (k, wait) in passes {
            let shard = &pool.shards[(home + k) & pool.mask];
            let pushed = {
                let mut guard = if wait {
                    shard.lock()
                } else if shard.idle() >= shard.cap {
                    continue;
                } else {
                    match shard.try_lock() {
                        Some(guard) => guard,
                        None => continue,
                    }
                };
                if !gate() {
                    return Err(slot);
                }
                guard.push_counted(slot, arrival)
            };
            match pushed {
                Ok(()) => {
                    race_window();
                    return Ok(());
                }
                Err(back) => slot = back,
            }
        }
        Err(slot)
    }

    /// Fills `out` with idle slots (a magazine refill), from the home
    /// shard first; returns how many it took. Batch moves are not counted
    /// as hits: the magazine counts what it hands out.
    pub(crate) fn pop_into(&self, hint: usize, out: &mut [Option<Slot<T>>]) -> usize {
        let mut taken = 0;
        for k in 0..self.shards.len() {
            if taken == out.len() {
                break;
            }
            let shard = &self.shards[(hint + k) & self.mask];
            if shard.idle() == 0 {
                continue;
            }
            shard.lock().with(|stack| {
                while taken < out.len() {
                    match stack.pop() {
                        Some(slot) => out[taken] = Some(slot),
                        None => break,
                    }
                    taken += 1;
                }
            });
        }
        taken
    }

    /// Pushes the slots of `slots`, in order, while the shards have room (a
    /// magazine spill), taking each out; returns how many went in (a prefix
    /// of `slots`, now all `None`). `None`s are skipped as if pushed.
    pub(crate) fn push_from(&self, hint: usize, slots: &mut [Option<Slot<T>>]) -> usize {
        let mut pushed = 0;
        for k in 0..self.shards.len() {
            if pushed == slots.len() {
                break;
            }
            let shard = &self.shards[(hint + k) & self.mask];
            if shard.idle() >= shard.cap {
                continue;
            }
            shard.lock().with(|stack| {
                while pushed < slots.len() {
                    if let Some(slot) = slots[pushed].take() {
                        if let Err(slot) = stack.push(slot) {
                            slots[pushed] = Some(slot);
                            break;
                        }
                    }
                    pushed += 1;
                }
            });
        }
        pushed
    }

    /// Whether any shard holds an idle object, taking every shard's lock in
    /// turn (the other side of [`push_slot_gated`](Self::push_slot_gated)).
    pub(crate) fn has_idle_locked(&self) -> bool {
        self.shards
            .iter()
            .any(|shard| shard.lock().with(|stack| stack.len() > 0))
    }

    /// The idle objects, summed from the shards' gauges without locks.
    #[inline]
    pub(crate) fn idle_hint(&self) -> usize {
        self.shards.iter().map(|shard| shard.idle()).sum()
    }

    /// Drops every idle object, counted as discarded; returns how many.
    pub(crate) fn clear(&self) -> usize {
        let idle = self.take_idle();
        let n = idle.len();
        // Freed once no lock is held.
        free_all(idle);
        n
    }

    /// Takes out the idle objects that stayed idle since the previous trim,
    /// counted as aged, for the caller to drop once it holds no lock.
    pub(crate) fn take_aged(&self) -> Vec<Slot<T>> {
        let mut aged = Vec::new();
        for shard in self.shards.iter() {
            let mut guard = shard.lock();
            let n = guard.with(|stack| stack.trim(|slot| aged.push(slot)));
            guard.bump(|c| &c.drops_aged, n as u64);
        }
        aged
    }

    /// Takes out every idle object, counted as discarded, for the caller to
    /// drop once it holds no lock.
    pub(crate) fn take_idle(&self) -> Vec<Slot<T>> {
        let mut idle = Vec::new();
        for shard in self.shards.iter() {
            let mut guard = shard.lock();
            let before = idle.len();
            guard.with(|stack| stack.drain(|slot| idle.push(slot)));
            guard.bump(|c| &c.drops_discarded, (idle.len() - before) as u64);
        }
        idle
    }
}

impl<T, R: Recycle<T>> Pool<T, R> {
    #[inline(always)]
    pub(crate) fn take_or_make(&self, hint: usize) -> Slot<T> {
        match self.idle.pop_slot(hint) {
            Some(slot) => slot,
            None => self.make_slot(hint),
        }
    }

    /// Makes a new object in a new slot: a miss.
    #[cold]
    #[inline(never)]
    pub(crate) fn make_slot(&self, hint: usize) -> Slot<T> {
        let value = (self.make)();
        self.idle.count_miss(hint);
        self.idle.count(hint, |c| &c.created, 1);
        Slot::new(value)
    }

    /// Resets the object in `slot` and keeps it, or drops it if it is over
    /// the retention limit or the pool is full.
    #[inline(always)]
    pub(crate) fn recycle_at(&self, slot: Slot<T>, hint: usize) {
        if let Some(slot) = self.reset_slot(slot, hint) {
            if let Err(slot) = self.idle.push_slot(hint, slot, Arrival::Returned) {
                self.drop_slot(slot, hint, |c| &c.drops_full);
            }
        }
    }

    /// Resets the object in `slot` and hands the slot back if it may be
    /// kept. An object over the retention limit is dropped (and `None`
    /// returned), as is one whose reset panicked (the panic goes on).
    #[inline(always)]
    pub(crate) fn reset_slot(&self, slot: Slot<T>, hint: usize) -> Option<Slot<T>> {
        /// Owns the slot while user code resets it: drops it if that
        /// unwinds.
        struct DropOnUnwind<'a, T, R: Recycle<T>>(&'a Pool<T, R>, Option<Slot<T>>, usize);
        impl<T, R: Recycle<T>> Drop for DropOnUnwind<'_, T, R> {
            fn drop(&mut self) {
                if let Some(slot) = self.1.take() {
                    self.0.drop_slot(slot, self.2, |c| &c.drops_discarded);
                }
            }
        }
        let mut bomb = DropOnUnwind(self, Some(slot), hint);
        let value = bomb.1.as_mut().map(Slot::get_mut)?;
        self.recycle.reset(value);
        let retained = self.recycle.retained_bytes(value);
        let slot = bomb.1.take()?;
        mem::forget(bomb);
        if retained > self.retention_limit {
            crate::observe::trace::dropped_oversized(self.label, retained, self.retention_limit);
            self.drop_slot(slot, hint, |c| &c.drops_oversized);
            return None;
        }
        Some(slot)
    }

    /// Drops the object in `slot` and counts it in `counter`.
    #[cold]
    #[inline(never)]
    pub(crate) fn drop_slot(
        &self,
        slot: Slot<T>,
        hint: usize,
        counter: impl FnOnce(&Counters) -> &AtomicU64,
    ) {
        // A `WorkerPool`'s hold ends here when its reset drops the object
        // (a plain `Pool` ended it already: then this finds nothing).
        if let Some(holds) = &self.holds {
            holds.returned(slot.addr(), |_| None);
        }
        self.idle.count(hint, counter, 1);
        slot.free();
    }
}

/// Test-only: under `--cfg capacitor_race_window`, yields the thread right
/// after a push unlocked its shard, so that tests run under Miri reach the
/// interleavings where another thread frees the pool's owner in that
/// moment (`scripts/miri.sh`). A no-op otherwise.
#[inline(always)]
fn race_window() {
    #[cfg(capacitor_race_window)]
    for _ in 0..16 {
        std::thread::yield_now();
    }
}
