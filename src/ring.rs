//! `RingPool<T>`: a fixed ring of preallocated objects with async `get`.
//!
//! ```
//! use capacitor_pool::RingPool;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let ring = RingPool::new(2, || Vec::<u8>::with_capacity(1024)).unwrap();
//! let a = ring.get().await.unwrap();
//! let b = ring.get().await.unwrap();
//! assert!(ring.try_get().is_err()); // both slots in use: never a third object
//! drop(a); // frees a slot and wakes one waiter
//! let c = ring.get().await.unwrap();
//! # drop((b, c));
//! # }
//! ```

use std::cell::UnsafeCell as StdUnsafeCell;
use std::fmt;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::error::{BuildError, GetError, GetTimeoutError, TryGetError};
use crate::guard::{OwnedPooled, PoolKind, Pooled, sealed};
use crate::loom::{AtomicU64, AtomicUsize, Ordering, SpinWait};
use crate::pool::{DEFAULT_RETENTION_LIMIT, shard_hint};
use crate::reset::{Recycle, Reset, ResetWith, UseReset};

/// A guard from a [`RingPool`]: [`Pooled`] with the pool type filled in.
pub type RingGuard<'a, T, R = UseReset> = Pooled<'a, T, RingPool<T, R>>;

/// An owned guard from a [`RingPool`] in an [`Arc`].
pub type OwnedRingGuard<T, R = UseReset> = OwnedPooled<T, RingPool<T, R>>;

type Make<T> = Box<dyn Fn() -> T + Send + Sync>;

/// One slot: the object, in place for the ring's whole life.
///
/// `repr(C)` with `value` first: `index_of` divides a value pointer's
/// offset by the slot size, which needs every value at offset 0 of its slot
/// (without it, rustc may place a zero-sized `value` after `uses`).
#[repr(C)]
struct RingSlot<T> {
    value: StdUnsafeCell<T>,
    /// Times the slot was handed out; written by its holder alone.
    uses: AtomicU64,
}

/// Counters of the ring's cold paths.
#[derive(Default)]
struct RingCounters {
    replaced_oversized: AtomicU64,
    replaced_discarded: AtomicU64,
    detached: AtomicU64,
    waits: AtomicU64,
    wait_nanos: AtomicU64,
    timeouts: AtomicU64,
    waiters: AtomicUsize,
}

/// A bounded ring of objects made up front, handed to one holder at a time,
/// with an async `get` that waits in FIFO order for a free slot.
///
/// # How it works
///
/// The Go guide's ring buffer pool hands out `items[next % size]` with an
/// atomic counter, so once the counter wraps two callers hold the same
/// object. Here a slot is *claimed*: a bitmap (one bit per slot, 64 per
/// 128-byte-aligned word) records the free slots, and a
/// [`tokio::sync::Semaphore`] holds exactly one permit per free slot.
///
/// - `get` takes a permit (`try_acquire` first; only if none is free does it
///   wait, in the semaphore's FIFO queue, which allocates nothing and is
///   cancel-safe), then clears one set bit with `fetch_and`. A permit
///   guarantees a set bit exists, so the claim always succeeds.
/// - Dropping the guard resets the object, sets its bit (`Release`) and adds
///   the permit back, which wakes the first waiter.
///
/// Objects never move and are never made after construction, except to
/// replace one that was detached, discarded, too big to keep, or whose
/// reset panicked: the ring's capacity is fixed.
///
/// # Examples
///
/// Bounding in-flight work: at most 4 handlers hold a buffer at once.
///
/// ```
/// use capacitor_pool::RingPool;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let ring = Arc::new(RingPool::new(4, || Vec::<u8>::with_capacity(4096)).unwrap());
/// let tasks: Vec<_> = (0..32u8)
///     .map(|i| {
///         let ring = Arc::clone(&ring);
///         tokio::spawn(async move {
///             let mut buf = ring.get_owned().await.unwrap();
///             buf.push(i);
///             tokio::task::yield_now().await;
///             buf[0]
///         })
///     })
///     .collect();
/// for (i, t) in tasks.into_iter().enumerate() {
///     assert_eq!(t.await.unwrap(), i as u8);
/// }
/// assert_eq!(ring.stats().get_count, 32);
/// assert_eq!(ring.stats().created_count, 4);
/// # }
/// ```
pub struct RingPool<T, R = UseReset> {
    slots: Box<[RingSlot<T>]>,
    free: Box<[CachePadded<AtomicU64>]>,
    sem: Semaphore,
    make: Make<T>,
    recycle: R,
    retention_limit: usize,
    counters: RingCounters,
}

