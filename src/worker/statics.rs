//! `worker_pool!` statics: a [`WorkerPool`] whose private slot on each
//! worker thread is a thread-local of its own.
//!
//! A `WorkerPool` built at run time finds its private slot on a thread at
//! an index it loads from itself. A pool declared with
//! [`worker_pool!`](crate::worker_pool) has a thread-local entry of its
//! own, declared by the macro, so its `get` and its guards' drop reach
//! the slot at an address fixed when the code is compiled: one load fewer
//! on the way in and out, and no load that the slot's address must wait
//! for (`docs/BENCHMARKS.md` has what that is worth).

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use std::panic::Location;
use std::time::Duration;

use crate::guard::sealed::Lent;
use crate::guard::{PoolKind, Pooled, sealed};
use crate::reset::{Recycle, UseReset};
use crate::worker::private::ByEntry;
use crate::worker::registry::PrivateEntry;
use crate::worker::{WorkerPool, WorkerPoolBuilder, spawn_trim_loop};

/// Where a [`worker_pool!`](crate::worker_pool) static keeps its private
/// slot on each thread. Implemented by the macro; not a public API.
///
/// # Safety
/// `with` hands `f` the calling thread's own entry: a `const`
/// thread-local without destructor, used by one [`StaticWorkerPool`]
/// alone (the one whose key the implementing type is).
#[doc(hidden)]
pub unsafe trait PrivateKey: 'static {
    /// Runs `f` on the calling thread's entry.
    fn with<X>(f: impl FnOnce(&PrivateEntry) -> X) -> X;
}

/// Builds the pool of a `worker_pool!` static. Not a public API.
///
/// # Safety
/// The pool goes into a [`StaticWorkerPool`] (`__new`): built here, it has
/// a private slot index but no slot on any thread without its key.
#[doc(hidden)]
pub unsafe fn build_static<T: 'static, R: Recycle<T>>(
    builder: WorkerPoolBuilder<T, R>,
) -> WorkerPool<T, R> {
    builder.build_with(true)
}

/// A guard from a [`worker_pool!`](crate::worker_pool) static: [`Pooled`]
/// with the pool type filled in, `'static`, to put in a struct field.
///
/// `K` is the static's name: each use of the macro declares a type of the
/// same name beside the static (its key). A static with a custom recycler
/// `R` names it too: `StaticPooled<T, NAME, R>`.
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use capacitor_pool::{StaticPooled, worker_pool};
///
/// worker_pool! {
///     static BUFFERS: WorkerPool<BytesMut> =
///         WorkerPool::builder(|| BytesMut::with_capacity(1024));
/// }
///
/// /// A connection keeps its read buffer between reads.
/// struct Conn {
///     read_buf: StaticPooled<BytesMut, BUFFERS>,
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let mut conn = Conn { read_buf: BUFFERS.get() };
/// let n = tokio::spawn(async move {
///     conn.read_buf.put_slice(b"ping");
///     tokio::task::yield_now().await;
///     conn.read_buf.len()
/// }) // `conn` drops with the task: its buffer goes back, cleared
/// .await
/// .unwrap();
/// assert_eq!(n, 4);
/// assert_eq!(BUFFERS.stats().num_in_use, 0);
/// # }
/// ```
pub type StaticPooled<T, K, R = UseReset> = Pooled<'static, T, StaticWorkerPool<T, R, K>>;

/// The [`WorkerPool`] of a `static` declared with
/// [`worker_pool!`](crate::worker_pool) (the static is a `LazyLock` of
/// it: built at its first use), with a private slot on each worker thread
/// that is a thread-local of its own (`K` names it).
///
/// [`get`](StaticWorkerPool::get) and [`try_get`](StaticWorkerPool::try_get)
/// give guards that go back through that slot; everything else
/// (`stats`, `worker_stats`, `trim`, `put`, `depot`, ...) is the
/// `WorkerPool`'s, through `Deref`.
///
/// ```
/// use capacitor_pool::worker_pool;
///
/// worker_pool! {
///     /// Scratch vectors for the handlers.
///     static SCRATCH: WorkerPool<Vec<u8>> = WorkerPool::builder(Vec::new);
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut v = SCRATCH.get();
/// v.extend_from_slice(b"abc");
/// drop(v); // reset, and parked in this worker's private slot
/// assert!(SCRATCH.get().is_empty());
/// assert_eq!(SCRATCH.stats().hit_count, 1);
/// # }
/// ```
pub struct StaticWorkerPool<T, R, K> {
    pool: WorkerPool<T, R>,
    _key: PhantomData<fn() -> K>,
}

