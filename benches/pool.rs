//! The Go guide's `BenchmarkPoolVsNew` in Rust: make a buffer, write
//! `"test"` into it, read it back, versus taking it from a pool; for a small
//! `Vec<u8>` (64 bytes of capacity) and a 4 KiB `BytesMut`, beside a
//! `Mutex<Vec<T>>` pool and the peer crates, at 1 and at 2 threads.
//!
//! Groups are `pool_{small,4k}_{1_thread,2_threads}`, with one function per
//! contestant: `new` (make and drop each time), `capacitor_pool`,
//! `mutex_vec`, `object_pool`, `lockfree_linear`, `lockfree_spinlock`,
//! `opool` and `crossbeam_array_queue`. Every contestant clears the buffer
//! before its next user sees it (the crate's guard does it on drop); the
//! bounded ones keep at most [`DEFAULT_MAX_IDLE`] idle objects.
//!
//! At 2 threads each thread runs `iters` ops at once (they start together
//! at a `Barrier`; thread spawning is outside the timed region), and the
//! time reported per iteration is the slower thread's time per op: what one
//! op costs while another thread is busy with the same pool.
//!
//! Before the groups run, `main` prints the allocations per op of each
//! contestant (allocations and reallocations, counted by the counting
//! allocator, over 10,000 ops per thread after a warm-up).
//!
//! ```text
//! cargo bench --bench pool                  # everything
//! cargo bench --bench pool -- pool_4k_2     # one group
//! python3 scripts/bench_ratios.py pool_     # ratios to capacitor_pool
//! ```

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::hint::black_box;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use capacitor_pool::pool::DEFAULT_MAX_IDLE;
use capacitor_pool::{Pool, Reset};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use crossbeam_queue::ArrayQueue;
use lockfree_object_pool::{LinearObjectPool, SpinLockObjectPool};

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// Ops per thread in the allocation count.
const COUNT_OPS: u64 = 10_000;
/// Ops per thread run before anything is counted or timed.
const WARM_OPS: u64 = 10_000;
/// Ops each thread runs before the barrier of a timed multi-thread run.
const THREAD_WARM_OPS: u64 = 64;

/// The pooled object: a buffer that can be made, written and cleared.
trait Buf: Deref<Target = [u8]> + Reset + Send + Sync + 'static {
    /// A fresh buffer.
    fn make() -> Self;
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]);
    /// Clears the buffer, keeping its capacity.
    fn clear_buf(&mut self);
}

/// "small": a `Vec<u8>` with 64 bytes of capacity.
impl Buf for Vec<u8> {
    #[inline]
    fn make() -> Self {
        Vec::with_capacity(64)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn clear_buf(&mut self) {
        self.clear();
    }
}

/// "4k": a `BytesMut` with 4 KiB of capacity.
impl Buf for BytesMut {
    #[inline]
    fn make() -> Self {
        BytesMut::with_capacity(4096)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }

    #[inline]
    fn clear_buf(&mut self) {
        self.clear();
    }
}

/// The work done with a buffer, whatever its source: write "test", read it
/// back.
#[inline(always)]
fn use_buf<T: Buf>(buf: &mut T) {
    buf.write(b"test");
    black_box(&buf[..]);
}

/// One way to get a buffer, use it and give it up.
trait Contestant: Sync {
    /// Gets a buffer, uses it, resets it and returns it (or drops it).
    fn op(&self);
}

/// `new`: make a buffer and drop it, every time.
struct New<T>(PhantomData<fn() -> T>);

impl<T: Buf> Contestant for New<T> {
    #[inline(always)]
    fn op(&self) {
        let mut buf = T::make();
        use_buf(&mut buf);
    }
}

/// `capacitor_pool`: this crate's `Pool` (the guard resets on drop).
struct Capacitor<T: Buf>(Pool<T>);

impl<T: Buf> Contestant for Capacitor<T> {
    #[inline(always)]
    fn op(&self) {
        let mut buf = self.0.get();
        use_buf(&mut *buf);
    }
}

/// `mutex_vec`: a `Mutex<Vec<T>>`, popped or made, cleared and pushed back
/// (dropped when it holds `DEFAULT_MAX_IDLE`).
struct MutexVec<T>(Mutex<Vec<T>>);

impl<T: Buf> Contestant for MutexVec<T> {
    #[inline(always)]
    fn op(&self) {
        let idle = self.0.lock().unwrap().pop();
        let mut buf = idle.unwrap_or_else(T::make);
        use_buf(&mut buf);
        buf.clear_buf();
        let mut idle = self.0.lock().unwrap();
        if idle.len() < DEFAULT_MAX_IDLE {
            idle.push(buf);
        } else {
            drop(idle);
            drop(buf);
        }
    }
}

/// `object_pool`: `object_pool::Pool` (a `parking_lot` mutex over a `Vec`,
/// unbounded); cleared by hand before the guard gives it back.
struct ObjectPool<T>(object_pool::Pool<T>);

impl<T: Buf> Contestant for ObjectPool<T> {
    #[inline(always)]
    fn op(&self) {
        let mut buf = self.0.pull(T::make);
        use_buf(&mut *buf);
        buf.clear_buf();
    }
}

/// `lockfree_linear`: `lockfree_object_pool::LinearObjectPool`, which
/// resets on drop.
struct LockfreeLinear<T>(LinearObjectPool<T>);

impl<T: Buf> Contestant for LockfreeLinear<T> {
    #[inline(always)]
    fn op(&self) {
        let mut buf = self.0.pull();
        use_buf(&mut *buf);
    }
}

/// `lockfree_spinlock`: `lockfree_object_pool::SpinLockObjectPool`, which
/// resets on drop.
struct LockfreeSpinLock<T>(SpinLockObjectPool<T>);

impl<T: Buf> Contestant for LockfreeSpinLock<T> {
    #[inline(always)]
    fn op(&self) {
        let mut buf = self.0.pull();
        use_buf(&mut *buf);
    }
}

/// `opool`'s allocator for our buffers; opool resets an object when it is
/// taken, not when it is returned.
struct OpoolAlloc<T>(PhantomData<fn() -> T>);

impl<T: Buf> opool::PoolAllocator<T> for OpoolAlloc<T> {
    #[inline]
    fn allocate(&self) -> T {
        T::make()
    }

