//! Resident memory of a key-value store of values of varied sizes: the
//! same workload on `RwLock<HashMap<u64, Vec<u8>>>` (a new `Vec` per
//! write, as idiomatic Rust does), on `PooledCache` with its defaults, and
//! on `PooledCache` with a recycling policy that never trims a refilled
//! value (each value keeps the largest capacity its slot ever held, where
//! the default policy trims it with `Reset::shrink_excess`).
//!
//! The workload: 10,000 keys, values of 32 B to 16 KiB (uniform), 80% reads
//! and 20% writes of random keys, 400,000 operations after every key was
//! written once. Each contestant runs in a process of its own (this binary
//! again, with `--run NAME`), so resident memory is its own; the runs
//! alternate (plain, pooled, untrimmed, plain, ...) and the table gives
//! medians and ranges of steady resident memory (`VmRSS` at the end,
//! the store still alive) and
//! its high-water mark (`VmHWM`), and the bytes the values' contents take.
//!
//! ```text
//! cargo bench --bench cache_memory            # 5 rounds
//! cargo bench --bench cache_memory -- 9       # 9 rounds
//! ```

use std::collections::HashMap;
use std::process::Command;
use std::sync::RwLock;

use capacitor_pool::{PooledCache, Recycle};

const KEYS: u64 = 10_000;
const OPS: u64 = 400_000;
const MAX_VALUE: usize = 16 * 1024;
const CONTESTANTS: [&str; 3] = ["plain", "pooled", "untrimmed"];

/// xorshift64: the same sequence in every contestant.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn len(&mut self) -> usize {
        32 + (self.next() % (MAX_VALUE as u64 - 32)) as usize
    }
}

/// Resets and reports capacity, but never trims a refilled value.
struct Untrimmed;

impl Recycle<Vec<u8>> for Untrimmed {
    fn reset(&self, v: &mut Vec<u8>) {
        v.clear();
    }

    fn retained_bytes(&self, v: &Vec<u8>) -> usize {
        v.capacity()
    }
}

/// The operations, against one store: `write(key, len)` and `read(key)`
/// (which returns the value's length, or 0).
fn workload(mut write: impl FnMut(u64, usize), mut read: impl FnMut(u64) -> usize) -> usize {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for k in 0..KEYS {
        let len = rng.len();
        write(k, len);
    }
    let mut seen = 0usize;
    for _ in 0..OPS {
        let r = rng.next();
        let key = (r >> 8) % KEYS;
        if r % 10 < 2 {
            let len = rng.len();
            write(key, len);
        } else {
            seen = seen.wrapping_add(read(key));
        }
    }
    // The bytes the values' contents take at the end.
    std::hint::black_box(seen);
    (0..KEYS).map(read).sum::<usize>()
}

/// Runs one contestant; returns the contents' bytes and the resident
/// memory (`VmRSS`, `VmHWM`) read while its store is still alive.
fn run(name: &str) -> (usize, (u64, u64)) {
    match name {
        "plain" => {
            let map = RwLock::new(HashMap::<u64, Vec<u8>>::new());
            let used = workload(
                |k, len| {
                    map.write().unwrap().insert(k, vec![k as u8; len]);
                },
                |k| map.read().unwrap().get(&k).map_or(0, Vec::len),
            );
            (used, resident_kib())
        }
        "pooled" => {
            let cache = PooledCache::<u64, Vec<u8>>::new(2 * KEYS as usize).unwrap();
            let used = workload(
                |k, len| {
                    cache.insert_with(k, |v| v.resize(len, k as u8));
                },
                |k| cache.view(&k, Vec::len).unwrap_or(0),
            );
            (used, resident_kib())
        }
        "untrimmed" => {
            let cache = PooledCache::<u64, Vec<u8>>::builder()
                .max_entries(2 * KEYS as usize)
                .recycler(Untrimmed)
                .build()
                .expect("valid settings");
            let used = workload(
                |k, len| {
                    cache.insert_with(k, |v| v.resize(len, k as u8));
                },
                |k| cache.view(&k, Vec::len).unwrap_or(0),
            );
            (used, resident_kib())
        }
        other => panic!("no contestant {other}"),
    }
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn resident_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median_range(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.1} [{:.1}-{:.1}]", v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--run") {
        let (used, (rss, hwm)) = run(&args[i + 1]);
        println!("{used} {rss} {hwm}");
        return;
    }
    if !cfg!(target_os = "linux") {
        eprintln!("cache_memory reads /proc/self/status: Linux only");
        return;
    }
    // `cargo bench` passes `--bench`; a bare number is the round count.
    let rounds = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(5)
        .max(1);
    let me = std::env::current_exe().expect("this binary");
    let mut results = vec![(Vec::new(), Vec::new(), Vec::new()); CONTESTANTS.len()];
    for round in 0..rounds {
        for (c, name) in CONTESTANTS.iter().enumerate() {
            let out = Command::new(&me)
                .args(["--run", name])
                .output()
                .expect("the contestant runs");
            assert!(out.status.success(), "{name} failed");
            let text = String::from_utf8_lossy(&out.stdout);
            let nums: Vec<f64> = text
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            let [used, rss, hwm] = nums[..] else {
                panic!("{name} printed {text:?}");
            };
            results[c].0.push(used / 1024.0 / 1024.0);
            results[c].1.push(rss / 1024.0);
            results[c].2.push(hwm / 1024.0);
            eprintln!(
                "round {}/{rounds} {name}: RSS {:.1} MiB",
                round + 1,
                rss / 1024.0
            );
        }
    }
    println!(
        "cache_memory: {KEYS} keys, values 32 B-16 KiB, {OPS} ops (80% read), medians over {rounds} alternating rounds [min-max]"
    );
    println!(
        "{:<12}{:>26}{:>26}{:>26}{:>12}",
        "", "contents (MiB)", "RSS steady (MiB)", "RSS peak (MiB)", "RSS/plain"
    );
    let plain_rss = {
        let mut v = results[0].1.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (c, name) in CONTESTANTS.iter().enumerate() {
        let (used, rss, hwm) = &mut results[c];
        let mut sorted = rss.clone();
        sorted.sort_by(f64::total_cmp);
        let ratio = sorted[sorted.len() / 2] / plain_rss;
        println!(
            "{name:<12}{:>26}{:>26}{:>26}{:>11.2}x",
            median_range(used),
            median_range(rss),
            median_range(hwm),
            ratio
        );
    }
}
