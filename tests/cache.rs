//! `PooledCache`: behaviour, recycling, TTL, eviction, concurrency and
//! zero allocations per overwrite (with a counting global allocator).

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/tagged.rs"]
mod tagged;

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use capacitor_pool::cache::{BuildError, CacheStats, DefaultHashBuilder};
use capacitor_pool::{PooledCache, Recycle, UseReset};
use counting_alloc::{Counting, thread_allocs};
use tagged::Counted;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The value a key's writer stores: the key's bytes, `len` times.
fn fill_for(key: u64, len: usize, v: &mut Vec<u8>) {
    for _ in 0..len {
        v.extend_from_slice(&key.to_le_bytes());
    }
}

/// Whether `v` holds only `key`'s bytes (and at least one copy).
fn belongs_to(key: u64, v: &[u8]) -> bool {
    !v.is_empty() && v.len() % 8 == 0 && v.chunks(8).all(|c| c == key.to_le_bytes())
}

fn assert_adds_up(s: &CacheStats) {
    assert_eq!(
        s.num_entries,
        s.insert_count - s.replace_count - s.remove_count - s.eviction_count - s.expiration_count,
        "entries: {s}"
    );
    assert_eq!(
        s.recycled_count,
        s.replace_count + s.remove_count - s.taken_count + s.eviction_count + s.expiration_count,
        "recycled: {s}"
    );
}

#[test]
fn smoke() {
    let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(100).unwrap();
    assert!(cache.is_empty());
    assert!(!cache.insert_with(1, |v| v.extend_from_slice(b"one")));
    assert!(!cache.insert(2, b"two".to_vec()));
    assert_eq!(cache.get(&1).as_deref(), Some(&b"one"[..]));
    assert_eq!(cache.view(&2, |v| v.len()), Some(3));
    assert_eq!(cache.get(&3), None);
    assert!(cache.insert_with(1, |v| v.extend_from_slice(b"uno")));
    assert_eq!(cache.get(&1).as_deref(), Some(&b"uno"[..]));
    assert_eq!(cache.len(), 2);
    assert!(cache.invalidate(&1));
    assert!(!cache.invalidate(&1));
    assert_eq!(cache.len(), 1);
    let s = cache.stats();
    assert_eq!((s.hit_count, s.miss_count), (3, 1));
    assert_eq!((s.insert_count, s.replace_count, s.remove_count), (3, 1, 1));
    assert_eq!(s.num_spare, 1);
    assert_adds_up(&s);
}

#[test]
fn zero_max_entries_is_the_same_build_error_from_new_and_the_builder() {
    let err = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(0)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroEntries);
    assert_eq!(
        err.to_string(),
        "a pooled cache needs a max_entries of at least 1"
    );
    let err = PooledCache::<u64, Vec<u8>>::new(0).unwrap_err();
    assert_eq!(err, BuildError::ZeroEntries);
    let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(1).unwrap();
    assert_eq!(cache.max_entries(), 1);
    cache.insert(1, vec![1]);
    cache.insert(2, vec![2]);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&2), Some(vec![2]));
}

#[test]
fn shards_are_a_power_of_two_and_never_more_than_the_bound() {
    let shards = |max, n| {
        PooledCache::<u64, Vec<u8>>::builder()
            .max_entries(max)
            .shards(n)
            .build()
            .unwrap()
            .num_shards()
    };
    assert_eq!(shards(1000, 5), 8);
    assert_eq!(shards(1000, 0), 1);
    assert_eq!(shards(3, 64), 2);
    assert_eq!(shards(1, 64), 1);
    assert_eq!(
        shards(1 << 20, usize::MAX),
        capacitor_pool::pool::MAX_SHARDS
    );
    let default = PooledCache::<u64, Vec<u8>>::new(1 << 20)
        .unwrap()
        .num_shards();
    assert!(default.is_power_of_two() && default >= 4);
    // By default, small caches get fewer shards of at least 32 entries.
    assert_eq!(PooledCache::<u64, Vec<u8>>::new(8).unwrap().num_shards(), 1);
    assert_eq!(
        PooledCache::<u64, Vec<u8>>::new(64).unwrap().num_shards(),
        2.min(default)
    );
}

