//! `WorkerPool` on tokio workers: get a 4 KiB `BytesMut`, write `"test"`
//! into it, read it back, give it up; beside this crate's `Pool`, a
//! `Mutex<Vec<T>>` pool, the peer crates and allocate-and-drop, with a floor
//! (the same work on one buffer the task already owns).
//!
//! The work runs in tasks spawned on one multi-thread runtime with 2 worker
//! threads (criterion's own async loop would run it on the `block_on`
//! thread, which is not a worker and has no magazine). Each timed run
//! spawns its tasks from the bench thread, outside the timed region; each
//! task warms up, waits at a `std::sync::Barrier`, then times `iters` ops in
//! a tight loop with no `.await`, so it keeps its worker thread to itself.
//!
//! Groups, one function per contestant:
//!
//! - `worker_4k_1_worker`: one task. Contestants: `floor`, `tls_slot` (a
//!   reference: one buffer parked in a thread-local, the least any pool
//!   can do), `new`,
//!   `worker_pool` (a `WorkerPool` in an `Arc`),
//!   `worker_pool_hold_warning` (the same, built with a 10 s
//!   `hold_warning`: long-hold detection on, every get records its call
//!   site and time and every drop removes them, nothing is ever flagged),
//!   `worker_pool_pair` (two buffers of one `WorkerPool` held at once, one
//!   op per pair), `worker_static` (a
//!   `WorkerPool` declared with `worker_pool!`, whose private slot is a
//!   thread-local of its own), `capacitor_pool`, `mutex_vec`,
//!   `object_pool`, `lockfree_linear`, `opool`, `sharded_slab`.
//! - `worker_4k_2_workers`: two tasks at once, the same contestants. A task
//!   blocked at the barrier holds its worker thread, so the two tasks run on
//!   the two workers (checked). The time per iteration is the slower task's
//!   time per op: what one op costs while the other worker is busy with the
//!   same pool.
//! - `worker_4k_cross_worker`: a producer task gets buffers, writes
//!   `"test"` and hands them over through a bounded queue (a crossbeam
//!   `ArrayQueue` of 64, spun on while full or empty); a consumer task on
//!   the other worker reads them and gives them up there (for `WorkerPool`,
//!   into the consumer's magazine). The time per iteration is the
//!   consumer's time per transfer, handoff included. The handoff spins
//!   rather than blocks: the park/unpark of a blocking channel such as
//!   `std::sync::mpsc::sync_channel` costs about a microsecond per
//!   transfer, whatever the pool, and each task has a worker thread to
//!   itself. Contestants whose objects can cross in a `'static` `Send`
//!   guard or by value: `new`, `worker_pool`, `worker_pool_hold_warning`
//!   and `capacitor_pool` (their `get_owned`), `worker_static` (its
//!   `'static` guards), `mutex_vec`,
//!   `object_pool` (`pull_owned`) and `lockfree_linear` (`pull_owned`).
//!
//! Every contestant clears the buffer before its next user sees it (the
//! crate's guards do it on drop); `mutex_vec` and `opool` keep at most
//! `DEFAULT_MAX_IDLE` idle objects. Each pool is built once per group,
//! in an `Arc`, and warmed from tasks on the workers before it is timed.
//!
//! Before the groups run, `main` prints the allocations per op of each
//! contestant (allocations and reallocations, counted by the counting
//! allocator on the worker threads, over 10,000 ops per task after a
//! warm-up; for the cross-worker case, both tasks' allocations per
//! transfer).
//!
//! ```text
//! cargo bench --bench worker                       # everything
//! cargo bench --bench worker -- worker_4k_cross    # one group
//! python3 scripts/bench_ratios.py worker --base worker_pool
//! ```
//!
//! The contestants, each an adapter to the same `Contestant` trait, are in
//! `contestants.rs`; this file runs them.

mod contestants;
#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::sync::{Arc, Barrier};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use tokio::runtime::Runtime;

use contestants::{Contestant, Cross, Visit, contestants};

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// Worker threads of the runtime: 2, or `BENCH_WORKERS` (for scaling runs
/// on a larger machine, which add groups for 4, 8, ... busy workers).
fn workers() -> usize {
    static WORKERS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
        std::env::var("BENCH_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n >= 2)
            .unwrap_or(2)
    });
    *WORKERS
}

/// Ops (or transfers) per task in the allocation count.
const COUNT_OPS: u64 = 10_000;
/// Ops (or transfers) per task run before anything is counted or timed.
const WARM_OPS: u64 = 10_000;
/// Ops each task runs before the barrier of a timed run.
const TASK_WARM_OPS: u64 = 64;
/// Capacity of the cross-worker queue.
const QUEUE_CAP: usize = 64;

/// The runtime the work runs on: `workers()` worker threads.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What one task of a run measured.
struct TaskRun {
    elapsed: Duration,
    allocs: u64,
    thread: ThreadId,
}

