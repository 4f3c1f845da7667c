//! [`Reporter`]: reads pools on a period, off their hot paths.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{LongHold, Observe, Snapshot};

/// A pool a reporter watches.
enum Watched {
    /// In a `static`: watched for as long as the reporter runs.
    Static(&'static dyn Observe),
    /// In an `Arc`: watched until it is dropped.
    Shared(Weak<dyn Observe>),
}

struct Source {
    pool: Watched,
    /// The label of an unnamed pool: its kind and its place in the
    /// reporter (`pool-0`, `ring-2`).
    fallback: String,
}

type Callback = Box<dyn FnMut(&str, &Snapshot) + Send>;
type HoldCallback = Box<dyn FnMut(&str, &LongHold) + Send>;

/// Reads the pools it watches on a period and reports what it read: to
/// the `metrics` recorder (feature `metrics`), to `tracing` (feature
/// `tracing`: warnings for new long holds), and to callbacks of your own
/// (each pool's [`Snapshot`] with [`on_report`](Reporter::on_report), each
/// new long hold with [`on_long_hold`](Reporter::on_long_hold)).
/// Nothing it does touches a pool's hot path: it reads the per-shard
/// counters, as `stats()` does, and walks the hold tables of pools that
/// have a hold warning.
///
/// ```
/// use capacitor_pool::{Pool, RingPool};
/// use capacitor_pool::observe::Reporter;
/// use std::sync::{Arc, LazyLock};
/// use std::time::Duration;
///
/// static BUFFERS: LazyLock<Pool<Vec<u8>>> =
///     LazyLock::new(|| Pool::builder(Vec::new).name("buffers").build());
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ring = Arc::new(RingPool::builder(4, Vec::<u8>::new).name("jobs").build().unwrap());
/// let reporter = Reporter::new()
///     .watch(&*BUFFERS) // a pool in a static
///     .watch_arc(&ring) // a pool in an Arc: watched until dropped
///     .on_report(|pool, snapshot| println!("{pool} ({}): {snapshot:?}", snapshot.kind()))
///     .spawn(Duration::from_secs(10))
///     .unwrap();
/// tokio::time::sleep(Duration::from_secs(11)).await; // one round
/// reporter.abort();
/// # }
/// ```
///
/// # Exported series (feature `metrics`)
///
/// Every series has the labels `pool` (the pool's name; an unnamed pool
/// gets its kind and its place in the reporter, as `pool-0`) and `kind`
/// (`pool`, `worker_pool`, `ring`, `slab` or `cache`). Counters are set to
/// the pool's running totals ([`Counter::absolute`]), so a rate over them
/// is what a dashboard wants.
///
/// | series | type | kinds | from |
/// |---|---|---|---|
/// | `capacitor_pool_gets_total` | counter | all but `slab`, `cache` | `get_count` |
/// | `capacitor_pool_hits_total` | counter | `pool`, `worker_pool` | `hit_count` |
/// | `capacitor_pool_misses_total` | counter | `pool`, `worker_pool` | `miss_count` |
/// | `capacitor_pool_created_total` | counter | all but `slab`, `cache` | `created_count` |
/// | `capacitor_pool_returns_total` | counter | all but `slab`, `cache` | `return_count` |
/// | `capacitor_pool_drops_total` | counter, label `cause` (`full`, `oversized`, `discarded`, `aged`) | all but `slab`, `cache` | `drop_*_count` |
/// | `capacitor_pool_detached_total` | counter | all but `slab`, `cache` | `detach_count` |
/// | `capacitor_pool_long_holds_total` | counter | `pool`, `worker_pool`, `ring` | `long_hold_count` |
/// | `capacitor_pool_idle` | gauge | all but `slab`, `cache` | `num_idle` |
/// | `capacitor_pool_in_use` | gauge | all but `slab`, `cache` | `num_in_use` |
/// | `capacitor_pool_ring_waits_total` | counter | `ring` | `wait_count` |
/// | `capacitor_pool_ring_wait_microseconds_total` | counter | `ring` | `wait_time`, in whole microseconds |
/// | `capacitor_pool_ring_timeouts_total` | counter | `ring` | `timeout_count` |
/// | `capacitor_pool_ring_waiters` | gauge | `ring` | `num_waiters` |
/// | `capacitor_pool_slab_chunks_in_use` | gauge, label `class` (chunk bytes) | `slab` | the class's `pool.num_in_use` |
/// | `capacitor_pool_slab_chunks_idle` | gauge, label `class` | `slab` | the class's `pool.num_idle` |
/// | `capacitor_pool_slab_pages` | gauge, label `class` | `slab` | `num_pages` |
/// | `capacitor_pool_slab_exhausted_total` | counter, label `class` | `slab` | `exhausted_count` |
/// | `capacitor_pool_slab_heap_fallbacks_total` | counter, label `class` | `slab` | `heap_fallback_count` |
/// | `capacitor_pool_slab_oversized_total` | counter | `slab` | `oversized_count` |
/// | `capacitor_pool_cache_hits_total` | counter | `cache` | `hit_count` |
/// | `capacitor_pool_cache_misses_total` | counter | `cache` | `miss_count` |
/// | `capacitor_pool_cache_evictions_total` | counter | `cache` | `eviction_count` |
/// | `capacitor_pool_cache_expirations_total` | counter | `cache` | `expiration_count` |
/// | `capacitor_pool_cache_entries` | gauge | `cache` | `num_entries` |
///
/// Time is exported in whole microseconds: the `metrics` facade's
/// counters are integers.
///
/// [`Counter::absolute`]: https://docs.rs/metrics/0.24/metrics/struct.Counter.html#method.absolute
pub struct Reporter {
    sources: Vec<Source>,
    callbacks: Vec<Callback>,
    hold_callbacks: Vec<HoldCallback>,
}

impl Default for Reporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter {
    /// A reporter that watches nothing yet.
    ///
    /// ```
    /// use capacitor_pool::observe::Reporter;
    ///
    /// assert_eq!(Reporter::new().report(), 0);
    /// ```
    pub fn new() -> Self {
        Reporter {
            sources: Vec::new(),
            callbacks: Vec::new(),
            hold_callbacks: Vec::new(),
        }
    }