#[test]
fn recycled_values_never_leak_into_another_key() {
    // One shard of 8: plenty of evictions, removals and overwrites, each
    // handing a used value to a different key.
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(8)
        .shards(1)
        .build()
        .unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = x % 32;
        match round % 5 {
            0 if round % 2 == 0 => {
                cache.invalidate(&key);
            }
            0 => {
                if let Some(v) = cache.remove(&key) {
                    assert!(
                        belongs_to(key, &v),
                        "remove({key}) returned another key's bytes"
                    );
                }
            }
            1 => {
                let mut v = Vec::new();
                fill_for(key, 1 + (x as usize >> 40) % 4, &mut v);
                cache.insert(key, v);
            }
            _ => {
                cache.insert_with(key, |v| {
                    assert!(v.is_empty(), "a reused value was not reset");
                    fill_for(key, 1 + (x as usize >> 40) % 4, v);
                });
            }
        }
        for k in 0..32 {
            if let Some(ok) = cache.view(&k, |v| belongs_to(k, v)) {
                assert!(ok, "key {k} returned another key's bytes");
            }
        }
        assert!(cache.len() <= 8);
    }
    let s = cache.stats();
    assert!(s.eviction_count > 0 && s.remove_count > 0 && s.replace_count > 0);
    assert!(
        s.pool.adopt_count > 0,
        "insert's displaced values go to the pool"
    );
    assert_adds_up(&s);
}

#[test]
fn reset_closure_runs_on_every_displaced_value() {
    #[derive(Default, Clone)]
    struct Row {
        owner: Option<u64>,
        cols: Vec<u32>,
    }
    let resets = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&resets);
    let cache = PooledCache::<u64, Row>::builder()
        .max_entries(2)
        .shards(1)
        .reset(move |r: &mut Row| {
            counted.fetch_add(1, Ordering::Relaxed);
            r.owner = None;
            r.cols.clear();
        })
        .build()
        .unwrap();
    for key in 0..10 {
        cache.insert_with(key, |r| {
            assert!(r.owner.is_none() && r.cols.is_empty());
            r.owner = Some(key);
            r.cols.push(key as u32);
        });
        cache.insert_with(key, |r| {
            assert!(r.owner.is_none());
            r.owner = Some(key);
        });
        assert_eq!(cache.view(&key, |r| r.owner), Some(Some(key)));
    }
    // 10 overwrites and 8 evictions, each reset once.
    assert_eq!(resets.load(Ordering::Relaxed), 18);
    assert_eq!(cache.stats().recycled_count, 18);
}

#[test]
fn expired_entries_are_never_returned_and_are_recycled() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(64)
        .build()
        .unwrap();
    cache.insert_ttl(1, vec![1], Duration::ZERO);
    cache.insert_with_ttl(2, Duration::from_millis(500), |v| v.push(2));
    cache.insert_ttl(3, vec![3], Duration::MAX); // never expires
    cache.insert(4, vec![4]); // no default TTL: never expires
    assert_eq!(cache.get(&1), None);
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.get(&2), Some(vec![2]));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(cache.view(&2, |v| v.clone()), None);
    assert_eq!(cache.get(&3), Some(vec![3]));
    assert_eq!(cache.get(&4), Some(vec![4]));
    // The reads recycled both expired entries.
    let s = cache.stats();
    assert_eq!(s.expiration_count, 2);
    assert_eq!(s.num_entries, 2);
    assert_eq!(s.num_spare, 2);
    assert_adds_up(&s);
    // A write over an expired entry counts an expiration, not a replace.
    cache.insert_ttl(5, vec![5], Duration::ZERO);
    assert!(!cache.insert(5, vec![55]));
    assert_eq!(cache.get(&5), Some(vec![55]));
    // remove() and invalidate() of an expired entry recycle it but report
    // no removal.
    cache.insert_ttl(6, vec![6], Duration::ZERO);
    assert_eq!(cache.remove(&6), None);
    cache.insert_ttl(6, vec![6], Duration::ZERO);
    assert!(!cache.invalidate(&6));
    let s = cache.stats();
    assert_eq!(
        (s.expiration_count, s.replace_count, s.remove_count),
        (5, 0, 0)
    );
    assert_adds_up(&s);
}

#[test]
fn trim_recycles_expired_entries_and_default_ttl_applies() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(1000)
        .default_ttl(Duration::from_millis(500))
        .build()
        .unwrap();
    for k in 0..100 {
        cache.insert_with(k, |v| v.push(k as u8));
    }
    cache.insert_ttl(1000, vec![0], Duration::MAX);
    assert_eq!(cache.trim(), 0);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(cache.len(), 101); // expired, still held
    assert_eq!(cache.trim(), 100);
    assert_eq!(cache.len(), 1);
    let s = cache.stats();
    assert_eq!((s.expiration_count, s.num_spare), (100, 100));
    assert_adds_up(&s);
    // The spares are filled in place by the next inserts: no new values.
    let created = s.pool.created_count;
    for k in 0..100 {
        cache.insert_with(k, |v| {
            assert!(v.is_empty());
            v.push(1);
        });
    }
    assert_eq!(cache.stats().pool.created_count, created);
}

#[test]
fn eviction_keeps_the_bound() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(1000)
        .shards(8)
        .build()
        .unwrap();
    for k in 0..20_000 {
        cache.insert_with(k, |v| fill_for(k, 1, v));
        assert!(cache.len() <= 1000);
    }
    let s = cache.stats();
    assert_eq!(s.num_entries, 1000, "each shard fills to its share");
    assert_eq!(s.eviction_count, 19_000);
    assert_eq!(s.pool.created_count, 1000, "evicted values are reused");
    assert_adds_up(&s);
}

