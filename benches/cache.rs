//! `PooledCache` beside the Go design (`RwLock<HashMap<K, V>>`), `dashmap`
//! and `moka`'s sync cache: 90% reads / 10% writes and 50/50, over 10,000
//! `u64` keys holding 64-byte `Vec<u8>` values, at 1 and 2 threads.
//!
//! Groups are `cache_{read90,read50}_{1_thread,2_threads}`, with one
//! function per contestant:
//!
//! - `capacitor_pool`: [`PooledCache`] with its defaults (foldhash, four
//!   shards per CPU); a read is `view` (no clone), a write is
//!   `insert_with`, which refills the key's old value in place.
//! - `rwlock_hashmap` / `rwlock_hashmap_foldhash`: one `RwLock` around a std
//!   `HashMap`, with std's SipHash or with foldhash; a write allocates a
//!   new value and `insert`s it (dropping the old one), as idiomatic Rust
//!   does (the Go original takes entries from a `sync.Pool`).
//! - `dashmap` / `dashmap_foldhash`: `DashMap` with its default SipHash or
//!   with foldhash (same shard count as ours on this machine: four per CPU);
//!   reads borrow through the `Ref` guard, writes `insert` a new value.
//! - `dashmap_foldhash_in_place`: as above, but a write overwrites the
//!   existing value in place through `get_mut` (no allocation): the fairest
//!   structural comparison.
//! - `moka`: `moka::sync::Cache<u64, Arc<Vec<u8>>>` with the same bound;
//!   `get` clones the `Arc` (moka has no borrowing read), a write inserts a
//!   new `Arc<Vec<u8>>`.
//!
//! Every contestant holds every key before timing starts; the bounded ones
//! (ours and moka) get a bound of 16,384 entries, above the key count, so
//! the mixes measure hits and overwrites, not eviction policy. Keys come
//! from a xorshift generator per thread; a read touches the value's first
//! byte.
//!
//! At 2 threads each thread runs `iters` ops at once (they start together
//! at a `Barrier`; spawning is outside the timed region), and the time per
//! iteration is the slower thread's time per op: what one op costs while
//! another thread works on the same cache. Before the groups, `main` prints
//! each contestant's allocations per overwrite of an existing key.
//!
//! ```text
//! cargo bench --bench cache -- --warm-up-time 1 --measurement-time 3
//! cargo bench --bench cache -- cache_read90_2   # one group
//! ```

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::{Arc, Barrier, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use capacitor_pool::PooledCache;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use dashmap::DashMap;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// The key space.
const KEYS: u64 = 10_000;
/// The bound of the bounded contestants: above the key count.
const BOUND: usize = 16_384;
/// Bytes per value.
const VALUE_LEN: usize = 64;
/// Ops each thread runs before the barrier of a timed multi-thread run.
const THREAD_WARM_OPS: u64 = 256;

/// A cache under test.
trait Contestant: Sync {
    /// Reads `key`'s value; returns its first byte (0 on a miss).
    fn read(&self, key: u64) -> u8;
    /// Sets `key`'s value to `VALUE_LEN` copies of `byte`.
    fn write(&self, key: u64, byte: u8);
}

impl Contestant for PooledCache<u64, Vec<u8>> {
    #[inline]
    fn read(&self, key: u64) -> u8 {
        self.view(&key, |v| v[0]).unwrap_or(0)
    }

    #[inline]
    fn write(&self, key: u64, byte: u8) {
        self.insert_with(key, |v| v.resize(VALUE_LEN, byte));
    }
}

impl<S: BuildHasher + Sync + Send> Contestant for RwLock<HashMap<u64, Vec<u8>, S>> {
    #[inline]
    fn read(&self, key: u64) -> u8 {
        self.read().unwrap().get(&key).map_or(0, |v| v[0])
    }

    #[inline]
    fn write(&self, key: u64, byte: u8) {
        let value = vec![byte; VALUE_LEN];
        drop(self.write().unwrap().insert(key, value));
    }
}

impl<S: BuildHasher + Clone + Sync + Send> Contestant for DashMap<u64, Vec<u8>, S> {
    #[inline]
    fn read(&self, key: u64) -> u8 {
        self.get(&key).map_or(0, |v| v[0])
    }

    #[inline]
    fn write(&self, key: u64, byte: u8) {
        drop(self.insert(key, vec![byte; VALUE_LEN]));
    }
}

/// `DashMap` with writes that overwrite the value in place.
struct DashMapInPlace(DashMap<u64, Vec<u8>, foldhash::fast::RandomState>);

impl Contestant for DashMapInPlace {
    #[inline]
    fn read(&self, key: u64) -> u8 {
        self.0.get(&key).map_or(0, |v| v[0])
    }

    #[inline]
    fn write(&self, key: u64, byte: u8) {
        match self.0.get_mut(&key) {
            Some(mut v) => {
                v.clear();
                v.resize(VALUE_LEN, byte);
            }
            None => drop(self.0.insert(key, vec![byte; VALUE_LEN])),
        }
    }
}

impl Contestant for moka::sync::Cache<u64, Arc<Vec<u8>>> {
    #[inline]
    fn read(&self, key: u64) -> u8 {
        self.get(&key).map_or(0, |v| v[0])
    }

    #[inline]
    fn write(&self, key: u64, byte: u8) {
        self.insert(key, Arc::new(vec![byte; VALUE_LEN]));
    }
}

/// The next xorshift64 state.
#[inline(always)]
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// One op of the mix: a read `read_pct`% of the time, else a write.
#[inline(always)]
fn op<C: Contestant + ?Sized>(c: &C, x: &mut u64, read_pct: u64) {
    *x = xorshift(*x);
    let key = *x % KEYS;
    if (*x >> 48) % 100 < read_pct {
        black_box(c.read(key));
    } else {
        c.write(key, (*x >> 40) as u8);
    }
}

fn filled<C: Contestant>(c: C) -> C {
    for key in 0..KEYS {
        c.write(key, key as u8);
    }
    c
}

fn contestants() -> Vec<(&'static str, Box<dyn Contestant>)> {
    let fold = foldhash::fast::RandomState::default;
    vec![
        (
            "capacitor_pool",
            Box::new(filled(PooledCache::<u64, Vec<u8>>::new(BOUND).unwrap())),
        ),
        (
            "rwlock_hashmap",
            Box::new(filled(RwLock::new(HashMap::<u64, Vec<u8>>::new()))),
        ),
        (
            "rwlock_hashmap_foldhash",
            Box::new(filled(RwLock::new(HashMap::with_hasher(fold())))),
        ),
        ("dashmap", Box::new(filled(DashMap::<u64, Vec<u8>>::new()))),
        (
            "dashmap_foldhash",
            Box::new(filled(DashMap::with_hasher(fold()))),
        ),
        (
            "dashmap_foldhash_in_place",
            Box::new(filled(DashMapInPlace(DashMap::with_hasher(fold())))),
        ),
        (
            "moka",
            Box::new(filled(moka::sync::Cache::<u64, Arc<Vec<u8>>>::new(
                BOUND as u64,
            ))),
        ),
    ]
}

/// Runs `iters` ops on each of `threads` threads at once; the slowest
/// thread's time.
fn run_threads(c: &dyn Contestant, threads: usize, iters: u64, read_pct: u64) -> Duration {
    let barrier = Barrier::new(threads);
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut x = 0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
                    for _ in 0..THREAD_WARM_OPS {
                        op(c, &mut x, read_pct);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(c, &mut x, read_pct);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or_default()
    })
}

