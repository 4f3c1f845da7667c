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
//!
//! The pool is [`RingPool`] (also at the crate root, with its guards
//! [`RingGuard`] and [`OwnedRingGuard`]); this module holds its builder,
//! its statistics and its errors.

use std::cell::UnsafeCell as StdUnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

mod error;
pub use self::error::{BuildError, GetError, GetTimeoutError, TryGetError};

use crate::guard::sealed::Lent;
use crate::guard::{OwnedPooled, PoolKind, Pooled, sealed};
use crate::loom::{
    AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, UnsafeCell, dekker_fence,
};
use crate::pool::{DEFAULT_RETENTION_LIMIT, shard_hint};
use crate::reset::{Recycle, Reset, ResetWith, UseReset};
use crate::shard::FirstPanic;

/// A guard from a [`RingPool`]: [`Pooled`] with the pool type filled in.
///
/// ```
/// use capacitor_pool::{RingGuard, RingPool};
///
/// fn fill(mut buf: RingGuard<'_, Vec<u8>>) -> usize {
///     buf.extend_from_slice(b"data");
///     buf.len()
/// }
/// let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
/// assert_eq!(fill(ring.try_get().unwrap()), 4);
/// assert!(ring.try_get().unwrap().is_empty()); // back, and reset
/// ```
pub type RingGuard<'a, T, R = UseReset> = Pooled<'a, T, RingPool<T, R>>;

/// An owned guard from a [`RingPool`] in an [`Arc`].
///
/// ```
/// use capacitor_pool::{OwnedRingGuard, RingPool};
/// use std::sync::Arc;
///
/// let ring = Arc::new(RingPool::new(1, String::new).unwrap());
/// let mut s: OwnedRingGuard<String> = ring.try_get_owned().unwrap();
/// std::thread::spawn(move || s.push_str("elsewhere")).join().unwrap();
/// assert_eq!(ring.stats().return_count, 1);
/// ```
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
    wait_nanos: AtomicU64,
    timeouts: AtomicU64,
}

/// A bounded ring of objects made up front, handed to one holder at a time,
/// with an async `get` that waits in FIFO order for a free slot.
///
/// # How it works
///
/// The Go guide's ring buffer pool hands out `items[next % size]` with an
/// atomic counter, so once the counter wraps two callers hold the same
/// object. Here a slot is *claimed*: a bitmap (one bit per slot, at most 64
/// per 128-byte-aligned word, and at least one word per CPU, slots dealt out
/// round-robin, each thread starting at its own word) records the free
/// slots.
///
/// - `try_get`, and `get` when a slot is free, clear one set bit with
///   `fetch_and`: one atomic read-modify-write, no lock.
/// - A `get` that finds none takes the ring's wait-list lock, counts itself
///   as a waiter, looks at the bitmap once more, and queues a node at the
///   tail of a FIFO. The node lives inside the pinned `get` future (an
///   intrusive list, as in `tokio::sync::Semaphore`): waiting allocates
///   nothing, and a `get` dropped while queued unlinks its node.
/// - Dropping a guard resets the object, then frees its slot: with no
///   waiter counted, by setting its bit; with waiters, by handing the slot
///   straight to the first queued node (its index written into the node)
///   and waking that task, which then owns the slot without touching the
///   bitmap. Registration and release both use sequentially consistent
///   operations and look at each other's variable after writing their own
///   (Dekker's pattern): a waiter that registers after a release looked
///   sees that release's bit, and a release that comes after a registration
///   hands its slot over. A slot handed to a `get` that was dropped before
///   it saw the slot goes on to the next waiter.
///
/// An earlier version waited on a [`tokio::sync::Semaphore`] and passed
/// slot indices through a queue beside it; handing the slot over in the
/// node itself does one lock, one wake and no queue per hand-over, which
/// made contended `get`s markedly faster (see `docs/BENCHMARKS.md`).
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
///
/// A plain limit on work in flight, with no object to pool: a ring of `()`
/// hands out permits, with the same FIFO, cancel-safe waiting. Its types
/// have names to put in struct fields: [`RingGuard<'a, ()>`](RingGuard)
/// borrows the ring, [`OwnedRingGuard<()>`](OwnedRingGuard) holds it in an
/// `Arc`.
///
/// ```
/// use capacitor_pool::{OwnedRingGuard, RingPool};
/// use capacitor_pool::ring::GetError;
/// use std::sync::Arc;
///
/// struct Limiter {
///     permits: Arc<RingPool<()>>,
/// }
///
/// struct Job {
///     _permit: OwnedRingGuard<()>, // the slot frees when the job drops
///     id: u32,
/// }
///
/// impl Limiter {
///     async fn start(&self, id: u32) -> Result<Job, GetError> {
///         let permit = self.permits.get_owned().await?;
///         Ok(Job { _permit: permit, id })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let limiter = Limiter {
///     permits: Arc::new(RingPool::new(2, || ()).unwrap()),
/// };
/// let a = limiter.start(1).await.unwrap();
/// let b = limiter.start(2).await.unwrap();
/// assert_eq!(limiter.permits.stats().num_in_use, 2);
/// assert!(limiter.permits.try_get().is_err()); // a third waits
/// drop(a);
/// let c = limiter.start(3).await.unwrap();
/// assert_eq!((b.id, c.id), (2, 3));
/// # }
/// ```
pub struct RingPool<T, R = UseReset> {
    slots: Box<[RingSlot<T>]>,
    /// One bit per slot, set while the slot is free and not handed over.
    free: Box<[CachePadded<AtomicU64>]>,
    /// The wait list and what changes with it, in one cache line of its
    /// own: a hand-over moves one line between cores, not three.
    wait: CachePadded<WaitState>,
    closed: AtomicBool,
    make: Make<T>,
    recycle: R,
    retention_limit: usize,
    /// In a line of their own, away from the fields every `try_get` reads.
    counters: CachePadded<RingCounters>,
}

