//! `Pool<T>`: the general pool, sharded and bounded, usable from any thread.
//!
//! ```
//! use capacitor_pool::Pool;
//! use bytes::{BufMut, BytesMut};
//!
//! let pool = Pool::new(|| BytesMut::with_capacity(4096));
//! let mut buf = pool.get();
//! buf.put_slice(b"test");
//! assert_eq!(&buf[..], b"test");
//! drop(buf); // cleared and kept for the next get
//! assert!(pool.get().is_empty());
//! ```

use std::cell::Cell;
use std::fmt;
use std::mem;
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::guard::{OwnedPooled, PoolKind, Pooled, sealed};
use crate::loom::Ordering;
use crate::reset::{Recycle, Reset, ResetWith, UseReset};
use crate::shard::{Counters, Shard, ShardGuard, Stack, free_all, free_slot, new_slot, take_slot};
use crate::stats::PoolStats;

/// Objects retaining more than this are dropped instead of kept (the Go
/// guide's "don't pool objects over 1 MB").
///
/// ```
/// use capacitor_pool::Pool;
/// use capacitor_pool::pool::DEFAULT_RETENTION_LIMIT;
///
/// let pool = Pool::new(Vec::<u8>::new);
/// assert_eq!(pool.retention_limit(), DEFAULT_RETENTION_LIMIT);
/// pool.get().reserve(DEFAULT_RETENTION_LIMIT + 1);
/// assert_eq!(pool.stats().drop_oversized_count, 1); // too big to keep
/// ```
pub const DEFAULT_RETENTION_LIMIT: usize = 1 << 20;

/// Idle objects a pool keeps at most unless its builder says otherwise.
///
/// ```
/// use capacitor_pool::Pool;
/// use capacitor_pool::pool::DEFAULT_MAX_IDLE;
///
/// assert_eq!(Pool::new(String::new).max_idle(), DEFAULT_MAX_IDLE);
/// ```
pub const DEFAULT_MAX_IDLE: usize = 1024;

type Make<T> = Box<dyn Fn() -> T + Send + Sync>;

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
    fn pop_hit(&mut self) -> Option<NonNull<T>> {
        let slot = self.with(Stack::pop)?;
        self.bump(|c| &c.hits, 1);
        Some(slot)
    }

    /// Pushes a slot, counting its arrival.
    #[inline]
    fn push_counted(&mut self, slot: NonNull<T>, arrival: Arrival) -> Result<(), NonNull<T>> {
        self.with(|stack| stack.push(slot))?;
        match arrival {
            Arrival::Returned => self.bump(|c| &c.returns, 1),
            Arrival::Adopted => self.bump(|c| &c.adopted, 1),
            Arrival::Prefilled => {}
        }
        Ok(())
    }
}

/// A sharded, bounded pool of reusable objects, usable from any thread.
///
/// `R` is the recycling policy: [`UseReset`] (the [`Reset`] trait) unless
/// the builder was given a closure or a [`Recycle`] impl.
///
/// # How it works
///
/// This is Go's `sync.Pool` done for Rust and tokio. Objects live in heap
/// slots of their own that never move (moving a `BytesMut` through a `Vec`
/// by value costs several times what using it in place does). The pool keeps idle slot pointers in
/// shards: one bounded LIFO stack per shard behind a try-lock, each shard
/// with its counters in its own 128-byte block. A thread picks its home shard
/// from `tokio::runtime::worker_index()` on a runtime worker (workers of one
/// runtime get distinct shards when there are enough), else from a dense
/// per-thread number.
///
/// - `get` pops from the home shard; if it is empty (or busy), it looks at
///   the other shards with `try_lock` (stealing, as `sync.Pool` steals from
///   other Ps), and only then makes a new object: a miss.
/// - Dropping a guard resets the object, drops it if it retains more than
///   the retention limit, else pushes it on the dropping thread's home shard
///   (or another with room); if every shard is full, the object is dropped:
///   the pool never holds more than `max_idle` objects.
///
/// Each shard is locked for a push or a pop of one pointer, so a contended
/// lock is held for nanoseconds; a busy shard is skipped rather than waited
/// on whenever another will do.
///
/// [`WorkerPool`](crate::WorkerPool) adds lock-free per-worker magazines in front of this
/// pool, for hot paths on tokio workers.
///
/// # Examples
///
/// A pool in a `static`, used from spawned tasks:
///
/// ```
/// use capacitor_pool::Pool;
/// use std::sync::LazyLock;
///
/// static SCRATCH: LazyLock<Pool<Vec<u64>>> =
///     LazyLock::new(|| Pool::new(|| Vec::with_capacity(128)));
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let mut v = SCRATCH.get(); // Pooled<'static, Vec<u64>>
/// let sum = tokio::spawn(async move {
///     v.extend([1, 2, 3]);
///     tokio::task::yield_now().await;
///     v.iter().sum::<u64>()
/// })
/// .await
/// .unwrap();
/// assert_eq!(sum, 6);
/// # }
/// ```
pub struct Pool<T, R = UseReset> {
    shards: Box<[CachePadded<Shard<T>>]>,
    mask: usize,
    make: Make<T>,
    recycle: R,
    retention_limit: usize,
    max_idle: usize,
}