impl<T, R, K> StaticWorkerPool<T, R, K> {
    /// The pool of a `worker_pool!` static. Not a public API.
    ///
    /// # Safety
    /// The one `StaticWorkerPool` with key `K`, in a `static` (never
    /// dropped); `pool` was built by [`build_static`].
    #[doc(hidden)]
    pub unsafe fn __new(pool: WorkerPool<T, R>) -> Self {
        Self {
            pool,
            _key: PhantomData,
        }
    }
}

impl<T, R: Recycle<T>, K: PrivateKey> StaticWorkerPool<T, R, K> {
    /// Takes an idle object (from this worker's private slot or magazine,
    /// else the depot), or makes a new one; see [`WorkerPool::get`].
    #[inline(always)]
    #[track_caller]
    pub fn get(&self) -> Pooled<'_, T, Self> {
        let pool = &self.pool;
        // SAFETY: `K`'s entry is this thread's own, for this pool alone
        // (`PrivateKey`'s contract).
        let site = Location::caller();
        let slot = K::with(|entry| pool.take_private(unsafe { ByEntry::new(entry) }, true, site));
        Pooled::new(self, slot.expect("make = true").into())
    }

    /// Takes an idle object; `None` if none is idle. Never makes one.
    ///
    /// ```
    /// use capacitor_pool::worker_pool;
    ///
    /// worker_pool! {
    ///     static NAMES: WorkerPool<String> = WorkerPool::builder(String::new);
    /// }
    /// assert!(NAMES.try_get().is_none());
    /// drop(NAMES.get());
    /// assert!(NAMES.try_get().is_some());
    /// ```
    #[inline]
    #[track_caller]
    pub fn try_get(&self) -> Option<Pooled<'_, T, Self>> {
        let pool = &self.pool;
        // SAFETY: as in `get`.
        let site = Location::caller();
        let slot = K::with(|entry| pool.take_private(unsafe { ByEntry::new(entry) }, false, site))?;
        Some(Pooled::new(self, slot.into()))
    }

    /// Runs [`trim`](WorkerPool::trim) every `period` (at least 1 ms) on
    /// the current tokio runtime, for as long as the runtime runs (or until
    /// the task is aborted). The runtime needs its time driver.
    ///
    /// # Errors
    /// Called outside a tokio runtime, it returns the error of
    /// [`Handle::try_current`](tokio::runtime::Handle::try_current).
    ///
    /// ```
    /// use capacitor_pool::worker_pool;
    /// use std::time::Duration;
    ///
    /// worker_pool! {
    ///     static VECS: WorkerPool<Vec<u8>> = WorkerPool::builder(Vec::new).prefill(4);
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let trimmer = VECS.spawn_trimmer(Duration::from_secs(10)).unwrap();
    /// tokio::time::sleep(Duration::from_secs(25)).await;
    /// assert_eq!(VECS.stats().num_idle, 0); // idle through two trims
    /// trimmer.abort();
    /// # }
    /// ```
    pub fn spawn_trimmer(
        &'static self,
        period: Duration,
    ) -> Result<tokio::task::JoinHandle<()>, tokio::runtime::TryCurrentError>
    where
        T: Send,
        R: Send + Sync,
    {
        spawn_trim_loop(period, move || {
            self.trim();
            true
        })
    }
}

impl<T, R, K> Deref for StaticWorkerPool<T, R, K> {
    type Target = WorkerPool<T, R>;

    #[inline]
    fn deref(&self) -> &WorkerPool<T, R> {
        &self.pool
    }
}