#[test]
fn clock_keeps_hot_keys_while_cold_keys_stream_through() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(100)
        .shards(1)
        .build()
        .unwrap();
    for hot in 0..10 {
        cache.insert_with(hot, |v| v.push(1));
    }
    for cold in 1000..11_000 {
        for hot in 0..10 {
            assert!(cache.contains_key(&hot), "hot key {hot} evicted");
        }
        cache.insert_with(cold, |v| v.push(0));
    }
    assert_eq!(cache.len(), 100);
}

#[test]
fn eviction_takes_expired_entries_before_referenced_ones() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(4)
        .shards(1)
        .build()
        .unwrap();
    cache.insert(1, vec![1]);
    cache.insert(2, vec![2]);
    cache.insert_ttl(3, vec![3], Duration::ZERO);
    cache.insert_ttl(4, vec![4], Duration::ZERO);
    for round in 0..2 {
        for live in [1, 2, 10] {
            cache.contains_key(&live); // sets the reference bits
        }
        cache.insert_with(10 + round, |v| v.push(1)); // full: an expired one goes
    }
    let s = cache.stats();
    assert_eq!((s.expiration_count, s.eviction_count), (2, 0));
    assert!(cache.contains_key(&1) && cache.contains_key(&2));
    assert_adds_up(&s);
}

#[test]
fn oversized_values_are_dropped_not_kept() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(4)
        .retention_limit(1024)
        .build()
        .unwrap();
    cache.insert_with(1, |v| v.resize(4096, 7));
    cache.insert_with(1, |v| {
        assert_eq!(v.capacity(), 0, "the big value was dropped");
        v.push(1);
    });
    let s = cache.stats();
    assert_eq!((s.recycled_count, s.discard_count), (1, 1));
}

#[test]
fn a_refilled_value_is_trimmed_to_what_it_holds() {
    let cache = PooledCache::<u64, Vec<u8>>::new(64).unwrap();
    cache.insert_with(1, |v| v.resize(16 * 1024, 7));
    // Overwritten in place with a small value: the 16 KiB buffer goes.
    cache.insert_with(1, |v| v.extend_from_slice(b"small"));
    assert!(
        cache
            .view(&1, |v| v.capacity() < 1024 && v == b"small")
            .unwrap()
    );
    // A new key that takes the spare of a removed big value: the same.
    cache.insert_with(2, |v| v.resize(16 * 1024, 7));
    assert!(cache.invalidate(&2));
    cache.insert_with(3, |v| v.extend_from_slice(b"tiny"));
    assert!(
        cache
            .view(&3, |v| v.capacity() < 1024 && v == b"tiny")
            .unwrap()
    );
    // Within a quarter (and 256 bytes) of its contents, a value keeps its
    // buffer: refilled in place, no allocation.
    cache.insert_with(4, |v| v.resize(4096, 1));
    let before = thread_allocs();
    cache.insert_with(4, |v| v.resize(3500, 2));
    assert_eq!(thread_allocs() - before, 0);
    assert_eq!(cache.view(&4, Vec::capacity), Some(4096));
}

/// Values of varied sizes, overwritten again and again, hold about what
/// their contents take, not the largest size each key ever had.
#[test]
fn entries_of_varied_sizes_hold_about_what_they_need() {
    const KEYS: u64 = 500;
    let cache = PooledCache::<u64, Vec<u8>>::new(4 * KEYS as usize).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next_len = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        32 + (seed % (16 * 1024 - 32)) as usize
    };
    for _ in 0..20 {
        for k in 0..KEYS {
            let len = next_len();
            cache.insert_with(k, |v| v.resize(len, k as u8));
        }
    }
    let (mut used, mut held) = (0, 0);
    for k in 0..KEYS {
        let (len, cap) = cache.view(&k, |v| (v.len(), v.capacity())).unwrap();
        used += len;
        held += cap;
    }
    // Each value holds at most a quarter over its contents plus 256 bytes;
    // without the trim they would hold about twice their contents.
    assert!(
        held <= used + used / 4 + 256 * KEYS as usize,
        "{held} held for {used}"
    );
}

#[test]
fn a_panicking_fill_removes_the_entry_and_the_cache_stays_usable() {
    let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(16).unwrap();
    cache.insert(1, vec![1]);
    let r = catch_unwind(AssertUnwindSafe(|| {
        cache.insert_with(1, |v| {
            v.push(0xee);
            panic!("fill failed");
        })
    }));
    assert!(r.is_err());
    assert_eq!(cache.get(&1), None, "no half-written value is returned");
    let s = cache.stats();
    assert_eq!((s.insert_count, s.remove_count), (1, 1)); // the lost entry
    assert_adds_up(&s);
    let r = catch_unwind(AssertUnwindSafe(|| {
        cache.insert_with(2, |_| panic!("fill failed"));
    }));
    assert!(r.is_err());
    assert_eq!(cache.get(&2), None);
    assert!(cache.is_empty());
    cache.insert_with(2, |v| {
        assert!(v.is_empty());
        v.push(2);
    });
    assert_eq!(cache.get(&2), Some(vec![2]));
    assert_adds_up(&cache.stats());
}

