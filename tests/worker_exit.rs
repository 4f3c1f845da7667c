//! What `WorkerPool::trim` does with the objects that exited worker threads
//! left in their magazines and private slots.
//!
//! A test binary of its own: worker numbers are process-wide, and a
//! number given back by an exiting thread goes to the next thread that
//! asks. Here no other test's threads can take the numbers these tests
//! free, and the tests take turns (`SERIAL`).

#[path = "support/tagged.rs"]
mod tagged;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, LazyLock, Mutex, mpsc};

use capacitor_pool::WorkerPool;
use tagged::{Counted, Tagged, assert_accounting};
use tokio::runtime::Builder;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn counted_pool(max_idle: Option<usize>) -> (Arc<WorkerPool<Counted>>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let mut builder = WorkerPool::builder(move || Counted::new(&d)).workers(8);
    if let Some(max_idle) = max_idle {
        builder = builder.max_idle(max_idle);
    }
    (Arc::new(builder.build()), drops)
}

/// On `threads` OS threads at once, each in the `block_on` of a
/// current-thread runtime (a tokio worker, so it gets a worker number):
/// takes `per_thread` objects at once with `get` and drops them all (the
/// first goes to the thread's private slot, the rest to its magazine),
/// checking with `idle` that its worker holds them all. Returns the
/// threads' worker numbers once every thread has exited, thread-local
/// destructors included.
fn fill_and_exit<G>(
    threads: usize,
    per_thread: usize,
    get: impl Fn() -> G + Send + Sync + 'static,
    idle: impl Fn(usize) -> u64 + Send + Sync + 'static,
) -> Vec<usize> {
    // Every thread holds its number until all have one: the numbers differ.
    let barrier = Arc::new(Barrier::new(threads));
    let (get, idle) = (Arc::new(get), Arc::new(idle));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (get, idle, barrier) = (Arc::clone(&get), Arc::clone(&idle), Arc::clone(&barrier));
            std::thread::spawn(move || {
                Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        let held: Vec<_> = (0..per_thread).map(|_| get()).collect();
                        drop(held);
                        let w = WorkerPool::<Vec<u8>>::current_worker().expect("a worker");
                        assert_eq!(idle(w), per_thread as u64);
                        barrier.wait();
                        w
                    })
            })
        })
        .collect();
    let workers: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(workers.iter().collect::<HashSet<_>>().len(), threads);
    workers
}

/// [`fill_and_exit`] for a pool in an `Arc`.
fn fill_pool_and_exit(
    pool: &Arc<WorkerPool<Counted>>,
    threads: usize,
    per_thread: usize,
) -> Vec<usize> {
    let (p, q) = (Arc::clone(pool), Arc::clone(pool));
    fill_and_exit(
        threads,
        per_thread,
        move || p.get_owned(),
        move |w| q.worker_stats(w).unwrap().num_idle,
    )
}

#[test]
fn trim_moves_what_exited_workers_left_to_the_depot_and_ages_it() {
    let _serial = serial();
    let (pool, drops) = counted_pool(None);
    let workers = fill_pool_and_exit(&pool, 2, 6);

    // The threads are gone; their objects wait in their magazines and as
    // orphans of their private slots, all counted idle.
    let s = pool.stats();
    assert_eq!((s.created_count, s.return_count, s.num_idle), (12, 12, 12));
    assert_accounting(&s);
    assert_eq!(pool.depot().stats().num_idle, 0);

    // The first trim moves them all to the depot, as a spill per magazine,
    // and starts their aging period; the counts of gets and returns stay.
    assert_eq!(pool.trim(), 0);
    for &w in &workers {
        let ws = pool.worker_stats(w).unwrap();
        assert_eq!(ws.num_idle, 0, "worker {w}: {ws:?}");
        assert_eq!((ws.spill_count, ws.spilled_count), (1, 6), "{ws:?}");
        assert_eq!(
            (ws.local_hit_count, ws.local_return_count),
            (0, 6),
            "{ws:?}"
        );
    }
    assert_eq!(pool.depot().stats().num_idle, 12);
    let s = pool.stats();
    assert_eq!((s.return_count, s.num_idle, s.drop_count()), (12, 12, 0));
    assert_accounting(&s);
    assert_eq!(drops.load(Ordering::SeqCst), 0);

    // Idle through a whole period: the second trim drops them.
    assert_eq!(pool.trim(), 12);
    assert_eq!(drops.load(Ordering::SeqCst), 12);
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_aged_count), (0, 12));
    assert_accounting(&s);
    // Nothing left to move or drop.
    assert_eq!(pool.trim(), 0);
    drop(pool);
    assert_eq!(drops.load(Ordering::SeqCst), 12);
}

