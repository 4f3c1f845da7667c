//! Behaviour of `WorkerPool`s declared with `worker_pool!`: a private slot
//! per worker thread in a thread-local of the static's own.
//!
//! Each test declares its own static (statics live for the whole process,
//! and tests run in parallel).

#[path = "support/runtime.rs"]
mod runtime;
#[path = "support/tagged.rs"]
mod tagged;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use bytes::{BufMut, BytesMut};
use capacitor_pool::{Reset, WorkerPool, worker_pool};
use runtime::{on_exiting_worker, on_worker, rt};
use tagged::{Counted, Tagged, assert_accounting};

fn current_worker() -> Option<usize> {
    WorkerPool::<Vec<u8>>::current_worker()
}

#[test]
fn smoke_on_a_multi_thread_runtime() {
    worker_pool! {
        static BUFFERS: WorkerPool<BytesMut> =
            WorkerPool::builder(|| BytesMut::with_capacity(64)).workers(64);
    }
    let rt = rt(2);
    let w = on_worker(&rt, async {
        let w = current_worker().expect("on a worker");
        let mut buf = BUFFERS.get(); // made
        buf.put_slice(b"test");
        drop(buf); // reset, parked in this worker's private slot
        let buf = BUFFERS.get(); // from the slot
        assert!(buf.is_empty());
        drop(buf);
        w
    });
    let ws = BUFFERS.worker_stats(w).unwrap();
    assert_eq!((ws.local_hit_count, ws.local_return_count), (1, 2));
    assert_eq!((ws.num_idle, ws.refill_count, ws.spill_count), (1, 0, 0));
    let s = BUFFERS.stats();
    assert_eq!((s.get_count, s.hit_count, s.miss_count), (2, 1, 1));
    assert_eq!((s.num_idle, s.num_in_use), (1, 0));
    assert_eq!(BUFFERS.depot().stats().num_idle, 0);
}

#[test]
fn a_task_holding_several_uses_the_magazine_behind_the_slot() {
    worker_pool! {
        static TAGS: WorkerPool<Tagged> = WorkerPool::builder(Tagged::new).workers(64);
    }
    let rt = rt(2);
    on_worker(&rt, async {
        let w = current_worker().unwrap();
        let held: Vec<_> = (0..5).map(|_| TAGS.get()).collect();
        let ids: HashSet<u64> = held.iter().map(|o| o.id).collect();
        drop(held); // one to the slot, four to the magazine
        let again: Vec<_> = (0..5).map(|_| TAGS.get()).collect();
        for o in &again {
            o.hold();
        }
        let found: HashSet<u64> = again.iter().map(|o| o.id).collect();
        assert_eq!(found, ids);
        for o in &again {
            o.release();
        }
        let ws = TAGS.worker_stats(w).unwrap();
        assert_eq!((ws.local_hit_count, ws.miss_count), (5, 5), "{ws:?}"); // made, then reused
    });
    assert_accounting(&TAGS.stats());
}