#[test]
fn insert_keeps_the_replaced_value_for_insert_with() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(16)
        .shards(1) // spares stay in their shard: keep both keys in one
        .build()
        .unwrap();
    cache.insert(1, Vec::with_capacity(100));
    cache.insert(1, vec![2]); // the first value is reset and kept
    assert_eq!(cache.stats().num_spare, 1);
    cache.insert_with(2, |v| {
        assert!(v.is_empty() && v.capacity() >= 100, "the kept value");
        v.push(2);
    });
    let s = cache.stats();
    assert_eq!((s.num_spare, s.pool.created_count), (0, 0));
}

#[test]
fn values_displaced_by_insert_at_the_bound_go_to_the_pool() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(1)
        .build()
        .unwrap();
    cache.insert(1, Vec::with_capacity(100));
    cache.insert(2, vec![2]); // evicts 1: no room for a spare
    assert_eq!(cache.stats().pool.num_idle, 1);
    cache.invalidate(&2); // its value is kept as a spare
    cache.insert_with(3, |v| v.push(3)); // uses the spare
    cache.insert_with(3, |v| v.push(4)); // in place
    let s = cache.stats();
    assert_eq!((s.pool.num_idle, s.pool.created_count), (1, 0));
    assert_adds_up(&s);
}

/// A cache of `Counted` values of at most ten entries, in one shard, and
/// its drop counter.
fn counted_cache<R: Recycle<Counted>>(
    recycle: R,
) -> (
    PooledCache<u64, Counted, DefaultHashBuilder, R>,
    Arc<AtomicUsize>,
) {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let cache = PooledCache::builder_with(move || Counted::new(&d))
        .max_entries(10)
        .shards(1)
        .recycler(recycle)
        .build()
        .unwrap();
    (cache, drops)
}

/// Drops every value it is handed: none is small enough to keep.
struct DropAll;

impl Recycle<Counted> for DropAll {
    fn reset(&self, _: &mut Counted) {}
    fn retained_bytes(&self, _: &Counted) -> usize {
        usize::MAX
    }
}