// SAFETY: each object is reached by one holder at a time (the claim
// protocol), so sharing the ring moves objects between threads: `T: Send`.
unsafe impl<T: Send, R: Send> Send for RingPool<T, R> {}
// SAFETY: as above.
unsafe impl<T: Send, R: Sync> Sync for RingPool<T, R> {}

impl<T: Reset + 'static> RingPool<T> {
    /// A ring of `capacity` objects made now with `make`, reset with their
    /// [`Reset`] impl.
    ///
    /// # Errors
    /// [`BuildError::ZeroCapacity`] for a capacity of 0,
    /// [`BuildError::CapacityTooLarge`] past what a semaphore counts.
    ///
    /// ```
    /// use capacitor_pool::{BuildError, RingPool};
    ///
    /// assert_eq!(RingPool::new(0, String::new).unwrap_err(), BuildError::ZeroCapacity);
    /// ```
    pub fn new(
        capacity: usize,
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> Result<Self, BuildError> {
        Self::builder(capacity, make).build()
    }
}

impl<T: 'static> RingPool<T> {
    /// A builder for a ring of `capacity` objects made with `make`.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(8, || String::with_capacity(64))
    ///     .retention_limit(4096)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(ring.capacity(), 8);
    /// ```
    pub fn builder(
        capacity: usize,
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> RingPoolBuilder<T> {
        RingPoolBuilder {
            capacity,
            make: Box::new(make),
            recycle: UseReset,
            retention_limit: DEFAULT_RETENTION_LIMIT,
        }
    }
}

