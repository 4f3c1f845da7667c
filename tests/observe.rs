//! Names, long-hold detection and the reporter: what an operator sees.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use capacitor_pool::observe::{Observe, Reporter, Snapshot};
use capacitor_pool::{Pool, PooledCache, RingPool, Slab, WorkerPool};

/// Longer than any hold warning the tests set, short enough to wait out.
const PAST: Duration = Duration::from_millis(80);
const WARNING: Duration = Duration::from_millis(25);

fn this_file() -> &'static str {
    file!()
}

/// The line an expression is on, and its value.
macro_rules! at {
    ($e:expr) => {
        (line!(), $e)
    };
}

#[test]
fn smoke() {
    let pool = Pool::builder(Vec::<u8>::new)
        .name("smoke")
        .hold_warning(WARNING)
        .build();
    let line = line!() + 1;
    let held = pool.get();
    std::thread::sleep(PAST);
    let long = pool.long_holds();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].pool, Some("smoke"));
    assert_eq!(
        (long[0].location.file(), long[0].location.line()),
        (this_file(), line)
    );
    assert!(long[0].held_for >= PAST);
    assert_eq!(long[0].waits, None, "waits are a ring's");
    drop(held);
    assert_eq!(pool.stats().long_hold_count, 1);
    assert!(pool.long_holds().is_empty(), "returned: no longer held");
}

#[test]
fn every_pool_shows_its_name_in_debug_stats_and_snapshot() {
    let pool = Pool::builder(String::new).name("p-name").build();
    let worker = WorkerPool::builder(String::new).name("w-name").build();
    let ring = RingPool::builder(1, String::new)
        .name("r-name")
        .build()
        .unwrap();
    let slab = Slab::builder().name("s-name").build().unwrap();
    let cache = PooledCache::<u32, String>::builder()
        .name("c-name")
        .build()
        .unwrap();

    for (debug, name) in [
        (format!("{pool:?}"), "p-name"),
        (format!("{worker:?}"), "w-name"),
        (format!("{ring:?}"), "r-name"),
        (format!("{slab:?}"), "s-name"),
        (format!("{cache:?}"), "c-name"),
    ] {
        assert!(debug.contains(name), "{debug}");
    }
    assert_eq!(pool.stats().name, Some("p-name"));
    assert_eq!(worker.stats().name, Some("w-name"));
    assert_eq!(ring.stats().name, Some("r-name"));
    assert_eq!(slab.stats().name, Some("s-name"));
    assert_eq!(cache.stats().name, Some("c-name"));
    assert!(pool.stats().to_string().starts_with("p-name: gets 0"));
    assert!(ring.stats().to_string().starts_with("r-name: capacity 1"));

    let snapshots: Vec<Snapshot> = vec![
        pool.snapshot(),
        worker.snapshot(),
        ring.snapshot(),
        slab.snapshot(),
        cache.snapshot(),
    ];
    let kinds: Vec<_> = snapshots
        .iter()
        .map(|s| (s.kind(), s.name().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("pool", "p-name"),
            ("worker_pool", "w-name"),
            ("ring", "r-name"),
            ("slab", "s-name"),
            ("cache", "c-name"),
        ]
    );
}

#[test]
fn a_pool_without_a_hold_warning_records_nothing() {
    let pool = Pool::new(Vec::<u8>::new);
    let held = pool.get();
    std::thread::sleep(PAST);
    assert_eq!(pool.hold_warning(), None);
    assert!(pool.long_holds().is_empty());
    drop(held);
    assert!(pool.hold_sites().is_empty());
    assert_eq!(pool.stats().long_hold_count, 0);
    assert!(!pool.stats().to_string().contains("long holds"));
}

#[test]
fn quick_holds_are_not_long() {
    let pool = Pool::builder(Vec::<u8>::new)
        .hold_warning(Duration::from_secs(60))
        .build();
    for _ in 0..100 {
        let a = pool.get();
        let b = pool.get();
        drop((a, b));
    }
    assert!(pool.long_holds().is_empty());
    assert!(pool.hold_sites().is_empty());
    assert_eq!(pool.stats().long_hold_count, 0);
}

#[test]
fn each_getter_of_a_pool_records_its_callers_line() {
    let pool = Arc::new(
        Pool::builder(Vec::<u8>::new)
            .prefill(4)
            .hold_warning(WARNING)
            .build(),
    );
    let (la, a) = at!(pool.get());
    let (lb, b) = at!(pool.get_owned());
    let (lc, c) = at!(pool.try_get().unwrap());
    let (ld, d) = at!(pool.try_get_owned().unwrap());
    std::thread::sleep(PAST);
    let mut found: Vec<u32> = pool
        .long_holds()
        .iter()
        .map(|h| h.location.line())
        .collect();
    found.sort();
    assert_eq!(found, [la, lb, lc, ld]);
    drop((a, b, c, d));
    let sites = pool.hold_sites();
    assert_eq!(sites.len(), 4);
    assert!(
        sites
            .iter()
            .all(|s| s.count == 1 && s.location.file() == this_file())
    );
    assert_eq!(pool.stats().long_hold_count, 4);
}