// SAFETY: the pool owns its idle objects (through slot pointers) and hands
// each to one guard at a time; sharing the pool between threads moves
// objects between them, hence `T: Send`. Shard stacks are only touched under
// their lock.
unsafe impl<T: Send, R: Send> Send for Pool<T, R> {}
// SAFETY: as above; `&Pool` uses the recycling policy from any thread.
unsafe impl<T: Send, R: Sync> Sync for Pool<T, R> {}

impl<T: Reset + 'static> Pool<T> {
    /// A pool that makes objects with `make` and resets them with their
    /// [`Reset`] impl, with the default bounds.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(|| String::with_capacity(64));
    /// assert!(pool.get().capacity() >= 64);
    /// ```
    pub fn new(make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Self::builder(make).build()
    }
}

impl<T: 'static> Pool<T> {
    /// A builder for a pool that makes objects with `make`.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(|| Vec::<u8>::with_capacity(4096))
    ///     .max_idle(64)
    ///     .retention_limit(64 * 1024)
    ///     .prefill(8)
    ///     .build();
    /// assert_eq!(pool.stats().num_idle, 8);
    /// ```
    pub fn builder(make: impl Fn() -> T + Send + Sync + 'static) -> PoolBuilder<T> {
        PoolBuilder {
            make: Box::new(make),
            recycle: UseReset,
            max_idle: DEFAULT_MAX_IDLE,
            retention_limit: DEFAULT_RETENTION_LIMIT,
            shards: None,
            prefill: 0,
        }
    }
}