    /// Watches a pool in a `static` (a `LazyLock`, or a
    /// [`worker_pool!`](crate::worker_pool)).
    ///
    /// ```
    /// use capacitor_pool::{observe::Reporter, worker_pool};
    ///
    /// worker_pool! {
    ///     static NAMES: WorkerPool<String> = WorkerPool::builder(String::new).name("names");
    /// }
    /// let mut reporter = Reporter::new().watch(&*NAMES);
    /// assert_eq!(reporter.report(), 1);
    /// ```
    pub fn watch(mut self, pool: &'static impl Observe) -> Self {
        let fallback = self.fallback(pool);
        self.sources.push(Source {
            pool: Watched::Static(pool),
            fallback,
        });
        self
    }

    /// Watches a pool in an [`Arc`] until it is dropped: the reporter holds
    /// a [`Weak`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::observe::Reporter;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(String::new));
    /// let mut reporter = Reporter::new().watch_arc(&pool);
    /// assert_eq!(reporter.report(), 1);
    /// drop(pool);
    /// assert_eq!(reporter.report(), 0); // gone: no longer watched
    /// ```
    pub fn watch_arc<P: Observe + 'static>(mut self, pool: &Arc<P>) -> Self {
        let fallback = self.fallback(&**pool);
        let weak: Weak<dyn Observe> = Arc::downgrade(pool) as Weak<dyn Observe>;
        self.sources.push(Source {
            pool: Watched::Shared(weak),
            fallback,
        });
        self
    }