impl<T, R: Recycle<T>> RingPool<T, R> {
    /// Takes a free object without waiting.
    ///
    /// # Errors
    /// [`TryGetError::Empty`] when every slot is in use,
    /// [`TryGetError::Closed`] after [`close`](RingPool::close).
    #[inline]
    pub fn try_get(&self) -> Result<RingGuard<'_, T, R>, TryGetError> {
        self.try_acquire()?;
        Ok(Pooled::new(self, self.claim(shard_hint())))
    }

    /// Like [`try_get`](RingPool::try_get), for a ring in an [`Arc`].
    ///
    /// # Errors
    /// As for [`try_get`](RingPool::try_get).
    #[inline]
    pub fn try_get_owned(self: &Arc<Self>) -> Result<OwnedRingGuard<T, R>, TryGetError> {
        self.try_acquire()?;
        Ok(OwnedPooled::new(Arc::clone(self), self.claim(shard_hint())))
    }

    /// Takes a free object, waiting for one if every slot is in use. Waiters
    /// are served in the order they started waiting.
    ///
    /// # Cancel safety
    /// Cancel-safe: a `get` future dropped before it completes (a lost
    /// `select!` branch, a timeout) gives up its place in line and holds no
    /// slot; a slot freed for it goes to the next waiter.
    ///
    /// # Errors
    /// [`GetError`] once the ring is [closed](RingPool::close), also for
    /// callers already waiting.
    pub async fn get(&self) -> Result<RingGuard<'_, T, R>, GetError> {
        self.acquire().await?;
        Ok(Pooled::new(self, self.claim(shard_hint())))
    }

    /// Like [`get`](RingPool::get), for a ring in an [`Arc`]: the guard is
    /// `'static` and moves into spawned tasks.
    ///
    /// # Cancel safety
    /// As for [`get`](RingPool::get).
    ///
    /// # Errors
    /// As for [`get`](RingPool::get).
    pub async fn get_owned(self: &Arc<Self>) -> Result<OwnedRingGuard<T, R>, GetError> {
        self.acquire().await?;
        Ok(OwnedPooled::new(Arc::clone(self), self.claim(shard_hint())))
    }

    /// Like [`get`](RingPool::get), but gives up after `timeout`. Needs the
    /// runtime's time driver; costs nothing when a slot is free at once.
    ///
    /// # Cancel safety
    /// As for [`get`](RingPool::get).
    ///
    /// # Errors
    /// [`GetTimeoutError::Timeout`] when no slot came free in time,
    /// [`GetTimeoutError::Closed`] when the ring is closed.
    pub async fn get_timeout(
        &self,
        timeout: Duration,
    ) -> Result<RingGuard<'_, T, R>, GetTimeoutError> {
        match self.try_get() {
            Ok(guard) => return Ok(guard),
            Err(TryGetError::Closed) => return Err(GetTimeoutError::Closed),
            Err(TryGetError::Empty) => {}
        }
        match tokio::time::timeout(timeout, self.get()).await {
            Ok(Ok(guard)) => Ok(guard),
            Ok(Err(GetError(()))) => Err(GetTimeoutError::Closed),
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(GetTimeoutError::Timeout)
            }
        }
    }

    /// Closes the ring: waiting and later `get`s fail with [`GetError`].
    /// Guards still out return their objects as usual.
    pub fn close(&self) {
        self.sem.close();
    }

    /// Whether [`close`](RingPool::close) was called.
    pub fn is_closed(&self) -> bool {
        self.sem.is_closed()
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// A snapshot of the ring's counters.
    pub fn stats(&self) -> RingStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        let idle: u64 = self
            .free
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum();
        let capacity = self.slots.len() as u64;
        let replaced =
            load(&c.replaced_oversized) + load(&c.replaced_discarded) + load(&c.detached);
        let get_count: u64 = self.slots.iter().map(|s| load(&s.uses)).sum();
        let in_use = capacity.saturating_sub(idle);
        RingStats {
            capacity: self.slots.len(),
            get_count,
            return_count: get_count.saturating_sub(in_use),
            created_count: capacity + replaced,
            drop_oversized_count: load(&c.replaced_oversized),
            drop_discarded_count: load(&c.replaced_discarded),
            detach_count: load(&c.detached),
            wait_count: load(&c.waits),
            wait_time: Duration::from_nanos(load(&c.wait_nanos)),
            timeout_count: load(&c.timeouts),
            num_waiters: c.waiters.load(Ordering::Relaxed) as u64,
            num_idle: idle,
            num_in_use: in_use,
            closed: self.sem.is_closed(),
        }
    }

    // ---- permits and slots.

    #[inline]
    fn try_acquire(&self) -> Result<(), TryGetError> {
        match self.sem.try_acquire() {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(TryGetError::Empty),
            Err(TryAcquireError::Closed) => Err(TryGetError::Closed),
        }
    }

    #[inline]
    async fn acquire(&self) -> Result<(), GetError> {
        match self.try_acquire() {
            Ok(()) => Ok(()),
            Err(TryGetError::Closed) => Err(GetError(())),
            Err(TryGetError::Empty) => self.wait().await,
        }
    }

    /// Waits for a permit in the semaphore's FIFO queue, counting the wait.
    async fn wait(&self) -> Result<(), GetError> {
        let _waiting = Waiting::start(&self.counters);
        match self.sem.acquire().await {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(_) => Err(GetError(())),
        }
    }

    /// Claims a free slot. The caller holds a permit (taken and forgotten),
    /// so at least one bit is set for it; the words are scanned from one
    /// picked by `hint` so that threads spread out.
    #[inline]
    pub(crate) fn claim(&self, hint: usize) -> NonNull<T> {
        let words = self.free.len();
        let start = if words == 1 { 0 } else { hint % words };
        let mut wait = SpinWait::default();
        loop {
            for k in 0..words {
                let w = if start + k < words {
                    start + k
                } else {
                    start + k - words
                };
                let word = &self.free[w];
                let mut bits = word.load(Ordering::Relaxed);
                while bits != 0 {
                    let mask = 1u64 << bits.trailing_zeros();
                    // Acquire pairs with the Release of the `fetch_or` that
                    // freed the slot: the last holder's writes are visible.
                    let prev = word.fetch_and(!mask, Ordering::Acquire);
                    if prev & mask != 0 {
                        let index = w * 64 + mask.trailing_zeros() as usize;
                        let slot = &self.slots[index];
                        // Only this holder writes `uses` until it frees the
                        // slot: a load and a store.
                        slot.uses
                            .store(slot.uses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                        return NonNull::from(&slot.value).cast();
                    }
                    bits = prev & !mask;
                }
            }
            // Another claimer took the bit we saw; ours is set elsewhere.
            wait.wait();
        }
    }

    /// Frees slot `index`: sets its bit, then returns its permit (which
    /// wakes the first waiter).
    #[inline]
    pub(crate) fn release(&self, index: usize) {
        self.release_bit(index);
        self.sem.add_permits(1);
    }

    #[inline]
    pub(crate) fn release_bit(&self, index: usize) {
        self.free[index / 64].fetch_or(1 << (index % 64), Ordering::Release);
    }

    /// The index of the slot whose value `ptr` points to.
    #[inline]
    fn index_of(&self, ptr: NonNull<T>) -> usize {
        // Plain address arithmetic: `RingSlot` is never zero-sized (it
        // holds an `AtomicU64`), and `ptr` points into `slots`.
        let offset = ptr.as_ptr() as usize - self.slots.as_ptr() as usize;
        offset / size_of::<RingSlot<T>>()
    }

    /// Puts a fresh object in slot `index` (whose value `ptr` is) in place
    /// of the old one, frees the slot, then hands back the old object.
    ///
    /// If the constructor panics, the slot stays claimed (its object is in
    /// an unknown state and must not reach another holder): the ring loses
    /// that slot's capacity.
    ///
    /// # Safety
    /// The caller holds slot `index`.
    unsafe fn replace(&self, ptr: NonNull<T>, index: usize) -> T {
        let fresh = (self.make)();
        // SAFETY: the caller holds the slot: no one else touches its value.
        let old = mem::replace(unsafe { &mut *ptr.as_ptr() }, fresh);
        self.release(index);
        old
    }
}