impl<T, R: Recycle<T>> Pool<T, R> {
    /// Takes an idle object, or makes a new one if none is idle.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// let mut v = pool.get();
    /// v.push(1);
    /// ```
    #[inline(always)]
    pub fn get(&self) -> Pooled<'_, T, Self> {
        Pooled::new(self, self.take_or_make(shard_hint()))
    }

    /// Takes an idle object; `None` if none is idle. Never makes one.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// assert!(pool.try_get().is_none());
    /// drop(pool.get());
    /// assert!(pool.try_get().is_some());
    /// ```
    #[inline]
    pub fn try_get(&self) -> Option<Pooled<'_, T, Self>> {
        let hint = shard_hint();
        match self.pop_slot(hint) {
            Some(slot) => Some(Pooled::new(self, slot)),
            None => {
                self.count_miss(hint);
                None
            }
        }
    }

    /// Like [`get`](Pool::get), for a pool in an [`Arc`]: the guard is
    /// `'static` and can move into `tokio::spawn` or a thread.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(String::new));
    /// let mut s = pool.get_owned();
    /// std::thread::spawn(move || s.push_str("elsewhere")).join().unwrap();
    /// assert_eq!(pool.stats().return_count, 1);
    /// ```
    #[inline(always)]
    pub fn get_owned(self: &Arc<Self>) -> OwnedPooled<T, Self> {
        OwnedPooled::new(Arc::clone(self), self.take_or_make(shard_hint()))
    }

    /// Like [`try_get`](Pool::try_get), for a pool in an [`Arc`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(String::new));
    /// assert!(pool.try_get_owned().is_none()); // never makes one
    /// drop(pool.get_owned());
    /// let s = pool.try_get_owned().unwrap(); // 'static: no borrow of `pool`
    /// std::thread::spawn(move || drop(s)).join().unwrap();
    /// assert_eq!(pool.stats().return_count, 2);
    /// ```
    #[inline]
    pub fn try_get_owned(self: &Arc<Self>) -> Option<OwnedPooled<T, Self>> {
        let hint = shard_hint();
        match self.pop_slot(hint) {
            Some(slot) => Some(OwnedPooled::new(Arc::clone(self), slot)),
            None => {
                self.count_miss(hint);
                None
            }
        }
    }

    /// Hands a value to the pool. The value is reset first; it comes back
    /// as `Err` if it retains more than the retention limit or if the pool
    /// already holds its maximum of idle objects.
    ///
    /// Each value put gets a slot of its own: one allocation, as big as a
    /// `Box<T>`. Returning objects by dropping their guard costs none.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).max_idle(1).build();
    /// assert!(pool.put(vec![1, 2, 3]).is_ok());
    /// assert_eq!(pool.put(vec![4]), Err(vec![])); // full: handed back, reset
    /// assert!(pool.get().is_empty());
    /// ```
    pub fn put(&self, mut value: T) -> Result<(), T> {
        self.recycle.reset(&mut value);
        if self.recycle.retained_bytes(&value) > self.retention_limit {
            return Err(value);
        }
        if self.shards.iter().all(|s| s.idle() >= s.cap) {
            return Err(value);
        }
        let slot = new_slot(value);
        match self.push_slot(shard_hint(), slot, Arrival::Adopted) {
            Ok(()) => Ok(()),
            // SAFETY: the slot was made above and never left this function.
            Err(slot) => Err(unsafe { take_slot(slot) }),
        }
    }

    /// Drops the idle objects that stayed idle since the previous `trim`
    /// (Go's victim cache, without a GC): call it periodically, and objects
    /// unused through two calls are released. Returns how many it dropped.
    ///
    /// If an object's destructor panics, the others are dropped all the
    /// same, and then the first panic goes on.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).prefill(4).build();
    /// assert_eq!(pool.trim(), 0); // starts the first aging period
    /// assert_eq!(pool.trim(), 4); // idle through it: dropped
    /// assert_eq!(pool.stats().num_idle, 0);
    /// ```
    pub fn trim(&self) -> usize {
        let aged = self.take_aged();
        let n = aged.len();
        // SAFETY: trimmed slots left the stacks and belong to us alone.
        unsafe { free_all(aged) };
        n
    }

    /// A snapshot of the pool's counters, summed over its shards.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// let held = pool.get();
    /// drop(pool.get());
    /// let stats = pool.stats();
    /// assert_eq!((stats.get_count, stats.created_count), (2, 2));
    /// assert_eq!((stats.num_in_use, stats.num_idle), (1, 1));
    /// drop(held);
    /// ```
    pub fn stats(&self) -> PoolStats {
        let mut s = PoolStats::default();
        for shard in self.shards.iter() {
            let c = &shard.counters;
            let load = |a: &crate::loom::AtomicU64| a.load(Ordering::Relaxed);
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

    /// The most idle objects the pool keeps.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(String::new).max_idle(16).build();
    /// assert_eq!(pool.max_idle(), 16);
    /// ```
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// Objects retaining more bytes than this are dropped on return.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(String::new).retention_limit(4096).build();
    /// assert_eq!(pool.retention_limit(), 4096);
    /// ```
    pub fn retention_limit(&self) -> usize {
        self.retention_limit
    }

    /// The number of shards (a power of two).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(String::new).shards(3).build();
    /// assert_eq!(pool.num_shards(), 4); // rounded up to a power of two
    /// ```
    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }

    // ---- slot-level API, shared with WorkerPool (its depot) and the models.

    #[inline(always)]
    pub(crate) fn take_or_make(&self, hint: usize) -> NonNull<T> {
        match self.pop_slot(hint) {
            Some(slot) => slot,
            None => self.make_slot(hint),
        }
    }

    /// Pops an idle slot: from the home shard, else from any other.
    #[inline(always)]
    pub(crate) fn pop_slot(&self, hint: usize) -> Option<NonNull<T>> {
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
    fn pop_slow(&self, home: usize, home_busy: bool) -> Option<NonNull<T>> {
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

    /// Makes a new object in a new slot: a miss.
    #[cold]
    #[inline(never)]
    pub(crate) fn make_slot(&self, hint: usize) -> NonNull<T> {
        let value = (self.make)();
        self.count_miss(hint);
        Counters::add(&self.shards[hint & self.mask].counters.created, 1);
        new_slot(value)
    }

    /// Counts a get that found no idle object (whether or not one is made).
    #[cold]
    pub(crate) fn count_miss(&self, hint: usize) {
        Counters::add(&self.shards[hint & self.mask].counters.misses, 1);
    }

    /// Pushes a slot on the home shard, else on any other with room; hands
    /// it back if every shard is full. `arrival` says what to count.
    #[inline(always)]
    pub(crate) fn push_slot(
        &self,
        hint: usize,
        slot: NonNull<T>,
        arrival: Arrival,
    ) -> Result<(), NonNull<T>> {
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
        slot: NonNull<T>,
        arrival: Arrival,
        mut gate: impl FnMut() -> bool,
    ) -> Result<(), NonNull<T>> {
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
        mut slot: NonNull<T>,
        arrival: Arrival,
        mut gate: impl FnMut() -> bool,
        home_busy: bool,
    ) -> Result<(), NonNull<T>> {
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
    pub(crate) fn pop_into(&self, hint: usize, out: &mut [*mut T]) -> usize {
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
                        Some(slot) => out[taken] = slot.as_ptr(),
                        None => break,
                    }
                    taken += 1;
                }
            });
        }
        taken
    }

    /// Pushes the slots of `slots`, in order, while the shards have room (a
    /// magazine spill); returns how many went in (a prefix of `slots`).
    /// Null pointers are skipped as if pushed.
    pub(crate) fn push_from(&self, hint: usize, slots: &[*mut T]) -> usize {
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
                    if let Some(slot) = NonNull::new(slots[pushed]) {
                        if stack.push(slot).is_err() {
                            break;
                        }
                    }
                    pushed += 1;
                }
            });
        }
        pushed
    }

    /// Resets the object in `slot` and keeps it, or drops it if it is over
    /// the retention limit or the pool is full.
    ///
    /// # Safety
    /// `slot` belongs to this pool's objects and nothing else uses it.
    #[inline(always)]
    pub(crate) unsafe fn recycle_at(&self, slot: NonNull<T>, hint: usize) {
        // SAFETY: the caller hands us the slot's only use.
        let keep = unsafe { self.reset_slot(slot, hint) };
        if keep {
            if let Err(slot) = self.push_slot(hint, slot, Arrival::Returned) {
                // SAFETY: the slot is ours alone (see above).
                unsafe { self.drop_slot(slot, hint, |c| &c.drops_full) };
            }
        }
    }

    /// Resets the object in `slot`; `true` if it may be kept. An object over
    /// the retention limit is dropped (and `false` returned), as is one whose
    /// reset panicked (the panic goes on).
    ///
    /// # Safety
    /// As for [`recycle_at`](Self::recycle_at).
    #[inline(always)]
    pub(crate) unsafe fn reset_slot(&self, slot: NonNull<T>, hint: usize) -> bool {
        struct DropOnUnwind<'a, T, R: Recycle<T>>(&'a Pool<T, R>, NonNull<T>, usize);
        impl<T, R: Recycle<T>> Drop for DropOnUnwind<'_, T, R> {
            fn drop(&mut self) {
                // SAFETY: only reached while unwinding out of `reset`, when
                // the slot is still ours alone.
                unsafe { self.0.drop_slot(self.1, self.2, |c| &c.drops_discarded) };
            }
        }
        let bomb = DropOnUnwind(self, slot, hint);
        // SAFETY: the slot holds a live `T` that only we use.
        let value = unsafe { &mut *slot.as_ptr() };
        self.recycle.reset(value);
        let retained = self.recycle.retained_bytes(value);
        mem::forget(bomb);
        if retained > self.retention_limit {
            // SAFETY: as above.
            unsafe { self.drop_slot(slot, hint, |c| &c.drops_oversized) };
            return false;
        }
        true
    }

    /// Drops the object in `slot` and counts it in `counter`.
    ///
    /// # Safety
    /// As for [`recycle_at`](Self::recycle_at).
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn drop_slot(
        &self,
        slot: NonNull<T>,
        hint: usize,
        counter: impl FnOnce(&Counters) -> &crate::loom::AtomicU64,
    ) {
        let hint = if hint == HINT_HERE {
            shard_hint()
        } else {
            hint
        };
        Counters::add(counter(&self.shards[hint & self.mask].counters), 1);
        // SAFETY: the caller hands us the slot's only use.
        unsafe { free_slot(slot) };
    }

    /// Wraps a value made outside the pool in a new slot, counting it as
    /// created (the [`Slab`](crate::Slab) carves chunks this way).
    #[cold]
    pub(crate) fn adopt_slot(&self, hint: usize, value: T) -> NonNull<T> {
        Counters::add(&self.shards[hint & self.mask].counters.created, 1);
        new_slot(value)
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
        // SAFETY: drained slots left the stacks and belong to us alone.
        unsafe { free_all(idle) };
        n
    }

    /// Counts objects dropped because the pool was full (a magazine spill).
    pub(crate) fn count_full_drops(&self, hint: usize, n: u64) {
        Counters::add(&self.shards[hint & self.mask].counters.drops_full, n);
    }

    pub(crate) fn count_detach(&self, hint: usize) {
        Counters::add(&self.shards[hint & self.mask].counters.detached, 1);
    }
}