    /// Calls `f` with each pool's label (its name, or the fallback the
    /// exported series use) and [`Snapshot`] in every round: the way to an
    /// exporter of your own (OpenTelemetry, a log line, a health check).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::observe::{Reporter, Snapshot};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let pool = Arc::new(Pool::builder(String::new).name("names").build());
    /// drop(pool.get());
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let mut reporter = Reporter::new().watch_arc(&pool).on_report({
    ///     let seen = Arc::clone(&seen);
    ///     move |label, snapshot| {
    ///         if let Snapshot::Pool(stats) = snapshot {
    ///             seen.lock().unwrap().push((label.to_owned(), stats.get_count));
    ///         }
    ///     }
    /// });
    /// reporter.report();
    /// assert_eq!(*seen.lock().unwrap(), [("names".to_owned(), 1)]);
    /// ```
    pub fn on_report(mut self, f: impl FnMut(&str, &Snapshot) + Send + 'static) -> Self {
        self.callbacks.push(Box::new(f));
        self
    }

    /// Calls `f` once for each long hold of a watched pool, with the pool's
    /// label (a [`LongHold`]'s `Display` starts with the pool's name, if it
    /// has one): in the round that first finds it still held, or, for a hold
    /// that ended before a round saw it, in the next round (with
    /// [`still_held`](LongHold::still_held) `false`). At most the last 64
    /// per pool between two rounds. The way to print or page on one.
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use capacitor_pool::observe::Reporter;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = Arc::new(
    ///     WorkerPool::builder(Vec::<u8>::new)
    ///         .name("buffers")
    ///         .hold_warning(Duration::from_millis(1))
    ///         .build(),
    /// );
    /// let mut reporter = Reporter::new()
    ///     .watch_arc(&pool)
    ///     .on_long_hold(|_pool, hold| eprintln!("{hold}"));
    /// let held = pool.get();
    /// std::thread::sleep(Duration::from_millis(5));
    /// reporter.report(); // prints "buffers: held 5.1ms, taken at src/main.rs:16:17"
    /// drop(held);
    /// ```
    pub fn on_long_hold(mut self, f: impl FnMut(&str, &LongHold) + Send + 'static) -> Self {
        self.hold_callbacks.push(Box::new(f));
        self
    }

    /// One round now: checks each pool's hold warning, then reports its
    /// snapshot. Returns how many pools it reported (pools in an `Arc`
    /// that was dropped are no longer watched).
    ///
    /// ```
    /// use capacitor_pool::WorkerPool;
    /// use capacitor_pool::observe::Reporter;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = Arc::new(WorkerPool::builder(String::new).hold_warning(Duration::ZERO).build());
    /// let held = pool.get();
    /// std::thread::sleep(Duration::from_millis(1));
    /// let mut reporter = Reporter::new().watch_arc(&pool);
    /// reporter.report(); // finds the hold past its warning
    /// assert_eq!(pool.stats().long_hold_count, 1);
    /// drop(held);
    /// ```
    pub fn report(&mut self) -> usize {
        let mut reported = 0;
        let callbacks = &mut self.callbacks;
        let hold_callbacks = &mut self.hold_callbacks;
        self.sources.retain(|source| {
            let mut report = |pool: &dyn Observe| {
                pool.check_holds(&mut |long| {
                    let label = long.pool.unwrap_or(&source.fallback);
                    for f in hold_callbacks.iter_mut() {
                        f(label, long);
                    }
                });
                // Stats are summed over every shard: only when someone reads
                // them.
                if !cfg!(feature = "metrics") && callbacks.is_empty() {
                    return;
                }
                let snapshot = pool.snapshot();
                let label = snapshot.name().unwrap_or(&source.fallback);
                #[cfg(feature = "metrics")]
                super::export::record(label, &snapshot);
                for f in callbacks.iter_mut() {
                    f(label, &snapshot);
                }
            };
            match &source.pool {
                Watched::Static(pool) => report(*pool),
                Watched::Shared(weak) => match weak.upgrade() {
                    Some(pool) => report(&*pool),
                    None => return false,
                },
            }
            reported += 1;
            true
        });
        reported
    }

    /// Runs a [`report`](Reporter::report) round every `period` (at least
    /// 1 ms; the first one a period from now) on a task of the current
    /// tokio runtime. The task ends when every pool it watches is gone (so
    /// never while it watches a `static`): abort it to stop it sooner. The
    /// runtime needs its time driver.
    ///
    /// # Errors
    /// Called outside a tokio runtime, it returns the error of
    /// [`Handle::try_current`](tokio::runtime::Handle::try_current).
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::observe::Reporter;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let pool = Arc::new(Pool::new(String::new));
    /// let task = Reporter::new().watch_arc(&pool).spawn(Duration::from_secs(1)).unwrap();
    /// drop(pool);
    /// task.await.unwrap(); // ends once the pool is gone
    /// # }
    /// ```
    pub fn spawn(
        mut self,
        period: Duration,
    ) -> Result<tokio::task::JoinHandle<()>, tokio::runtime::TryCurrentError> {
        crate::worker::spawn_trim_loop(period, move || self.report() > 0)
    }

    fn fallback(&self, pool: &dyn Observe) -> String {
        format!("{}-{}", pool.snapshot().kind(), self.sources.len())
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("pools", &self.sources.len())
            .field(
                "callbacks",
                &(self.callbacks.len() + self.hold_callbacks.len()),
            )
            .finish()
    }
}