#[test]
fn a_hold_is_counted_once_by_listings_and_its_return() {
    let pool = Pool::builder(Vec::<u8>::new).hold_warning(WARNING).build();
    let held = pool.get();
    std::thread::sleep(PAST);
    assert_eq!(pool.long_holds().len(), 1);
    assert_eq!(pool.long_holds().len(), 1);
    drop(held);
    assert_eq!(pool.stats().long_hold_count, 1);
    assert_eq!(pool.hold_sites()[0].count, 1);
    // The next hold from the same line counts again.
    for _ in 0..2 {
        let held = pool.get();
        std::thread::sleep(PAST);
        drop(held);
    }
    assert_eq!(pool.stats().long_hold_count, 3);
    let sites = pool.hold_sites();
    assert_eq!(sites.len(), 2, "two lines took guards: {sites:?}");
    assert_eq!(sites[0].count, 2, "most first");
}

#[test]
fn detached_and_discarded_guards_leave_the_table() {
    let pool = Pool::builder(Vec::<u8>::new).hold_warning(WARNING).build();
    let a = pool.get();
    let b = pool.get();
    let kept: Vec<u8> = a.detach();
    b.discard();
    std::thread::sleep(PAST);
    assert!(
        pool.long_holds().is_empty(),
        "neither is held by the pool's guards"
    );
    assert_eq!(pool.stats().long_hold_count, 0);
    drop(kept);
}

#[test]
fn a_guard_dropped_on_another_thread_leaves_the_table() {
    let pool = Arc::new(Pool::builder(Vec::<u8>::new).hold_warning(WARNING).build());
    let held = pool.get_owned();
    std::thread::spawn(move || drop(held)).join().unwrap();
    std::thread::sleep(PAST);
    assert!(pool.long_holds().is_empty());
}

#[test]
fn a_long_hold_found_on_return_is_counted_at_its_site() {
    let pool = Pool::builder(Vec::<u8>::new).hold_warning(WARNING).build();
    let line = line!() + 1;
    let held = pool.get();
    std::thread::sleep(PAST);
    drop(held); // no listing saw it: its return counts it
    let sites = pool.hold_sites();
    assert_eq!(sites.len(), 1);
    assert_eq!((sites[0].location.line(), sites[0].count), (line, 1));
    assert!(sites[0].longest >= PAST);
    assert_eq!(pool.stats().long_hold_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pool_on_workers_records_the_spawned_tasks_line() {
    let pool = Arc::new(
        WorkerPool::builder(Vec::<u8>::new)
            .name("handlers")
            .hold_warning(WARNING)
            .build(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move {
            let line = line!() + 1;
            let held = pool.get();
            rx.await.unwrap();
            drop(held);
            line
        }
    });
    tokio::time::sleep(PAST).await;
    let long = pool.long_holds();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].pool, Some("handlers"));
    tx.send(()).unwrap();
    let line = task.await.unwrap();
    assert_eq!(long[0].location.line(), line);
    assert_eq!(pool.stats().long_hold_count, 1);
    assert_eq!(pool.stats().num_in_use, 0);
}

capacitor_pool::worker_pool! {
    static HELD: WorkerPool<Vec<u8>> =
        WorkerPool::builder(Vec::new).name("static-held").hold_warning(WARNING);
}

#[test]
fn a_worker_pool_static_records_its_callers_line() {
    let line = line!() + 1;
    let a = HELD.get();
    assert!(HELD.try_get().is_none(), "nothing idle yet");
    std::thread::sleep(PAST);
    let long = HELD.long_holds();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].location.line(), line);
    drop(a);
    let line = line!() + 1;
    let b = HELD.try_get().unwrap();
    std::thread::sleep(PAST);
    assert_eq!(HELD.long_holds()[0].location.line(), line);
    drop(b);
    assert_eq!(HELD.stats().long_hold_count, 2);
    assert_eq!(HELD.stats().name, Some("static-held"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_ring_reports_the_waits_a_long_hold_made() {
    let ring = Arc::new(
        RingPool::builder(1, Vec::<u8>::new)
            .name("jobs")
            .hold_warning(WARNING)
            .build()
            .unwrap(),
    );
    let line = line!() + 1;
    let held = ring.get().await.unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let ring = Arc::clone(&ring);
            tokio::spawn(async move {
                let guard = ring.get().await.unwrap();
                drop(guard);
            })
        })
        .collect();
    tokio::task::yield_now().await;
    // Paused time: the clock the holds read is std's, so sleep for real.
    std::thread::sleep(PAST);
    let long = ring.long_holds();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].location.line(), line);
    let waits = long[0].waits.unwrap();
    assert_eq!(waits.num_waiters, 3, "three tasks wait for the one slot");
    assert_eq!(waits.count, 3, "three gets had to wait since it was taken");
    assert!(long[0].to_string().contains("3 waiting now"), "{}", long[0]);
    drop(held);
    for w in waiters {
        w.await.unwrap();
    }
    let s = ring.stats();
    assert_eq!((s.long_hold_count, s.num_in_use), (1, 0));
    assert_eq!(s.name, Some("jobs"));
}