impl<T, R: Recycle<T>, K: PrivateKey> sealed::Home<T> for StaticWorkerPool<T, R, K> {
    #[inline(always)]
    fn recycle(&self, object: Lent<T, Self>) {
        let pool = &self.pool;
        let slot = object.into_slot();
        // SAFETY: `K`'s entry as in `get`.
        K::with(|entry| pool.give_back_private(slot, unsafe { ByEntry::new(entry) }));
    }

    fn discard(&self, object: Lent<T, Self>) {
        sealed::Home::discard(&self.pool, object.into_slot().into());
    }

    fn detach(&self, object: Lent<T, Self>) -> T {
        sealed::Home::detach(&self.pool, object.into_slot().into())
    }
}

impl<T, R, K: PrivateKey> sealed::SlotBacked for StaticWorkerPool<T, R, K> {}

impl<T, R: Recycle<T>, K: PrivateKey> PoolKind<T> for StaticWorkerPool<T, R, K> {}

impl<T, R: Recycle<T>, K: PrivateKey> crate::observe::sealed::Sealed for StaticWorkerPool<T, R, K> {}

impl<T: Send, R: Recycle<T> + Send + Sync, K: PrivateKey + Send + Sync> crate::observe::Observe
    for StaticWorkerPool<T, R, K>
{
    fn snapshot(&self) -> crate::observe::Snapshot {
        self.pool.snapshot()
    }

    fn check_holds(&self, f: &mut dyn FnMut(&crate::observe::LongHold)) {
        self.pool.check_holds(f);
    }
}

impl<T, R: Recycle<T>, K> fmt::Debug for StaticWorkerPool<T, R, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.pool, f)
    }
}

