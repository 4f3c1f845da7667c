//! Taking entries out: `remove`, `invalidate`, `clear`, and `trim` for
//! expired entries. Values that stay in the cache are reset and kept as
//! spares of their shard.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use super::PooledCache;
use super::clock::LazyNow;
use super::shard::{Entry, Inner};
use super::stats::bump;
use crate::reset::Recycle;
use crate::shard::FirstPanic;

impl<K, V, S, R> PooledCache<K, V, S, R>
where
    K: Hash + Eq,
    S: BuildHasher,
    R: Recycle<V>,
{
    /// Removes the entry of `key` and returns its value, as
    /// `HashMap::remove` and moka's `remove` do; `None` if `key` has no
    /// live entry (an expired one is recycled, and counted as an
    /// expiration). The value leaves the cache, so it is not recycled: use
    /// [`invalidate`](PooledCache::invalidate) where you do not need it.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(8).unwrap();
    /// cache.insert(1, vec![1]);
    /// assert_eq!(cache.remove(&1), Some(vec![1]));
    /// assert_eq!(cache.remove(&1), None);
    /// let s = cache.stats();
    /// assert_eq!((s.remove_count, s.taken_count, s.num_spare), (1, 1, 0));
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard(hash).write();
        let Inner { table, spares, .. } = &mut *guard;
        let Ok(found) = table.find_entry(hash, |e| e.key.borrow() == key) else {
            return None;
        };
        let (entry, _) = found.remove();
        if self.expired(entry.meta.into_inner()) {
            bump(&self.counters().expirations);
            self.keep_spare(spares, entry.value);
            return None;
        }
        drop(guard);
        let counters = self.counters();
        bump(&counters.removes);
        bump(&counters.takes);
        Some(entry.value)
    }

    /// Removes the entry of `key` without returning its value, which is
    /// reset and kept for a later [`insert_with`](PooledCache::insert_with)
    /// (the name is moka's, for a removal whose value the caller does not
    /// need). Returns whether a live entry was removed (an expired one is
    /// recycled too, and counted as an expiration).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(8).unwrap();
    /// cache.insert(1, vec![1]);
    /// assert!(cache.invalidate(&1));
    /// assert!(!cache.invalidate(&1));
    /// let s = cache.stats();
    /// assert_eq!((s.remove_count, s.num_spare), (1, 1)); // the value is kept
    /// ```
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let mut guard = self.shard(hash).write();
        let Inner { table, spares, .. } = &mut *guard;
        let Ok(found) = table.find_entry(hash, |e| e.key.borrow() == key) else {
            return false;
        };
        let (entry, _) = found.remove();
        let expired = self.expired(entry.meta.into_inner());
        if expired {
            bump(&self.counters().expirations);
        } else {
            bump(&self.counters().removes);
        }
        self.keep_spare(spares, entry.value);
        !expired
    }

    /// Recycles every expired entry, and ages the cache's pool (see
    /// [`WorkerPool::trim`](crate::WorkerPool::trim)). Returns the number of expired entries
    /// recycled. Call it periodically where expired entries should not wait
    /// for a read, a write or an eviction to recycle them.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use std::time::Duration;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(100).unwrap();
    /// cache.insert_ttl(1, vec![1], Duration::ZERO);
    /// cache.insert(2, vec![2]);
    /// assert_eq!(cache.len(), 2); // the expired entry is still held
    /// assert_eq!(cache.trim(), 1);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn trim(&self) -> usize {
        let mut total = 0;
        let mut now = LazyNow::new(self.epoch);
        let mut panic = FirstPanic::default();
        for shard in self.shards.iter() {
            let mut guard = shard.write();
            let Inner { table, spares, .. } = &mut *guard;
            for Entry { key, value, .. } in table.extract_if(|e| now.expired(*e.meta.get_mut())) {
                bump(&self.counters().expirations);
                // A panicking drop (of the key, or of a value too big to
                // keep) does not stop the sweep.
                panic.run(|| drop(key));
                panic.run(|| self.keep_spare(spares, value));
                total += 1;
            }
        }
        panic.run(|| {
            self.pool.trim();
        });
        panic.resume();
        total
    }

    /// Removes every entry; their values are reset and kept as spares, as
    /// [`invalidate`](PooledCache::invalidate) does.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(100).unwrap();
    /// cache.insert(1, vec![1]);
    /// cache.insert(2, vec![2]);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// assert_eq!(cache.stats().remove_count, 2);
    /// ```
    pub fn clear(&self) {
        let mut panic = FirstPanic::default();
        for shard in self.shards.iter() {
            let mut guard = shard.write();
            let Inner { table, spares, .. } = &mut *guard;
            for Entry { key, value, .. } in table.drain() {
                bump(&self.counters().removes);
                // As in `trim`.
                panic.run(|| drop(key));
                panic.run(|| self.keep_spare(spares, value));
            }
        }
        panic.resume();
    }
}