#[tokio::test(flavor = "current_thread")]
async fn each_getter_of_a_ring_records_its_callers_line() {
    let ring = Arc::new(
        RingPool::builder(5, Vec::<u8>::new)
            .hold_warning(WARNING)
            .build()
            .unwrap(),
    );
    let (la, a) = at!(ring.try_get().unwrap());
    let (lb, b) = at!(ring.try_get_owned().unwrap());
    let (lc, c) = at!(ring.get().await.unwrap());
    let (ld, d) = at!(ring.get_owned().await.unwrap());
    let (le, e) = at!(ring.get_timeout(Duration::from_secs(1)).await.unwrap());
    std::thread::sleep(PAST);
    let mut found: Vec<u32> = ring
        .long_holds()
        .iter()
        .map(|h| h.location.line())
        .collect();
    found.sort();
    assert_eq!(found, [la, lb, lc, ld, le]);
    drop((a, b, c, d, e));
    assert_eq!(ring.stats().long_hold_count, 5);
    assert_eq!(ring.hold_sites().len(), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn a_ring_get_that_waited_records_its_callers_line() {
    let ring = Arc::new(
        RingPool::builder(1, Vec::<u8>::new)
            .hold_warning(WARNING)
            .build()
            .unwrap(),
    );
    let first = ring.try_get().unwrap();
    let waiter = tokio::spawn({
        let ring = Arc::clone(&ring);
        async move {
            let line = line!() + 1;
            let guard = ring.get_timeout(Duration::from_secs(5)).await.unwrap();
            std::thread::sleep(PAST);
            let long = ring.long_holds();
            drop(guard);
            (line, long)
        }
    });
    tokio::task::yield_now().await;
    drop(first);
    let (line, long) = waiter.await.unwrap();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].location.line(), line);
}