#[test]
fn dropping_the_cache_drops_every_value_when_drops_panic() {
    let (cache, drops) = counted_cache(UseReset);
    for k in 0..10 {
        cache.insert_with(k, |v| v.armed = k == 3 || k == 5);
    }
    // At the bound, 5's armed value goes to the pool; 0's is kept as a
    // spare.
    cache.insert(5, Counted::new(&drops));
    cache.invalidate(&0);
    let s = cache.stats();
    assert_eq!(
        (s.num_entries, s.num_spare, s.pool.num_idle),
        (9, 1, 1),
        "{s:?}"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(
        catch_unwind(AssertUnwindSafe(|| drop(cache))).is_err(),
        "no abort, a panic"
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        11,
        "entries, spare and pool: none leaked"
    );
}

#[test]
fn clear_recycles_every_entry_when_drops_panic() {
    let (cache, drops) = counted_cache(DropAll);
    for k in 0..10 {
        cache.insert(k, Counted::armed(&drops));
    }
    assert!(catch_unwind(AssertUnwindSafe(|| cache.clear())).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 10, "every value dropped");
    let s = cache.stats();
    assert_eq!(
        (s.num_entries, s.remove_count, s.discard_count),
        (0, 10, 10),
        "{s:?}"
    );
    assert_adds_up(&s);
    cache.insert(1, Counted::new(&drops)); // still usable
    assert_eq!(cache.len(), 1);
}

#[test]
fn trim_recycles_every_expired_entry_when_drops_panic() {
    let (cache, drops) = counted_cache(DropAll);
    for k in 0..10 {
        cache.insert_ttl(k, Counted::armed(&drops), Duration::ZERO);
    }
    assert!(catch_unwind(AssertUnwindSafe(|| cache.trim())).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 10, "every value dropped");
    let s = cache.stats();
    assert_eq!(
        (s.num_entries, s.expiration_count, s.discard_count),
        (0, 10, 10),
        "{s:?}"
    );
    assert_adds_up(&s);
    assert_eq!(cache.trim(), 0);
}

#[test]
fn borrowed_keys_and_a_custom_hasher_work() {
    let cache = PooledCache::<String, String>::builder()
        .hasher(std::collections::hash_map::RandomState::new())
        .build()
        .unwrap();
    cache.insert("alpha".to_string(), "a".to_string());
    assert_eq!(cache.get("alpha").as_deref(), Some("a"));
    assert_eq!(cache.remove("alpha").as_deref(), Some("a"));
    cache.insert("beta".into(), "b".into());
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn cache_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PooledCache<u64, Vec<u8>>>();
    check::<PooledCache<String, String>>();
}

#[test]
fn concurrent_readers_and_writers_count_up_and_never_mix_values() {
    const TASKS: u64 = 8;
    const OPS: u64 = 20_000;
    const KEYS: u64 = 512;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let cache = Arc::new(
        PooledCache::<u64, Vec<u8>>::builder()
            .max_entries(256) // below the key count: evictions too
            .default_ttl(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    let totals = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move {
                    let (mut hits, mut misses, mut inserts, mut removes, mut taken) =
                        (0u64, 0, 0, 0, 0);
                    let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ (t + 1);
                    for i in 0..OPS {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = x % KEYS;
                        match x >> 60 {
                            0..=9 => match cache.view(&key, |v| belongs_to(key, v)) {
                                Some(ok) => {
                                    assert!(ok, "key {key} read another key's value");
                                    hits += 1;
                                }
                                None => misses += 1,
                            },
                            10..=13 => {
                                cache.insert_with(key, |v| {
                                    assert!(v.is_empty());
                                    fill_for(key, 1 + (x as usize >> 32) % 8, v);
                                });
                                inserts += 1;
                            }
                            14 => {
                                let mut v = Vec::with_capacity(16);
                                fill_for(key, 2, &mut v);
                                cache.insert(key, v);
                                inserts += 1;
                            }
                            _ if i % 2 == 0 => {
                                removes += u64::from(cache.invalidate(&key));
                            }
                            _ => {
                                if let Some(v) = cache.remove(&key) {
                                    assert!(
                                        belongs_to(key, &v),
                                        "key {key} took another key's value"
                                    );
                                    removes += 1;
                                    taken += 1;
                                }
                            }
                        }
                        if i % 256 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    (hits, misses, inserts, removes, taken)
                })
            })
            .collect();
        let mut totals = (0, 0, 0, 0, 0);
        for t in tasks {
            let (h, m, i, r, k) = t.await.unwrap();
            totals = (
                totals.0 + h,
                totals.1 + m,
                totals.2 + i,
                totals.3 + r,
                totals.4 + k,
            );
        }
        totals
    });
    let s = cache.stats();
    assert_eq!(s.hit_count, totals.0);
    assert_eq!(s.miss_count, totals.1);
    assert_eq!(s.insert_count, totals.2);
    assert_eq!(s.remove_count, totals.3);
    assert_eq!(s.taken_count, totals.4);
    assert!(s.taken_count > 0 && s.taken_count < s.remove_count);
    assert_eq!(s.expiration_count, 0);
    assert!(s.eviction_count > 0 && s.hit_count > 0);
    assert!(s.num_entries <= 256);
    assert_eq!(s.num_entries as usize, cache.len());
    assert_adds_up(&s);
    for k in 0..KEYS {
        if let Some(ok) = cache.view(&k, |v| belongs_to(k, v)) {
            assert!(ok);
        }
    }
}