/// Spawns `tasks` tasks on `rt` (from the bench thread, which is not a
/// worker) that run `iters` ops at once: each warms up with `TASK_WARM_OPS`
/// ops, waits at a barrier, then times its ops and counts its own
/// allocations. Tasks never `.await` once started, so each keeps its worker
/// thread; blocked at the barrier, a task holds its worker, which makes the
/// tasks of one run land on different workers.
fn run_tasks<C: Contestant>(
    rt: &Runtime,
    contestant: &Arc<C>,
    tasks: usize,
    iters: u64,
) -> Vec<TaskRun> {
    assert!(tasks <= workers(), "one task per worker at most");
    let barrier = Arc::new(Barrier::new(tasks));
    let runs: Vec<TaskRun> = rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let contestant = Arc::clone(contestant);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    let mut local = contestant.local();
                    for _ in 0..TASK_WARM_OPS {
                        contestant.op(&mut local);
                    }
                    barrier.wait();
                    let allocs = counting_alloc::thread_allocs();
                    let start = Instant::now();
                    for _ in 0..iters {
                        contestant.op(&mut local);
                    }
                    let elapsed = start.elapsed();
                    TaskRun {
                        elapsed,
                        allocs: counting_alloc::thread_allocs() - allocs,
                        thread: thread::current().id(),
                    }
                })
            })
            .collect();
        let mut runs = Vec::with_capacity(tasks);
        for h in handles {
            runs.push(h.await.expect("bench task panicked"));
        }
        runs
    });
    check_distinct(&runs);
    runs
}

/// Asserts that the tasks of a run ran on different worker threads.
fn check_distinct(runs: &[TaskRun]) {
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            assert_ne!(a.thread, b.thread, "two bench tasks shared a worker");
        }
    }
}

/// Pushes `item` onto the queue, spinning (then yielding) while it is full.
#[inline]
fn send<T>(queue: &ArrayQueue<T>, mut item: T) {
    let backoff = Backoff::new();
    while let Err(back) = queue.push(item) {
        item = back;
        backoff.snooze();
    }
}

/// Pops an item off the queue, spinning (then yielding) while it is empty.
#[inline]
fn recv<T>(queue: &ArrayQueue<T>) -> T {
    let backoff = Backoff::new();
    loop {
        if let Some(item) = queue.pop() {
            return item;
        }
        backoff.snooze();
    }
}

/// Runs `iters` transfers from a producer task to a consumer task on the
/// other worker, through an `ArrayQueue` of `QUEUE_CAP`: the producer
/// takes buffers and sends them, the consumer gives them up. Both wait at a
/// barrier (which puts them on different workers), transfer
/// `TASK_WARM_OPS` buffers, wait again, then time and count. Spinning in
/// `send`/`recv` is fine here: each task has a worker thread to itself.
fn run_cross<C: Cross>(rt: &Runtime, contestant: &Arc<C>, iters: u64) -> Vec<TaskRun> {
    let barrier = Arc::new(Barrier::new(2));
    let queue = Arc::new(ArrayQueue::<C::Item>::new(QUEUE_CAP));
    let (tx, rx) = (Arc::clone(&queue), queue);
    let runs: Vec<TaskRun> = rt.block_on(async {
        let producer = {
            let contestant = Arc::clone(contestant);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait();
                for _ in 0..TASK_WARM_OPS {
                    send(&tx, contestant.take());
                }
                barrier.wait();
                let allocs = counting_alloc::thread_allocs();
                let start = Instant::now();
                for _ in 0..iters {
                    send(&tx, contestant.take());
                }
                let elapsed = start.elapsed();
                TaskRun {
                    elapsed,
                    allocs: counting_alloc::thread_allocs() - allocs,
                    thread: thread::current().id(),
                }
            })
        };
        let consumer = {
            let contestant = Arc::clone(contestant);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait();
                for _ in 0..TASK_WARM_OPS {
                    contestant.give(recv(&rx));
                }
                barrier.wait();
                let allocs = counting_alloc::thread_allocs();
                let start = Instant::now();
                for _ in 0..iters {
                    contestant.give(recv(&rx));
                }
                let elapsed = start.elapsed();
                TaskRun {
                    elapsed,
                    allocs: counting_alloc::thread_allocs() - allocs,
                    thread: thread::current().id(),
                }
            })
        };
        vec![
            producer.await.expect("producer panicked"),
            consumer.await.expect("consumer panicked"),
        ]
    });
    check_distinct(&runs);
    runs
}

/// How the work is spread over the workers.
#[derive(Clone, Copy)]
enum Mode {
    /// `n` tasks, each on its own worker, each running its own ops.
    Tasks(usize),
    /// A producer and a consumer on the two workers.
    Cross,
}

/// The modes benched, with the names their groups end with: 1 and 2 busy
/// workers and the cross-worker case, then 4, 8, ... up to `workers()`.
fn modes() -> Vec<(Mode, String)> {
    let mut modes = vec![
        (Mode::Tasks(1), "1_worker".to_string()),
        (Mode::Tasks(2), "2_workers".to_string()),
        (Mode::Cross, "cross_worker".to_string()),
    ];
    let mut n = 4;
    while n <= workers() {
        modes.push((Mode::Tasks(n), format!("{n}_workers")));
        n *= 2;
    }
    modes
}