#[test]
fn guards_dropped_on_another_worker_go_to_its_private_slot() {
    worker_pool! {
        static TAGS: WorkerPool<Tagged> = WorkerPool::builder(Tagged::new).workers(64);
    }
    let rt = rt(2);
    // Two tasks on the two workers (each holds its worker at the barrier):
    // one takes an object and hands it over, the other drops it, on a
    // worker that never used the pool before.
    let barrier = Arc::new(Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let (b1, b2) = (Arc::clone(&barrier), Arc::clone(&barrier));
    let (producer, consumer) = rt.block_on(async move {
        let producer = tokio::spawn(async move {
            let obj = TAGS.get();
            b1.wait();
            let id = obj.id;
            tx.send(obj).unwrap();
            (current_worker().unwrap(), id)
        });
        let consumer = tokio::spawn(async move {
            b2.wait();
            let obj = rx.recv().unwrap();
            let id = obj.id;
            drop(obj); // parks here: this worker's first use of the pool
            let w = current_worker().unwrap();
            let ws = TAGS.worker_stats(w).unwrap();
            assert_eq!((ws.local_return_count, ws.num_idle), (1, 1), "{ws:?}");
            let again = TAGS.get(); // a hit on this worker
            assert_eq!(again.id, id);
            (w, id)
        });
        (producer.await.unwrap(), consumer.await.unwrap())
    });
    assert_ne!(producer.0, consumer.0, "the tasks ran on different workers");
    assert_eq!(producer.1, consumer.1);
    let ws = TAGS.worker_stats(consumer.0).unwrap();
    assert_eq!((ws.local_hit_count, ws.local_return_count), (1, 2));
    let s = TAGS.stats();
    assert_eq!((s.created_count, s.hit_count, s.num_idle), (1, 1, 1));
    assert_accounting(&s);
}

#[test]
fn threads_that_are_not_workers_use_the_depot() {
    worker_pool! {
        static VECS: WorkerPool<Vec<u8>> = WorkerPool::builder(Vec::new).workers(64);
    }
    std::thread::spawn(|| {
        assert_eq!(current_worker(), None);
        drop(VECS.get());
        drop(VECS.get());
    })
    .join()
    .unwrap();
    assert_eq!(VECS.depot().stats().return_count, 2);
    assert_eq!(VECS.depot().stats().hit_count, 1);
    for w in 0..VECS.num_workers() {
        assert_eq!(VECS.worker_stats(w).unwrap(), Default::default());
    }
}

#[test]
fn an_exiting_worker_leaves_its_parked_object_to_the_next_thread_with_its_number() {
    worker_pool! {
        static TAGS: WorkerPool<Tagged> = WorkerPool::builder(Tagged::new).workers(64);
    }
    let (w, id) = on_exiting_worker(async {
        let obj = TAGS.get();
        let id = obj.id;
        drop(obj); // parked
        (current_worker().unwrap(), id)
    });
    // Counted as idle for worker `w`, returned once.
    let ws = TAGS.worker_stats(w).unwrap();
    assert_eq!((ws.local_return_count, ws.num_idle), (1, 1), "{ws:?}");
    let s = TAGS.stats();
    assert_eq!((s.num_idle, s.num_in_use, s.return_count), (1, 0, 1));
    assert_accounting(&s);
    // The next thread with number `w` finds it at its first use.
    let found = on_exiting_worker(async move {
        if current_worker() != Some(w) {
            return None; // another test's thread took the number
        }
        Some(TAGS.get().id)
    });
    if let Some(found) = found {
        assert_eq!(found, id);
        assert_eq!(TAGS.stats().hit_count, 1);
    }
    let s = TAGS.stats();
    assert_eq!((s.created_count, s.num_idle, s.num_in_use), (1, 1, 0));
    assert_accounting(&s);
}

#[test]
fn two_statics_keep_their_objects_apart() {
    worker_pool! {
        static FIRST: WorkerPool<Tagged> = WorkerPool::builder(Tagged::new).workers(64);
    }
    worker_pool! {
        static SECOND: WorkerPool<Tagged> = WorkerPool::builder(Tagged::new).workers(64);
    }
    let rt = rt(1);
    on_worker(&rt, async {
        let (a, b) = (FIRST.get(), SECOND.get());
        let (ida, idb) = (a.id, b.id);
        drop(b);
        drop(a);
        for _ in 0..3 {
            let (a, b) = (FIRST.get(), SECOND.get());
            assert_eq!((a.id, b.id), (ida, idb));
        }
    });
    assert_eq!(FIRST.stats().hit_count, 3);
    assert_eq!(SECOND.stats().hit_count, 3);
    assert_eq!(FIRST.stats().created_count, 1);
}

#[test]
fn try_get_detach_and_discard() {
    worker_pool! {
        static VECS: WorkerPool<Vec<u8>> = WorkerPool::builder(Vec::new).workers(64);
    }
    let rt = rt(1);
    on_worker(&rt, async {
        assert!(VECS.try_get().is_none());
        drop(VECS.get());
        let mut v = VECS.try_get().expect("from the slot");
        v.push(7);
        assert_eq!(v.detach(), vec![7]);
        assert!(VECS.try_get().is_none());
        VECS.get().discard();
    });
    let s = VECS.stats();
    assert_eq!((s.detach_count, s.drop_discarded_count), (1, 1));
    assert_eq!((s.num_idle, s.num_in_use), (0, 0));
    assert_accounting(&s);
}

/// A zero-sized object (no private slot: the magazine serves it).
#[derive(Default)]
struct Token;

impl Reset for Token {
    fn reset(&mut self) {}
}

#[test]
fn zero_sized_objects_are_recycled() {
    worker_pool! {
        static TOKENS: WorkerPool<Token> = WorkerPool::builder(|| Token).workers(64);
    }
    let rt = rt(1);
    let w = on_worker(&rt, async {
        for _ in 0..10 {
            drop(TOKENS.get());
        }
        current_worker().unwrap()
    });
    let ws = TOKENS.worker_stats(w).unwrap();
    assert_eq!((ws.local_hit_count, ws.num_idle), (9, 1), "{ws:?}");
    assert_accounting(&TOKENS.stats());
}

#[test]
fn oversized_objects_are_dropped_not_parked() {
    worker_pool! {
        static VECS: WorkerPool<Vec<u8>> =
            WorkerPool::builder(Vec::new).workers(64).retention_limit(1024);
    }
    let rt = rt(1);
    on_worker(&rt, async {
        VECS.get().reserve(4096);
        assert!(VECS.try_get().is_none());
        drop(VECS.get());
        assert!(VECS.try_get().is_some());
    });
    let s = VECS.stats();
    assert_eq!((s.drop_oversized_count, s.num_idle), (1, 1));
    assert_accounting(&s);
}

#[test]
fn tasks_migrate_across_await_holding_guards_on_4_workers() {
    worker_pool! {
        static TAGS: WorkerPool<Tagged> =
            WorkerPool::builder(Tagged::new).workers(64).magazine_size(4).max_idle(64);
    }
    let gets = runtime::migrate_while_holding(4, || TAGS.get());
    let s = TAGS.stats();
    assert_eq!(s.get_count, gets);
    assert_eq!(s.num_in_use, 0, "{s}");
    assert_accounting(&s);
    assert!(s.hit_rate() > 0.9, "{s}");
    // Every idle object is distinct.
    let held: Vec<_> = (0..s.num_idle).filter_map(|_| TAGS.try_get()).collect();
    let ids: HashSet<u64> = held.iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), held.len());
}