#[test]
fn what_the_depot_has_no_room_for_is_dropped_at_once() {
    let _serial = serial();
    let (pool, drops) = counted_pool(Some(4));
    let room = pool.depot().stats().num_idle; // 0: the depot starts empty
    assert_eq!(room, 0);
    fill_pool_and_exit(&pool, 2, 6);

    let dropped = pool.trim();
    let kept = pool.depot().stats().num_idle;
    assert_eq!(dropped + kept as usize, 12);
    assert!(kept <= 4, "the depot keeps at most max_idle: {kept}");
    assert_eq!(drops.load(Ordering::SeqCst), dropped);
    let s = pool.stats();
    assert_eq!((s.drop_full_count, s.num_idle), (dropped as u64, kept));
    assert_accounting(&s);

    assert_eq!(pool.trim(), kept as usize);
    assert_eq!(drops.load(Ordering::SeqCst), 12);
    assert_eq!(pool.stats().num_idle, 0);
}

#[test]
fn trim_drops_everything_exited_workers_left_when_drops_panic() {
    let _serial = serial();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    // Every object panics in its drop, and the depot keeps none: the trim
    // drops all twelve at once.
    let pool = Arc::new(
        WorkerPool::builder(move || Counted::armed(&d))
            .workers(8)
            .max_idle(0)
            .build(),
    );
    fill_pool_and_exit(&pool, 2, 6);
    assert!(catch_unwind(AssertUnwindSafe(|| pool.trim())).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 12, "none leaked");
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_full_count), (0, 12), "{s}");
    assert_accounting(&s);
    assert_eq!(pool.trim(), 0);
    drop(pool);
    assert_eq!(drops.load(Ordering::SeqCst), 12);
}

#[test]
fn live_workers_keep_their_objects_through_trims() {
    let _serial = serial();
    let (pool, drops) = counted_pool(None);
    let (numbered_tx, numbered_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let p = Arc::clone(&pool);
    let live = std::thread::spawn(move || {
        Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async move {
                let held: Vec<_> = (0..3).map(|_| p.get()).collect();
                let ids: HashSet<u64> = held.iter().map(|o| o.tag.id).collect();
                drop(held);
                numbered_tx
                    .send(WorkerPool::<Vec<u8>>::current_worker().unwrap())
                    .unwrap();
                // The main thread trims while this thread lives.
                go_rx.recv().unwrap();
                let again: Vec<_> = (0..3).map(|_| p.get()).collect();
                let found: HashSet<u64> = again.iter().map(|o| o.tag.id).collect();
                assert_eq!(found, ids, "the same objects, from slot and magazine");
            })
    });
    let w = numbered_rx.recv().unwrap();
    assert_eq!(pool.trim(), 0);
    assert_eq!(pool.trim(), 0);
    assert_eq!(pool.trim(), 0);
    let ws = pool.worker_stats(w).unwrap();
    assert_eq!((ws.num_idle, ws.spill_count), (3, 0), "{ws:?}");
    assert_eq!(pool.depot().stats().num_idle, 0);
    go_tx.send(()).unwrap();
    live.join().unwrap();
    let s = pool.stats();
    assert_eq!((s.created_count, s.hit_count, s.miss_count), (3, 3, 3));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert_accounting(&s);
}