/// The ring's waiting state.
struct WaitState {
    /// The FIFO of waiting tasks: an intrusive list of nodes that live in
    /// the pinned `get` futures, so waiting allocates nothing.
    list: Mutex<WaitList>,
    /// Tasks registered as waiting: queued in `list`, or registering under
    /// its lock. A task counts itself before its last look at `free`, so a
    /// releaser that sees none knows a later waiter will see the bit it
    /// sets. Changed only under `list`'s lock; read without it.
    waiters: AtomicUsize,
    /// Gets that had to wait; written under the lock only.
    waits: AtomicU64,
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
    /// [`BuildError::CapacityTooLarge`] past `usize::MAX >> 3` slots.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use capacitor_pool::ring::BuildError;
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
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use capacitor_pool::ring::TryGetError;
    ///
    /// let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    /// let held = ring.try_get().unwrap();
    /// assert_eq!(ring.try_get().unwrap_err(), TryGetError::Empty);
    /// drop(held);
    /// ring.close();
    /// assert_eq!(ring.try_get().unwrap_err(), TryGetError::Closed);
    /// ```
    #[inline]
    pub fn try_get(&self) -> Result<RingGuard<'_, T, R>, TryGetError> {
        let slot = self.try_claim()?;
        // SAFETY: a claimed slot of this ring: ours until the guard gives
        // it back, to this ring.
        Ok(Pooled::new(self, unsafe { Lent::from_raw(slot) }))
    }

    /// Like [`try_get`](RingPool::try_get), for a ring in an [`Arc`].
    ///
    /// # Errors
    /// As for [`try_get`](RingPool::try_get).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use capacitor_pool::ring::TryGetError;
    /// use std::sync::Arc;
    ///
    /// let ring = Arc::new(RingPool::new(1, Vec::<u8>::new).unwrap());
    /// let held = ring.try_get_owned().unwrap(); // 'static: no borrow of `ring`
    /// assert_eq!(ring.try_get_owned().unwrap_err(), TryGetError::Empty);
    /// drop(held);
    /// assert!(ring.try_get_owned().is_ok());
    /// ```
    #[inline]
    pub fn try_get_owned(self: &Arc<Self>) -> Result<OwnedRingGuard<T, R>, TryGetError> {
        let slot = self.try_claim()?;
        // SAFETY: as in `try_get`.
        Ok(OwnedPooled::new(Arc::clone(self), unsafe {
            Lent::from_raw(slot)
        }))
    }

    /// Takes a free object, waiting for one if every slot is in use. Queued
    /// waiters are served first in, first out (a `get` that races with a
    /// release may take that slot before them: it never waited).
    ///
    /// # Cancel safety
    /// Cancel-safe: a `get` future dropped before it completes (a lost
    /// `select!` branch, a timeout) gives up its place in line and holds no
    /// slot; a slot freed for it goes to the next waiter.
    ///
    /// # Errors
    /// [`GetError`] once the ring is [closed](RingPool::close), also for
    /// callers already waiting.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ring = Arc::new(RingPool::new(1, Vec::<u8>::new).unwrap());
    /// let held = ring.get().await.unwrap();
    /// let waiter = tokio::spawn({
    ///     let ring = Arc::clone(&ring);
    ///     async move { ring.get().await.map(|buf| buf.len()) }
    /// });
    /// tokio::task::yield_now().await;
    /// assert_eq!(ring.stats().num_waiters, 1);
    /// drop(held); // hands the slot to the waiter
    /// assert_eq!(waiter.await.unwrap(), Ok(0));
    /// # }
    /// ```
    pub async fn get(&self) -> Result<RingGuard<'_, T, R>, GetError> {
        let slot = self.acquire().await?;
        // SAFETY: as in `try_get`.
        Ok(Pooled::new(self, unsafe { Lent::from_raw(slot) }))
    }

    /// Like [`get`](RingPool::get), for a ring in an [`Arc`]: the guard is
    /// `'static` and moves into spawned tasks.
    ///
    /// # Cancel safety
    /// As for [`get`](RingPool::get).
    ///
    /// # Errors
    /// As for [`get`](RingPool::get).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ring = Arc::new(RingPool::new(2, String::new).unwrap());
    /// let mut s = ring.get_owned().await.unwrap();
    /// let len = tokio::spawn(async move {
    ///     s.push_str("owned");
    ///     s.len()
    /// });
    /// assert_eq!(len.await.unwrap(), 5);
    /// assert_eq!(ring.stats().num_idle, 2);
    /// # }
    /// ```
    pub async fn get_owned(self: &Arc<Self>) -> Result<OwnedRingGuard<T, R>, GetError> {
        let slot = self.acquire().await?;
        // SAFETY: as in `try_get`.
        Ok(OwnedPooled::new(Arc::clone(self), unsafe {
            Lent::from_raw(slot)
        }))
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
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use capacitor_pool::ring::GetTimeoutError;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    /// let _held = ring.get_timeout(Duration::from_millis(10)).await.unwrap();
    /// let err = ring.get_timeout(Duration::from_millis(10)).await.unwrap_err();
    /// assert_eq!(err, GetTimeoutError::Timeout);
    /// assert_eq!(ring.stats().timeout_count, 1);
    /// # }
    /// ```
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
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ring = Arc::new(RingPool::new(1, Vec::<u8>::new).unwrap());
    /// let _held = ring.get().await.unwrap();
    /// let waiter = tokio::spawn({
    ///     let ring = Arc::clone(&ring);
    ///     async move { ring.get().await.is_err() }
    /// });
    /// tokio::task::yield_now().await;
    /// ring.close();
    /// assert!(waiter.await.unwrap()); // the waiter fails too
    /// # }
    /// ```
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // One waiter per lock hold: no buffer of wakers to allocate, and
        // the wakers run outside the lock. A waker that panics must not
        // leave the waiters behind it queued: every waiter is failed and
        // woken first, then the first panic goes on.
        let mut panic = None;
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.grant_first(GRANT_CLOSED, || ()))) {
                Ok(true) => {}
                Ok(false) => break,
                Err(p) => {
                    panic.get_or_insert(p);
                }
            }
        }
        if let Some(panic) = panic {
            resume_unwind(panic);
        }
    }

    /// Whether [`close`](RingPool::close) was called.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    /// assert!(!ring.is_closed());
    /// ring.close();
    /// assert!(ring.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The number of slots.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::new(3, Vec::<u8>::new).unwrap();
    /// let _held = ring.try_get().unwrap();
    /// assert_eq!(ring.capacity(), 3); // fixed, whatever is in use
    /// ```
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// A snapshot of the ring's counters.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::new(2, Vec::<u8>::new).unwrap();
    /// let held = ring.try_get().unwrap();
    /// let stats = ring.stats();
    /// assert_eq!((stats.num_in_use, stats.num_idle), (1, 1));
    /// drop(held);
    /// assert_eq!(ring.stats().return_count, 1);
    /// ```
    pub fn stats(&self) -> RingStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        let idle: u64 = self
            .free
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum::<u64>();
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
            wait_count: load(&self.wait.waits),
            wait_time: Duration::from_nanos(load(&c.wait_nanos)),
            timeout_count: load(&c.timeouts),
            num_waiters: self.wait.waiters.load(Ordering::Relaxed) as u64,
            num_idle: idle,
            num_in_use: in_use,
            closed: self.is_closed(),
        }
    }

    // ---- claiming and freeing slots.

    /// Claims a free slot without waiting.
    #[inline]
    fn try_claim(&self) -> Result<NonNull<T>, TryGetError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TryGetError::Closed);
        }
        self.claim(shard_hint()).ok_or(TryGetError::Empty)
    }

    /// The slot-claiming future under `get`, `get_owned` and `get_timeout`.
    #[inline]
    fn acquire(&self) -> Acquire<'_, T, R> {
        Acquire {
            ring: self,
            state: AcquireState::Start,
            since: None,
            node: Waiter::new(),
        }
    }

    fn lock_list(&self) -> MutexGuard<'_, WaitList> {
        // The list is consistent at every unlock (no code that can panic
        // runs while a change is half made), so a poisoned lock is usable.
        self.wait
            .list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes `waiters` under the list's lock (a plain add would do, but
    /// the `SeqCst` read-modify-write also orders the registering task's
    /// next look at the bitmap after it: Dekker's pattern with `release`).
    fn add_waiter(&self) {
        self.wait.waiters.fetch_add(1, Ordering::SeqCst);
        dekker_fence();
    }

    /// Uncounts a waiter, under the list's lock: a load and a store (no
    /// update can be lost under the lock). A releaser that reads the old
    /// count meanwhile only takes the lock for nothing.
    fn sub_waiter(&self) {
        let n = self.wait.waiters.load(Ordering::Relaxed);
        self.wait.waiters.store(n - 1, Ordering::Release);
    }

    /// Queues `node` at the tail of the FIFO, unless a slot is free (looked
    /// at under the lock, after counting the task as a waiter) or the ring
    /// is closed.
    ///
    /// # Safety
    /// `node` is pinned, not queued, and stays valid until it leaves the
    /// list: its owner calls [`cancel`](Self::cancel) before freeing it.
    #[cold]
    #[inline(never)]
    unsafe fn enqueue(&self, node: &Waiter, waker: &Waker) -> Enqueued<T> {
        // Cloned before the lock: a waker's clone is foreign code. (A
        // re-poll with a different waker clones it under the lock, in
        // `set_waker`: rare, and a clone does not reach the ring.)
        let waker = waker.clone();
        let mut list = self.lock_list();
        if self.closed.load(Ordering::SeqCst) {
            return Enqueued::Closed;
        }
        self.add_waiter();
        if let Some(slot) = self.claim(shard_hint()) {
            self.sub_waiter();
            return Enqueued::Claimed(slot);
        }
        // SAFETY: under the lock; `node` is pinned, not queued, and outlives
        // its time in the list (the caller's contract).
        unsafe { list.push_back(node, waker) };
        // Only written under the lock: a load and a store.
        let waits = &self.wait.waits;
        let n = waits.load(Ordering::Relaxed);
        waits.store(n + 1, Ordering::Relaxed);
        Enqueued::Queued { nth: n }
    }

    /// The grant of queued `node`, or `None` (with its waker updated) while
    /// it waits.
    ///
    /// # Safety
    /// `node` was queued by [`enqueue`](Self::enqueue) and its grant not yet
    /// seen.
    unsafe fn poll_grant(&self, node: &Waiter, waker: &Waker) -> Option<usize> {
        let grant = node.granted.load(Ordering::Acquire);
        if grant != NOT_GRANTED {
            return Some(grant);
        }
        let list = self.lock_list();
        // Grants are made under the lock: this look is final.
        let grant = node.granted.load(Ordering::Acquire);
        if grant != NOT_GRANTED {
            return Some(grant);
        }
        // SAFETY: under the lock; `node` is still queued (not granted).
        let stale = unsafe { node.set_waker(waker) };
        drop(list);
        drop(stale);
        None
    }

    /// Takes queued `node` out of the FIFO (its `get` was dropped); a slot
    /// granted to it meanwhile goes to the next waiter.
    ///
    /// # Safety
    /// As for [`poll_grant`](Self::poll_grant).
    #[cold]
    unsafe fn cancel(&self, node: &Waiter) {
        let mut grant = node.granted.load(Ordering::Acquire);
        if grant == NOT_GRANTED {
            let mut list = self.lock_list();
            grant = node.granted.load(Ordering::Acquire);
            if grant == NOT_GRANTED {
                // SAFETY: under the lock; not granted, so still queued.
                let waker = unsafe { list.unlink(node) };
                self.sub_waiter();
                drop(list);
                drop(waker);
                return;
            }
        }
        if grant != GRANT_CLOSED {
            self.release(grant);
        }
    }

    /// Claims a free slot from the bitmap, scanning from a word picked by
    /// `hint` so that threads spread out; `None` if no bit is set.
    #[inline]
    pub(crate) fn claim(&self, hint: usize) -> Option<NonNull<T>> {
        let words = self.free.len();
        let start = if words == 1 { 0 } else { hint % words };
        for k in 0..words {
            let w = if start + k < words {
                start + k
            } else {
                start + k - words
            };
            let word = &self.free[w];
            // SeqCst: a waiter's look must be ordered after its
            // registration (see the type's docs); on x86 it is a plain load.
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let mask = 1u64 << bits.trailing_zeros();
                // Acquire (within SeqCst) pairs with the release of the
                // `fetch_or` that freed the slot: the last holder's writes
                // are visible.
                let prev = word.fetch_and(!mask, Ordering::SeqCst);
                if prev & mask != 0 {
                    return Some(self.hand_out(mask.trailing_zeros() as usize * words + w));
                }
                bits = prev & !mask;
            }
        }
        None
    }

    /// The value pointer of slot `index`, counting the use.
    #[inline]
    fn hand_out(&self, index: usize) -> NonNull<T> {
        let slot = &self.slots[index];
        // Only this holder writes `uses` until it frees the slot.
        slot.uses
            .store(slot.uses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        NonNull::from(&slot.value).cast()
    }

    /// Frees slot `index`: to the bitmap when no task waits, else to the
    /// first waiter.
    #[inline]
    pub(crate) fn release(&self, index: usize) {
        if self.wait.waiters.load(Ordering::SeqCst) == 0 {
            self.set_bit(index);
            dekker_fence();
            if self.wait.waiters.load(Ordering::SeqCst) == 0 {
                return;
            }
            // A task registered meanwhile and may have looked before the bit
            // was set: hand the slot over, unless someone claimed it.
            if !self.take_bit(index) {
                return;
            }
        }
        self.hand_off(index);
    }

    /// Grants slot `index` to the first waiter and wakes it; with none
    /// queued (they got slots or left), frees it to the bitmap, under the
    /// lock, where the next task to register will look.
    #[cold]
    #[inline(never)]
    fn hand_off(&self, index: usize) {
        self.grant_first(index, || self.set_bit(index));
    }

    /// Takes the first queued waiter, writes `grant` into its node and wakes
    /// it; `true` if there was one. With none, runs `if_none` under the
    /// list's lock and returns `false`.
    ///
    /// Once the ring is closed a real slot is not granted (`if_none` runs):
    /// `close` fails every queued waiter, also those queued when a release
    /// races with it.
    fn grant_first(&self, grant: usize, if_none: impl FnOnce()) -> bool {
        let mut list = self.lock_list();
        if grant != GRANT_CLOSED && self.closed.load(Ordering::SeqCst) {
            if_none();
            return false;
        }
        // SAFETY: under the list's lock.
        let Some((node, waker)) = (unsafe { list.pop_front() }) else {
            if_none();
            return false;
        };
        self.sub_waiter();
        // The last touch of the node: its task may free it from now on.
        node.granted.store(grant, Ordering::Release);
        drop(list);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    #[inline]
    pub(crate) fn set_bit(&self, index: usize) {
        let words = self.free.len();
        self.free[index % words].fetch_or(1 << (index / words), Ordering::SeqCst);
    }

    /// Clears slot `index`'s bit; `true` if it was set (the slot is ours).
    fn take_bit(&self, index: usize) -> bool {
        let words = self.free.len();
        let mask = 1u64 << (index / words);
        self.free[index % words].fetch_and(!mask, Ordering::SeqCst) & mask != 0
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

// ---- waiting: an intrusive FIFO of nodes inside the pinned `get` futures.

/// The most slots a ring may have: slot indices stay below the grant
/// markers [`GRANT_CLOSED`] and [`NOT_GRANTED`].
const MAX_CAPACITY: usize = usize::MAX >> 3;

/// `Waiter::granted` before a slot is handed over.
const NOT_GRANTED: usize = usize::MAX;
/// `Waiter::granted` when the ring closed while the task waited.
const GRANT_CLOSED: usize = usize::MAX - 1;

/// The FIFO of waiting tasks. Only touched under the ring's list lock.
struct WaitList {
    head: *const Waiter,
    tail: *const Waiter,
}

// SAFETY: the list only holds pointers to nodes, reached under the ring's
// lock; a node is `Sync` (see `Waiter`).
unsafe impl Send for WaitList {}

impl WaitList {
    const fn new() -> Self {
        Self {
            head: ptr::null(),
            tail: ptr::null(),
        }
    }

    /// Queues `node` at the tail.
    ///
    /// # Safety
    /// The ring's list lock is held (`&mut self` is its guard); `node` is
    /// pinned, not queued, and stays valid until it leaves the list.
    unsafe fn push_back(&mut self, node: &Waiter, waker: Waker) {
        let tail = self.tail;
        // SAFETY: under the lock, which guards every node's links.
        unsafe {
            node.with_links(|l| {
                l.prev = tail;
                l.next = ptr::null();
                l.waker = Some(waker);
                l.queued = true;
            });
        }
        match NonNull::new(tail.cast_mut()) {
            // SAFETY: queued nodes are valid (the contract of `push_back`),
            // and the lock is held.
            Some(tail) => unsafe { tail.as_ref().with_links(|l| l.next = node) },
            None => self.head = node,
        }
        self.tail = node;
    }

    /// Takes the head of the queue, with its waker. The node stays valid
    /// while the lock guard that `&mut self` borrows from is held: until
    /// its `granted` is written (under the lock), its task cannot free it.
    ///
    /// # Safety
    /// The ring's list lock is held (`&mut self` is its guard).
    unsafe fn pop_front(&mut self) -> Option<(&Waiter, Option<Waker>)> {
        // SAFETY: queued nodes are valid while queued (the contract of
        // `push_back`); the reference lives no longer than the lock guard
        // borrowed by `&mut self`, and the node's task frees it only after
        // it sees its grant, which is written under the lock.
        let node = unsafe { self.head.as_ref()? };
        // SAFETY: `node` is queued: as above.
        let waker = unsafe { self.unlink(node) };
        Some((node, waker))
    }

    /// Takes `node` out of the queue (a no-op if it is not queued); returns
    /// its waker, to be dropped after the lock.
    ///
    /// # Safety
    /// The ring's list lock is held; `node` is valid.
    unsafe fn unlink(&mut self, node: &Waiter) -> Option<Waker> {
        // SAFETY: under the lock.
        let (queued, prev, next) = unsafe { node.with_links(|l| (l.queued, l.prev, l.next)) };
        if !queued {
            return None;
        }
        let is_head = ptr::eq(self.head, node);
        // SAFETY: the neighbours are queued, hence valid; under the lock.
        // The head's `prev` is never read: it may still name a node popped
        // before it (`pop_front` does not touch the next node, which keeps
        // a hand-over to one remote cache line inside the lock).
        unsafe {
            if is_head {
                self.head = next;
            } else if let Some(p) = prev.as_ref() {
                p.with_links(|l| l.next = next);
            }
            match next.as_ref() {
                // Its `prev` only matters while it is not the head.
                Some(n) if !is_head => n.with_links(|l| l.prev = prev),
                Some(_) => {}
                None => self.tail = if is_head { ptr::null() } else { prev },
            }
            node.with_links(|l| {
                l.prev = ptr::null();
                l.next = ptr::null();
                l.queued = false;
                l.waker.take()
            })
        }
    }
}

/// A node of the FIFO, inside a `get` future (pinned while queued).
struct Waiter {
    /// The slot handed over, [`NOT_GRANTED`] until then, [`GRANT_CLOSED`]
    /// if the ring closed. Written once, under the list lock, by the task
    /// that takes the node off the list, as its last touch of the node
    /// (`Release`); read by the node's own task (`Acquire`), which may then
    /// free the node without the lock.
    granted: AtomicUsize,
    /// Read and written under the list lock only.
    links: UnsafeCell<Links>,
    _pinned: PhantomPinned,
}

struct Links {
    prev: *const Waiter,
    next: *const Waiter,
    waker: Option<Waker>,
    queued: bool,
}

// SAFETY: while a node is queued, `links` is reached only under the ring's
// list lock (every access goes through `with_links`, whose callers hold it);
// `granted` is atomic. The node's own drop glue drops `links.waker` without
// the lock, which is sound: by then the node is off the list, and the last
// write to it by another thread (its grant, or its unlinking under the
// lock) happened-before the read that let its task drop it. The waker is
// `Send + Sync`.
unsafe impl Send for Waiter {}
// SAFETY: as above.
unsafe impl Sync for Waiter {}

impl Waiter {
    fn new() -> Self {
        Self {
            granted: AtomicUsize::new(NOT_GRANTED),
            links: UnsafeCell::new(Links {
                prev: ptr::null(),
                next: ptr::null(),
                waker: None,
                queued: false,
            }),
            _pinned: PhantomPinned,
        }
    }

    /// Runs `f` on the node's links.
    ///
    /// # Safety
    /// The ring's list lock is held (it serialises every access to links).
    #[inline]
    unsafe fn with_links<U>(&self, f: impl FnOnce(&mut Links) -> U) -> U {
        // SAFETY: the lock makes this the only access (the contract).
        self.links.with_mut(|l| f(unsafe { &mut *l }))
    }

    /// Stores `waker` unless the stored one wakes the same task; returns
    /// the waker replaced, to be dropped after the lock.
    ///
    /// # Safety
    /// As for [`with_links`](Self::with_links).
    unsafe fn set_waker(&self, waker: &Waker) -> Option<Waker> {
        // SAFETY: forwarded.
        unsafe {
            self.with_links(|l| match &l.waker {
                Some(w) if w.will_wake(waker) => None,
                _ => l.waker.replace(waker.clone()),
            })
        }
    }
}

/// What [`RingPool::enqueue`] did.
enum Enqueued<T> {
    /// A slot was free after all.
    Claimed(NonNull<T>),
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

/// The future that claims a slot, waiting in the ring's FIFO if need be.
///
/// It holds its FIFO node in place: it is `!Unpin`, and dropping it while
/// queued takes the node out (cancel safety).
struct Acquire<'a, T, R: Recycle<T>> {
    ring: &'a RingPool<T, R>,
    state: AcquireState,
    /// When a timed wait began (one wait in [`WAIT_SAMPLE`]).
    since: Option<Instant>,
    node: Waiter,
}

/// One wait in this many is timed for [`RingStats::wait_time`].
const WAIT_SAMPLE: u64 = 8;

impl<T, R: Recycle<T>> Acquire<'_, T, R> {
    /// Leaves the queued state: records the wait's time if it was timed.
    fn leave_queue(&mut self) {
        self.state = AcquireState::Done;
        if let Some(since) = self.since.take() {
            let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.ring
                .counters
                .wait_nanos
                .fetch_add(nanos.saturating_mul(WAIT_SAMPLE), Ordering::Relaxed);
        }
    }
}

impl<T, R: Recycle<T>> Future for Acquire<'_, T, R> {
    type Output = Result<NonNull<T>, GetError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `node` is never moved out of `self` (it is only reached
        // through `&`), so its address stays fixed as the pin promises; the
        // other fields are not structurally pinned. Other threads may hold
        // pointers into `node` and write its links (under the lock) while
        // this `&mut Self` exists: sound because `Acquire` is `!Unpin`
        // (`PhantomPinned`), for which `&mut` is not assumed unique, as in
        // tokio's intrusive waiter lists.
        let this = unsafe { self.get_unchecked_mut() };
        let ring = this.ring;
        match this.state {
            AcquireState::Start => {
                this.state = AcquireState::Done;
                match ring.try_claim() {
                    Ok(slot) => return Poll::Ready(Ok(slot)),
                    Err(TryGetError::Closed) => return Poll::Ready(Err(GetError(()))),
                    Err(TryGetError::Empty) => {}
                }
                // SAFETY: `node` is pinned (above), not queued (`Start`), and
                // our `Drop` cancels it before it is freed.
                match unsafe { ring.enqueue(&this.node, cx.waker()) } {
                    Enqueued::Claimed(slot) => Poll::Ready(Ok(slot)),
                    Enqueued::Closed => Poll::Ready(Err(GetError(()))),
                    Enqueued::Queued { nth } => {
                        this.state = AcquireState::Queued;
                        // Reading the clock twice costs a tenth of a
                        // contended get: time one wait in `WAIT_SAMPLE`
                        // (the first one included) and scale.
                        if nth % WAIT_SAMPLE == 0 {
                            this.since = Some(Instant::now());
                        }
                        Poll::Pending
                    }
                }
            }
            AcquireState::Queued => {
                // SAFETY: queued by `enqueue`, grant not seen yet.
                match unsafe { ring.poll_grant(&this.node, cx.waker()) } {
                    None => Poll::Pending,
                    Some(grant) => {
                        this.leave_queue();
                        if grant == GRANT_CLOSED {
                            Poll::Ready(Err(GetError(())))
                        } else {
                            Poll::Ready(Ok(ring.hand_out(grant)))
                        }
                    }
                }
            }
            AcquireState::Done => panic!("`RingPool` get future polled after completion"),
        }
    }
}

impl<T, R: Recycle<T>> Drop for Acquire<'_, T, R> {
    fn drop(&mut self) {
        if self.state == AcquireState::Queued {
            // SAFETY: queued by `enqueue`, grant not seen yet; the node is
            // still in place (drop runs before a pinned value's memory is
            // reused).
            unsafe { self.ring.cancel(&self.node) };
            self.leave_queue();
        }
    }
}

