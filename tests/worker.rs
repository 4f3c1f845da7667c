//! Behaviour of `WorkerPool<T>` on tokio runtimes.

#[path = "support/runtime.rs"]
mod runtime;
#[path = "support/tagged.rs"]
mod tagged;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use capacitor_pool::{OwnedWorkerPooled, WorkerPool, WorkerPooled};
use runtime::{hand_over, on_exiting_worker, on_worker, rt};
use tagged::{Counted, Tagged, assert_accounting};
use tokio::runtime::Builder;

/// Every idle object is distinct (taken all at once, none twice).
fn assert_idle_distinct(pool: &WorkerPool<Tagged>) {
    let n = pool.stats().num_idle;
    let held: Vec<_> = (0..n).filter_map(|_| pool.try_get()).collect();
    let ids: HashSet<u64> = held.iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), held.len());
}

#[test]
fn smoke() {
    let rt = rt(2);
    // Tests run in parallel, each with runtimes of its own, so worker
    // numbers go past this runtime's size: give every test room.
    let pool = Arc::new(
        WorkerPool::builder(|| BytesMut::with_capacity(64))
            .workers(64)
            .build(),
    );
    let p = Arc::clone(&pool);
    on_worker(&rt, async move {
        let w = WorkerPool::<BytesMut>::current_worker().expect("on a worker");
        let mut buf = p.get();
        buf.put_slice(b"test");
        drop(buf);
        let buf = p.get();
        assert!(buf.is_empty());
        drop(buf);
        let ws = p.worker_stats(w).unwrap();
        assert_eq!((ws.local_hit_count, ws.local_return_count), (1, 2));
        assert_eq!(ws.num_idle, 1);
    });
    let s = pool.stats();
    assert_eq!((s.get_count, s.hit_count, s.miss_count), (2, 1, 1));
    assert_accounting(&s);
}

#[test]
fn threads_that_are_not_workers_use_the_depot() {
    let pool = WorkerPool::new(Vec::<u8>::new);
    assert_eq!(WorkerPool::<Vec<u8>>::current_worker(), None);
    drop(pool.get());
    drop(pool.get());
    assert_eq!(pool.depot().stats().return_count, 2);
    assert_eq!(pool.depot().stats().hit_count, 1);
    for w in 0..pool.num_workers() {
        assert_eq!(pool.worker_stats(w).unwrap(), Default::default());
    }
}

fn migrate_while_holding(workers: usize) {
    let pool = Arc::new(
        WorkerPool::builder(Tagged::new)
            .magazine_size(4)
            .max_idle(64)
            .build(),
    );
    let p = Arc::clone(&pool);
    let gets = runtime::migrate_while_holding(workers, move || p.get_owned());
    let s = pool.stats();
    assert_eq!(s.get_count, gets);
    assert_eq!(s.num_in_use, 0, "{s}");
    assert_accounting(&s);
    assert!(s.hit_rate() > 0.9, "{s}");
    assert_idle_distinct(&pool);
}

#[test]
fn tasks_migrate_across_await_holding_guards_on_2_workers() {
    migrate_while_holding(2);
}

#[test]
fn tasks_migrate_across_await_holding_guards_on_4_workers() {
    migrate_while_holding(4);
}

#[test]
fn guard_dropped_on_another_worker_lands_in_that_workers_magazine() {
    let rt = rt(2);
    let pool = Arc::new(WorkerPool::builder(Vec::<u8>::new).workers(64).build());
    let p = Arc::clone(&pool);
    let (a, b, ()) = hand_over(&rt, move || p.get_owned(), drop);
    let sa = pool.worker_stats(a).unwrap();
    let sb = pool.worker_stats(b).unwrap();
    assert_eq!((sa.local_return_count, sa.num_idle), (0, 0));
    assert_eq!((sb.local_return_count, sb.num_idle), (1, 1));
}

