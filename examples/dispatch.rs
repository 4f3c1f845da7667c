//! A request dispatcher that runs boxed handler futures from a `RingPool`
//! of `FutureSlot`s, next to the usual `Box::pin` per request and to a
//! `WorkerPool` of `FutureSlot`s.
//!
//! The ring bounds concurrency (at most `SLOTS` requests in flight) and
//! recycles each slot's allocation, so once every slot has held a future as
//! big as the biggest handler's, dispatching allocates nothing. A
//! `WorkerPool` recycles slots the same way without a bound, from the
//! current worker's magazine (no atomic operation). The program runs the
//! same requests each way on a multi-thread runtime and prints allocations
//! per request (counted in a first pass) and throughput (timed in a second
//! pass, with the counting allocator's shared counters off, so that
//! `Box::pin` pays only for its allocations).
//!
//! Run it with `cargo run --release --example dispatch` (add `-- --small`
//! for a quick run, `-- --one-worker` for a single worker thread).

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Instant;

use capacitor_pool::{FutureSlot, RingPool, WorkerPool};

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

const SLOTS: usize = 16;
const CLIENTS: u64 = 16;

/// Slots for handler futures: `SLOTS` requests in flight at most.
static HANDLERS: LazyLock<RingPool<FutureSlot<u64>>> =
    LazyLock::new(|| RingPool::new(SLOTS, FutureSlot::new).expect("SLOTS > 0"));

/// Slots for handler futures, per worker, unbounded.
static WORKER_HANDLERS: LazyLock<WorkerPool<FutureSlot<u64>>> =
    LazyLock::new(|| WorkerPool::new(FutureSlot::new));

// Three handlers whose futures differ in size, as a router's do.
async fn health(id: u64) -> u64 {
    id
}

async fn lookup(id: u64) -> u64 {
    let key = id.to_le_bytes();
    tokio::task::yield_now().await;
    key.iter().map(|&b| u64::from(b)).sum()
}

async fn render(id: u64) -> u64 {
    let mut page = [0u8; 768];
    page[..8].copy_from_slice(&id.to_le_bytes());
    tokio::task::yield_now().await;
    page.iter().map(|&b| u64::from(b)).sum()
}

/// Dispatch through a pooled slot: no allocation once warm.
async fn dispatch_pooled(id: u64) -> u64 {
    let mut slot = HANDLERS.get().await.expect("ring open");
    run_in(&mut slot, id).await
}

/// Dispatch through a slot from the worker's magazine: no allocation once
/// warm, no bound.
async fn dispatch_worker(id: u64) -> u64 {
    run_in(&mut WORKER_HANDLERS.get(), id).await
}

/// Routes request `id` to its handler, whose future goes into `slot`
/// (reusing its allocation), and runs it there.
async fn run_in(slot: &mut FutureSlot<u64>, id: u64) -> u64 {
    match id % 3 {
        0 => slot.set(health(id)),
        1 => slot.set(lookup(id)),
        _ => slot.set(render(id)),
    }
    slot.await
}

/// Dispatch the usual way: one `Box::pin` per request.
async fn dispatch_boxed(id: u64) -> u64 {
    let fut: Pin<Box<dyn Future<Output = u64> + Send>> = match id % 3 {
        0 => Box::pin(health(id)),
        1 => Box::pin(lookup(id)),
        _ => Box::pin(render(id)),
    };
    fut.await
}

#[derive(Clone, Copy)]
enum Mode {
    Boxed,
    Ring,
    Worker,
}

/// Runs `requests` requests over `CLIENTS` client tasks; returns the
/// allocations per request and the requests per second.
fn run(rt: &tokio::runtime::Runtime, requests: u64, mode: Mode) -> (f64, f64) {
    let per_client = requests / CLIENTS;
    let allocs = counting_alloc::allocs();
    let start = Instant::now();
    let sum = rt.block_on(async {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(async move {
                    let mut sum = 0u64;
                    for i in 0..per_client {
                        let id = c * per_client + i;
                        sum = sum.wrapping_add(match mode {
                            Mode::Boxed => dispatch_boxed(id).await,
                            Mode::Ring => dispatch_pooled(id).await,
                            Mode::Worker => dispatch_worker(id).await,
                        });
                    }
                    sum
                })
            })
            .collect();
        let mut sum = 0u64;
        for c in clients {
            sum = sum.wrapping_add(c.await.expect("client task"));
        }
        sum
    });
    std::hint::black_box(sum);
    let secs = start.elapsed().as_secs_f64();
    let done = (per_client * CLIENTS) as f64;
    let allocs = (counting_alloc::allocs() - allocs) as f64;
    (allocs / done, done / secs)
}

/// Boxed handler futures: `Box::pin` per request against pooled
/// `FutureSlot`s.
#[derive(clap::Parser, Debug)]
#[command(name = "dispatch")]
struct Args {
    /// A quick run (16,000 timed requests)
    #[arg(long)]
    small: bool,

    /// One worker thread instead of two
    #[arg(long)]
    one_worker: bool,
}

/// Requests in the pass that counts allocations (and in each warm-up).
const COUNTED: u64 = 16_000;

fn main() {
    let args = <Args as clap::Parser>::parse();
    let workers = if args.one_worker { 1 } else { 2 };
    let requests = if args.small { COUNTED } else { 1_600_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("a tokio runtime");
    let modes = [
        (Mode::Boxed, "Box::pin per request"),
        (Mode::Ring, "RingPool<FutureSlot> (bounded)"),
        (Mode::Worker, "WorkerPool<FutureSlot>"),
    ];
    // Warm up every way (slots grow to the biggest handler once), time
    // with the shared counters off, then count allocations with them on
    // (after the timed pass: a `WorkerPool` keeps making a slot now and
    // then, on a worker whose magazine ran dry while the other worker's
    // holds the idle ones, until each worker holds enough for the requests
    // that end there; the "slots made" line below shows how many that took).
    for &(mode, _) in &modes {
        run(&rt, COUNTED, mode);
    }
    counting_alloc::set_shared_counting(false);
    let rates: Vec<f64> = modes
        .iter()
        .map(|&(mode, _)| run(&rt, requests, mode).1)
        .collect();
    counting_alloc::set_shared_counting(true);
    let allocs: Vec<f64> = modes
        .iter()
        .map(|&(mode, _)| run(&rt, COUNTED, mode).0)
        .collect();
    println!(
        "{requests} timed requests per dispatch, {CLIENTS} clients, {SLOTS} ring slots, {workers} worker(s)"
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "dispatch", "allocs/req", "requests/s"
    );
    for ((_, name), (allocs, rate)) in modes.iter().zip(allocs.iter().zip(&rates)) {
        println!("{name:<34} {allocs:>12.4} {rate:>14.0}");
    }
    println!(
        "(requests/s from the timed pass; allocs/req from a separate pass of {COUNTED} requests \
         with the counters on, counting the whole process, {CLIENTS} client task spawns included)"
    );
    let s = HANDLERS.stats();
    println!(
        "ring: {} gets, {} waits, {} slots made",
        s.get_count, s.wait_count, s.created_count
    );
    let s = WORKER_HANDLERS.stats();
    println!(
        "worker pool: {} gets, {} slots made, hit rate {:.4}",
        s.get_count,
        s.created_count,
        s.hit_rate()
    );
}