impl<T, R: Recycle<T>> sealed::Home<T> for RingPool<T, R> {
    #[inline]
    fn recycle(&self, object: Lent<T, Self>) {
        // A slot this ring lent: `Lent::from_raw`'s contract.
        let slot = object.into_raw();
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

    fn discard(&self, object: Lent<T, Self>) {
        let slot = object.into_raw();
        self.counters
            .replaced_discarded
            .fetch_add(1, Ordering::Relaxed);
        // SAFETY: a slot this ring lent (`Lent::from_raw`'s contract): we
        // hold it.
        drop(unsafe { self.replace(slot, self.index_of(slot)) });
    }

    fn detach(&self, object: Lent<T, Self>) -> T {
        let slot = object.into_raw();
        self.counters.detached.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as in `discard`.
        unsafe { self.replace(slot, self.index_of(slot)) }
    }
}

impl<T, R: Recycle<T>> PoolKind<T> for RingPool<T, R> {}

impl<T, R> Drop for RingPool<T, R> {
    /// Drops every object, all of them even if one's destructor panics (no
    /// guard is left: each borrows the ring or holds an `Arc` of it); then
    /// the first panic goes on.
    fn drop(&mut self) {
        let mut panic = FirstPanic::default();
        for slot in mem::take(&mut self.slots) {
            panic.run(|| drop(slot));
        }
        panic.resume();
    }
}

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
///
/// ```
/// use capacitor_pool::RingPool;
///
/// let ring = RingPool::new(4, Vec::<u8>::new).unwrap();
/// for _ in 0..10 {
///     drop(ring.try_get().unwrap());
/// }
/// let stats = ring.stats();
/// assert_eq!((stats.capacity, stats.get_count, stats.return_count), (4, 10, 10));
/// assert_eq!(stats.created_count, 4); // every get served by a preallocated object
/// ```
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
    /// Time spent waiting, summed over those gets: an estimate, from one
    /// wait in 8 timed (the first wait included) and scaled by 8, since
    /// reading the clock twice per wait would cost a tenth of a contended
    /// `get`.
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
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(1, Vec::<u8>::new).retention_limit(1024).build().unwrap();
    /// ring.try_get().unwrap().reserve(4096); // too big to keep: replaced
    /// let stats = ring.stats();
    /// assert_eq!((stats.drop_count(), stats.drop_oversized_count), (1, 1));
    /// assert_eq!(stats.created_count, 2);
    /// ```
    pub fn drop_count(&self) -> u64 {
        self.drop_oversized_count + self.drop_discarded_count
    }
}