#[test]
fn a_number_taken_again_before_the_trim_keeps_its_objects() {
    let _serial = serial();
    let (pool, drops) = counted_pool(None);
    let first = fill_pool_and_exit(&pool, 1, 4)[0];
    // The next worker thread gets the smallest free number: the same one,
    // with the magazine and the orphan of the thread before.
    let p = Arc::clone(&pool);
    let (w, hits) = std::thread::spawn(move || {
        Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async move {
                let w = WorkerPool::<Vec<u8>>::current_worker().unwrap();
                assert_eq!(p.trim(), 0, "number {w} is held: nothing to move");
                let held: Vec<_> = (0..4).map(|_| p.get()).collect();
                let hits = p.worker_stats(w).unwrap().local_hit_count;
                drop(held);
                (w, hits)
            })
    })
    .join()
    .unwrap();
    assert_eq!(w, first);
    assert_eq!(hits, 4, "all four from the slot and magazine left behind");
    assert_eq!(pool.stats().created_count, 4);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
}

#[test]
fn trim_takes_back_what_exited_workers_left_in_a_statics_slots() {
    let _serial = serial();
    static DROPS: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));
    capacitor_pool::worker_pool! {
        static STATIC: WorkerPool<Counted> = WorkerPool::builder(|| Counted::new(&DROPS)).workers(8);
    }
    // Two worker threads at once, each leaving one object in its private
    // slot and three in its magazine.
    let workers = fill_and_exit(
        2,
        4,
        || STATIC.get(),
        |w| STATIC.worker_stats(w).unwrap().num_idle,
    );
    let s = STATIC.stats();
    assert_eq!((s.created_count, s.num_idle, s.return_count), (8, 8, 8));
    assert_eq!(STATIC.trim(), 0);
    for &w in &workers {
        let ws = STATIC.worker_stats(w).unwrap();
        assert_eq!(
            (ws.num_idle, ws.spilled_count, ws.local_return_count),
            (0, 4, 4),
            "{ws:?}"
        );
    }
    assert_eq!(STATIC.depot().stats().num_idle, 8);
    assert_accounting(&STATIC.stats());
    assert_eq!(STATIC.trim(), 8);
    assert_eq!(DROPS.load(Ordering::SeqCst), 8);
    let s = STATIC.stats();
    assert_eq!((s.num_idle, s.return_count), (0, 8));
    assert_accounting(&s);
}

#[test]
fn a_statics_orphan_waits_for_the_next_holders_first_use_through_trims() {
    let _serial = serial();
    capacitor_pool::worker_pool! {
        static TAGS: WorkerPool<Tagged> = WorkerPool::builder(Tagged::new).workers(8);
    }
    // A worker leaves one object parked and two in its magazine.
    let w = std::thread::spawn(|| {
        Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let held: Vec<_> = (0..3).map(|_| TAGS.get()).collect();
                drop(held);
                WorkerPool::<Vec<u8>>::current_worker().unwrap()
            })
    })
    .join()
    .unwrap();
    // The next worker thread takes the same number (the smallest free) but
    // does not touch the static until told to.
    let (numbered_tx, numbered_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let next = std::thread::spawn(move || {
        Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async move {
                numbered_tx
                    .send(WorkerPool::<Vec<u8>>::current_worker().unwrap())
                    .unwrap();
                go_rx.recv().unwrap();
                let again: Vec<_> = (0..3).map(|_| TAGS.get()).collect();
                let ws = TAGS.worker_stats(w).unwrap();
                assert_eq!(
                    (ws.local_hit_count, ws.miss_count, ws.num_idle),
                    (3, 3, 0),
                    "{ws:?}"
                );
                drop(again);
            })
    });
    assert_eq!(numbered_rx.recv().unwrap(), w);
    // Held, so a trim leaves the orphan and the magazine alone; both count
    // as idle.
    for _ in 0..3 {
        assert_eq!(TAGS.trim(), 0);
        let ws = TAGS.worker_stats(w).unwrap();
        assert_eq!(
            (ws.num_idle, ws.local_return_count, ws.spill_count),
            (3, 3, 0),
            "{ws:?}"
        );
        let s = TAGS.stats();
        assert_eq!((s.num_idle, s.num_in_use), (3, 0));
        assert_accounting(&s);
    }
    go_tx.send(()).unwrap();
    next.join().unwrap();
    let s = TAGS.stats();
    assert_eq!((s.created_count, s.hit_count, s.num_idle), (3, 3, 3));
    assert_accounting(&s);
}
