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

/// Runs `hold` in a task on a worker `a` of `rt`, then `release` with what
/// it returned in a task on another worker `b`, and returns `(a, b,
/// release's output)`. The move is forced, not left to the scheduler: the
/// first task blocks worker `a` until `release` is done, so no other
/// worker is free to run it. `rt` needs two workers at least.
pub fn hand_over<H, R>(
    rt: &Runtime,
    hold: impl FnOnce() -> H + Send + 'static,
    release: impl FnOnce(H) -> R + Send + 'static,
) -> (usize, usize, R)
where
    H: Send + 'static,
    R: Send + 'static,
{
    let current = || capacitor_pool::WorkerPool::<Vec<u8>>::current_worker().expect("a worker");
    rt.block_on(async move {
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn(async move {
            held_tx.send((current(), hold())).ok().unwrap();
            // Blocks this worker thread, on purpose, until `release` ran.
            // (An error: the other side panicked, and says so.)
            let _ = done_rx.recv();
        });
        let (a, held) = held_rx.await.unwrap();
        let (b, out) = tokio::spawn(async move { (current(), release(held)) })
            .await
            .unwrap();
        done_tx.send(()).unwrap();
        holder.await.unwrap();
        assert_ne!(a, b, "worker {a} was blocked: the release ran on another");
        (a, b, out)
    })
}

/// Tasks that move between workers while holding objects, on a runtime
/// with `workers` workers (at least 2). First 64 tasks each take 300
/// objects with `get`, mark each held, yield while holding every other one
/// (so tasks may resume on other workers and drop there), and hold a
/// second one at once every seventh. Whether any task did move is up to
/// the scheduler, so then, `workers` times, eight objects taken at once
/// on one worker are handed to a task on another ([`hand_over`]), which
/// drops them there and takes eight again. Returns how many objects it
/// took with `get`.
pub fn migrate_while_holding<G>(workers: usize, get: impl Fn() -> G + Send + Sync + 'static) -> u64
where
    G: std::ops::DerefMut<Target = crate::tagged::Tagged> + Send + 'static,
{
    use std::sync::Arc;
    assert!(workers >= 2, "a move needs two workers");
    let get = Arc::new(get);
    let rt = rt(workers);
    let g = Arc::clone(&get);
    rt.block_on(async move {
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let get = Arc::clone(&g);
                tokio::spawn(async move {
                    for i in 0..300 {
                        let mut obj = get();
                        obj.hold();
                        assert!(obj.data.is_empty(), "not reset");
                        obj.data.push(t as u8);
                        if i % 2 == 0 {
                            tokio::task::yield_now().await;
                        }
                        if i % 7 == 0 {
                            let other = get();
                            other.hold();
                            other.release();
                        }
                        obj.release();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for _ in 0..workers {
        let (get_a, get_b) = (Arc::clone(&get), Arc::clone(&get));
        hand_over(
            &rt,
            move || {
                let held: Vec<G> = (0..8).map(|_| get_a()).collect();
                for obj in &held {
                    obj.hold();
                    assert!(obj.data.is_empty(), "not reset");
                }
                held
            },
            move |held| {
                for obj in held {
                    obj.release(); // and dropped here, on the other worker
                }
                let again: Vec<G> = (0..8).map(|_| get_b()).collect();
                for obj in &again {
                    obj.hold();
                    obj.release();
                }
            },
        );
    }
    64 * (300 + 43) + workers as u64 * 16
}