impl fmt::Display for RingStats {
    /// One line, as [`PoolStats`](crate::PoolStats) prints. The wait time
    /// is summed over every task that waited (sampled, see
    /// [`wait_time`](RingStats::wait_time)), so it can exceed the time the
    /// ring ran.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::new(2, || ()).unwrap();
    /// drop(ring.try_get().unwrap());
    /// assert_eq!(
    ///     ring.stats().to_string(),
    ///     "capacity 2, gets 1, returns 1, in use 0, idle 2, waits 0 (0ns in all, \
    ///      0 timed out, 0 waiting), created 2, drops 0 (oversized 0, discarded 0), \
    ///      detached 0, open"
    /// );
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "capacity {}, gets {}, returns {}, in use {}, idle {}, waits {} ({:?} in all, \
             {} timed out, {} waiting), created {}, drops {} (oversized {}, discarded {}), \
             detached {}, {}",
            self.capacity,
            self.get_count,
            self.return_count,
            self.num_in_use,
            self.num_idle,
            self.wait_count,
            self.wait_time,
            self.timeout_count,
            self.num_waiters,
            self.created_count,
            self.drop_count(),
            self.drop_oversized_count,
            self.drop_discarded_count,
            self.detach_count,
            if self.closed { "closed" } else { "open" },
        )
    }
}