#[test]
fn reporter_rounds_count_new_long_holds_and_call_back() {
    let pool = Arc::new(
        WorkerPool::builder(Vec::<u8>::new)
            .name("reported")
            .hold_warning(WARNING)
            .build(),
    );
    let unnamed = Arc::new(RingPool::new(2, Vec::<u8>::new).unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reporter = Reporter::new()
        .watch_arc(&pool)
        .watch_arc(&unnamed)
        .on_report({
            let seen = Arc::clone(&seen);
            move |label, snapshot| {
                let long = match snapshot {
                    Snapshot::WorkerPool(s) => s.long_hold_count,
                    Snapshot::Ring(s) => s.long_hold_count,
                    other => panic!("unexpected {other:?}"),
                };
                seen.lock().unwrap().push((label.to_owned(), long));
            }
        });
    let held = pool.get();
    assert_eq!(reporter.report(), 2);
    std::thread::sleep(PAST);
    assert_eq!(reporter.report(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("reported".to_owned(), 0),
            ("ring-1".to_owned(), 0),
            ("reported".to_owned(), 1), // found by the round, while held
            ("ring-1".to_owned(), 0),
        ]
    );
    drop(held);
    assert_eq!(pool.stats().long_hold_count, 1, "not counted twice");
    drop(unnamed);
    assert_eq!(reporter.report(), 1, "a dropped pool is no longer watched");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_spawned_reporter_runs_rounds_until_its_pools_are_gone() {
    let pool = Arc::new(Pool::builder(String::new).name("spawned").build());
    let rounds = Arc::new(Mutex::new(0));
    let task = Reporter::new()
        .watch_arc(&pool)
        .on_report({
            let rounds = Arc::clone(&rounds);
            move |_, _| *rounds.lock().unwrap() += 1
        })
        .spawn(Duration::from_secs(10))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(*rounds.lock().unwrap(), 3);
    drop(pool);
    task.await.unwrap();
    assert_eq!(*rounds.lock().unwrap(), 3);
}

#[test]
fn a_reporter_outside_a_runtime_says_so() {
    assert!(Reporter::new().spawn(Duration::from_secs(1)).is_err());
}

#[cfg(feature = "codec")]
#[test]
fn a_framed_connections_buffers_are_held_from_where_it_was_made() {
    use bytes::BytesMut;
    use capacitor_pool::codec::PooledFramed;
    use tokio_util::codec::LinesCodec;

    let pool = Arc::new(
        Pool::builder(|| BytesMut::with_capacity(64))
            .name("framed")
            .hold_warning(WARNING)
            .build(),
    );
    let (line, framed) = at!(PooledFramed::framed_write(
        Vec::new(),
        LinesCodec::new(),
        &pool
    ));
    std::thread::sleep(PAST);
    let long = pool.long_holds();
    assert_eq!(long.len(), 1);
    assert_eq!(
        (long[0].location.file(), long[0].location.line()),
        (this_file(), line)
    );
    drop(framed);
    assert!(pool.long_holds().is_empty());
}

#[test]
fn on_long_hold_hands_each_long_hold_over_once_held_or_ended() {
    let pool = Arc::new(
        Pool::builder(Vec::<u8>::new)
            .name("paged")
            .hold_warning(WARNING)
            .build(),
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reporter = Reporter::new().watch_arc(&pool).on_long_hold({
        let seen = Arc::clone(&seen);
        move |label, hold| seen.lock().unwrap().push((label.to_owned(), *hold))
    });
    // Ends before any round looks.
    let (ended_line, ended) = at!(pool.get());
    std::thread::sleep(PAST);
    drop(ended);
    // Still out when the round looks.
    let (held_line, held) = at!(pool.get());
    std::thread::sleep(PAST);
    reporter.report();
    reporter.report();
    drop(held);
    reporter.report();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "paged");
    assert_eq!(
        (seen[0].1.location.line(), seen[0].1.still_held),
        (ended_line, false)
    );
    assert_eq!(
        (seen[1].1.location.line(), seen[1].1.still_held),
        (held_line, true)
    );
    assert!(
        seen[0].1.to_string().starts_with("paged: was held "),
        "{}",
        seen[0].1
    );
    assert!(
        seen[1].1.to_string().starts_with("paged: held "),
        "{}",
        seen[1].1
    );
}

#[test]
fn long_holds_between_rounds_are_kept_up_to_the_last_64() {
    let pool = Arc::new(
        Pool::builder(Vec::<u8>::new)
            .hold_warning(Duration::ZERO)
            .build(),
    );
    let mut count = 0;
    for _ in 0..100 {
        let held = pool.get();
        std::thread::sleep(Duration::from_micros(10));
        drop(held);
    }
    pool.check_holds(&mut |_| count += 1);
    assert_eq!(count, 64);
    assert_eq!(pool.stats().long_hold_count, 100, "all counted");
}

#[test]
fn a_worker_pool_with_a_hold_warning_ends_holds_on_every_way_back() {
    let pool = WorkerPool::builder(Vec::<u8>::new)
        .retention_limit(1024)
        .hold_warning(WARNING)
        .build();
    assert_eq!(
        pool.num_workers(),
        0,
        "no magazines: every object passes the depot"
    );
    pool.get().reserve(4096); // dropped for its size by the reset
    let panicky = WorkerPool::builder(Vec::<u8>::new)
        .reset(|_: &mut Vec<u8>| panic!("reset fails"))
        .hold_warning(WARNING)
        .build();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(panicky.get())));
    assert!(caught.is_err());
    drop(pool.get()); // kept
    let kept: Vec<u8> = pool.get().detach();
    pool.get().discard();
    std::thread::sleep(PAST);
    assert!(pool.long_holds().is_empty(), "{:?}", pool.long_holds());
    assert!(
        panicky.long_holds().is_empty(),
        "{:?}",
        panicky.long_holds()
    );
    let s = pool.stats();
    assert_eq!((s.num_in_use, s.long_hold_count), (0, 0));
    drop(kept);
}

capacitor_pool::worker_pool! {
    static ON_WORKERS: WorkerPool<Vec<u8>> =
        WorkerPool::builder(Vec::new).hold_warning(WARNING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_pool_static_on_workers_records_its_callers_line() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // A quick get and return first: the static's first use on this
        // worker thread.
        drop(ON_WORKERS.get());
        let (line, held) = at!(ON_WORKERS.get());
        rx.await.unwrap();
        drop(held);
        line
    });
    tokio::time::sleep(PAST).await;
    let long = ON_WORKERS.long_holds();
    tx.send(()).unwrap();
    let line = task.await.unwrap();
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(long[0].location.line(), line);
    assert_eq!(ON_WORKERS.stats().num_in_use, 0);
    assert!(ON_WORKERS.long_holds().is_empty());
}
