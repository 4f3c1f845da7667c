//! `RingPool` against the other ways to bound a set of reusable buffers.
//!
//! - `ring_try_get_uncontended`: `try_get` + write + drop on one thread.
//! - `ring_get_contended`: 32 tasks share 8 slots on a 2-worker runtime;
//!   each op is `get().await`, write, `yield_now().await` while holding
//!   (a stand-in for I/O), drop.
//!
//! - `dispatch_boxed_future`: one handler future per request, in a task on
//!   a worker thread, through a pooled `FutureSlot` from a `RingPool`
//!   (`ring_future_slot`: bounded) or a `WorkerPool` (`worker_future_slot`:
//!   unbounded, no atomic on the hot path), or a fresh `Box::pin`.
//!
//! Contestants: `ring_pool` (this crate), `semaphore_mutex_vec`
//! (`tokio::sync::Semaphore` + `Mutex<Vec<T>>`), `deadpool` (unmanaged),
//! `object_pool` (no async wait: `try_pull` in a `yield_now` loop).
//! Allocations per op are printed first.
//!
//! Run with `cargo bench --bench ring`, then
//! `python3 scripts/bench_ratios.py ring --base ring_pool`.

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use capacitor_pool::{FutureSlot, RingPool, WorkerPool};
use criterion::Criterion;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

const SLOTS: usize = 8;
const TASKS: usize = 32;

fn make() -> BytesMut {
    BytesMut::with_capacity(4096)
}

/// `tokio::sync::Semaphore` bounding a `Mutex<Vec<T>>`.
struct SemVec {
    sem: Semaphore,
    items: Mutex<Vec<BytesMut>>,
}

impl SemVec {
    fn new() -> Self {
        Self {
            sem: Semaphore::new(SLOTS),
            items: Mutex::new((0..SLOTS).map(|_| make()).collect()),
        }
    }
}

#[derive(Clone)]
enum Contestant {
    Ring(Arc<RingPool<BytesMut>>),
    SemVec(Arc<SemVec>),
    Deadpool(deadpool::unmanaged::Pool<BytesMut>),
    ObjectPool(Arc<object_pool::Pool<BytesMut>>),
}

impl Contestant {
    fn all() -> Vec<(&'static str, Contestant)> {
        let dp = deadpool::unmanaged::Pool::new(SLOTS);
        for _ in 0..SLOTS {
            dp.try_add(make()).map_err(|_| ()).expect("room");
        }
        vec![
            (
                "ring_pool",
                Contestant::Ring(Arc::new(RingPool::new(SLOTS, make).expect("slots > 0"))),
            ),
            (
                "semaphore_mutex_vec",
                Contestant::SemVec(Arc::new(SemVec::new())),
            ),
            ("deadpool", Contestant::Deadpool(dp)),
            (
                "object_pool",
                Contestant::ObjectPool(Arc::new(object_pool::Pool::new(SLOTS, make))),
            ),
        ]
    }

    /// One uncontended op: take without waiting, write, read, give back.
    #[inline(always)]
    fn try_op(&self) {
        match self {
            Contestant::Ring(r) => {
                let mut b = r.try_get().expect("free slot");
                b.put_slice(b"test");
                black_box(&b[..]);
            }
            Contestant::SemVec(s) => {
                let permit = s.sem.try_acquire().expect("free slot");
                let mut b = s.items.lock().unwrap().pop().expect("item");
                b.put_slice(b"test");
                black_box(&b[..]);
                b.clear();
                s.items.lock().unwrap().push(b);
                drop(permit);
            }
            Contestant::Deadpool(p) => {
                let mut b = p.try_get().expect("free slot");
                b.put_slice(b"test");
                black_box(&b[..]);
                b.clear();
            }
            Contestant::ObjectPool(p) => {
                let mut b = p.try_pull().expect("free slot");
                b.put_slice(b"test");
                black_box(&b[..]);
                b.clear();
            }
        }
    }

    /// One contended op: wait for a slot, write, yield while holding it.
    async fn async_op(&self) {
        match self {
            Contestant::Ring(r) => {
                let mut b = r.get().await.expect("open");
                b.put_slice(b"test");
                tokio::task::yield_now().await;
                black_box(&b[..]);
            }
            Contestant::SemVec(s) => {
                let permit = s.sem.acquire().await.expect("open");
                let mut b = s.items.lock().unwrap().pop().expect("item");
                b.put_slice(b"test");
                tokio::task::yield_now().await;
                black_box(&b[..]);
                b.clear();
                s.items.lock().unwrap().push(b);
                drop(permit);
            }
            Contestant::Deadpool(p) => {
                let mut b = p.get().await.expect("open");
                b.put_slice(b"test");
                tokio::task::yield_now().await;
                black_box(&b[..]);
                b.clear();
            }
            Contestant::ObjectPool(p) => {
                let mut b = loop {
                    match p.try_pull() {
                        Some(b) => break b,
                        None => tokio::task::yield_now().await,
                    }
                };
                b.put_slice(b"test");
                tokio::task::yield_now().await;
                black_box(&b[..]);
                b.clear();
            }
        }
    }
}