#[test]
fn counts_add_up_across_many_short_lived_threads() {
    // More threads than the cache has owned counter stripes, some at once
    // and some one after another (their numbers are recycled).
    let cache = Arc::new(PooledCache::<u64, Vec<u8>>::new(4096).unwrap());
    let reads = Arc::new(AtomicU64::new(0));
    for _wave in 0..3 {
        let handles: Vec<_> = (0..24u64)
            .map(|t| {
                let (cache, reads) = (Arc::clone(&cache), Arc::clone(&reads));
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        let key = (t * 7919 + i) % 1000;
                        if i % 3 == 0 {
                            cache.insert_with(key, |v| fill_for(key, 1, v));
                        } else {
                            cache.view(&key, |v| assert!(belongs_to(key, v)));
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let s = cache.stats();
    assert_eq!(s.hit_count + s.miss_count, reads.load(Ordering::Relaxed));
    assert_eq!(s.insert_count, 3 * 24 * 167);
    assert_adds_up(&s);
}

/// Overwrites of existing keys, in the steady state, allocate nothing.
#[test]
fn overwriting_an_existing_key_allocates_nothing() {
    const KEYS: u64 = 1000;
    const OPS: u64 = 100_000;
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(4 * KEYS as usize) // room for every key in every shard
        .default_ttl(Duration::from_secs(3600)) // the deadline path too
        .build()
        .unwrap();
    // Warm-up: every key holds a value with its full capacity.
    for k in 0..KEYS {
        cache.insert_with(k, |v| v.extend_from_slice(&[k as u8; 64]));
    }
    assert_eq!(cache.len() as u64, KEYS);
    let before = thread_allocs();
    for i in 0..OPS {
        let k = i % KEYS;
        cache.insert_with(k, |v| v.extend_from_slice(&[i as u8; 64]));
        black_box(cache.view(&k, |v| v[0]));
    }
    let allocs = thread_allocs() - before;
    assert_eq!(allocs, 0, "{allocs} allocations in {OPS} overwrites");
    assert_eq!(cache.stats().replace_count, OPS);
}

/// Overwrites of existing `String` keys through `insert_with_ref` (a
/// borrowed `&str`) allocate nothing; through `insert_with`, which needs an
/// owned key, each one allocates that key.
#[test]
fn overwriting_an_existing_string_key_by_reference_allocates_nothing() {
    const KEYS: usize = 1000;
    const OPS: usize = 100_000;
    let cache = PooledCache::<String, Vec<u8>>::builder()
        .max_entries(4 * KEYS) // room for every key in every shard
        .build()
        .unwrap();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("user:{k:06}")).collect();
    for (k, key) in keys.iter().enumerate() {
        assert!(!cache.insert_with_ref(key.as_str(), |v| v.extend_from_slice(&[k as u8; 64])));
    }
    assert_eq!(cache.len(), KEYS);

    let before = thread_allocs();
    for i in 0..OPS {
        let key = keys[i % KEYS].as_str();
        assert!(cache.insert_with_ref(key, |v| v.extend_from_slice(&[i as u8; 64])));
        black_box(cache.view(key, |v| v[0]));
    }
    let by_ref = thread_allocs() - before;
    assert_eq!(
        by_ref, 0,
        "{by_ref} allocations in {OPS} overwrites by reference"
    );

    // The TTL variant, and get-or-insert hits, allocate nothing either.
    let before = thread_allocs();
    for i in 0..OPS {
        let key = keys[i % KEYS].as_str();
        cache.insert_with_ref_ttl(key, Duration::from_secs(3600), |v| v.push(i as u8));
        let first = cache.get_or_insert_with(key, |_| panic!("{key} is present"), |v| v[0]);
        assert_eq!(first, i as u8);
    }
    let ttl_and_hits = thread_allocs() - before;
    assert_eq!(ttl_and_hits, 0, "{ttl_and_hits} allocations");

    // The owned-key insert allocates its key, and nothing else.
    let before = thread_allocs();
    for i in 0..OPS {
        let key = keys[i % KEYS].clone();
        assert!(cache.insert_with(key, |v| v.extend_from_slice(&[i as u8; 64])));
    }
    let owned = thread_allocs() - before;
    assert_eq!(
        owned, OPS as u64,
        "{owned} allocations in {OPS} owned-key overwrites"
    );

    let s = cache.stats();
    assert_eq!(s.replace_count, 3 * OPS as u64);
    assert_eq!(s.num_entries, KEYS as u64);
    assert_adds_up(&s);
}

/// Evicting, removing and refilling in place allocates nothing once the
/// shards are full.
#[test]
fn eviction_and_removal_churn_allocates_nothing() {
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(256)
        .build()
        .unwrap();
    let fill = |k: u64, v: &mut Vec<u8>| v.extend_from_slice(&[k as u8; 64]);
    for k in 0..4096 {
        cache.insert_with(k, |v| fill(k, v));
    }
    let before = thread_allocs();
    for k in 4096..40_000u64 {
        cache.insert_with(k, |v| fill(k, v)); // evicts
        if k % 3 == 0 {
            cache.invalidate(&(k - 1)); // frees a slot for the next insert
        }
        black_box(cache.view(&k, |v| v.len()));
    }
    let allocs = thread_allocs() - before;
    assert_eq!(allocs, 0, "{allocs} allocations in the churn");
    let s = cache.stats();
    assert!(s.eviction_count > 20_000 && s.remove_count > 10_000, "{s}");
}

#[test]
fn a_recycler_policy_sees_every_displaced_value() {
    struct Clear(Arc<AtomicU64>);
    impl Recycle<Vec<u8>> for Clear {
        fn reset(&self, v: &mut Vec<u8>) {
            self.0.fetch_add(1, Ordering::Relaxed);
            v.clear();
        }
        fn retained_bytes(&self, v: &Vec<u8>) -> usize {
            v.capacity()
        }
    }
    let n = Arc::new(AtomicU64::new(0));
    let cache = PooledCache::<u64, Vec<u8>>::builder()
        .max_entries(4)
        .recycler(Clear(Arc::clone(&n)))
        .build()
        .unwrap();
    cache.insert_with(1, |v| v.push(1));
    cache.insert_with(1, |v| v.push(2));
    cache.invalidate(&1);
    assert_eq!(n.load(Ordering::Relaxed), 2);
    // A value handed back by `remove` leaves the cache as it is: no reset.
    cache.insert_with(2, |v| v.push(3)); // takes 1's spare, reset already
    assert_eq!(cache.remove(&2), Some(vec![3]));
    assert_eq!(n.load(Ordering::Relaxed), 2);
}

/// A key whose clones are counted: `insert_with_ref` must clone it (its
/// `to_owned`) only for a new entry.
#[derive(PartialEq, Eq, Hash)]
struct CountedKey(u64);

static KEY_CLONES: AtomicUsize = AtomicUsize::new(0);

impl Clone for CountedKey {
    fn clone(&self) -> Self {
        KEY_CLONES.fetch_add(1, Ordering::Relaxed);
        CountedKey(self.0)
    }
}

#[test]
fn insert_with_ref_makes_an_owned_key_only_for_a_new_entry() {
    let cache = PooledCache::<CountedKey, Vec<u8>>::builder()
        .max_entries(2)
        .shards(1)
        .build()
        .unwrap();
    let clones = || KEY_CLONES.load(Ordering::Relaxed);
    assert!(!cache.insert_with_ref(&CountedKey(1), |v| v.push(1)));
    assert_eq!(clones(), 1); // new: the key is made
    assert!(cache.insert_with_ref(&CountedKey(1), |v| {
        assert!(v.is_empty(), "the old value was not reset");
        v.push(11);
    }));
    assert_eq!(clones(), 1); // overwrite: the stored key is kept
    assert_eq!(cache.get(&CountedKey(1)), Some(vec![11]));
    // An expired entry is refilled in place, its key kept too.
    assert!(!cache.insert_with_ref_ttl(&CountedKey(2), Duration::ZERO, |v| v.push(2)));
    assert_eq!(clones(), 2);
    assert!(!cache.insert_with_ref(&CountedKey(2), |v| v.push(22)));
    assert_eq!(clones(), 2);
    assert_eq!(cache.get(&CountedKey(2)), Some(vec![22]));
    // At the bound, a new key evicts, and is made.
    assert!(!cache.insert_with_ref(&CountedKey(3), |v| v.push(3)));
    assert_eq!(clones(), 3);
    assert_eq!(cache.len(), 2);
    let s = cache.stats();
    assert_eq!(
        (
            s.insert_count,
            s.replace_count,
            s.expiration_count,
            s.eviction_count
        ),
        (5, 1, 1, 1)
    );
    assert_adds_up(&s);

    // `str` for `String` keys, `[u8]` for `Vec<u8>` keys.
    let by_str: PooledCache<String, Vec<u8>> = PooledCache::new(8).unwrap();
    by_str.insert_with_ref("k", |v| v.push(1));
    assert_eq!(by_str.get("k"), Some(vec![1]));
    let by_slice: PooledCache<Vec<u8>, String> = PooledCache::new(8).unwrap();
    by_slice.insert_with_ref(&b"k"[..], |v| v.push('1'));
    assert_eq!(by_slice.get(&b"k"[..]).as_deref(), Some("1"));
}

#[test]
fn insert_with_ref_that_panics_leaves_no_entry() {
    let cache: PooledCache<String, Vec<u8>> = PooledCache::new(8).unwrap();
    cache.insert_with_ref("k", |v| v.push(1));
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        cache.insert_with_ref("k", |v| {
            v.push(2);
            panic!("fill fails");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(cache.get("k"), None); // no half-written value
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        cache.insert_with_ref("new", |_| panic!("fill fails"))
    }));
    assert!(panicked.is_err());
    assert!(cache.is_empty());
    assert_adds_up(&cache.stats());
}

#[test]
fn get_or_insert_with_fills_a_missing_key_and_reads_a_present_one() {
    let cache: PooledCache<String, Vec<u8>> = PooledCache::new(64).unwrap();
    let fills = AtomicUsize::new(0);
    let fill = |v: &mut Vec<u8>| {
        fills.fetch_add(1, Ordering::Relaxed);
        v.extend_from_slice(b"made");
    };
    // A miss fills, then reads what it filled.
    assert_eq!(cache.get_or_insert_with("k", fill, |v| v.clone()), b"made");
    assert_eq!(fills.load(Ordering::Relaxed), 1);
    // A hit reads and does not fill, even with a different fill.
    assert_eq!(cache.get_or_insert_with("k", fill, Vec::len), 4);
    assert_eq!(fills.load(Ordering::Relaxed), 1);
    // A present key set by another insert is read as it is.
    cache.insert("other".into(), b"set".to_vec());
    assert_eq!(
        cache.get_or_insert_with("other", fill, |v| v.clone()),
        b"set"
    );
    assert_eq!(fills.load(Ordering::Relaxed), 1);
    // An expired entry counts as missing: refilled in place.
    cache.insert_ttl("old".into(), b"stale".to_vec(), Duration::ZERO);
    assert_eq!(
        cache.get_or_insert_with("old", fill, |v| v.clone()),
        b"made"
    );
    assert_eq!(fills.load(Ordering::Relaxed), 2);
    assert_eq!(cache.get("old").as_deref(), Some(&b"made"[..]));
    let s = cache.stats();
    assert_eq!((s.hit_count, s.miss_count), (3, 2)); // the `get` is a hit
    assert_eq!(
        (s.insert_count, s.replace_count, s.expiration_count),
        (4, 0, 1)
    );
    assert_eq!(s.num_entries, 3);
    assert_adds_up(&s);

    // A panic in `fill` or in `read` on a miss leaves no entry.
    for fill_panics in [true, false] {
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            cache.get_or_insert_with(
                "boom",
                |v| {
                    v.push(1);
                    assert!(!fill_panics, "fill fails");
                },
                |v: &Vec<u8>| -> usize { panic!("read fails after {} bytes", v.len()) },
            )
        }));
        assert!(panicked.is_err());
        assert!(!cache.contains_key("boom"));
    }
    assert_eq!(cache.len(), 3);
    assert_adds_up(&cache.stats());
}