/// Declares a `static` [`WorkerPool`] whose private slot on each worker
/// thread is a thread-local of its own: the fastest way to use one.
///
/// The initializer is a [`WorkerPoolBuilder`] (`WorkerPool` is in scope
/// there); the pool is built at its first use, so without
/// [`workers`](WorkerPoolBuilder::workers) its magazine count comes from
/// wherever that first use runs (the runtime's workers, 1 in a
/// current-thread runtime or `#[tokio::test]`, else the CPUs). Worker
/// numbers are process-wide: give `.workers(n)` with room for every
/// worker thread of every runtime that uses the pool. The static is a
/// `LazyLock` of a [`StaticWorkerPool`]: `get` and `try_get`
/// give `'static` guards that move into `tokio::spawn` and return through
/// the private slot of whichever worker drops them; the rest of
/// `WorkerPool`'s methods work through `Deref`. A custom recycler goes in
/// the type, as in `WorkerPool<T, R>`.
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use capacitor_pool::worker_pool;
///
/// worker_pool! {
///     /// Read buffers for the connection handlers.
///     pub static BUFFERS: WorkerPool<BytesMut> =
///         WorkerPool::builder(|| BytesMut::with_capacity(4096)).magazine_size(16);
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let n = tokio::spawn(async {
///     let mut buf = BUFFERS.get();
///     buf.put_slice(b"hello");
///     tokio::task::yield_now().await; // may resume on the other worker
///     buf.len()
/// })
/// .await
/// .unwrap();
/// assert_eq!(n, 5);
/// assert_eq!(BUFFERS.stats().num_in_use, 0);
/// # }
/// ```
///
/// The builder expression runs at the static's first use, so it can read
/// settings the program set before, such as a hold warning from the
/// configuration:
///
/// ```
/// use capacitor_pool::worker_pool;
/// use std::sync::OnceLock;
/// use std::time::Duration;
///
/// static HOLD_WARNING: OnceLock<Duration> = OnceLock::new();
///
/// worker_pool! {
///     static SCRATCH: WorkerPool<Vec<u8>> = {
///         let builder = WorkerPool::builder(Vec::new).name("scratch");
///         match HOLD_WARNING.get() {
///             Some(&threshold) => builder.hold_warning(threshold),
///             None => builder,
///         }
///     };
/// }
///
/// HOLD_WARNING.set(Duration::from_secs(2)).unwrap(); // from the config, at start-up
/// assert_eq!(SCRATCH.hold_warning(), Some(Duration::from_secs(2)));
/// ```
///
/// Each use of the macro declares, beside the static, a hidden type of the
/// same name (it names the static's thread-local, and the guards' type:
/// [`StaticPooled<T, NAME>`](crate::StaticPooled), short for
/// `Pooled<'static, T, StaticWorkerPool<T, UseReset, NAME>>`, so a private
/// static's guards stay out of public signatures) and an `unsafe impl` for
/// it: the macro's promise that the thread-local is the static's alone.
/// Attributes go on the static only; put a `#[cfg]`'d declaration in a
/// `#[cfg]`'d module. Not for a dynamic library that is unloaded
/// (`dlclose`) while its threads live: the crate's registry keeps pointers
/// to the static's thread-locals.
#[macro_export]
macro_rules! worker_pool {
    ($(#[$attr:meta])* $vis:vis static $name:ident : WorkerPool<$t:ty> = $init:expr ;) => {
        $crate::worker_pool! {
            $(#[$attr])* $vis static $name: WorkerPool<$t, $crate::UseReset> = $init;
        }
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident : WorkerPool<$t:ty, $r:ty> = $init:expr ;) => {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, clippy::upper_case_acronyms)]
        $vis struct $name {
            _private: (),
        }

        // SAFETY: `ENTRY` is a `const` thread-local without destructor,
        // declared here for the static below alone.
        unsafe impl $crate::__private::PrivateKey for $name {
            #[inline(always)]
            fn with<X>(f: impl ::core::ops::FnOnce(&$crate::__private::PrivateEntry) -> X) -> X {
                ::std::thread_local! {
                    static ENTRY: $crate::__private::PrivateEntry =
                        const { $crate::__private::PrivateEntry::new() };
                }
                ENTRY.with(f)
            }
        }

        $(#[$attr])*
        $vis static $name: ::std::sync::LazyLock<$crate::worker::StaticWorkerPool<$t, $r, $name>> =
            ::std::sync::LazyLock::new(|| {
                // The initializer may name `WorkerPool` without importing
                // it.
                #[allow(unused_imports)]
                use $crate::WorkerPool;
                let builder = $init;
                // SAFETY: the one pool with key `$name`, in a static, built
                // by `build_static`.
                unsafe { $crate::worker::StaticWorkerPool::__new($crate::__private::build_static(builder)) }
            });
    };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::worker::registry::{parked_state, unchecked};
    use crate::worker::statics::PrivateKey;

    crate::worker_pool! {
        static VECS: WorkerPool<Vec<u8>> = WorkerPool::builder(Vec::new).workers(64);
    }

    crate::worker_pool! {
        static NARROW: WorkerPool<Vec<u8>> = WorkerPool::builder(Vec::new).workers(0);
    }

    fn state<K: PrivateKey>() -> Option<bool> {
        K::with(parked_state)
    }

    #[test]
    fn a_worker_parks_in_the_statics_own_thread_local() {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                assert!(VECS::with(unchecked), "not looked at before the first use");
                let v = VECS.get();
                assert_eq!(state::<VECS>(), Some(false), "enabled, empty");
                drop(v);
                assert_eq!(state::<VECS>(), Some(true), "parked in the entry");
                let v = VECS.get();
                assert_eq!(state::<VECS>(), Some(false), "taken from it");
                drop(v);
            });
        })
        .join()
        .unwrap();
        // Off a worker, the entry is never enabled: the depot serves.
        std::thread::spawn(|| {
            drop(VECS.get());
            assert!(VECS::with(unchecked));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_worker_past_the_magazines_turns_its_entry_off() {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                drop(NARROW.get());
                assert!(!NARROW::with(unchecked));
                assert_eq!(state::<NARROW>(), None, "off: no slot");
            });
        })
        .join()
        .unwrap();
        assert_eq!(NARROW.depot().stats().return_count, 1);
    }
}
