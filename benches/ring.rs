//! `RingPool` against the other ways to bound a set of reusable buffers.
//!
//! - `ring_try_get_uncontended`: `try_get` + write + drop on one thread.
//! - `ring_get_contended`: 32 tasks share 8 slots on a 2-worker runtime;
//!   each op is `get().await`, write, `yield_now().await` while holding
//!   (a stand-in for I/O), drop.
//!
//! - `dispatch_boxed_future`: one handler future per request on one thread,
//!   through a pooled `FutureSlot` (`ring_future_slot`) or `Box::pin`.
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
use capacitor_pool::RingPool;
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

    // Boxed-future dispatch on one thread: a handler future per request,
    // through a pooled `FutureSlot` or a fresh `Box::pin`.
    let slots = RingPool::new(SLOTS, capacitor_pool::FutureSlot::<u64>::new).expect("slots > 0");
    let mut group = crit.benchmark_group("dispatch_boxed_future");
    group.bench_function("ring_future_slot", |b| {
        b.iter(|| {
            let mut slot = slots.try_get().expect("free slot");
            slot.set(handler(black_box(7)));
            black_box(poll_ready(&mut *slot))
        })
    });
    group.bench_function("box_pin", |b| {
        b.iter(|| {
            let mut fut: std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> =
                black_box(Box::pin(handler(black_box(7))));
            black_box(poll_ready(&mut fut))
        })
    });
    group.finish();

    crit.final_summary();
}

/// A handler with some state: a 256-byte future.
async fn handler(x: u64) -> u64 {
    let scratch = [x as u8; 256];
    // Opaque, so neither contestant's work is folded away.
    black_box(&scratch).iter().map(|&b| u64::from(b)).sum()
}

/// Polls a future that completes at once, with a no-op waker.
fn poll_ready<F: std::future::Future + Unpin>(fut: &mut F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(fut).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("the handler never waits"),
    }
}