/// The slowest task's time.
fn slowest(runs: &[TaskRun]) -> Duration {
    runs.iter().map(|run| run.elapsed).max().unwrap_or_default()
}

/// Allocations per op (per transfer in the cross-worker case) of each
/// contestant, in each mode (`None` where it is not run).
struct AllocCount<'r> {
    rt: &'r Runtime,
    modes: Vec<(Mode, String)>,
    rows: Vec<(&'static str, Vec<Option<f64>>)>,
}

impl AllocCount<'_> {
    fn per_op(runs: &[TaskRun], ops: u64) -> f64 {
        runs.iter().map(|run| run.allocs).sum::<u64>() as f64 / ops as f64
    }
}

impl Visit for AllocCount<'_> {
    fn visit<C: Contestant>(&mut self, name: &'static str, contestant: Arc<C>) {
        let mut per_op = vec![None; self.modes.len()];
        for (slot, &(mode, _)) in per_op.iter_mut().zip(&self.modes) {
            if let Mode::Tasks(tasks) = mode {
                run_tasks(self.rt, &contestant, tasks, WARM_OPS);
                let runs = run_tasks(self.rt, &contestant, tasks, COUNT_OPS);
                *slot = Some(Self::per_op(&runs, COUNT_OPS * tasks as u64));
            }
        }
        self.rows.push((name, per_op));
    }

    fn visit_cross<C: Cross>(&mut self, name: &'static str, contestant: Arc<C>) {
        self.visit(name, Arc::clone(&contestant));
        let cross = self
            .modes
            .iter()
            .position(|&(mode, _)| matches!(mode, Mode::Cross))
            .expect("a cross mode");
        run_cross(self.rt, &contestant, WARM_OPS);
        let runs = run_cross(self.rt, &contestant, COUNT_OPS);
        let row = self.rows.last_mut().expect("row just pushed");
        row.1[cross] = Some(Self::per_op(&runs, COUNT_OPS));
    }
}

fn print_alloc_table(rt: &Runtime) {
    println!(
        "allocations per op (allocs + reallocs on the worker threads, per op per task, or per \
         transfer across workers; {COUNT_OPS} ops per task after warm-up)"
    );
    print!("{:<6} {:<24}", "kind", "contestant");
    let modes = modes();
    for (_, label) in &modes {
        print!(" {label:>12}");
    }
    println!();
    let mut count = AllocCount {
        rt,
        modes,
        rows: Vec::new(),
    };
    contestants(&mut count);
    for (name, per_op) in count.rows {
        print!("{:<6} {name:<24}", "4k");
        for x in per_op {
            match x {
                Some(x) => print!(" {x:>12.4}"),
                None => print!(" {:>12}", "-"),
            }
        }
        println!();
    }
    println!();
}

/// Benches each contestant of one mode in one group.
struct Bench<'g, 'c, 'r> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    rt: &'r Runtime,
    mode: Mode,
}

impl Visit for Bench<'_, '_, '_> {
    fn visit<C: Contestant>(&mut self, name: &'static str, contestant: Arc<C>) {
        let Mode::Tasks(tasks) = self.mode else {
            return; // not a cross-worker contestant
        };
        let rt = self.rt;
        // Warmed in the closure, so that a contestant the filter skips is not.
        let mut warmed = false;
        self.group.bench_function(name, |b| {
            if !warmed {
                run_tasks(rt, &contestant, tasks, WARM_OPS);
                warmed = true;
            }
            b.iter_custom(|iters| slowest(&run_tasks(rt, &contestant, tasks, iters)));
        });
    }

    fn visit_cross<C: Cross>(&mut self, name: &'static str, contestant: Arc<C>) {
        if !matches!(self.mode, Mode::Cross) {
            return self.visit(name, contestant);
        }
        let rt = self.rt;
        let mut warmed = false;
        self.group.bench_function(name, |b| {
            if !warmed {
                run_cross(rt, &contestant, WARM_OPS);
                warmed = true;
            }
            b.iter_custom(|iters| slowest(&run_cross(rt, &contestant, iters)));
        });
    }
}

fn main() {
    let rt = runtime();
    if !std::env::args().any(|arg| arg == "--list") {
        print_alloc_table(&rt);
    }
    // Timed from here on: the allocator keeps only its per-thread count, so
    // contestants that allocate pay the system allocator's cost, not the
    // shared counters' atomics.
    counting_alloc::set_shared_counting(false);
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    for (mode, label) in modes() {
        let mut group = c.benchmark_group(format!("worker_4k_{label}"));
        contestants(&mut Bench {
            group: &mut group,
            rt: &rt,
            mode,
        });
        group.finish();
    }
    c.final_summary();
}