/// Counts a waiter while it waits (also if its future is dropped).
struct Waiting<'a> {
    counters: &'a RingCounters,
    since: Instant,
}

impl<'a> Waiting<'a> {
    fn start(counters: &'a RingCounters) -> Self {
        counters.waiters.fetch_add(1, Ordering::Relaxed);
        counters.waits.fetch_add(1, Ordering::Relaxed);
        Self {
            counters,
            since: Instant::now(),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counters.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.counters.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T, R: Recycle<T>> sealed::Home<T> for RingPool<T, R> {
    #[inline]
    unsafe fn recycle(&self, slot: NonNull<T>) {
        let index = self.index_of(slot);
        // SAFETY: the guard hands us its slot: only we touch the value.
        let value = unsafe { &mut *slot.as_ptr() };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.recycle.reset(value);
            self.recycle.retained_bytes(value)
        }));
        match outcome {
            Ok(retained) if retained <= self.retention_limit => self.release(index),
            Ok(_) => {
                self.counters
                    .replaced_oversized
                    .fetch_add(1, Ordering::Relaxed);
                // SAFETY: we hold the slot.
                drop(unsafe { self.replace(slot, index) });
            }
            Err(panic) => {
                self.counters
                    .replaced_discarded
                    .fetch_add(1, Ordering::Relaxed);
                // SAFETY: we hold the slot.
                drop(unsafe { self.replace(slot, index) });
                resume_unwind(panic);
            }
        }
    }

    unsafe fn discard(&self, slot: NonNull<T>) {
        self.counters
            .replaced_discarded
            .fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from the guard's contract: we hold the slot.
        drop(unsafe { self.replace(slot, self.index_of(slot)) });
    }

    unsafe fn detach(&self, slot: NonNull<T>) -> T {
        self.counters.detached.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from the guard's contract: we hold the slot.
        unsafe { self.replace(slot, self.index_of(slot)) }
    }
}

impl<T, R: Recycle<T>> PoolKind<T> for RingPool<T, R> {}

impl<T, R: Recycle<T>> fmt::Debug for RingPool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingPool")
            .field("capacity", &self.slots.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a [`RingPool`]'s counters.
///
/// Once the ring is quiet: `created_count == capacity + drop_count() +
/// detach_count` and `num_idle + num_in_use == capacity`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingStats {
    /// Slots in the ring.
    pub capacity: usize,
    /// Objects handed out (every get is served by a preallocated object).
    pub get_count: u64,
    /// Guards that gave their slot back.
    pub return_count: u64,
    /// Objects made: the capacity, plus replacements.
    pub created_count: u64,
    /// Objects replaced because they retained more than the limit.
    pub drop_oversized_count: u64,
    /// Objects replaced by `discard`, or because their reset panicked.
    pub drop_discarded_count: u64,
    /// Objects taken out with `detach` (and replaced).
    pub detach_count: u64,
    /// Gets that had to wait for a slot.
    pub wait_count: u64,
    /// Time spent waiting, summed over those gets.
    pub wait_time: Duration,
    /// `get_timeout` calls that timed out.
    pub timeout_count: u64,
    /// Tasks waiting now.
    pub num_waiters: u64,
    /// Free slots now.
    pub num_idle: u64,
    /// Slots held now.
    pub num_in_use: u64,
    /// Whether the ring is closed.
    pub closed: bool,
}

impl RingStats {
    /// Objects replaced for any reason (oversized or discarded).
    pub fn drop_count(&self) -> u64 {
        self.drop_oversized_count + self.drop_discarded_count
    }
}

/// Builds a [`RingPool`]; made by [`RingPool::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct RingPoolBuilder<T, R = UseReset> {
    capacity: usize,
    make: Make<T>,
    recycle: R,
    retention_limit: usize,
}

