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

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

mod acquire;
mod builder;
mod error;
#[cfg(all(test, loom))]
mod loom_tests;
mod release;
mod slots;
mod stats;
mod wait_list;

pub use self::builder::RingPoolBuilder;
pub use self::error::{BuildError, GetError, GetTimeoutError, TryGetError};
pub use self::stats::RingStats;

use self::slots::{Claimed, Slots};
use self::stats::RingCounters;
use self::wait_list::WaitState;
use crate::guard::sealed::Lent;
use crate::guard::{OwnedPooled, PoolKind, Pooled};
use crate::loom::{AtomicBool, AtomicU64, Ordering};
use crate::observe::{
    self, HoldSite, HoldWaits, Holds, Label, LongHold, Mark, Observe, Site, Snapshot,
};
use crate::reset::{Recycle, Reset, UseReset};
use crate::thread::shard_hint;

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
/// The slot is handed over in the node itself: one lock and one wake per
/// hand-over, with no queue of slot indices beside the wait list.
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
    /// The objects and the bitmap of free slots.
    slots: Slots<T>,
    /// The wait list and what changes with it, in one cache line of its
    /// own: a hand-over moves one line between cores, not three.
    wait: CachePadded<WaitState>,
    closed: AtomicBool,
    make: Make<T>,
    recycle: R,
    retention_limit: usize,
    /// In a line of their own, away from the fields every `try_get` reads.
    counters: CachePadded<RingCounters>,
    label: Label,
    /// The guards out now, when the ring has a hold warning.
    holds: Option<Box<Holds>>,
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
        RingPoolBuilder::new(capacity, Box::new(make))
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
    #[track_caller]
    pub fn try_get(&self) -> Result<RingGuard<'_, T, R>, TryGetError> {
        self.try_get_at(Location::caller())
    }

    #[inline]
    fn try_get_at(&self, site: Site) -> Result<RingGuard<'_, T, R>, TryGetError> {
        let lent = self.try_claim()?;
        self.hold_taken(&lent, site);
        Ok(Pooled::new(self, lent))
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
    #[track_caller]
    pub fn try_get_owned(self: &Arc<Self>) -> Result<OwnedRingGuard<T, R>, TryGetError> {
        let lent = self.try_claim()?;
        self.hold_taken(&lent, Location::caller());
        Ok(OwnedPooled::new(Arc::clone(self), lent))
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
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<RingGuard<'_, T, R>, GetError>> {
        self.get_at(Location::caller())
    }

    async fn get_at(&self, site: Site) -> Result<RingGuard<'_, T, R>, GetError> {
        let lent = self.acquire().await?;
        self.hold_taken(&lent, site);
        Ok(Pooled::new(self, lent))
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
    #[track_caller]
    pub fn get_owned(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<OwnedRingGuard<T, R>, GetError>> {
        let site = Location::caller();
        async move {
            let lent = self.acquire().await?;
            self.hold_taken(&lent, site);
            Ok(OwnedPooled::new(Arc::clone(self), lent))
        }
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
    #[track_caller]
    pub fn get_timeout(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<RingGuard<'_, T, R>, GetTimeoutError>> {
        self.get_timeout_at(timeout, Location::caller())
    }

    async fn get_timeout_at(
        &self,
        timeout: Duration,
        site: Site,
    ) -> Result<RingGuard<'_, T, R>, GetTimeoutError> {
        match self.try_get_at(site) {
            Ok(guard) => return Ok(guard),
            Err(TryGetError::Closed) => return Err(GetTimeoutError::Closed),
            Err(TryGetError::Empty) => {}
        }
        match tokio::time::timeout(timeout, self.get_at(site)).await {
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
            match catch_unwind(AssertUnwindSafe(|| self.grant_first(None))) {
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
        let idle = self.slots.num_free();
        let capacity = self.slots.len() as u64;
        let replaced =
            load(&c.replaced_oversized) + load(&c.replaced_discarded) + load(&c.detached);
        let get_count = self.slots.use_count();
        let in_use = capacity.saturating_sub(idle);
        RingStats {
            name: self.label.name,
            long_hold_count: self.holds.as_ref().map_or(0, |h| h.passed()),
            capacity: self.slots.len(),
            get_count,
            return_count: get_count.saturating_sub(in_use),
            created_count: capacity + replaced,
            drop_oversized_count: load(&c.replaced_oversized),
            drop_discarded_count: load(&c.replaced_discarded),
            detach_count: load(&c.detached),
            wait_count: self.wait.wait_count(),
            wait_time: Duration::from_nanos(load(&c.wait_nanos)),
            timeout_count: load(&c.timeouts),
            num_waiters: self.wait.num_waiters() as u64,
            num_idle: idle,
            num_in_use: in_use,
            closed: self.is_closed(),
        }
    }

    /// The object of a claimed slot, lent out (counting the use): the
    /// `Lent` carries the claim from here on, to a guard of this ring,
    /// which gives it back here.
    #[inline]
    fn lend(&self, slot: Claimed) -> Lent<T, Self> {
        let ptr = self.slots.hand_out(slot);
        // SAFETY: the slot is claimed in this ring (`Claimed`'s invariant),
        // so its object is ours alone until the claim goes back, and the
        // `Lent` goes to a guard of this ring only.
        unsafe { Lent::from_raw(ptr) }
    }

    /// Claims a free slot without waiting.
    #[inline]
    fn try_claim(&self) -> Result<Lent<T, Self>, TryGetError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(TryGetError::Closed);
        }
        match self.slots.claim(shard_hint()) {
            Some(slot) => Ok(self.lend(slot)),
            None => Err(TryGetError::Empty),
        }
    }
}