#[test]
fn objects_left_on_exited_workers_are_dropped_with_nothing_lost() {
    static DROPS: std::sync::LazyLock<Arc<AtomicUsize>> =
        std::sync::LazyLock::new(|| Arc::new(AtomicUsize::new(0)));
    worker_pool! {
        static COUNTED: WorkerPool<Counted> =
            WorkerPool::builder(|| Counted::new(&DROPS)).workers(64);
    }
    // Objects parked and in the magazine of a worker that exits stay
    // counted as idle; trims move what the next holder did not take to the
    // depot and age it (another test's thread may hold the number by then,
    // with the objects: then they stay, idle).
    on_exiting_worker(async {
        let held: Vec<_> = (0..3).map(|_| COUNTED.get()).collect();
        drop(held);
    });
    let s = COUNTED.stats();
    assert_eq!((s.created_count, s.num_idle), (3, 3));
    COUNTED.trim();
    COUNTED.trim();
    let s = COUNTED.stats();
    assert_accounting(&s);
    assert_eq!(
        s.num_idle + DROPS.load(Ordering::SeqCst) as u64,
        3,
        "every object idle or dropped: {s}"
    );
}

#[test]
fn a_struct_field_holds_a_static_guard_by_its_short_name() {
    use capacitor_pool::StaticPooled;
    worker_pool! {
        static CONN_BUFS: WorkerPool<BytesMut> =
            WorkerPool::builder(|| BytesMut::with_capacity(64)).workers(64);
    }
    struct Conn {
        read_buf: StaticPooled<BytesMut, CONN_BUFS>,
    }
    let rt = rt(2);
    let n = on_worker(&rt, async {
        let mut conn = Conn {
            read_buf: CONN_BUFS.get(),
        };
        tokio::spawn(async move {
            conn.read_buf.put_slice(b"ping");
            tokio::task::yield_now().await;
            assert_eq!(CONN_BUFS.stats().num_in_use, 1);
            conn.read_buf.len()
        })
        .await
        .unwrap()
    });
    assert_eq!(n, 4);
    let s = CONN_BUFS.stats();
    assert_eq!((s.num_in_use, s.num_idle, s.return_count), (0, 1, 1));
    rt.block_on(async { assert!(CONN_BUFS.get().is_empty(), "reset on return") });
}
