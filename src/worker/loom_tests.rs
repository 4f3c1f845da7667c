//! Loom models of magazine take/release and the batch spill/refill
//! between magazines and the depot. Worker numbers are passed in as
//! plain numbers, one per model thread, as the thread-keyed design
//! guarantees. Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib`.

use super::*;
use crate::stats::PoolStats;
use loom::sync::Arc;
use loom::thread;

use crate::loom::model::{Obj, hold, release};

fn pool(depot_idle: usize) -> Arc<WorkerPool<Obj>> {
    Arc::new(
        WorkerPool::builder(Obj::new)
            .workers(2)
            .magazine_size(2)
            .shards(2)
            .max_idle(depot_idle)
            .build(),
    )
}

fn check(pool: &WorkerPool<Obj>) -> PoolStats {
    let s = pool.stats();
    assert_eq!(s.get_count, s.hit_count + s.miss_count, "{s}");
    assert_eq!(
        s.created_count + s.adopt_count,
        s.num_idle + s.num_in_use + s.drop_count() + s.detach_count,
        "{s}"
    );
    assert_eq!(s.num_in_use, 0, "{s}");
    s
}

/// Worker 0 fills its magazine past full (a spill into the depot) and
/// then empties it (a refill from the depot) while a non-worker thread
/// uses the depot directly.
#[test]
fn spill_and_refill_race_with_depot_users() {
    loom::model(|| {
        let pool = pool(2);
        // Three objects up front: the model explores the batch moves,
        // not the constructor.
        let made: Vec<_> = (0..3)
            .map(|_| {
                pool.take(Some(0), true, std::panic::Location::caller())
                    .unwrap()
            })
            .collect();
        for s in made {
            pool.give_back(s, Some(0));
        }
        let w0 = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                // Two from the magazine, the third by a refill; then
                // three back: the last one spills.
                let taken: Vec<_> = (0..3)
                    .filter_map(|_| pool.take(Some(0), false, std::panic::Location::caller()))
                    .collect();
                for s in &taken {
                    hold(s.as_ptr());
                }
                for s in taken {
                    release(s.as_ptr());
                    pool.give_back(s, Some(0));
                }
            })
        };
        if let Some(s) = pool.take(None, false, std::panic::Location::caller()) {
            hold(s.as_ptr());
            release(s.as_ptr());
            pool.give_back(s, None);
        }
        w0.join().unwrap();
        let st = check(&pool);
        assert_eq!(st.num_idle + st.drop_count(), 3);
    });
}

/// A guard taken on worker 0 and dropped on worker 1 lands in
/// magazine 1, while worker 1 takes and returns its own.
#[test]
fn cross_worker_return() {
    loom::model(|| {
        let pool = pool(4);
        let slot = pool
            .take(Some(0), true, std::panic::Location::caller())
            .unwrap();
        hold(slot.as_ptr());
        let a = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                release(slot.as_ptr());
                pool.give_back(slot, Some(1));
            })
        };
        let b = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let s = pool
                    .take(Some(0), true, std::panic::Location::caller())
                    .unwrap();
                hold(s.as_ptr());
                release(s.as_ptr());
                pool.give_back(s, Some(0));
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        let st = check(&pool);
        assert_eq!(pool.worker_stats(1).unwrap().local_return_count, 1);
        assert_eq!(st.num_idle, st.created_count);
    });
}