/// Builds a [`RingPool`]; made by [`RingPool::builder`].
///
/// ```
/// use capacitor_pool::RingPool;
/// use capacitor_pool::ring::RingPoolBuilder;
///
/// let builder: RingPoolBuilder<Vec<u8>> = RingPool::builder(2, Vec::new);
/// let ring = builder.retention_limit(4096).build().unwrap();
/// assert_eq!(ring.capacity(), 2);
/// ```
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
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(1, Vec::<u8>::new).retention_limit(1024).build().unwrap();
    /// ring.try_get().unwrap().reserve(4096);
    /// assert_eq!(ring.stats().drop_oversized_count, 1);
    /// assert_eq!(ring.try_get().unwrap().capacity(), 0); // a fresh object
    /// ```
    pub fn retention_limit(mut self, bytes: usize) -> Self {
        self.retention_limit = bytes;
        self
    }

    /// Resets objects with a closure instead of the [`Reset`] trait; see
    /// [`PoolBuilder::reset`](crate::pool::PoolBuilder::reset).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(1, || vec![0u8; 4]).reset(|v| v.fill(0)).build().unwrap();
    /// ring.try_get().unwrap()[0] = 9;
    /// assert_eq!(*ring.try_get().unwrap(), [0, 0, 0, 0]); // zeroed, length kept
    /// ```
    pub fn reset<F>(self, reset: F) -> RingPoolBuilder<T, ResetWith<F>>
    where
        F: Fn(&mut T) + Send + Sync,
    {
        self.recycler(ResetWith(reset))
    }

    /// Recycles objects with a [`Recycle`] policy.
    ///
    /// ```
    /// use capacitor_pool::{RingPool, UseReset};
    ///
    /// // `UseReset` is the default policy: the `Reset` trait.
    /// let ring = RingPool::builder(1, String::new).recycler(UseReset).build().unwrap();
    /// ring.try_get().unwrap().push_str("x");
    /// assert!(ring.try_get().unwrap().is_empty());
    /// ```
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
    /// [`BuildError::CapacityTooLarge`] past `usize::MAX >> 3` slots.
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use capacitor_pool::ring::BuildError;
    ///
    /// let ring = RingPool::builder(2, || Vec::<u8>::with_capacity(64)).build().unwrap();
    /// assert_eq!(ring.stats().created_count, 2); // made now
    /// let err = RingPool::builder(0, Vec::<u8>::new).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroCapacity);
    /// ```
    pub fn build(self) -> Result<RingPool<T, R>, BuildError>
    where
        R: Recycle<T>,
    {
        let capacity = self.capacity;
        if capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if capacity > MAX_CAPACITY {
            return Err(BuildError::CapacityTooLarge {
                requested: capacity,
                max: MAX_CAPACITY,
            });
        }
        let slots = (0..capacity)
            .map(|_| RingSlot {
                value: StdUnsafeCell::new((self.make)()),
                uses: AtomicU64::new(0),
            })
            .collect();
        // Slot `i` is bit `i / words` of word `i % words`. At least one word
        // per CPU (while there are slots for it), so that each worker claims
        // and frees in a cache line of its own in the common case, where a
        // task frees its slot on the worker that claimed it.
        #[cfg(not(all(test, loom)))]
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // The models explore the same layout on every host: two words once
        // there are two slots.
        #[cfg(all(test, loom))]
        let cpus = 2;
        let words = capacity.div_ceil(64).max(cpus.min(capacity));
        let free = (0..words)
            .map(|w| {
                let bits = (capacity - w).div_ceil(words);
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
            wait: CachePadded::new(WaitState {
                list: Mutex::new(WaitList::new()),
                waiters: AtomicUsize::new(0),
                waits: AtomicU64::new(0),
            }),
            closed: AtomicBool::new(false),
            make: self.make,
            recycle: self.recycle,
            retention_limit: self.retention_limit,
            counters: CachePadded::new(RingCounters::default()),
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
    //! Loom models of slot claim, release and hand-over against concurrent
    //! claimers, waiters, cancelled waiters and `close`. Waiters run the
    //! ring's own `Acquire` future (intrusive FIFO node, list lock, grant)
    //! on loom's executor: a lost wake-up shows as a waiter that never
    //! finishes, which loom reports as a deadlock.

    use super::*;
    use loom::sync::Arc;
    use loom::thread;
    use std::pin::pin;

    use crate::loom::model::{Obj, hold, release};

    /// `get` as the ring does it.
    fn get(ring: &RingPool<Obj>) -> Result<NonNull<Obj>, GetError> {
        loom::future::block_on(ring.acquire())
    }

    /// Holds `slot` (checking no one else does, and that its bit is not
    /// set meanwhile), then frees it.
    fn hold_and_free(ring: &RingPool<Obj>, slot: NonNull<Obj>) {
        hold(slot);
        assert!(!is_free(ring, slot), "a held slot is in the bitmap");
        release(slot);
        free(ring, slot);
    }

    /// Whether `slot`'s bit is set: a free slot, which any `claim` takes.
    fn is_free(ring: &RingPool<Obj>, slot: NonNull<Obj>) -> bool {
        let index = ring.index_of(slot);
        let words = ring.free.len();
        ring.free[index % words].load(Ordering::SeqCst) & (1 << (index / words)) != 0
    }

    fn use_slot(ring: &RingPool<Obj>) {
        hold_and_free(ring, get(ring).expect("open"));
    }

    /// Frees `slot` without holding it.
    fn free(ring: &RingPool<Obj>, slot: NonNull<Obj>) {
        ring.release(ring.index_of(slot));
    }

    /// A one-slot ring with its slot claimed, as most models start.
    fn one_slot_held() -> (Arc<RingPool<Obj>>, NonNull<Obj>) {
        let ring = Arc::new(RingPool::new(1, Obj::new).unwrap());
        let held = ring.claim(0).unwrap();
        (ring, held)
    }

    /// Runs `f` on a new model thread with a handle of its own on `ring`.
    fn spawn_on(
        ring: &Arc<RingPool<Obj>>,
        f: impl FnOnce(&RingPool<Obj>) + 'static,
    ) -> thread::JoinHandle<()> {
        let ring = Arc::clone(ring);
        thread::spawn(move || f(&ring))
    }

    fn check_all_free(ring: &RingPool<Obj>) {
        let s = ring.stats();
        assert_eq!((s.num_idle, s.num_waiters), (s.capacity as u64, 0), "{s:?}");
        let list = ring.lock_list();
        assert!(
            list.head.is_null() && list.tail.is_null(),
            "no node left queued"
        );
    }

    /// Three tasks, two slots: at least one has to wait for a hand-over.
    #[test]
    fn waiters_are_handed_slots_and_none_is_lost() {
        loom::model(|| {
            let ring = Arc::new(RingPool::new(2, Obj::new).unwrap());
            let threads: Vec<_> = (0..2).map(|_| spawn_on(&ring, use_slot)).collect();
            use_slot(&ring);
            for t in threads {
                t.join().unwrap();
            }
            check_all_free(&ring);
        });
    }

    /// Two waiters queue for one slot; the first gives up (its future is
    /// dropped after one poll) while the slot is freed: the slot must reach
    /// the other waiter or the bitmap, never stay granted to nobody.
    #[test]
    fn a_cancelled_get_strands_no_slot() {
        loom::model(|| {
            let (ring, held) = one_slot_held();
            let quitter = spawn_on(&ring, |ring| {
                let mut fut = pin!(ring.acquire());
                let mut cx = Context::from_waker(Waker::noop());
                if let Poll::Ready(slot) = fut.as_mut().poll(&mut cx) {
                    free(ring, slot.expect("open"));
                }
                // Dropped here: gives up its place if it has one.
            });
            let patient = spawn_on(&ring, use_slot);
            free(&ring, held);
            quitter.join().unwrap();
            patient.join().unwrap();
            check_all_free(&ring);
            assert!(ring.claim(0).is_some());
        });
    }

    /// `close` while a task waits: the waiter either gets the slot (freed
    /// first) or an error, and the slot ends up free either way.
    #[test]
    fn close_fails_or_serves_the_waiter_and_frees_the_slot() {
        loom::model(|| {
            let (ring, held) = one_slot_held();
            let waiter = spawn_on(&ring, |ring| {
                if let Ok(slot) = get(ring) {
                    hold_and_free(ring, slot);
                }
            });
            ring.close();
            free(&ring, held);
            waiter.join().unwrap();
            check_all_free(&ring);
            assert!(get(&ring).is_err(), "closed");
        });
    }

    /// A queued `get` polled again with another waker while its slot is
    /// being released: the new waker must be the one woken (`block_on`
    /// parks until it is), or the re-poll must see the grant.
    #[test]
    fn a_get_re_polled_with_a_new_waker_is_woken_through_it() {
        loom::model(|| {
            let (ring, held) = one_slot_held();
            let waiter = spawn_on(&ring, |ring| {
                let mut fut = Box::pin(ring.acquire());
                let mut cx = Context::from_waker(Waker::noop());
                let slot = match fut.as_mut().poll(&mut cx) {
                    Poll::Ready(slot) => slot,
                    // Queued under the no-op waker; now wait with a real
                    // one.
                    Poll::Pending => loom::future::block_on(&mut fut),
                };
                hold_and_free(ring, slot.expect("open"));
            });
            free(&ring, held);
            waiter.join().unwrap();
            check_all_free(&ring);
        });
    }

    /// `close`, a release and a waiter on three threads: the waiter gets
    /// the slot or an error, never sleeps forever, and the slot ends free.
    #[test]
    fn close_release_and_a_waiter_on_three_threads() {
        loom::model(|| {
            let (ring, held) = one_slot_held();
            let closer = spawn_on(&ring, RingPool::close);
            let releaser = spawn_on(&ring, move |ring| free(ring, held));
            if let Ok(slot) = get(&ring) {
                hold_and_free(&ring, slot);
            }
            closer.join().unwrap();
            releaser.join().unwrap();
            check_all_free(&ring);
        });
    }

    /// A `try_get` barging in while a release hands its slot to a waiter
    /// that is registering (it may take the bit between the release's
    /// `set_bit` and `take_bit`, or the waiter may): the slot is held by
    /// one of them at a time, and the waiter is still served.
    #[test]
    fn a_barging_try_get_does_not_strand_a_waiter() {
        loom::model(|| {
            let (ring, held) = one_slot_held();
            let waiter = spawn_on(&ring, use_slot);
            free(&ring, held);
            // Barge in right after the release, as a `try_get` would.
            if let Some(slot) = ring.claim(0) {
                hold_and_free(&ring, slot);
            }
            waiter.join().unwrap();
            check_all_free(&ring);
        });
    }
}