#[test]
fn block_in_place_and_spawn_blocking_with_guards() {
    let rt = rt(2);
    let pool = Arc::new(WorkerPool::builder(Tagged::new).magazine_size(2).build());
    rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    for i in 0..50 {
                        let obj = pool.get_owned();
                        obj.hold();
                        if i % 5 == 0 {
                            // The worker thread blocks; another takes its index.
                            tokio::task::block_in_place(|| {
                                let inner = pool.get();
                                inner.hold();
                                std::thread::sleep(Duration::from_micros(50));
                                inner.release();
                            });
                        }
                        if i % 7 == 0 {
                            // Dropped on a blocking-pool thread: the depot.
                            let pool2 = Arc::clone(&pool);
                            tokio::task::spawn_blocking(move || {
                                obj.release();
                                drop(obj);
                                let o = pool2.get();
                                o.hold();
                                o.release();
                            })
                            .await
                            .unwrap();
                        } else {
                            obj.release();
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let s = pool.stats();
    assert_eq!(s.num_in_use, 0, "{s}");
    assert_accounting(&s);
    assert!(
        pool.depot().stats().return_count > 0,
        "blocking threads used the depot"
    );
    assert_idle_distinct(&pool);
}

#[test]
fn guards_dropped_after_the_runtime_shut_down_go_to_the_depot() {
    let pool = Arc::new(WorkerPool::new(Vec::<u8>::new));
    let rt = rt(2);
    let guards: Vec<OwnedWorkerPooled<Vec<u8>>> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..8 {
            let p = Arc::clone(&pool);
            v.push(tokio::spawn(async move { p.get_owned() }).await.unwrap());
        }
        v
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    assert_eq!(pool.stats().num_in_use, 8);
    drop(guards);
    let s = pool.stats();
    assert_eq!(s.num_in_use, 0);
    assert_eq!(pool.depot().stats().return_count, 8);
    assert_accounting(&s);
    // And the pool still works from this plain thread.
    drop(pool.get());
}

#[test]
fn two_runtimes_share_one_pool() {
    let pool = Arc::new(
        WorkerPool::builder(Tagged::new)
            .workers(8)
            .magazine_size(8)
            .build(),
    );
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let rt = rt(2);
                rt.block_on(async {
                    let tasks: Vec<_> = (0..16)
                        .map(|_| {
                            let pool = Arc::clone(&pool);
                            tokio::spawn(async move {
                                for _ in 0..500 {
                                    let o = pool.get_owned();
                                    o.hold();
                                    tokio::task::yield_now().await;
                                    o.release();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = pool.stats();
    assert_eq!(s.get_count, 2 * 16 * 500);
    assert_eq!(s.num_in_use, 0);
    assert_accounting(&s);
    assert_idle_distinct(&pool);
}

#[test]
fn current_thread_runtime_and_local_set_use_a_magazine() {
    let rt = Builder::new_current_thread().enable_all().build().unwrap();
    // Other tests' runtimes hold worker numbers too: leave room for them.
    let pool = Arc::new(WorkerPool::builder(Vec::<u8>::new).workers(64).build());
    let w = rt.block_on(async {
        for _ in 0..100 {
            drop(pool.get());
        }
        let local = tokio::task::LocalSet::new();
        let p = Arc::clone(&pool);
        local
            .run_until(async move {
                tokio::task::spawn_local(async move {
                    for _ in 0..100 {
                        drop(p.get());
                    }
                })
                .await
                .unwrap();
            })
            .await;
        WorkerPool::<Vec<u8>>::current_worker().expect("a current-thread runtime is a worker")
    });
    let ws = pool.worker_stats(w).unwrap();
    assert_eq!(ws.local_hit_count, 199);
    let s = pool.stats();
    assert_eq!((s.get_count, s.miss_count), (200, 1));
}

#[test]
fn magazines_spill_to_and_refill_from_the_depot_in_batches() {
    let rt = rt(1);
    let pool = Arc::new(
        WorkerPool::builder(Tagged::new)
            .workers(64)
            .magazine_size(8)
            .build(),
    );
    let p = Arc::clone(&pool);
    on_worker(&rt, async move {
        let w = WorkerPool::<Tagged>::current_worker().unwrap();
        let held: Vec<_> = (0..20).map(|_| p.get()).collect();
        drop(held); // 8 fit, then spills of 4
        let ws = p.worker_stats(w).unwrap();
        assert!(ws.spill_count >= 3, "{ws:?}");
        assert!(ws.num_idle <= 8);
        assert_eq!(ws.num_idle + p.depot().stats().num_idle, 20);
        let held: Vec<_> = (0..20).map(|_| p.get()).collect();
        let ws = p.worker_stats(w).unwrap();
        assert!(ws.refill_count >= 3, "{ws:?}");
        assert_eq!(p.stats().miss_count, 20, "all 20 came back: no new misses");
        drop(held);
    });
    assert_accounting(&pool.stats());
    assert_idle_distinct(&pool);
}

#[test]
fn a_burst_of_ten_thousand_is_trimmed_back_within_bounds() {
    let rt = rt(2);
    let pool = Arc::new(
        WorkerPool::builder(|| Vec::<u8>::with_capacity(16))
            .max_idle(256)
            .magazine_size(16)
            .build(),
    );
    let p = Arc::clone(&pool);
    on_worker(&rt, async move {
        let burst: Vec<_> = (0..10_000).map(|_| p.get()).collect();
        drop(burst);
    });
    let bound = 256 + pool.num_workers() as u64 * 16;
    let s = pool.stats();
    assert!(s.num_idle <= bound, "{s}");
    assert_eq!(s.drop_full_count, 10_000 - s.num_idle);
    pool.trim();
    pool.trim();
    let s = pool.stats();
    assert_eq!(pool.depot().stats().num_idle, 0, "depot aged out");
    assert!(s.num_idle <= pool.num_workers() as u64 * 16, "{s}");
    assert_accounting(&s);
}

#[test]
fn trimmer_task_ages_the_depot_and_stops_with_the_pool() {
    let rt = Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = Arc::new(WorkerPool::builder(Vec::<u8>::new).prefill(10).build());
        let trimmer = pool.spawn_trimmer(Duration::from_secs(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(pool.stats().num_idle, 10, "one trim: nothing aged yet");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(pool.stats().num_idle, 0);
        assert_eq!(pool.stats().drop_aged_count, 10);
        drop(pool);
        tokio::time::timeout(Duration::from_secs(5), trimmer)
            .await
            .expect("trimmer stops")
            .unwrap();
    });
    let pool = Arc::new(WorkerPool::new(Vec::<u8>::new));
    assert!(
        pool.spawn_trimmer(Duration::from_secs(1)).is_err(),
        "no runtime"
    );
}

#[test]
fn oversized_objects_are_dropped_on_the_worker_path_too() {
    let rt = rt(1);
    let pool = Arc::new(
        WorkerPool::builder(Vec::<u8>::new)
            .retention_limit(100)
            .build(),
    );
    let p = Arc::clone(&pool);
    on_worker(&rt, async move {
        let mut v = p.get();
        v.resize(1000, 1);
        drop(v);
        let mut v = p.get();
        v.push(1);
        drop(v);
        assert!(p.get().is_empty());
    });
    let s = pool.stats();
    assert_eq!(s.drop_oversized_count, 1);
    assert_accounting(&s);
}

static STATIC_POOL: LazyLock<WorkerPool<Vec<u8>>> = LazyLock::new(|| WorkerPool::new(Vec::new));

#[test]
fn static_pool_guards_move_into_spawned_tasks() {
    let rt = rt(2);
    rt.block_on(async {
        let mut g: WorkerPooled<'static, Vec<u8>> = STATIC_POOL.get();
        g.push(7);
        let v = tokio::spawn(async move { g[0] }).await.unwrap();
        assert_eq!(v, 7);
    });
}

#[test]
fn detach_discard_put_and_try_get() {
    let pool = Arc::new(WorkerPool::builder(Vec::<u8>::new).max_idle(4).build());
    assert!(pool.try_get().is_none());
    assert!(pool.put(vec![1, 2]).is_ok());
    let g = pool.try_get_owned().unwrap();
    assert!(g.is_empty());
    assert_eq!(g.detach().capacity(), 2);
    pool.get().discard();
    let s = pool.stats();
    assert_eq!(
        (s.detach_count, s.drop_discarded_count, s.adopt_count),
        (1, 1, 1)
    );
    assert_accounting(&s);
}

#[test]
fn guard_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<WorkerPool<BytesMut>>();
    send_sync::<WorkerPooled<'static, BytesMut>>();
    send_sync::<OwnedWorkerPooled<BytesMut>>();
}

#[test]
fn objects_parked_by_an_exiting_worker_go_to_the_next_thread_with_its_number() {
    let pool = Arc::new(WorkerPool::builder(Tagged::new).workers(64).build());
    let p = Arc::clone(&pool);
    let (w, id) = on_exiting_worker(async move {
        let w = WorkerPool::<Tagged>::current_worker().unwrap();
        let obj = p.get(); // made
        let id = obj.id;
        drop(obj); // parked in the thread's private slot
        let again = p.get(); // the same object, from the slot
        assert_eq!(again.id, id);
        drop(again);
        let ws = p.worker_stats(w).unwrap();
        assert_eq!(
            (ws.local_hit_count, ws.local_return_count, ws.num_idle),
            (1, 2, 1)
        );
        assert_eq!(ws.refill_count + ws.spill_count, 0);
        (w, id)
    });
    // The thread has exited: its parked object waits for number `w`'s next
    // holder, counted as idle for worker `w` and not returned twice.
    let ws = pool.worker_stats(w).unwrap();
    assert_eq!(
        (ws.local_hit_count, ws.local_return_count, ws.num_idle),
        (1, 2, 1)
    );
    let s = pool.stats();
    assert_eq!((s.num_idle, s.num_in_use, s.return_count), (1, 0, 2));
    assert_accounting(&s);
    // The next thread with number `w` finds it in its private slot.
    let p = Arc::clone(&pool);
    let found = on_exiting_worker(async move {
        if WorkerPool::<Tagged>::current_worker() != Some(w) {
            return None; // another test's thread took the number
        }
        let obj = p.get();
        let ws = p.worker_stats(w).unwrap();
        assert_eq!((ws.local_hit_count, ws.num_idle), (2, 0));
        Some(obj.id)
    });
    if let Some(found) = found {
        assert_eq!(found, id);
    }
    let s = pool.stats();
    assert_eq!((s.created_count, s.num_idle, s.num_in_use), (1, 1, 0));
    assert_accounting(&s);
}

#[test]
fn dropping_the_pool_drops_objects_parked_on_live_worker_threads() {
    let rt = rt(2);
    let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let pool = Arc::new(
        WorkerPool::builder(move || Counted::new(&d))
            .workers(64)
            .build(),
    );
    // Park one object on each worker thread (tasks pinned by a barrier).
    let barrier = Arc::new(std::sync::Barrier::new(2));
    rt.block_on(async {
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (p, b) = (Arc::clone(&pool), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let obj = p.get();
                    b.wait();
                    drop(obj);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(pool.stats().num_idle, 2);
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 0);
    // The workers are alive and idle; the pool goes, and takes its objects
    // out of their private slots.
    drop(Arc::into_inner(pool).unwrap());
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A new pool on the same threads starts with empty slots.
    let pool = Arc::new(WorkerPool::builder(Tagged::new).workers(64).build());
    let p = Arc::clone(&pool);
    on_worker(&rt, async move {
        drop(p.get());
        drop(p.get());
    });
    let s = pool.stats();
    assert_eq!((s.created_count, s.hit_count, s.num_idle), (1, 1, 1));
    assert_accounting(&s);
}

#[test]
fn more_pools_than_private_slots_all_work() {
    // 80 pools alive at once: more than there are private slot indices, so
    // some start at the magazines. All count and recycle alike.
    let rt = rt(2);
    let pools: Vec<_> = (0..80)
        .map(|_| Arc::new(WorkerPool::builder(Tagged::new).workers(64).build()))
        .collect();
    let ps = pools.clone();
    on_worker(&rt, async move {
        for _ in 0..3 {
            for p in &ps {
                let a = p.get();
                a.hold();
                let b = p.get(); // two at once: slot and magazine
                b.hold();
                assert_ne!(a.id, b.id);
                a.release();
                b.release();
            }
        }
    });
    for p in &pools {
        let s = p.stats();
        assert_eq!((s.get_count, s.created_count, s.num_idle), (6, 2, 2), "{s}");
        assert_accounting(&s);
        assert_idle_distinct(p);
    }
}

#[test]
fn a_pool_dropped_after_its_worker_exited_drops_the_object_left_behind() {
    let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let pool = Arc::new(
        WorkerPool::builder(move || Counted::new(&d))
            .workers(64)
            .build(),
    );
    let p = Arc::clone(&pool);
    on_exiting_worker(async move { drop(p.get()) }); // parked, then left
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 0);
    let s = pool.stats();
    assert_eq!((s.num_idle, s.num_in_use), (1, 0));
    drop(Arc::into_inner(pool).unwrap());
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn zero_sized_objects_are_recycled_on_workers() {
    #[derive(Default)]
    struct Unit;
    impl capacitor_pool::Reset for Unit {
        fn reset(&mut self) {}
    }
    let pool = Arc::new(WorkerPool::builder(|| Unit).workers(64).build());
    let p = Arc::clone(&pool);
    on_exiting_worker(async move {
        for _ in 0..10 {
            let a = p.get();
            let b = p.get();
            drop((a, b));
        }
    });
    let s = pool.stats();
    assert_eq!(
        (s.get_count, s.created_count, s.num_idle),
        (20, 2, 2),
        "{s}"
    );
    assert_accounting(&s);
}

#[test]
fn dropping_the_pool_drops_every_tier_when_drops_panic() {
    let rt = rt(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let pool = Arc::new(
        WorkerPool::builder(move || Counted::new(&d))
            .workers(64)
            .build(),
    );
    let p = Arc::clone(&pool);
    // Six in the worker's private slot and magazine, one of them armed.
    on_worker(&rt, async move {
        let mut held: Vec<_> = (0..6).map(|_| p.get()).collect();
        held[2].armed = true;
        drop(held);
    });
    // Four in the depot (this thread is no worker), one of them armed.
    let mut held: Vec<_> = (0..4).map(|_| pool.get()).collect();
    held[1].armed = true;
    drop(held);
    assert_eq!(pool.depot().stats().num_idle, 4);
    assert_eq!(pool.stats().num_idle, 10);
    let pool = Arc::into_inner(pool).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| drop(pool))).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 10, "no tier leaked");
}

#[test]
fn trim_drops_every_aged_depot_object_when_one_drop_panics() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let pool = WorkerPool::builder(move || Counted::new(&d)).build();
    // Not a worker thread: all ten go to the depot.
    let mut held: Vec<_> = (0..10).map(|_| pool.get()).collect();
    held[0].armed = true;
    drop(held);
    assert_eq!(pool.trim(), 0);
    assert!(catch_unwind(AssertUnwindSafe(|| pool.trim())).is_err());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        10,
        "the nine others dropped too"
    );
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_aged_count), (0, 10), "{s}");
    assert_accounting(&s);
    drop(pool.get()); // still usable
    assert_eq!(pool.trim(), 0);
}

#[test]
fn a_spill_drops_every_object_the_depot_has_no_room_for_when_drops_panic() {
    let rt = rt(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    // Every object panics in its drop; the depot keeps none, so each
    // spill drops the half of the magazine it moves out.
    let pool = Arc::new(
        WorkerPool::builder(move || Counted::armed(&d))
            .workers(64)
            .magazine_size(4)
            .max_idle(0)
            .build(),
    );
    let p = Arc::clone(&pool);
    let panics = on_worker(&rt, async move {
        let held: Vec<_> = (0..12).map(|_| p.get()).collect();
        // A guard's drop that spills raises the spill's first panic.
        held.into_iter()
            .map(|guard| catch_unwind(AssertUnwindSafe(|| drop(guard))))
            .filter(Result::is_err)
            .count()
    });
    assert!(panics > 0, "the magazine spilled");
    let s = pool.stats();
    assert_eq!(s.num_idle + s.drop_full_count, 12, "{s}");
    assert_eq!(
        drops.load(Ordering::SeqCst) as u64,
        s.drop_full_count,
        "every object a spill dropped ran its drop"
    );
    assert_accounting(&s);
    let pool = Arc::into_inner(pool).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| drop(pool))).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 12);
}
