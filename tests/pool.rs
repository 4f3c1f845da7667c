//! Behaviour of `Pool<T>` and its guards.

#[path = "support/tagged.rs"]
mod tagged;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, LazyLock, Mutex};

use bytes::{BufMut, BytesMut};
use capacitor_pool::{OwnedPooled, Pool, Pooled, Recycle, Reset};
use tagged::{Counted, Tagged, assert_accounting, panic_message};

#[test]
fn smoke() {
    let pool = Pool::new(|| BytesMut::with_capacity(64));
    let mut buf = pool.get();
    buf.put_slice(b"test");
    assert_eq!(&buf[..], b"test");
    drop(buf);
    let buf = pool.get();
    assert!(buf.is_empty());
    assert!(buf.capacity() >= 64);
    let s = pool.stats();
    assert_eq!((s.get_count, s.hit_count, s.miss_count), (2, 1, 1));
    assert_eq!(s.num_in_use, 1);
    drop(buf);
    assert_eq!(pool.stats().num_idle, 1);
}

#[test]
fn value_written_by_one_user_is_never_seen_by_the_next() {
    let pool = Pool::builder(|| BytesMut::with_capacity(32))
        .shards(1)
        .build();
    for round in 0..100u32 {
        let mut buf = pool.get();
        assert!(buf.is_empty(), "round {round} saw {:?}", &buf[..]);
        buf.put_u32(round);
    }
    // Same object every time: the hit path is the one that resets.
    assert_eq!(pool.stats().created_count, 1);
}

#[test]
fn same_object_comes_back_without_moving() {
    let pool = Pool::new(|| Vec::<u8>::with_capacity(16));
    let a = pool.get();
    let addr_obj = &*a as *const Vec<u8>;
    let addr_buf = a.as_ptr();
    drop(a);
    let b = pool.get();
    assert_eq!(
        &*b as *const Vec<u8>, addr_obj,
        "the object stays in its slot"
    );
    assert_eq!(b.as_ptr(), addr_buf, "its allocation is reused");
}

#[test]
fn object_over_the_retention_limit_is_dropped_not_kept() {
    let pool = Pool::builder(|| Vec::<u8>::with_capacity(16))
        .retention_limit(1024)
        .build();
    let mut big = pool.get();
    big.resize(4096, 7);
    drop(big);
    let s = pool.stats();
    assert_eq!(s.num_idle, 0);
    assert_eq!(s.drop_oversized_count, 1);

    let small = pool.get();
    drop(small);
    assert_eq!(pool.stats().num_idle, 1);
    assert_accounting(&pool.stats());
}

#[test]
fn default_retention_limit_is_one_mebibyte() {
    let pool = Pool::new(Vec::<u8>::new);
    assert_eq!(pool.retention_limit(), 1 << 20);
    let mut v = pool.get();
    v.reserve_exact((1 << 20) + 1);
    drop(v);
    assert_eq!(pool.stats().drop_oversized_count, 1);
    let mut v = pool.get();
    v.reserve_exact(1 << 20);
    drop(v);
    assert_eq!(pool.stats().num_idle, 1);
}

#[test]
fn pool_never_holds_more_than_its_bound() {
    for shards in [1, 2, 4, 8] {
        let pool = Pool::builder(Vec::<u8>::new)
            .max_idle(10)
            .shards(shards)
            .build();
        let held: Vec<_> = (0..100).map(|_| pool.get()).collect();
        drop(held);
        let s = pool.stats();
        assert_eq!(s.num_idle, 10, "shards {shards}: {s}");
        assert_eq!(s.drop_full_count, 90);
        assert_accounting(&s);
    }
}

#[test]
fn zero_max_idle_keeps_nothing() {
    let pool = Pool::builder(String::new).max_idle(0).build();
    drop(pool.get());
    assert!(pool.put(String::new()).is_err());
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_full_count), (0, 1));
}

#[test]
fn put_hands_the_value_back_when_full() {
    let pool = Pool::builder(Vec::<u8>::new).max_idle(2).shards(2).build();
    assert!(pool.put(vec![1]).is_ok());
    assert!(pool.put(vec![2]).is_ok());
    let back = pool.put(vec![3]).unwrap_err();
    assert!(back.is_empty(), "values are reset before they are checked");
    let s = pool.stats();
    assert_eq!((s.adopt_count, s.num_idle), (2, 2));
    assert_accounting(&s);
}