impl<T: 'static, R> RingPoolBuilder<T, R> {
    /// Objects that retain more bytes than this after their reset are
    /// replaced by a fresh one on return (default 1 MiB).
    pub fn retention_limit(mut self, bytes: usize) -> Self {
        self.retention_limit = bytes;
        self
    }

    /// Resets objects with a closure instead of the [`Reset`] trait; see
    /// [`PoolBuilder::reset`](crate::PoolBuilder::reset).
    pub fn reset<F>(self, reset: F) -> RingPoolBuilder<T, ResetWith<F>>
    where
        F: Fn(&mut T) + Send + Sync,
    {
        self.recycler(ResetWith(reset))
    }

    /// Recycles objects with a [`Recycle`] policy.
    pub fn recycler<R2: Recycle<T>>(self, recycle: R2) -> RingPoolBuilder<T, R2> {
        RingPoolBuilder {
            capacity: self.capacity,
            make: self.make,
            recycle,
            retention_limit: self.retention_limit,
        }
    }

    /// Builds the ring, making all its objects now.
    ///
    /// # Errors
    /// [`BuildError::ZeroCapacity`] for a capacity of 0,
    /// [`BuildError::CapacityTooLarge`] past [`Semaphore::MAX_PERMITS`].
    pub fn build(self) -> Result<RingPool<T, R>, BuildError>
    where
        R: Recycle<T>,
    {
        let capacity = self.capacity;
        if capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if capacity > Semaphore::MAX_PERMITS {
            return Err(BuildError::CapacityTooLarge {
                requested: capacity,
                max: Semaphore::MAX_PERMITS,
            });
        }
        let slots = (0..capacity)
            .map(|_| RingSlot {
                value: StdUnsafeCell::new((self.make)()),
                uses: AtomicU64::new(0),
            })
            .collect();
        let free = (0..capacity.div_ceil(64))
            .map(|w| {
                let bits = (capacity - w * 64).min(64);
                let word = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                CachePadded::new(AtomicU64::new(word))
            })
            .collect();
        Ok(RingPool {
            slots,
            free,
            sem: Semaphore::new(capacity),
            make: self.make,
            recycle: self.recycle,
            retention_limit: self.retention_limit,
            counters: RingCounters::default(),
        })
    }
}

impl<T, R> fmt::Debug for RingPoolBuilder<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingPoolBuilder")
            .field("capacity", &self.capacity)
            .field("retention_limit", &self.retention_limit)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    //! A loom model of slot claim and release against concurrent claimers.
    //! The semaphore is modelled by a plain permit counter: what matters is
    //! the crate's own claim logic (bitmap `fetch_and` / `fetch_or`).

    use super::*;
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::AtomicBool as StdBool;

    struct Obj(StdBool);

    impl Reset for Obj {
        fn reset(&mut self) {}
    }

    /// Takes a modelled permit, waiting (yielding) while none is free.
    fn take_permit(permits: &AtomicUsize) {
        let mut wait = SpinWait::default();
        loop {
            let n = permits.load(Ordering::Acquire);
            if n > 0
                && permits
                    .compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return;
            }
            wait.wait();
        }
    }

    fn use_slot(ring: &RingPool<Obj>, permits: &AtomicUsize, hint: usize) {
        take_permit(permits);
        let slot = ring.claim(hint);
        // SAFETY: the claimed slot is ours until we free it.
        let obj = unsafe { slot.as_ref() };
        assert!(
            !obj.0.swap(true, std::sync::atomic::Ordering::SeqCst),
            "claimed twice"
        );
        obj.0.store(false, std::sync::atomic::Ordering::SeqCst);
        ring.release_bit(ring.index_of(slot));
        permits.fetch_add(1, Ordering::Release);
    }

    #[test]
    fn claims_never_overlap_and_every_slot_comes_back() {
        loom::model(|| {
            let ring = Arc::new(RingPool::new(2, || Obj(StdBool::new(false))).unwrap());
            let permits = Arc::new(AtomicUsize::new(2));
            let threads: Vec<_> = (0..2)
                .map(|t| {
                    let (ring, permits) = (Arc::clone(&ring), Arc::clone(&permits));
                    thread::spawn(move || use_slot(&ring, &permits, t))
                })
                .collect();
            use_slot(&ring, &permits, 0);
            for t in threads {
                t.join().unwrap();
            }
            let free: u32 = ring
                .free
                .iter()
                .map(|w| w.load(Ordering::Relaxed).count_ones())
                .sum();
            assert_eq!(free, 2);
        });
    }
}
