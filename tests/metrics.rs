//! The `metrics` export (feature `metrics`): what a recorder sees after a
//! reporter round.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use capacitor_pool::observe::Reporter;
use capacitor_pool::{Pool, PooledCache, RingPool, Slab, WorkerPool};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Series name and sorted `key=value` labels, to value (counters as
/// integers, gauges as floats).
type Seen = BTreeMap<(String, String), f64>;

fn seen(snapshotter: &Snapshotter) -> Seen {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(v) => v as f64,
                DebugValue::Gauge(v) => v.0,
                DebugValue::Histogram(_) => panic!("no histograms are exported"),
            };
            ((key.name().to_owned(), labels.join(",")), value)
        })
        .collect()
}

fn get(seen: &Seen, name: &str, labels: &str) -> f64 {
    *seen
        .get(&(name.to_owned(), labels.to_owned()))
        .unwrap_or_else(|| panic!("no series {name}{{{labels}}} in {seen:#?}"))
}

/// One reporter round under a recorder of this thread's.
fn report(reporter: &mut Reporter) -> Seen {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || reporter.report());
    seen(&snapshotter)
}

#[test]
fn smoke() {
    let pool = Arc::new(Pool::builder(Vec::<u8>::new).name("buffers").build());
    drop(pool.get());
    drop(pool.get());
    let seen = report(&mut Reporter::new().watch_arc(&pool));
    let l = "kind=pool,pool=buffers";
    assert_eq!(get(&seen, "capacitor_pool_gets_total", l), 2.0);
    assert_eq!(get(&seen, "capacitor_pool_hits_total", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_misses_total", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_idle", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_in_use", l), 0.0);
}

#[test]
fn pool_series_carry_every_counter_and_drop_cause() {
    let pool = Arc::new(
        Pool::builder(Vec::<u8>::new)
            .name("drops")
            .retention_limit(1024)
            .max_idle(1)
            .shards(1)
            .hold_warning(Duration::from_millis(25))
            .build(),
    );
    let held = pool.get();
    pool.get().reserve(4096); // oversized
    pool.get().discard(); // discarded
    let (a, b) = (pool.get(), pool.get());
    drop((a, b)); // one kept, one dropped: full
    let kept: Vec<u8> = pool.get().detach();
    std::thread::sleep(Duration::from_millis(80));
    let seen = report(&mut Reporter::new().watch_arc(&pool));
    let l = "kind=pool,pool=drops";
    let s = pool.stats();
    assert_eq!(
        get(&seen, "capacitor_pool_gets_total", l),
        s.get_count as f64
    );
    assert_eq!(
        get(&seen, "capacitor_pool_created_total", l),
        s.created_count as f64
    );
    assert_eq!(
        get(&seen, "capacitor_pool_returns_total", l),
        s.return_count as f64
    );
    assert_eq!(get(&seen, "capacitor_pool_detached_total", l), 1.0);
    for (cause, n) in [
        ("full", 1.0),
        ("oversized", 1.0),
        ("discarded", 1.0),
        ("aged", 0.0),
    ] {
        let labels = format!("cause={cause},{l}");
        assert_eq!(
            get(&seen, "capacitor_pool_drops_total", &labels),
            n,
            "{cause}"
        );
    }
    assert_eq!(get(&seen, "capacitor_pool_in_use", l), 1.0, "the one held");
    // Found by the round: held past the warning (the quick ones were not).
    assert_eq!(get(&seen, "capacitor_pool_long_holds_total", l), 1.0);
    drop((held, kept));
}

#[tokio::test(flavor = "current_thread")]
async fn ring_series_show_waiters_and_waits() {
    let ring = Arc::new(
        RingPool::builder(1, Vec::<u8>::new)
            .name("jobs")
            .build()
            .unwrap(),
    );
    let held = ring.get().await.unwrap();
    let waiter = tokio::spawn({
        let ring = Arc::clone(&ring);
        async move { drop(ring.get().await.unwrap()) }
    });
    tokio::task::yield_now().await;
    let mut reporter = Reporter::new().watch_arc(&ring);
    let l = "kind=ring,pool=jobs";
    let seen = report(&mut reporter);
    assert_eq!(get(&seen, "capacitor_pool_ring_waiters", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_in_use", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_idle", l), 0.0);
    drop(held);
    waiter.await.unwrap();
    let seen = report(&mut reporter);
    assert_eq!(get(&seen, "capacitor_pool_ring_waiters", l), 0.0);
    assert_eq!(get(&seen, "capacitor_pool_ring_waits_total", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_gets_total", l), 2.0);
    let waited = get(&seen, "capacitor_pool_ring_wait_microseconds_total", l);
    assert_eq!(waited, ring.stats().wait_time.as_micros() as f64);
}

#[test]
fn slab_series_are_per_class() {
    let slab = Arc::new(
        Slab::builder()
            .name("frames")
            .min_chunk(1024)
            .max_chunk(4096)
            .build()
            .unwrap(),
    );
    let small = slab.alloc(100).unwrap();
    let large = slab.alloc(3000).unwrap();
    let huge = slab.alloc_or_heap(1 << 20);
    let seen = report(&mut Reporter::new().watch_arc(&slab));
    let class = |size: usize| format!("class={size},kind=slab,pool=frames");
    assert_eq!(
        get(&seen, "capacitor_pool_slab_chunks_in_use", &class(1024)),
        1.0
    );
    assert_eq!(
        get(&seen, "capacitor_pool_slab_chunks_in_use", &class(2048)),
        0.0
    );
    assert_eq!(
        get(&seen, "capacitor_pool_slab_chunks_in_use", &class(4096)),
        1.0
    );
    assert_eq!(get(&seen, "capacitor_pool_slab_pages", &class(1024)), 1.0);
    assert_eq!(
        get(
            &seen,
            "capacitor_pool_slab_oversized_total",
            "kind=slab,pool=frames"
        ),
        1.0
    );
    drop((small, large, huge));
}

#[test]
fn cache_series_count_hits_misses_and_evictions() {
    let cache = Arc::new(
        PooledCache::<u32, String>::builder()
            .name("sessions")
            .max_entries(1)
            .build()
            .unwrap(),
    );
    cache.insert(1, "a".into());
    assert!(cache.get(&1).is_some());
    assert!(cache.get(&2).is_none());
    cache.insert(2, "b".into()); // evicts 1
    let seen = report(&mut Reporter::new().watch_arc(&cache));
    let l = "kind=cache,pool=sessions";
    assert_eq!(get(&seen, "capacitor_pool_cache_hits_total", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_cache_misses_total", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_cache_evictions_total", l), 1.0);
    assert_eq!(get(&seen, "capacitor_pool_cache_entries", l), 1.0);
}

capacitor_pool::worker_pool! {
    static STATIC: WorkerPool<Vec<u8>> = WorkerPool::builder(Vec::new).name("static");
}

#[test]
fn unnamed_pools_get_their_kind_and_place_and_statics_report_as_worker_pools() {
    let a = Arc::new(Pool::new(Vec::<u8>::new));
    let b = Arc::new(WorkerPool::new(Vec::<u8>::new));
    drop(STATIC.get());
    let seen = report(&mut Reporter::new().watch_arc(&a).watch_arc(&b).watch(&*STATIC));
    assert_eq!(
        get(&seen, "capacitor_pool_gets_total", "kind=pool,pool=pool-0"),
        0.0
    );
    assert_eq!(
        get(
            &seen,
            "capacitor_pool_gets_total",
            "kind=worker_pool,pool=worker_pool-1"
        ),
        0.0
    );
    assert_eq!(
        get(
            &seen,
            "capacitor_pool_gets_total",
            "kind=worker_pool,pool=static"
        ),
        1.0
    );
}

/// The spawned reporter sends to the global recorder: the one test in this
/// file that installs it.
#[test]
fn a_spawned_reporter_exports_to_the_global_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let pool = Arc::new(Pool::builder(Vec::<u8>::new).name("global").build());
    rt.block_on(async {
        let task = Reporter::new()
            .watch_arc(&pool)
            .spawn(Duration::from_secs(10))
            .unwrap();
        drop(pool.get());
        tokio::time::sleep(Duration::from_secs(11)).await;
        let now = seen(&snapshotter);
        assert_eq!(
            get(&now, "capacitor_pool_gets_total", "kind=pool,pool=global"),
            1.0
        );
        drop((0..3).map(|_| pool.get()).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now = seen(&snapshotter);
        assert_eq!(
            get(&now, "capacitor_pool_gets_total", "kind=pool,pool=global"),
            4.0
        );
        assert_eq!(
            get(&now, "capacitor_pool_idle", "kind=pool,pool=global"),
            3.0
        );
        task.abort();
    });
}