impl<T, R: Recycle<T>> sealed::Home<T> for Pool<T, R> {
    #[inline(always)]
    unsafe fn recycle(&self, slot: NonNull<T>) {
        // SAFETY: forwarded from the guard's contract.
        unsafe { self.recycle_at(slot, shard_hint()) }
    }

    unsafe fn discard(&self, slot: NonNull<T>) {
        // SAFETY: forwarded from the guard's contract.
        unsafe { self.drop_slot(slot, shard_hint(), |c| &c.drops_discarded) }
    }

    unsafe fn detach(&self, slot: NonNull<T>) -> T {
        self.count_detach(shard_hint());
        // SAFETY: forwarded from the guard's contract.
        unsafe { take_slot(slot) }
    }
}

impl<T, R: Recycle<T>> PoolKind<T> for Pool<T, R> {}

impl<T, R> Pool<T, R> {
    /// Takes out the idle objects that stayed idle since the previous trim,
    /// counted as aged, for the caller to drop once it holds no lock.
    pub(crate) fn take_aged(&self) -> Vec<NonNull<T>> {
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
    pub(crate) fn take_idle(&self) -> Vec<NonNull<T>> {
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

impl<T, R> Drop for Pool<T, R> {
    fn drop(&mut self) {
        let idle = self.take_idle();
        // SAFETY: idle slots belong to the pool alone, and the pool is going
        // away.
        unsafe { free_all(idle) };
    }
}

impl<T, R: Recycle<T>> fmt::Debug for Pool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("shards", &self.shards.len())
            .field("max_idle", &self.max_idle)
            .field("retention_limit", &self.retention_limit)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Pool`]; made by [`Pool::builder`].
///
/// ```
/// use capacitor_pool::Pool;
/// use capacitor_pool::pool::PoolBuilder;
///
/// let builder: PoolBuilder<Vec<u8>> = Pool::builder(Vec::new);
/// let pool = builder.max_idle(8).shards(2).build();
/// assert_eq!((pool.max_idle(), pool.num_shards()), (8, 2));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<T, R = UseReset> {
    make: Make<T>,
    recycle: R,
    max_idle: usize,
    retention_limit: usize,
    shards: Option<usize>,
    prefill: usize,
}

impl<T: 'static, R> PoolBuilder<T, R> {
    /// The most idle objects the pool keeps (default
    /// [`DEFAULT_MAX_IDLE`]); objects returned to a full pool are dropped.
    /// 0 makes a pool that keeps nothing.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).max_idle(1).shards(1).build();
    /// let (a, b) = (pool.get(), pool.get());
    /// drop((a, b)); // the second finds the pool full
    /// let stats = pool.stats();
    /// assert_eq!((stats.num_idle, stats.drop_full_count), (1, 1));
    /// ```
    pub fn max_idle(mut self, max_idle: usize) -> Self {
        self.max_idle = max_idle;
        self
    }

    /// Objects that retain more bytes than this after their reset are
    /// dropped on return (default [`DEFAULT_RETENTION_LIMIT`], 1 MiB).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).retention_limit(1024).build();
    /// pool.get().reserve(4096); // grown past the limit: dropped on return
    /// drop(pool.get()); // small: kept
    /// let stats = pool.stats();
    /// assert_eq!((stats.drop_oversized_count, stats.num_idle), (1, 1));
    /// ```
    pub fn retention_limit(mut self, bytes: usize) -> Self {
        self.retention_limit = bytes;
        self
    }

    /// The number of shards, rounded up to a power of two (0 counts as 1),
    /// at most [`MAX_SHARDS`] (1,024). The default is the runtime's worker
    /// count when built inside a tokio runtime, else the number of CPUs,
    /// rounded up.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).shards(0).build();
    /// assert_eq!(pool.num_shards(), 1); // 0 counts as 1
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Makes this many objects up front (at most `max_idle`).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(|| Vec::<u8>::with_capacity(512)).max_idle(4).prefill(10).build();
    /// assert_eq!(pool.stats().num_idle, 4); // at most max_idle
    /// assert!(pool.try_get().is_some());
    /// ```
    pub fn prefill(mut self, count: usize) -> Self {
        self.prefill = count;
        self
    }

    /// Resets objects with a closure instead of the [`Reset`] trait.
    ///
    /// A closure cannot report retained capacity, so the retention limit
    /// does not apply; implement [`Recycle`] to have both.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// struct Conn { buf: Vec<u8>, retries: u32 }
    ///
    /// let pool = Pool::builder(|| Conn { buf: Vec::new(), retries: 0 })
    ///     .reset(|c: &mut Conn| {
    ///         c.buf.clear();
    ///         c.retries = 0;
    ///     })
    ///     .build();
    /// let mut c = pool.get();
    /// c.retries = 3;
    /// drop(c);
    /// assert_eq!(pool.get().retries, 0);
    /// ```
    pub fn reset<F>(self, reset: F) -> PoolBuilder<T, ResetWith<F>>
    where
        F: Fn(&mut T) + Send + Sync,
    {
        self.recycler(ResetWith(reset))
    }

    /// Recycles objects with a [`Recycle`] policy.
    ///
    /// ```
    /// use capacitor_pool::{Pool, Recycle};
    ///
    /// // Objects keep their contents; only the size limit applies.
    /// struct KeepAll;
    /// impl Recycle<Vec<u8>> for KeepAll {
    ///     fn reset(&self, _: &mut Vec<u8>) {}
    ///     fn retained_bytes(&self, v: &Vec<u8>) -> usize {
    ///         v.capacity()
    ///     }
    /// }
    /// let pool = Pool::builder(Vec::new).recycler(KeepAll).shards(1).build();
    /// pool.get().push(7);
    /// assert_eq!(*pool.get(), [7]);
    /// ```
    pub fn recycler<R2: Recycle<T>>(self, recycle: R2) -> PoolBuilder<T, R2> {
        PoolBuilder {
            make: self.make,
            recycle,
            max_idle: self.max_idle,
            retention_limit: self.retention_limit,
            shards: self.shards,
            prefill: self.prefill,
        }
    }

    /// Builds the pool (and makes the prefill objects).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::builder(Vec::<u8>::new).prefill(2).build();
    /// assert_eq!(pool.stats().created_count, 2); // the prefill, made by `build`
    /// ```
    pub fn build(self) -> Pool<T, R>
    where
        R: Recycle<T>,
    {
        let n = self
            .shards
            .unwrap_or_else(default_shards)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two();
        let shards: Box<[_]> = (0..n)
            .map(|i| Shard::new(self.max_idle / n + usize::from(i < self.max_idle % n)))
            .collect();
        let pool = Pool {
            shards,
            mask: n - 1,
            make: self.make,
            recycle: self.recycle,
            retention_limit: self.retention_limit,
            max_idle: self.max_idle,
        };
        for i in 0..self.prefill.min(self.max_idle) {
            let slot = new_slot((pool.make)());
            Counters::add(&pool.shards[i & pool.mask].counters.created, 1);
            if let Err(slot) = pool.push_slot(i, slot, Arrival::Prefilled) {
                // SAFETY: just made, ours alone.
                unsafe { free_slot(slot) };
                break;
            }
        }
        pool
    }
}

impl<T, R> fmt::Debug for PoolBuilder<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("max_idle", &self.max_idle)
            .field("retention_limit", &self.retention_limit)
            .field("shards", &self.shards)
            .field("prefill", &self.prefill)
            .finish_non_exhaustive()
    }
}

