//! CLOCK eviction and time to live: the sweep that picks a full shard's
//! victim, the sizing that keeps churn at the bound from allocating, and
//! entry deadlines read against a clock looked at most once per call.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use super::PooledCache;
use super::shard::{Entry, Inner};
use super::stats::{Counters, bump};
use crate::reset::Recycle;

/// Bit 0 of [`Entry::meta`].
pub(super) const REFERENCED: u64 = 1;

/// The largest deadline code; a TTL past it means no expiry.
const MAX_DEADLINE: u64 = u64::MAX >> 2;

/// The current time as a deadline code (nanoseconds since the cache's
/// epoch, plus 1, so that 0 means "no deadline"), read at most once, and
/// only if needed.
pub(super) struct LazyNow {
    epoch: Instant,
    now: Option<u64>,
}

impl LazyNow {
    #[inline]
    pub(super) fn new(epoch: Instant) -> Self {
        LazyNow { epoch, now: None }
    }

    #[inline]
    fn get(&mut self) -> u64 {
        let epoch = self.epoch;
        *self.now.get_or_insert_with(|| {
            let nanos = epoch.elapsed().as_nanos();
            u64::try_from(nanos).map_or(MAX_DEADLINE, |n| n.min(MAX_DEADLINE - 1) + 1)
        })
    }

    /// Whether an entry with this `meta` has expired.
    #[inline]
    pub(super) fn expired(&mut self, meta: u64) -> bool {
        let deadline = meta >> 1;
        deadline != 0 && self.get() >= deadline
    }

    /// The deadline code of an entry that lives `ttl` from now (0: none).
    pub(super) fn deadline(&mut self, ttl: Option<Duration>) -> u64 {
        let Some(ttl) = ttl else { return 0 };
        let end = u128::from(self.get()) + ttl.as_nanos();
        if end >= u128::from(MAX_DEADLINE) {
            0
        } else {
            end as u64
        }
    }
}

/// Sizes a full shard's table and spare list so that churn (evictions,
/// removals and inserts at the bound) never allocates: with room for twice
/// the bound, hashbrown clears its tombstones by rehashing in place instead
/// of growing.
#[cold]
pub(super) fn reserve_for_churn<K, V>(
    table: &mut HashTable<Entry<K, V>>,
    spares: &mut Vec<V>,
    cap: usize,
    rehash: impl Fn(&Entry<K, V>) -> u64,
) {
    let want = cap.saturating_mul(2).saturating_add(2);
    table.reserve(want.saturating_sub(table.len()), rehash);
    spares.reserve(cap.saturating_sub(spares.len()));
}

/// CLOCK: the bucket of the entry to evict from a full shard. Expired
/// entries go first; a referenced entry has its bit cleared and is passed
/// over; the first unreferenced one is the victim.
fn clock_victim<K, V>(
    table: &mut HashTable<Entry<K, V>>,
    hand: &mut usize,
    now: &mut LazyNow,
) -> Option<usize> {
    let n = table.num_buckets();
    let mut first_passed = None;
    // Two laps clear every bit, so the sweep ends within them.
    for _ in 0..2 * n {
        let i = if *hand >= n { 0 } else { *hand };
        *hand = i + 1;
        let Some(entry) = table.get_bucket_mut(i) else {
            continue;
        };
        let meta = entry.meta.get_mut();
        if now.expired(*meta) || *meta & REFERENCED == 0 {
            return Some(i);
        }
        *meta &= !REFERENCED;
        first_passed.get_or_insert(i);
    }
    first_passed
}

impl<K, V> Inner<K, V> {
    /// Removes the CLOCK victim of the full shard and returns its value,
    /// counted as evicted (or expired).
    pub(super) fn evict(&mut self, now: &mut LazyNow, counters: &Counters) -> Option<V> {
        let victim = clock_victim(&mut self.table, &mut self.hand, now);
        let Some(Ok(found)) = victim.map(|i| self.table.get_bucket_entry(i)) else {
            return None;
        };
        let (old, _) = found.remove();
        if now.expired(old.meta.into_inner()) {
            bump(&counters.expirations);
        } else {
            bump(&counters.evictions);
        }
        Some(old.value)
    }
}

impl<K, V, S, R> PooledCache<K, V, S, R>
where
    K: Hash + Eq,
    S: BuildHasher,
    R: Recycle<V>,
{
    /// Whether an entry with this `meta` has expired; reads the clock only
    /// for an entry with a deadline.
    #[inline]
    pub(super) fn expired(&self, meta: u64) -> bool {
        meta >> 1 != 0 && LazyNow::new(self.epoch).expired(meta)
    }

    /// Recycles `key`'s entry if it is still there and expired (after a
    /// read found it so).
    #[cold]
    #[inline(never)]
    pub(super) fn reclaim_expired<Q>(&self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut guard = self.shard(hash).write();
        let Inner { table, spares, .. } = &mut *guard;
        let mut now = LazyNow::new(self.epoch);
        if let Ok(found) = table.find_entry(hash, |e| {
            e.key.borrow() == key && now.expired(e.meta.load(Ordering::Relaxed))
        }) {
            let (entry, _) = found.remove();
            bump(&self.counters().expirations);
            self.keep_spare(spares, entry.value);
        }
    }
}