fn bench_group(
    group: &mut BenchmarkGroup<'_, WallTime>,
    contestants: &[(&'static str, Box<dyn Contestant>)],
    threads: usize,
    read_pct: u64,
) {
    for (name, c) in contestants {
        let c = &**c;
        if threads == 1 {
            group.bench_function(*name, |b| {
                let mut x = 0x9e37_79b9_7f4a_7c15_u64;
                b.iter(|| op(c, &mut x, read_pct));
            });
        } else {
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| run_threads(c, threads, iters, read_pct));
            });
        }
    }
}

/// Allocations per overwrite of an existing key, after a warm-up.
fn print_alloc_table(contestants: &[(&'static str, Box<dyn Contestant>)]) {
    const OPS: u64 = 10_000;
    println!("allocations per overwrite of an existing key ({OPS} overwrites):");
    for (name, c) in contestants {
        for key in 0..KEYS {
            c.write(key, 1);
        }
        let before = counting_alloc::thread_allocs();
        for i in 0..OPS {
            c.write(i % KEYS, i as u8);
        }
        let per_op = (counting_alloc::thread_allocs() - before) as f64 / OPS as f64;
        println!("  {name:<28} {per_op:.2}");
    }
}

fn main() {
    let contestants = contestants();
    if !std::env::args().any(|arg| arg == "--list") {
        print_alloc_table(&contestants);
    }
    // Timed from here on: the allocator keeps only its per-thread count, so
    // contestants that allocate pay the system allocator's cost, not the
    // shared counters' atomics.
    counting_alloc::set_shared_counting(false);
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .without_plots()
        .configure_from_args();
    for (read_pct, mix) in [(90, "read90"), (50, "read50")] {
        for (threads, label) in [(1, "1_thread"), (2, "2_threads")] {
            let mut group = c.benchmark_group(format!("cache_{mix}_{label}"));
            bench_group(&mut group, &contestants, threads, read_pct);
            group.finish();
        }
    }
    c.final_summary();
}
