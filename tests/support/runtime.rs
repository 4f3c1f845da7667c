//! Runtimes for the worker-pool tests (`#[path]`-included).

#![allow(dead_code)]

use tokio::runtime::{Builder, Runtime};

/// A multi-thread runtime with `workers` worker threads.
pub fn rt(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` in a task on one of `rt`'s workers and returns its output.
pub fn on_worker<R: Send + 'static>(
    rt: &Runtime,
    f: impl Future<Output = R> + Send + 'static,
) -> R {
    rt.block_on(async move { tokio::spawn(f).await.unwrap() })
}

/// Runs `f` in `block_on` of a current-thread runtime (whose thread is a
/// worker, index 0) on a new OS thread, and returns after that thread has
/// exited, its thread-local destructors included.
pub fn on_exiting_worker<R: Send + 'static>(f: impl Future<Output = R> + Send + 'static) -> R {
    std::thread::spawn(move || Builder::new_current_thread().build().unwrap().block_on(f))
        .join()
        .unwrap()
}

/// Tasks that migrate while holding objects: on a runtime with `workers`
/// workers, 64 tasks each take 300 objects with `get`, mark each held,
/// yield while holding every other one (so tasks resume on other
/// workers and drop there), and hold a second one at once every seventh.
/// Returns how many times a task resumed on another worker.
pub fn migrate_while_holding<G>(
    workers: usize,
    get: impl Fn() -> G + Send + Sync + 'static,
) -> usize
where
    G: std::ops::DerefMut<Target = crate::tagged::Tagged> + Send + 'static,
{
    use std::sync::Arc;
    let current = capacitor_pool::WorkerPool::<Vec<u8>>::current_worker;
    let get = Arc::new(get);
    rt(workers).block_on(async move {
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let get = Arc::clone(&get);
                tokio::spawn(async move {
                    let mut moved = 0;
                    for i in 0..300 {
                        let mut obj = get();
                        obj.hold();
                        assert!(obj.data.is_empty(), "not reset");
                        obj.data.push(t as u8);
                        let before = current();
                        if i % 2 == 0 {
                            tokio::task::yield_now().await;
                        }
                        if current() != before {
                            moved += 1;
                        }
                        if i % 7 == 0 {
                            let other = get();
                            other.hold();
                            other.release();
                        }
                        obj.release();
                    }
                    moved
                })
            })
            .collect();
        let mut moved = 0;
        for t in tasks {
            moved += t.await.unwrap();
        }
        assert!(
            workers < 2 || moved > 0,
            "no task migrated: the test proves nothing"
        );
        moved
    })
}