    #[inline]
    fn reset(&self, buf: &mut T) {
        buf.clear_buf();
    }
}

/// `opool`: `opool::Pool` (an `ArrayQueue` of `DEFAULT_MAX_IDLE`).
struct Opool<T: Buf>(opool::Pool<OpoolAlloc<T>, T>);

impl<T: Buf> Contestant for Opool<T> {
    #[inline(always)]
    fn op(&self) {
        let mut buf = self.0.get();
        use_buf(&mut *buf);
    }
}

/// `crossbeam_array_queue`: an `ArrayQueue<T>` of `DEFAULT_MAX_IDLE`,
/// popped or made, cleared and pushed back (dropped when full).
struct CrossbeamArrayQueue<T>(ArrayQueue<T>);

impl<T: Buf> Contestant for CrossbeamArrayQueue<T> {
    #[inline(always)]
    fn op(&self) {
        let mut buf = self.0.pop().unwrap_or_else(T::make);
        use_buf(&mut buf);
        buf.clear_buf();
        let _ = self.0.push(buf); // full: dropped
    }
}

/// Something done with each contestant in turn.
trait Visit {
    fn visit<C: Contestant>(&mut self, name: &'static str, contestant: C);
}

/// Hands each contestant, freshly built for buffers of type `T`, to `v`.
fn contestants<T: Buf, V: Visit>(v: &mut V) {
    v.visit("new", New::<T>(PhantomData));
    v.visit("capacitor_pool", Capacitor(Pool::new(T::make)));
    v.visit("mutex_vec", MutexVec::<T>(Mutex::new(Vec::new())));
    v.visit(
        "object_pool",
        ObjectPool(object_pool::Pool::new(0, T::make)),
    );
    v.visit(
        "lockfree_linear",
        LockfreeLinear(LinearObjectPool::new(T::make, T::clear_buf)),
    );
    v.visit(
        "lockfree_spinlock",
        LockfreeSpinLock(SpinLockObjectPool::new(T::make, T::clear_buf)),
    );
    v.visit(
        "opool",
        Opool(opool::Pool::new(
            DEFAULT_MAX_IDLE,
            OpoolAlloc::<T>(PhantomData),
        )),
    );
    v.visit(
        "crossbeam_array_queue",
        CrossbeamArrayQueue::<T>(ArrayQueue::new(DEFAULT_MAX_IDLE)),
    );
}

/// What one thread of a run measured.
struct ThreadRun {
    elapsed: Duration,
    allocs: u64,
}

/// Runs `iters` ops on each of `threads` scoped threads at once: each warms
/// up with `THREAD_WARM_OPS` ops, waits at a barrier, then times its ops and
/// counts its own allocations.
fn run_threads<C: Contestant>(contestant: &C, threads: usize, iters: u64) -> Vec<ThreadRun> {
    let barrier = Barrier::new(threads);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    for _ in 0..THREAD_WARM_OPS {
                        contestant.op();
                    }
                    barrier.wait();
                    let allocs = counting_alloc::thread_allocs();
                    let start = Instant::now();
                    for _ in 0..iters {
                        contestant.op();
                    }
                    let elapsed = start.elapsed();
                    ThreadRun {
                        elapsed,
                        allocs: counting_alloc::thread_allocs() - allocs,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    })
}

/// Brings a contestant to its steady state for `threads` threads.
fn warm<C: Contestant>(contestant: &C, threads: usize) {
    if threads == 1 {
        for _ in 0..WARM_OPS {
            contestant.op();
        }
    } else {
        run_threads(contestant, threads, WARM_OPS);
    }
}

/// The thread counts benched, with the names their groups end with.
const THREADS: [(usize, &str); 2] = [(1, "1_thread"), (2, "2_threads")];

/// Allocations per op of each contestant, at each thread count.
#[derive(Default)]
struct AllocCount {
    rows: Vec<(&'static str, [f64; THREADS.len()])>,
}

impl Visit for AllocCount {
    fn visit<C: Contestant>(&mut self, name: &'static str, contestant: C) {
        let mut per_op = [0.0; THREADS.len()];
        for (slot, &(threads, _)) in per_op.iter_mut().zip(&THREADS) {
            warm(&contestant, threads);
            let allocs: u64 = run_threads(&contestant, threads, COUNT_OPS)
                .iter()
                .map(|run| run.allocs)
                .sum();
            *slot = allocs as f64 / (COUNT_OPS * threads as u64) as f64;
        }
        self.rows.push((name, per_op));
    }
}

fn print_alloc_table() {
    println!(
        "allocations per op (allocs + reallocs per thread, {COUNT_OPS} ops per thread after warm-up)"
    );
    print!("{:<6} {:<22}", "kind", "contestant");
    for (_, label) in THREADS {
        print!(" {label:>10}");
    }
    println!();
    for kind in ["small", "4k"] {
        let mut count = AllocCount::default();
        match kind {
            "small" => contestants::<Vec<u8>, _>(&mut count),
            _ => contestants::<BytesMut, _>(&mut count),
        }
        for (name, per_op) in count.rows {
            print!("{kind:<6} {name:<22}");
            for x in per_op {
                print!(" {x:>10.4}");
            }
            println!();
        }
    }
    println!();
}

/// Benches each contestant in one group.
struct Bench<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    threads: usize,
}

impl Visit for Bench<'_, '_> {
    fn visit<C: Contestant>(&mut self, name: &'static str, contestant: C) {
        let threads = self.threads;
        // Warmed in the closure, so that a contestant the filter skips is not.
        let mut warmed = false;
        self.group.bench_function(name, |b| {
            if !warmed {
                warm(&contestant, threads);
                warmed = true;
            }
            if threads == 1 {
                b.iter(|| contestant.op());
            } else {
                b.iter_custom(|iters| {
                    run_threads(&contestant, threads, iters)
                        .iter()
                        .map(|run| run.elapsed)
                        .max()
                        .unwrap_or_default()
                });
            }
        });
    }
}

fn bench_kind<T: Buf>(c: &mut Criterion, kind: &str) {
    for (threads, label) in THREADS {
        let mut group = c.benchmark_group(format!("pool_{kind}_{label}"));
        contestants::<T, _>(&mut Bench {
            group: &mut group,
            threads,
        });
        group.finish();
    }
}

fn main() {
    if !std::env::args().any(|arg| arg == "--list") {
        print_alloc_table();
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
    bench_kind::<Vec<u8>>(&mut c, "small");
    bench_kind::<BytesMut>(&mut c, "4k");
    c.final_summary();
}