#[test]
fn concurrent_get_or_insert_with_fills_each_missing_key_once() {
    const THREADS: usize = 8;
    const KEYS: u64 = 64;
    let cache = Arc::new(PooledCache::<u64, Vec<u8>>::new(1024).unwrap());
    let fills = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, fills, barrier) =
                (Arc::clone(&cache), Arc::clone(&fills), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for k in 0..KEYS {
                    let key = (k + t as u64) % KEYS; // threads meet on every key
                    let ok = cache.get_or_insert_with(
                        &key,
                        |v| {
                            fills.fetch_add(1, Ordering::Relaxed);
                            fill_for(key, 2, v);
                        },
                        |v| belongs_to(key, v) && v.len() == 16,
                    );
                    assert!(ok, "key {key} read a value it was not filled with");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(fills.load(Ordering::Relaxed), KEYS as usize);
    let s = cache.stats();
    assert_eq!(s.miss_count, KEYS);
    assert_eq!(s.hit_count, (THREADS as u64 - 1) * KEYS);
    assert_eq!((s.insert_count, s.num_entries), (KEYS, KEYS));
    assert_adds_up(&s);
}

#[test]
fn remove_hands_back_the_value_and_invalidate_recycles_it() {
    let cache: PooledCache<String, Vec<u8>> = PooledCache::new(8).unwrap();
    cache.insert("a".into(), b"alpha".to_vec());
    cache.insert("b".into(), b"beta".to_vec());
    assert_eq!(cache.remove("a"), Some(b"alpha".to_vec()));
    assert_eq!(cache.remove("a"), None);
    assert_eq!(cache.stats().num_spare, 0); // the value left the cache
    assert!(cache.invalidate("b"));
    assert!(!cache.invalidate("b"));
    let s = cache.stats();
    assert_eq!(s.num_spare, 1); // reset and kept
    assert_eq!((s.remove_count, s.taken_count, s.recycled_count), (2, 1, 1));
    assert!(cache.is_empty());
    assert_adds_up(&s);
    // The next insert_with refills the spare `invalidate` kept.
    cache.insert_with_ref("c", |v| {
        assert!(v.is_empty() && v.capacity() >= 4, "not the recycled value");
        v.push(1);
    });
    assert_eq!(cache.stats().pool.created_count, 0);
}

/// `Bytes` values: served without a copy, and let go of their buffer when
/// the cache recycles them.
#[test]
fn bytes_values_are_served_without_a_copy_and_released_when_recycled() {
    let body = Bytes::from(vec![b'x'; 64 * 1024]);
    let cache: PooledCache<String, Bytes> = PooledCache::new(16).unwrap();
    cache.insert("a".into(), body.slice(..100));
    cache.insert_with_ref("b", |b| *b = body.slice(100..300));
    let a = cache.get("a").unwrap();
    assert_eq!((a.as_ptr(), a.len()), (body.as_ptr(), 100)); // the same buffer
    assert_eq!(cache.view("b", |b| b.len()), Some(200));
    drop(a);
    // Overwritten and invalidated values are reset: no reference kept.
    assert!(cache.insert("a".into(), Bytes::from_static(b"static")));
    assert!(cache.invalidate("b"));
    assert_eq!(cache.get("a").as_deref(), Some(&b"static"[..]));
    let s = cache.stats();
    assert_eq!((s.num_spare, s.discard_count), (2, 0));
    assert_adds_up(&s);
    // A removed value is handed back as it is.
    cache.insert_with_ref("c", |b| *b = body.slice(..8));
    let c = cache.remove("c").unwrap();
    assert_eq!((c.as_ptr(), c.len()), (body.as_ptr(), 8));
    drop(c);
    // Nothing the cache holds (entries, spares, pool) refers to the body.
    assert!(body.try_into_mut().is_ok());
}
