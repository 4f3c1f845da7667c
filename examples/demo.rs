//! The tour: a handler-like workload on a multi-thread tokio runtime, run
//! with a fresh allocation per request and with the crate's pools, ending
//! with a side-by-side table.
//!
//! Run it with `cargo run --release --example demo` (`-- --help` for the
//! flags). Each "request" takes a 4 KiB buffer, fills it, crosses an
//! `.await` now and then, checksums it and drops it, in many tasks at once.

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use capacitor_pool::{Pool, PoolStats, WorkerPool};

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

const BUF_CAPACITY: usize = 4096;

static POOL: LazyLock<Pool<BytesMut>> =
    LazyLock::new(|| Pool::new(|| BytesMut::with_capacity(BUF_CAPACITY)));

static WORKER_POOL: LazyLock<WorkerPool<BytesMut>> = LazyLock::new(|| {
    WorkerPool::builder(|| BytesMut::with_capacity(BUF_CAPACITY))
        // Room for every worker thread this process may number.
        .workers(64)
        .build()
});

struct Args {
    ops: u64,
    tasks: u64,
    workers: usize,
    payload: usize,
}

const USAGE: &str = "usage: demo [--ops N] [--tasks N] [--workers N] [--payload BYTES]

  --ops N          requests per run (default 2000000)
  --tasks N        concurrent handler tasks (default 64)
  --workers N      tokio worker threads (default: number of CPUs)
  --payload BYTES  bytes written into each buffer, at most 4096 (default 512)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        ops: 2_000_000,
        tasks: 64,
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        payload: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag} takes a whole number, not {value:?}"))?;
        match flag.as_str() {
            "--ops" => args.ops = number,
            "--tasks" => args.tasks = number,
            "--workers" => args.workers = number as usize,
            "--payload" => args.payload = number as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.ops == 0 || args.tasks == 0 || args.workers == 0 {
        return Err("--ops, --tasks and --workers must be at least 1".into());
    }
    if args.payload > BUF_CAPACITY {
        return Err(format!("--payload must be at most {BUF_CAPACITY}"));
    }
    Ok(args)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Allocate,
    Pool,
    WorkerPool,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Allocate => "allocate per request",
            Mode::Pool => "Pool<BytesMut>",
            Mode::WorkerPool => "WorkerPool<BytesMut>",
        }
    }
}

/// One request: take a buffer, fill it, maybe await, use it, drop it.
async fn handle(mode: Mode, request: u64, payload: usize) -> u64 {
    let fill = |buf: &mut BytesMut| {
        for i in 0..payload / 8 {
            buf.put_u64(request ^ i as u64);
        }
    };
    let sum = |buf: &BytesMut| buf.iter().fold(0u64, |a, &b| a.wrapping_add(b as u64));
    let yield_now = request % 16 == 0;
    match mode {
        Mode::Allocate => {
            let mut buf = BytesMut::with_capacity(BUF_CAPACITY);
            fill(&mut buf);
            if yield_now {
                tokio::task::yield_now().await;
            }
            sum(&buf)
        }
        Mode::Pool => {
            let mut buf = POOL.get();
            fill(&mut buf);
            if yield_now {
                tokio::task::yield_now().await;
            }
            sum(&buf)
        }
        Mode::WorkerPool => {
            let mut buf = WORKER_POOL.get();
            fill(&mut buf);
            if yield_now {
                tokio::task::yield_now().await;
            }
            sum(&buf)
        }
    }
}

struct Row {
    mode: Mode,
    elapsed: Duration,
    allocs: u64,
    stats: Option<PoolStats>,
}

fn run(rt: &tokio::runtime::Runtime, mode: Mode, args: &Args) -> Row {
    let per_task = args.ops.div_ceil(args.tasks);
    let payload = args.payload;
    let spawn_all = |ops: u64| {
        let tasks: Vec<_> = (0..args.tasks)
            .map(|t| {
                rt.spawn(async move {
                    let mut acc = 0u64;
                    for i in 0..ops {
                        acc = acc.wrapping_add(handle(mode, t * ops + i, payload).await);
                    }
                    acc
                })
            })
            .collect();
        rt.block_on(async {
            for t in tasks {
                black_box(t.await.expect("handler task panicked"));
            }
        });
    };
    // Warm up: the pool fills, the runtime's own structures settle.
    spawn_all(per_task.min(1000));
    let pool_stats = || match mode {
        Mode::Allocate => None,
        Mode::Pool => Some(POOL.stats()),
        Mode::WorkerPool => Some(WORKER_POOL.stats()),
    };
    let stats_before = pool_stats();
    let allocs_before = counting_alloc::allocs();
    let start = Instant::now();
    spawn_all(per_task);
    let elapsed = start.elapsed();
    let allocs = counting_alloc::allocs() - allocs_before;
    let stats = stats_before.zip(pool_stats()).map(|(before, after)| {
        let mut d = after;
        d.get_count = after.get_count - before.get_count;
        d.hit_count = after.hit_count - before.hit_count;
        d.miss_count = after.miss_count - before.miss_count;
        d
    });
    Row {
        mode,
        elapsed,
        allocs,
        stats,
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("demo: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ops = args.tasks * args.ops.div_ceil(args.tasks);
    println!(
        "capacitor-pool demo: {ops} requests, {} tasks, {} workers, {} B written into 4 KiB buffers\n",
        args.tasks, args.workers, args.payload
    );
    let rows: Vec<Row> = [Mode::Allocate, Mode::Pool, Mode::WorkerPool]
        .into_iter()
        .map(|mode| run(&rt, mode, &args))
        .collect();

    println!(
        "{:<22} {:>14} {:>10} {:>12} {:>9}",
        "buffers from", "requests/s", "ns/req", "allocs/req", "hit rate"
    );
    let base = rows[0].elapsed.as_secs_f64();
    for row in &rows {
        let secs = row.elapsed.as_secs_f64();
        let hit = row
            .stats
            .map_or("-".to_string(), |s| format!("{:.2}%", s.hit_rate() * 100.0));
        println!(
            "{:<22} {:>14.0} {:>10.1} {:>12.4} {:>9}   ({:.2}x)",
            row.mode.name(),
            ops as f64 / secs,
            secs * 1e9 / ops as f64,
            row.allocs as f64 / ops as f64,
            hit,
            base / secs,
        );
    }
    println!(
        "\nallocs/req counts every allocation in the process during the timed run,\n\
         including the {} task spawns of the harness itself.",
        args.tasks
    );
    println!("Pool:       {}", POOL.stats());
    println!("WorkerPool: {}", WORKER_POOL.stats());
    ExitCode::SUCCESS
}