#[test]
fn put_hands_back_an_oversized_value() {
    let pool = Pool::builder(Vec::<u8>::new).retention_limit(8).build();
    let back = pool.put(Vec::with_capacity(100)).unwrap_err();
    assert!(back.capacity() >= 100);
    assert_eq!(pool.stats().num_idle, 0);
}

#[test]
fn try_get_returns_only_idle_objects() {
    let pool = Pool::new(String::new);
    assert!(pool.try_get().is_none());
    assert_eq!(pool.stats().created_count, 0);
    drop(pool.get());
    let s = pool.try_get().expect("an idle object");
    drop(s);
    let st = pool.stats();
    assert_eq!((st.get_count, st.hit_count, st.miss_count), (3, 1, 2));
    assert_eq!(st.created_count, 1);
}

#[test]
fn detach_and_discard_take_objects_out_of_the_pool() {
    let pool = Arc::new(Pool::new(String::new));
    let mut s = pool.get();
    s.push_str("mine");
    assert_eq!(s.detach(), "mine");
    pool.get().discard();
    let mut o = pool.get_owned();
    o.push_str("owned");
    assert_eq!(o.detach(), "owned");
    pool.get_owned().discard();
    let st = pool.stats();
    assert_eq!((st.detach_count, st.drop_discarded_count), (2, 2));
    assert_eq!((st.num_idle, st.num_in_use), (0, 0));
    assert_accounting(&st);
    assert_eq!(Arc::strong_count(&pool), 1, "owned guards released the Arc");
}

#[test]
fn prefill_makes_objects_up_front() {
    let pool = Pool::builder(|| Vec::<u8>::with_capacity(8))
        .prefill(5)
        .build();
    let s = pool.stats();
    assert_eq!((s.created_count, s.num_idle, s.return_count), (5, 5, 0));
    let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
    assert_eq!(pool.stats().hit_count, 5);
    drop(held);
    assert_accounting(&pool.stats());

    let capped = Pool::builder(Vec::<u8>::new)
        .max_idle(3)
        .prefill(10)
        .build();
    assert_eq!(capped.stats().num_idle, 3);
}

#[test]
fn reset_closure_replaces_the_trait() {
    struct Conn {
        retries: u32,
    }
    let pool = Pool::builder(|| Conn { retries: 0 })
        .reset(|c: &mut Conn| c.retries = 0)
        .build();
    let mut c = pool.get();
    c.retries = 5;
    drop(c);
    assert_eq!(pool.get().retries, 0);
}

#[test]
fn custom_recycler_applies_the_retention_limit() {
    struct Cap;
    impl Recycle<Vec<u32>> for Cap {
        fn reset(&self, v: &mut Vec<u32>) {
            v.clear();
        }
        fn retained_bytes(&self, v: &Vec<u32>) -> usize {
            v.capacity() * 4
        }
    }
    let pool = Pool::builder(Vec::new)
        .recycler(Cap)
        .retention_limit(400)
        .build();
    let mut v = pool.get();
    v.reserve_exact(101);
    drop(v);
    assert_eq!(pool.stats().drop_oversized_count, 1);
}

#[test]
fn trim_drops_objects_idle_through_two_trims() {
    let pool = Pool::builder(|| Vec::<u8>::with_capacity(8))
        .shards(1)
        .build();
    let held: Vec<_> = (0..10).map(|_| pool.get()).collect();
    drop(held);
    assert_eq!(pool.stats().num_idle, 10);
    // First trim: nothing was idle through a whole period yet.
    assert_eq!(pool.trim(), 0);
    // Three objects are used in the next period; seven stay idle.
    let busy: Vec<_> = (0..3).map(|_| pool.get()).collect();
    drop(busy);
    assert_eq!(pool.trim(), 7);
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_aged_count), (3, 7));
    // The three survivors stayed idle since: the next trim takes them.
    assert_eq!(pool.trim(), 3);
    assert_accounting(&pool.stats());
}

#[test]
fn panic_while_holding_a_guard_returns_the_object_reset() {
    let pool = Pool::builder(Vec::<u8>::new).shards(1).build();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut v = pool.get();
        v.extend_from_slice(b"half-written");
        panic!("handler failed");
    }));
    assert!(r.is_err());
    let s = pool.stats();
    assert_eq!((s.num_idle, s.num_in_use, s.return_count), (1, 0, 1));
    assert!(pool.get().is_empty());
}

