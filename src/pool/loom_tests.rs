//! Loom models of the shard try-lock and the pool's slot paths: threads
//! getting and putting never lose an object or hand one out twice.
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib`.

use super::*;
use crate::slot::{Slot, free_all};
use loom::sync::Arc;
use loom::thread;

use crate::loom::model::{Obj, hold, release};

fn pool(shards: usize, max_idle: usize, prefill: usize) -> Arc<Pool<Obj>> {
    Arc::new(
        Pool::builder(Obj::new)
            .shards(shards)
            .max_idle(max_idle)
            .prefill(prefill)
            .build(),
    )
}

fn accounting(pool: &Pool<Obj>) -> PoolStats {
    let s = pool.stats();
    assert_eq!(s.get_count, s.hit_count + s.miss_count);
    assert_eq!(
        s.created_count + s.adopt_count,
        s.num_idle + s.drop_count() + s.detach_count,
        "{s}"
    );
    s
}

/// Two threads on the same home shard: one gets the try-lock, the other
/// steals from the second shard or waits; objects are never shared.
#[test]
fn same_home_shard_get_and_recycle() {
    loom::model(|| {
        let pool = pool(2, 2, 2);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let slot = pool.take_or_make(0);
                    hold(slot.as_ptr());
                    release(slot.as_ptr());
                    pool.recycle_at(slot, 0);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = accounting(&pool);
        assert_eq!(s.num_idle, 2);
    });
}

/// Objects move between shards: taken on one, returned on the other,
/// while a third path hands a new value in; the bound holds.
#[test]
fn cross_shard_return_and_put_keep_the_bound() {
    loom::model(|| {
        let pool = pool(2, 2, 1);
        let a = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let slot = pool.take_or_make(0);
                hold(slot.as_ptr());
                release(slot.as_ptr());
                pool.recycle_at(slot, 1);
            })
        };
        let b = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let slot = pool.take_or_make(1);
                hold(slot.as_ptr());
                release(slot.as_ptr());
                pool.recycle_at(slot, 0);
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        let s = accounting(&pool);
        assert!(s.num_idle <= 2);
        assert_eq!(s.num_idle + s.drop_full_count, s.created_count);
    });
}

/// A get whose home shard is locked by a return: an object stays idle
/// in that shard the whole time, so the get must wait for the lock and
/// take it (or the returned one), never make a new one. The depot's
/// promise that a get misses only when no object is idle.
#[test]
fn a_get_waits_for_a_busy_shard_with_an_idle_object() {
    loom::model(|| {
        // One object in each shard; the second goes to the returner.
        let pool = pool(2, 4, 2);
        let slot = pool.take_or_make(1);
        let returner = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.recycle_at(slot, 0))
        };
        let got = pool
            .idle
            .pop_slot(0)
            .expect("an object was idle throughout");
        hold(got.as_ptr());
        release(got.as_ptr());
        pool.recycle_at(got, 0);
        returner.join().unwrap();
        let s = accounting(&pool);
        assert_eq!((s.created_count, s.num_idle), (2, 2), "{s}");
    });
}

/// A batch refill racing a batch spill (the WorkerPool magazine paths).
#[test]
fn batch_refill_and_spill_move_every_slot_once() {
    loom::model(|| {
        let pool = pool(2, 4, 2);
        let spiller = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let mut mag: Vec<Option<Slot<Obj>>> =
                    (0..2).map(|_| Some(Slot::new(Obj::new()))).collect();
                let moved = pool.idle.push_from(1, &mut mag);
                // Slots left over are this thread's alone.
                free_all(mag.into_iter().flatten());
                moved
            })
        };
        let mut mag = [const { None }; 4];
        let got = pool.idle.pop_into(0, &mut mag);
        for slot in mag.into_iter().take(got) {
            let slot = slot.expect("a prefix of `got` slots");
            hold(slot.as_ptr());
            // Slots taken in the batch are this thread's alone.
            slot.free();
        }
        let spilled = spiller.join().unwrap();
        let s = pool.stats();
        assert_eq!(s.num_idle as usize, 2 + spilled - got);
    });
}
