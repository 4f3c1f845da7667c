//! The cache's counters, striped by thread, and their snapshot,
//! [`CacheStats`].

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use super::PooledCache;
use crate::reset::Recycle;
use crate::stats::PoolStats;
use crate::thread::shard_hint;

/// The cache's counters, striped by thread (see [`shard_hint`]): each
/// stripe in its own 128-byte block, so counting never moves a cache line
/// between threads, and never touches the shard's lock line. Summed on
/// read.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    /// Writes that added an entry (not those counted in `replaces`).
    pub(super) inserts: AtomicU64,
    pub(super) replaces: AtomicU64,
    pub(super) removes: AtomicU64,
    /// Removes that handed the value to the caller (counted in `removes`
    /// too).
    pub(super) takes: AtomicU64,
    pub(super) evictions: AtomicU64,
    pub(super) expirations: AtomicU64,
    pub(super) discards: AtomicU64,
}

impl Counters {
    /// Adds this stripe's counts to `s`.
    pub(super) fn add_to(&self, s: &mut CacheStats) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        s.hit_count += load(&self.hits);
        s.miss_count += load(&self.misses);
        s.insert_count += load(&self.inserts);
        s.replace_count += load(&self.replaces);
        s.remove_count += load(&self.removes);
        s.taken_count += load(&self.takes);
        s.eviction_count += load(&self.evictions);
        s.expiration_count += load(&self.expirations);
        s.discard_count += load(&self.discards);
    }
}

impl<K, V, S, R> PooledCache<K, V, S, R> {
    /// The calling thread's stripe of counters.
    #[inline]
    pub(super) fn counters(&self) -> &Counters {
        &self.counters[shard_hint() & (self.counters.len() - 1)]
    }
}

impl<K, V, S, R> PooledCache<K, V, S, R>
where
    K: Hash + Eq,
    S: BuildHasher,
    R: Recycle<V>,
{
    /// A snapshot of the cache's counters and its pool's.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(8).unwrap();
    /// cache.insert_with(1, |v| v.push(1)); // a fresh value from the pool
    /// cache.view(&1, |_| ());
    /// cache.view(&2, |_| ());
    /// let s = cache.stats();
    /// assert_eq!((s.hit_count, s.miss_count, s.insert_count), (1, 1, 1));
    /// assert_eq!(s.num_entries, 1);
    /// assert_eq!(s.pool.created_count, 1);
    /// ```
    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats {
            name: self.name,
            pool: self.pool.stats(),
            ..CacheStats::default()
        };
        for c in self.counters.iter() {
            c.add_to(&mut s);
        }
        s.insert_count += s.replace_count;
        // Counters read while others write may show a take before its
        // remove.
        s.recycled_count = s.replace_count
            + s.remove_count.saturating_sub(s.taken_count)
            + s.eviction_count
            + s.expiration_count;
        for shard in self.shards.iter() {
            let inner = shard.read();
            s.num_entries += inner.table.len() as u64;
            s.num_spare += inner.spares.len() as u64;
        }
        s
    }
}

/// Adds 1 to a counter.
#[inline(always)]
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A snapshot of a [`PooledCache`]'s counters, from
/// [`PooledCache::stats`].
///
/// Counters are kept per shard and summed on read, so a snapshot taken
/// while other threads use the cache is only approximately consistent. Once
/// the cache is quiet, it adds up:
///
/// - `num_entries == insert_count - replace_count - remove_count - eviction_count - expiration_count`
/// - `recycled_count == replace_count + remove_count - taken_count + eviction_count + expiration_count`
///
/// Names follow tokio's `RuntimeMetrics`: `num_*` for gauges, `*_count`
/// for monotonic counters.
///
/// ```
/// use capacitor_pool::PooledCache;
///
/// let cache = PooledCache::<u64, Vec<u8>>::builder().max_entries(1).build().unwrap();
/// cache.insert_with(1, |v| v.push(1));
/// cache.insert_with(1, |v| v.push(2)); // replace
/// cache.insert_with(2, |v| v.push(3)); // evicts 1
/// let s = cache.stats();
/// assert_eq!(s.insert_count, 3);
/// assert_eq!((s.replace_count, s.eviction_count), (1, 1));
/// assert_eq!(s.recycled_count, 2);
/// assert_eq!(s.num_entries, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// The cache's name, if its builder gave it one.
    pub name: Option<&'static str>,
    /// Reads that found a live entry.
    pub hit_count: u64,
    /// Reads that found no entry, or an expired one.
    pub miss_count: u64,
    /// Completed calls of the `insert` methods.
    pub insert_count: u64,
    /// Inserts that replaced a live entry.
    pub replace_count: u64,
    /// Live entries removed by `remove`, `invalidate` or `clear` (or lost
    /// to a panic in the closure of an `insert_with` that was overwriting
    /// them).
    pub remove_count: u64,
    /// Live values handed to the caller by `remove` (counted in
    /// `remove_count` too); they left the cache, and are not recycled.
    pub taken_count: u64,
    /// Live entries evicted to keep the bound.
    pub eviction_count: u64,
    /// Expired entries recycled (by a read, a write, an eviction sweep,
    /// `remove`, `invalidate` or `trim`).
    pub expiration_count: u64,
    /// Values displaced from the map (replaced, removed but not taken by
    /// `remove`, evicted, expired) and reset for reuse.
    pub recycled_count: u64,
    /// Reset values dropped instead of kept: over the retention limit, or
    /// no room in the cache's pool.
    pub discard_count: u64,
    /// Entries held now, including expired ones not yet recycled.
    pub num_entries: u64,
    /// Reset values kept by the shards (spares), ready for `insert_with`.
    pub num_spare: u64,
    /// The cache's pool: fresh values it made (`created_count`), values
    /// displaced by `insert` that it keeps (`num_idle`).
    pub pool: PoolStats,
}

impl CacheStats {
    /// Hits per read, from 0.0 to 1.0; 0.0 before the first read.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(8).unwrap();
    /// cache.insert(1, String::new());
    /// cache.view(&1, |_| ());
    /// cache.view(&2, |_| ());
    /// assert_eq!(cache.stats().hit_rate(), 0.5);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hit_count + self.miss_count;
        if reads == 0 {
            0.0
        } else {
            self.hit_count as f64 / reads as f64
        }
    }
}

impl fmt::Display for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reads {} (hits {}, misses {}, hit rate {:.1}%), inserts {} (replaced {}), \
             removed {} (taken {}), evicted {}, expired {}, recycled {}, discarded {}, entries {}, \
             spare {}",
            self.hit_count + self.miss_count,
            self.hit_count,
            self.miss_count,
            self.hit_rate() * 100.0,
            self.insert_count,
            self.replace_count,
            self.remove_count,
            self.taken_count,
            self.eviction_count,
            self.expiration_count,
            self.recycled_count,
            self.discard_count,
            self.num_entries,
            self.num_spare,
        )
    }
}