#[test]
fn panic_in_reset_drops_the_object_and_keeps_the_pool_consistent() {
    struct Fragile(bool);
    impl Reset for Fragile {
        fn reset(&mut self) {
            if self.0 {
                panic!("reset failed");
            }
        }
    }
    let pool = Pool::new(|| Fragile(false));
    let mut f = pool.get();
    f.0 = true;
    let r = catch_unwind(AssertUnwindSafe(|| drop(f)));
    assert!(r.is_err());
    let s = pool.stats();
    assert_eq!(
        (s.num_idle, s.num_in_use, s.drop_discarded_count),
        (0, 0, 1)
    );
    assert_accounting(&s);
    drop(pool.get()); // still usable
}

#[test]
fn zero_sized_objects_work() {
    #[derive(Default)]
    struct Unit;
    impl Reset for Unit {
        fn reset(&mut self) {}
    }
    let pool = Pool::new(Unit::default);
    let held: Vec<_> = (0..10).map(|_| pool.get()).collect();
    drop(held);
    assert_eq!(pool.stats().num_idle, 10);
}

#[test]
fn dropping_the_pool_drops_idle_objects() {
    static LIVE: AtomicU64 = AtomicU64::new(0);
    struct Counted;
    impl Counted {
        fn new() -> Self {
            LIVE.fetch_add(1, Ordering::SeqCst);
            Counted
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }
    impl Reset for Counted {
        fn reset(&mut self) {}
    }
    let pool = Pool::new(Counted::new);
    let held: Vec<_> = (0..20).map(|_| pool.get()).collect();
    drop(held);
    assert_eq!(LIVE.load(Ordering::SeqCst), 20);
    drop(pool);
    assert_eq!(LIVE.load(Ordering::SeqCst), 0);
}

/// A one-shard pool of `Counted` objects with `idle` of them idle, those
/// at `armed` armed (their drop panics), and the shared drop counter.
/// Idle objects are on the shard's stack in the order of `0..idle`.
fn pool_with_armed(idle: usize, armed: &[usize]) -> (Pool<Counted>, Arc<AtomicUsize>, Vec<u64>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let pool = Pool::builder(move || Counted::new(&d)).shards(1).build();
    let mut held: Vec<_> = (0..idle).map(|_| pool.get()).collect();
    for &i in armed {
        held[i].armed = true;
    }
    let ids = held.iter().map(|c| c.tag.id).collect();
    drop(held);
    assert_eq!(pool.stats().num_idle, idle as u64);
    (pool, drops, ids)
}

#[test]
fn dropping_the_pool_drops_every_idle_object_when_one_drop_panics() {
    // The last one returned is the first one the pool drops.
    let (pool, drops, ids) = pool_with_armed(10, &[9]);
    let panic =
        catch_unwind(AssertUnwindSafe(|| drop(pool))).expect_err("the drop's panic goes on");
    assert_eq!(
        panic_message(&*panic),
        format!("armed object {} panicked in drop", ids[9])
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        10,
        "the nine others dropped too"
    );
}

#[test]
fn two_panicking_drops_in_the_pools_drop_raise_the_first_and_leak_nothing() {
    let (pool, drops, ids) = pool_with_armed(10, &[3, 9]);
    let panic = catch_unwind(AssertUnwindSafe(|| drop(pool))).expect_err("no abort, a panic");
    assert_eq!(
        panic_message(&*panic),
        format!("armed object {} panicked in drop", ids[9]),
        "the first panic, not the second"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 10);
}

#[test]
fn trim_drops_every_aged_object_when_one_drop_panics() {
    // The bottom of the stack is the first one trim drops.
    let (pool, drops, _) = pool_with_armed(10, &[0]);
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
    // No shard lock was left held: the pool goes on working.
    drop(pool.get());
    assert_eq!(pool.stats().num_idle, 1);
    assert_eq!(pool.trim(), 0);
}

#[test]
fn stress_from_threads_never_hands_an_object_out_twice() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 20_000;
    let pool = Arc::new(Pool::builder(Tagged::new).max_idle(16).build());
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = Arc::clone(&pool);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut kept = Vec::new();
                for i in 0..ROUNDS {
                    let mut obj = pool.get();
                    obj.hold();
                    assert!(obj.data.is_empty(), "object {} not reset", obj.id);
                    obj.data.push(t as u8);
                    obj.release();
                    // Hold a few at a time so the pool grows past its bound.
                    if i % 7 == 0 {
                        obj.hold();
                        kept.push(obj);
                    }
                    if kept.len() > 6 {
                        for o in kept.drain(..) {
                            o.release();
                        }
                    }
                    if i % 1000 == 0 {
                        if let Some(o) = pool.try_get() {
                            o.hold();
                            o.release();
                        }
                    }
                }
                for o in kept {
                    o.release();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = pool.stats();
    assert_eq!(s.num_in_use, 0, "{s}");
    assert!(s.num_idle <= 16);
    assert_accounting(&s);
    // Every idle object is distinct.
    let idle: Vec<_> = (0..s.num_idle).map(|_| pool.get()).collect();
    let ids: HashSet<u64> = idle.iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), idle.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_from_tasks_on_a_multi_thread_runtime_adds_up() {
    let pool = Arc::new(Pool::builder(Tagged::new).max_idle(32).build());
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                for i in 0..500 {
                    let mut obj = pool.get_owned();
                    obj.hold();
                    assert!(obj.data.is_empty());
                    obj.data.push(t as u8);
                    if i % 3 == 0 {
                        // Cross an await (and maybe a worker) while holding it.
                        tokio::task::yield_now().await;
                    }
                    obj.release();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = pool.stats();
    assert_eq!(s.get_count, 64 * 500);
    assert_eq!(s.num_in_use, 0);
    assert!(s.num_idle <= 32);
    assert_accounting(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_guards_move_into_spawned_tasks() {
    let pool = Arc::new(Pool::new(|| BytesMut::with_capacity(128)));
    let mut handles = Vec::new();
    for i in 0..16u8 {
        let mut buf: OwnedPooled<BytesMut> = pool.get_owned();
        handles.push(tokio::spawn(async move {
            buf.put_u8(i);
            tokio::task::yield_now().await;
            buf[0]
        }));
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i as u8);
    }
    let s = pool.stats();
    // Early tasks may finish before later gets, so fewer than 16 objects
    // may have been made; all of them are back.
    assert_eq!(s.num_in_use, 0);
    assert_eq!(s.num_idle, s.created_count);
    assert_eq!(s.get_count, 16);
}

static STATIC_POOL: LazyLock<Pool<Vec<u32>>> = LazyLock::new(|| Pool::new(Vec::new));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pool_guards_are_static_and_spawnable() {
    let mut v: Pooled<'static, Vec<u32>> = STATIC_POOL.get();
    v.push(41);
    let got = tokio::spawn(async move {
        v[0] += 1;
        v[0]
    })
    .await
    .unwrap();
    assert_eq!(got, 42);
    assert!(STATIC_POOL.stats().num_idle >= 1);
}

#[test]
fn stats_display_is_readable() {
    let pool = Pool::new(Vec::<u8>::new);
    drop(pool.get());
    let text = pool.stats().to_string();
    assert!(text.contains("gets 1"), "{text}");
    assert!(format!("{pool:?}").contains("Pool"));
    let g = pool.get();
    assert_eq!(format!("{g:?}"), "Pooled([])");
}

#[test]
fn guard_types_are_send_and_sync() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Pool<BytesMut>>();
    sync::<Pool<BytesMut>>();
    send::<Pooled<'static, BytesMut>>();
    sync::<Pooled<'static, BytesMut>>();
    send::<OwnedPooled<BytesMut>>();
    sync::<OwnedPooled<BytesMut>>();
    fn static_<T: 'static>() {}
    static_::<OwnedPooled<BytesMut>>();
}

#[test]
fn mutex_is_not_needed_around_a_shared_pool() {
    // A pool is shared by reference across scoped threads.
    let pool = Pool::new(String::new);
    let seen = Mutex::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    let mut g = pool.get();
                    g.push('x');
                }
                *seen.lock().unwrap() += 1;
            });
        }
    });
    assert_eq!(*seen.lock().unwrap(), 4);
    assert_eq!(pool.stats().get_count, 4000);
}

#[test]
fn a_huge_max_idle_allocates_only_what_is_used() {
    let pool = Pool::builder(Vec::<u8>::new)
        .max_idle(usize::MAX)
        .shards(1)
        .build();
    let held: Vec<_> = (0..1000).map(|_| pool.get()).collect();
    drop(held);
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_full_count), (1000, 0));
    assert_eq!(pool.max_idle(), usize::MAX);
}