impl<T, R> RingPool<T, R> {
    /// The ring's name, from [`RingPoolBuilder::name`].
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// let ring = RingPool::builder(1, String::new).name("names").build().unwrap();
    /// assert_eq!(ring.name(), Some("names"));
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.label.name
    }

    /// The hold warning, from [`RingPoolBuilder::hold_warning`].
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    ///
    /// assert_eq!(RingPool::new(1, String::new).unwrap().hold_warning(), None);
    /// ```
    pub fn hold_warning(&self) -> Option<Duration> {
        self.holds.as_ref().map(|h| h.threshold())
    }

    /// The guards out now that were taken longer ago than the hold warning,
    /// longest first, each with the waits on the ring since it was taken
    /// ([`LongHold::waits`]); see [`Pool::long_holds`](crate::Pool::long_holds).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ring = Arc::new(
    ///     RingPool::builder(1, Vec::<u8>::new)
    ///         .hold_warning(Duration::from_millis(1))
    ///         .build()
    ///         .unwrap(),
    /// );
    /// let held = ring.get().await.unwrap(); // the one slot
    /// let waiter = tokio::spawn({
    ///     let ring = Arc::clone(&ring);
    ///     async move { ring.get().await.is_ok() }
    /// });
    /// tokio::time::sleep(Duration::from_millis(5)).await;
    /// let long = ring.long_holds();
    /// assert_eq!(long[0].waits.unwrap().num_waiters, 1); // a task waits on it
    /// drop(held);
    /// assert!(waiter.await.unwrap());
    /// # }
    /// ```
    pub fn long_holds(&self) -> Vec<LongHold> {
        self.holds
            .as_ref()
            .map_or_else(Vec::new, |h| h.scan(|mark| self.waits_since(mark)))
    }

    /// The call sites whose guards passed the hold warning; see
    /// [`Pool::hold_sites`](crate::Pool::hold_sites).
    ///
    /// ```
    /// use capacitor_pool::RingPool;
    /// use std::time::Duration;
    ///
    /// let ring = RingPool::builder(1, Vec::<u8>::new).hold_warning(Duration::ZERO).build().unwrap();
    /// let held = ring.try_get().unwrap();
    /// std::thread::sleep(Duration::from_millis(1));
    /// drop(held);
    /// assert_eq!(ring.hold_sites()[0].location.line(), line!() - 3);
    /// ```
    pub fn hold_sites(&self) -> Vec<HoldSite> {
        self.holds.as_ref().map_or_else(Vec::new, |h| h.sites())
    }

    /// The ring's wait counters now, saved with a hold.
    fn mark(&self) -> Mark {
        Mark {
            waits: self.wait.wait_count(),
            wait_nanos: self.counters.wait_nanos.load(Ordering::Relaxed),
        }
    }

    /// The waits on the ring since `mark` was taken.
    fn waits_since(&self, mark: Mark) -> Option<HoldWaits> {
        let now = self.mark();
        Some(HoldWaits {
            count: now.waits.saturating_sub(mark.waits),
            time: Duration::from_nanos(now.wait_nanos.saturating_sub(mark.wait_nanos)),
            num_waiters: self.wait.num_waiters() as u64,
        })
    }

    #[inline(always)]
    fn hold_taken(&self, lent: &Lent<T, Self>, site: Site) {
        if let Some(holds) = &self.holds {
            holds.taken(lent.addr(), site, self.mark());
        }
    }

    #[inline(always)]
    pub(super) fn hold_returned(&self, lent: &Lent<T, Self>) {
        if let Some(holds) = &self.holds {
            holds.returned(lent.addr(), |mark| self.waits_since(mark));
        }
    }
}

impl<T, R: Recycle<T>> PoolKind<T> for RingPool<T, R> {}

impl<T, R: Recycle<T>> observe::sealed::Sealed for RingPool<T, R> {}

impl<T: Send, R: Recycle<T> + Send + Sync> Observe for RingPool<T, R> {
    fn snapshot(&self) -> Snapshot {
        Snapshot::Ring(self.stats())
    }

    fn check_holds(&self, f: &mut dyn FnMut(&LongHold)) {
        if let Some(holds) = &self.holds {
            holds.check(|mark| self.waits_since(mark), f);
        }
    }
}

impl<T, R: Recycle<T>> fmt::Debug for RingPool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingPool")
            .field("name", &self.label.name)
            .field("hold_warning", &self.hold_warning())
            .field("capacity", &self.slots.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