/// Runs `ops` contended ops split over `TASKS` tasks; returns the elapsed
/// time and the allocations made meanwhile (all threads).
fn contended(rt: &Runtime, c: &Contestant, ops: u64) -> (Duration, u64) {
    let per_task = ops.div_ceil(TASKS as u64);
    let allocs = counting_alloc::allocs();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        c.async_op().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
    });
    (start.elapsed(), counting_alloc::allocs() - allocs)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        // 2 workers, or `BENCH_WORKERS` for runs on a larger machine.
        .worker_threads(
            std::env::var("BENCH_WORKERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
        )
        .build()
        .expect("runtime");
    let contestants = Contestant::all();

    println!(
        "allocations per op (10000 ops after warm-up; contended: all threads, task spawns included)"
    );
    println!("{:<22} {:>12} {:>12}", "contestant", "try_get", "contended");
    for (name, c) in &contestants {
        for _ in 0..1000 {
            c.try_op();
        }
        let before = counting_alloc::thread_allocs();
        for _ in 0..10_000 {
            c.try_op();
        }
        let uncontended = counting_alloc::thread_allocs() - before;
        contended(&rt, c, 10_000);
        let (_, allocs) = contended(&rt, c, 10_000);
        println!(
            "{name:<22} {:>12.4} {:>12.4}",
            uncontended as f64 / 10_000.0,
            allocs as f64 / 10_000.0
        );
    }
    println!();
    // Timed from here on: the allocator keeps only its per-thread count, so
    // contestants that allocate pay the system allocator's cost, not the
    // shared counters' atomics.
    counting_alloc::set_shared_counting(false);

    let mut crit = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();

    let mut group = crit.benchmark_group("ring_try_get_uncontended");
    for (name, c) in &contestants {
        group.bench_function(*name, |b| b.iter(|| c.try_op()));
    }
    group.finish();

    let mut group = crit.benchmark_group("ring_get_contended");
    for (name, c) in &contestants {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                // Whole ops per task; scale the time back to `iters` ops.
                let ops = iters.div_ceil(TASKS as u64) * TASKS as u64;
                contended(&rt, c, ops).0.mul_f64(iters as f64 / ops as f64)
            })
        });
    }
    group.finish();

    // Boxed-future dispatch: a handler future per request, through a pooled
    // `FutureSlot` (from a `RingPool`, the bounded way, or a `WorkerPool`,
    // the unbounded one) or a fresh `Box::pin`. Timed inside a task on a
    // worker thread, where a dispatcher runs (and where `WorkerPool` has a
    // magazine).
    let ring_slots = Arc::new(RingPool::new(SLOTS, FutureSlot::<u64>::new).expect("slots > 0"));
    let worker_slots = Arc::new(WorkerPool::new(FutureSlot::<u64>::new));
    let mut group = crit.benchmark_group("dispatch_boxed_future");
    group.bench_function("ring_future_slot", |b| {
        b.iter_custom(|iters| {
            let slots = Arc::clone(&ring_slots);
            on_worker(&rt, iters, move || {
                let mut slot = slots.try_get().expect("free slot");
                slot.set(handler(black_box(7)));
                black_box(poll_ready(&mut *slot));
            })
        })
    });
    group.bench_function("worker_future_slot", |b| {
        b.iter_custom(|iters| {
            let slots = Arc::clone(&worker_slots);
            on_worker(&rt, iters, move || {
                let mut slot = slots.get();
                slot.set(handler(black_box(7)));
                black_box(poll_ready(&mut *slot));
            })
        })
    });
    group.bench_function("box_pin", |b| {
        b.iter_custom(|iters| {
            on_worker(&rt, iters, || {
                let mut fut: Pin<Box<dyn Future<Output = u64> + Send>> =
                    black_box(Box::pin(handler(black_box(7))));
                black_box(poll_ready(&mut fut));
            })
        })
    });
    group.finish();

    crit.final_summary();
}

/// A handler with some state: 256 bytes held across an `.await` (so they
/// are part of the future, which is 272 bytes), and little work, so that
/// what the bench compares is the dispatch: where the future is placed.
async fn handler(x: u64) -> u64 {
    let scratch = [x as u8; 256];
    std::future::ready(()).await;
    // Opaque, so neither contestant's work is folded away.
    let scratch = black_box(&scratch);
    u64::from(scratch[0]) + u64::from(scratch[255])
}

/// Runs `op` `iters` times in a task on a worker thread of `rt` (after a
/// short warm-up there); returns the time the ops took.
fn on_worker(rt: &Runtime, iters: u64, op: impl Fn() + Send + 'static) -> Duration {
    rt.block_on(async move {
        tokio::spawn(async move {
            for _ in 0..100 {
                op();
            }
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            start.elapsed()
        })
        .await
        .expect("task")
    })
}

/// Polls a future that completes at once, with a no-op waker.
fn poll_ready<F: Future + Unpin>(fut: &mut F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the handler never waits"),
    }
}