/// The default shard count: the current runtime's workers, or the CPUs.
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

/// The most shards a pool, a slab class or a cache has: a larger count is
/// taken as this one.
pub const MAX_SHARDS: usize = 1024;

fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_workers());
    cpus.max(workers)
}

/// A shard hint that stands for [`shard_hint`], worked out only by the cold
/// paths that use it (a drop's counter): hot paths that may need a hint
/// pass this instead of reading a thread-local they rarely need.
pub(crate) const HINT_HERE: usize = usize::MAX;

/// The calling thread's home-shard hint: its tokio worker index if the
/// thread is a runtime worker at its first use of a pool, else a dense number
/// given to the thread then. Cached in a thread-local: one TLS load per call.
///
/// It is only a hint (every shard is locked), so a stale value (a thread that
/// later joins a runtime, two runtimes numbering workers alike) costs at most
/// some contention, never correctness.
#[inline]
pub(crate) fn shard_hint() -> usize {
    thread_local! {
        static HINT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    match HINT.try_with(Cell::get) {
        Ok(usize::MAX) => HINT
            .try_with(|h| {
                let hint = first_hint();
                h.set(hint);
                hint
            })
            .unwrap_or(0),
        Ok(hint) => hint,
        Err(_) => 0,
    }
}

#[cold]
#[inline(never)]
fn first_hint() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Plain threads count down from the top of the index space, so they
    // spread over the shards that worker indices (counting up) use last.
    static NEXT: AtomicUsize = AtomicUsize::new(usize::MAX - 1);
    match tokio::runtime::worker_index() {
        Some(index) => index,
        None => NEXT.fetch_sub(1, Ordering::Relaxed),
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! Loom models of the shard try-lock and the pool's slot paths: threads
    //! getting and putting never lose an object or hand one out twice.
    //! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib`.

    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    use crate::loom::model::{Obj, hold, release};

    fn pool(shards: usize, max_idle: usize, prefill: usize) -> Arc<Pool<Obj>> {
        Arc::new(
            Pool::builder(Obj::new)
                .shards(shards)
                .max_idle(max_idle)
                .prefill(prefill)
                .build(),
        )
    }

    fn accounting(pool: &Pool<Obj>) -> PoolStats {
        let s = pool.stats();
        assert_eq!(s.get_count, s.hit_count + s.miss_count);
        assert_eq!(
            s.created_count + s.adopt_count,
            s.num_idle + s.drop_count() + s.detach_count,
            "{s}"
        );
        s
    }

    /// Two threads on the same home shard: one gets the try-lock, the other
    /// steals from the second shard or waits; objects are never shared.
    #[test]
    fn same_home_shard_get_and_recycle() {
        loom::model(|| {
            let pool = pool(2, 2, 2);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let pool = Arc::clone(&pool);
                    thread::spawn(move || {
                        let slot = pool.take_or_make(0);
                        hold(slot);
                        release(slot);
                        // SAFETY: the slot came from this pool and is done.
                        unsafe { pool.recycle_at(slot, 0) };
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let s = accounting(&pool);
            assert_eq!(s.num_idle, 2);
        });
    }

    /// Objects move between shards: taken on one, returned on the other,
    /// while a third path hands a new value in; the bound holds.
    #[test]
    fn cross_shard_return_and_put_keep_the_bound() {
        loom::model(|| {
            let pool = pool(2, 2, 1);
            let a = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let slot = pool.take_or_make(0);
                    hold(slot);
                    release(slot);
                    // SAFETY: the slot came from this pool and is done.
                    unsafe { pool.recycle_at(slot, 1) };
                })
            };
            let b = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let slot = pool.take_or_make(1);
                    hold(slot);
                    release(slot);
                    // SAFETY: as above.
                    unsafe { pool.recycle_at(slot, 0) };
                })
            };
            a.join().unwrap();
            b.join().unwrap();
            let s = accounting(&pool);
            assert!(s.num_idle <= 2);
            assert_eq!(s.num_idle + s.drop_full_count, s.created_count);
        });
    }

    /// A get whose home shard is locked by a return: an object stays idle
    /// in that shard the whole time, so the get must wait for the lock and
    /// take it (or the returned one), never make a new one. The depot's
    /// promise that a get misses only when no object is idle.
    #[test]
    fn a_get_waits_for_a_busy_shard_with_an_idle_object() {
        loom::model(|| {
            // One object in each shard; the second goes to the returner.
            let pool = pool(2, 4, 2);
            let slot = pool.take_or_make(1);
            let slot = slot.as_ptr() as usize;
            let returner = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let slot = NonNull::new(slot as *mut Obj).unwrap();
                    // SAFETY: handed over from the main thread, which no
                    // longer uses it.
                    unsafe { pool.recycle_at(slot, 0) };
                })
            };
            let got = pool.pop_slot(0).expect("an object was idle throughout");
            hold(got);
            release(got);
            // SAFETY: the slot came from this pool and is done.
            unsafe { pool.recycle_at(got, 0) };
            returner.join().unwrap();
            let s = accounting(&pool);
            assert_eq!((s.created_count, s.num_idle), (2, 2), "{s}");
        });
    }

    /// A batch refill racing a batch spill (the WorkerPool magazine paths).
    #[test]
    fn batch_refill_and_spill_move_every_slot_once() {
        loom::model(|| {
            let pool = pool(2, 4, 2);
            let spiller = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let mag: Vec<*mut Obj> =
                        (0..2).map(|_| new_slot(Obj::new()).as_ptr()).collect();
                    let moved = pool.push_from(1, &mag);
                    for &slot in &mag[moved..] {
                        // SAFETY: slots left over are this thread's alone.
                        unsafe { free_slot(NonNull::new(slot).unwrap()) };
                    }
                    moved
                })
            };
            let mut mag = [std::ptr::null_mut(); 4];
            let got = pool.pop_into(0, &mut mag);
            for &slot in &mag[..got] {
                let slot = NonNull::new(slot).unwrap();
                hold(slot);
                // SAFETY: slots taken in the batch are this thread's alone.
                unsafe { free_slot(slot) };
            }
            let spilled = spiller.join().unwrap();
            let s = pool.stats();
            assert_eq!(s.num_idle as usize, 2 + spilled - got);
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_drop_with_hint_here_counts_on_the_calling_threads_shard() {
        let pool = Pool::builder(Vec::<u8>::new).shards(8).build();
        // A thread whose own shard is not shard 0 (the hint the worker
        // pool passed before `HINT_HERE`); plain threads take hints in
        // turn, so one of two threads in a row has one.
        let here = std::thread::scope(|s| {
            (0..2)
                .find_map(|_| {
                    s.spawn(|| {
                        let here = shard_hint() & pool.mask;
                        (here != 0).then(|| {
                            let slot = pool.take_or_make(here);
                            // SAFETY: the slot was just made and is ours.
                            unsafe { pool.drop_slot(slot, HINT_HERE, |c| &c.drops_discarded) };
                            here
                        })
                    })
                    .join()
                    .unwrap()
                })
                .expect("a thread off shard 0")
        });
        let counts: Vec<u64> = pool
            .shards
            .iter()
            .map(|s| s.counters.drops_discarded.load(Ordering::Relaxed))
            .collect();
        let mut expected = vec![0; 8];
        expected[here] = 1;
        assert_eq!(counts, expected);
    }
}
