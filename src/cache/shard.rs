//! A shard of the cache (its lock and hash table of entries, with the
//! spare values it keeps) and the paths that read and write it.
//!
//! A write ([`PooledCache::write`]) finds its key's bucket under the
//! shard's exclusive lock, then either overwrites that entry in place or
//! inserts a new one (evicting the CLOCK victim of a full shard first);
//! a value it displaces goes to the shard's spares or, after the lock, to
//! the cache's pool.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;

use super::PooledCache;
use super::clock::{LazyNow, REFERENCED, reserve_for_churn};
use super::key::{BorrowedKey, OwnedKey, WriteKey};
use super::stats::{Counters, bump};
use crate::reset::Recycle;
use crate::shard::FirstPanic;

/// Shard index: the hash bits from 25 up. hashbrown probes with the low bits
/// and tags with the top 7, so neither loses entropy inside a shard.
const SHARD_SHIFT: u32 = 25;

/// One shard: its lock, in its own 128-byte-aligned block, with the
/// table's header in the same line as the lock word.
pub(super) struct Shard<K, V> {
    pub(super) inner: RwLock<Inner<K, V>>,
}

/// What the shard lock guards.
pub(super) struct Inner<K, V> {
    /// The entries, in the table's buckets (live ones, and expired ones not
    /// yet recycled).
    pub(super) table: HashTable<Entry<K, V>>,
    /// Reset values of removed, expired and replaced entries, ready for
    /// `insert_with`; `spares.len() + table.len() <= cap`.
    pub(super) spares: Vec<V>,
    /// The CLOCK hand: the next bucket the sweep looks at.
    pub(super) hand: usize,
    /// The most entries this shard holds.
    pub(super) cap: usize,
    /// Whether the table was sized for churn at the bound.
    pub(super) sized: bool,
}

/// An entry, in place in a bucket of its shard's table: 40 bytes for a
/// `u64` key and a `Vec` value.
pub(super) struct Entry<K, V> {
    pub(super) key: K,
    pub(super) value: V,
    /// CLOCK's reference bit (bit 0) and the deadline (bits 1 and up, see
    /// [`LazyNow`]; 0 for none). Readers set the bit under the shared lock
    /// with a plain store (every reader stores the same value, and writers
    /// are excluded); writers change it under the exclusive lock.
    pub(super) meta: AtomicU64,
}

/// How a write fills its entry.
pub(super) enum Fill<V, F> {
    /// With a value the caller brings.
    Value(V),
    /// In place, with a reset value.
    With(F),
}

/// What a write did.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wrote {
    /// Added an entry (or refilled an expired one).
    Inserted,
    /// Overwrote a live entry.
    Replaced,
    /// Found a live entry and left it as it was (`get_or_insert_with`).
    Kept,
}

impl<K, V> Shard<K, V> {
    pub(super) fn new(cap: usize) -> CachePadded<Self> {
        CachePadded::new(Shard {
            inner: RwLock::new(Inner {
                table: HashTable::new(),
                spares: Vec::new(),
                hand: 0,
                cap,
                sized: false,
            }),
        })
    }

    // A panic in a caller's closure leaves the shard consistent (see
    // `Unfill`), so poison is ignored.
    #[inline]
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Inner<K, V>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Inner<K, V>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes the entry being filled in place by `insert_with` if its `fill`
/// panics, so a half-written value is never returned. Forgotten on
/// success.
struct Unfill<'a, K, V> {
    table: &'a mut HashTable<Entry<K, V>>,
    bucket: usize,
    removes: Option<&'a AtomicU64>,
}

impl<K, V> Drop for Unfill<'_, K, V> {
    fn drop(&mut self) {
        if let Ok(entry) = self.table.get_bucket_entry(self.bucket) {
            drop(entry.remove());
            if let Some(removes) = self.removes {
                bump(removes);
            }
        }
    }
}

impl<K, V> Inner<K, V> {
    /// The bucket of `key`'s entry, if it has one (live or expired).
    #[inline]
    fn find<W: WriteKey<K>>(&self, hash: u64, key: &W) -> Option<usize> {
        self.table.find_bucket_index(hash, |e| key.is(&e.key))
    }

    /// Drops every entry and spare, all of them even if one's destructor
    /// panics (the first panic is kept in `panic`).
    pub(super) fn drop_all(&mut self, panic: &mut FirstPanic) {
        for Entry { key, value, .. } in self.table.drain() {
            panic.run(|| drop(key));
            panic.run(|| drop(value));
        }
        for value in self.spares.drain(..) {
            panic.run(|| drop(value));
        }
    }
}

/// What every step of one write uses.
struct WriteCx<'a> {
    counters: &'a Counters,
    now: LazyNow,
    /// The deadline code of the entry written.
    deadline: u64,
}

/// What a write step did, `then`'s output, and a displaced value for the
/// cache's pool (given to it after the lock).
type Step<V, T> = (Wrote, T, Option<V>);

impl<K, V, S, R> PooledCache<K, V, S, R>
where
    K: Hash + Eq,
    S: BuildHasher,
    R: Recycle<V>,
{
    #[inline]
    pub(super) fn shard(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[(hash >> SHARD_SHIFT) as usize & self.mask]
    }

    /// Runs `f` on the live value of `key` under the shard's shared lock,
    /// marks the entry as used and counts a hit. On a miss, counts nothing
    /// and gives `f` back, with whether an expired entry was found.
    #[inline]
    pub(super) fn read_live<Q, T, F>(&self, hash: u64, key: &Q, f: F) -> Result<T, (F, bool)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
        F: FnOnce(&V) -> T,
    {
        let inner = self.shard(hash).read();
        let Some(entry) = inner.table.find(hash, |e| e.key.borrow() == key) else {
            return Err((f, false));
        };
        let meta = entry.meta.load(Ordering::Relaxed);
        if self.expired(meta) {
            return Err((f, true));
        }
        if meta & REFERENCED == 0 {
            entry.meta.store(meta | REFERENCED, Ordering::Relaxed);
        }
        bump(&self.counters().hits);
        Ok(f(&entry.value))
    }

    /// The `insert` methods with an owned key.
    #[inline]
    pub(super) fn write_owned<F: FnOnce(&mut V)>(
        &self,
        key: K,
        ttl: Option<Duration>,
        fill: Fill<V, F>,
    ) -> bool {
        let key = OwnedKey(key);
        let hash = key.hash_with(&self.hasher);
        self.write(hash, key, ttl, fill, false, |_| ()).0 == Wrote::Replaced
    }

    /// The `insert_with_ref` methods.
    #[inline]
    pub(super) fn write_borrowed<Q>(
        &self,
        key: &Q,
        ttl: Option<Duration>,
        fill: impl FnOnce(&mut V),
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let wrote = self.write(hash, BorrowedKey(key), ttl, Fill::With(fill), false, |_| ());
        wrote.0 == Wrote::Replaced
    }

    /// The write path of the `insert` methods and of `get_or_insert_with`:
    /// sets the entry of `key` (whose hash is `hash`) and runs `then` on its
    /// value, under the shard lock. With `keep_live`, a live entry is left
    /// as it is (and marked as used) instead of overwritten. A panic of
    /// `fill` or `then` leaves no entry for `key` (see `Unfill`).
    pub(super) fn write<W, F, T>(
        &self,
        hash: u64,
        key: W,
        ttl: Option<Duration>,
        fill: Fill<V, F>,
        keep_live: bool,
        then: impl FnOnce(&V) -> T,
    ) -> (Wrote, T)
    where
        W: WriteKey<K>,
        F: FnOnce(&mut V),
    {
        let counters = self.counters();
        let mut now = LazyNow::new(self.epoch);
        let deadline = now.deadline(ttl);
        let cx = &mut WriteCx {
            counters,
            now,
            deadline,
        };
        let mut guard = self.shard(hash).write();
        let inner = &mut *guard;
        let (wrote, out, spill) = match inner.find(hash, &key) {
            Some(bucket) => self.overwrite(inner, bucket, cx, fill, keep_live, then),
            None => self.insert_new(inner, hash, key, cx, fill, then),
        };
        drop(guard);
        if wrote == Wrote::Kept {
            return (wrote, out);
        }
        // One atomic per write: a replace is counted as such only.
        bump(if wrote == Wrote::Replaced {
            &counters.replaces
        } else {
            &counters.inserts
        });
        if let Some(old) = spill {
            if self.pool.put(old).is_err() {
                bump(&counters.discards);
            }
        }
        (wrote, out)
    }

    /// Overwrites the entry in `bucket` in place, or with `keep_live`
    /// leaves a live one as it is. An expired entry is refilled as new.
    #[inline(always)]
    fn overwrite<F: FnOnce(&mut V), T>(
        &self,
        inner: &mut Inner<K, V>,
        bucket: usize,
        cx: &mut WriteCx<'_>,
        fill: Fill<V, F>,
        keep_live: bool,
        then: impl FnOnce(&V) -> T,
    ) -> Step<V, T> {
        let Inner {
            table, spares, cap, ..
        } = inner;
        let Some(entry) = table.get_bucket_mut(bucket) else {
            unreachable!("the bucket was just found full");
        };
        let meta = entry.meta.get_mut();
        let expired = cx.now.expired(*meta);
        if keep_live && !expired {
            *meta |= REFERENCED;
            return (Wrote::Kept, then(&entry.value), None);
        }
        if expired {
            bump(&cx.counters.expirations);
        }
        *meta = cx.deadline << 1 | REFERENCED;
        let wrote = if expired {
            Wrote::Inserted
        } else {
            Wrote::Replaced
        };
        match fill {
            Fill::Value(value) => {
                let old = mem::replace(&mut entry.value, value);
                let out = then(&entry.value);
                if spares.len() + table.len() < *cap {
                    self.keep_spare(spares, old);
                    (wrote, out, None)
                } else {
                    (wrote, out, Some(old))
                }
            }
            Fill::With(f) => {
                self.reset_for_fill(&mut entry.value, spares);
                // A live entry lost to a panic counts as removed.
                let removes = (!expired).then_some(&cx.counters.removes);
                (wrote, self.refill(table, bucket, removes, f, then), None)
            }
        }
    }

    /// Fills the reset value in `bucket` with `f`, then runs `then` on it;
    /// if either panics, the entry goes (see `Unfill`).
    #[inline(always)]
    fn refill<T>(
        &self,
        table: &mut HashTable<Entry<K, V>>,
        bucket: usize,
        removes: Option<&AtomicU64>,
        f: impl FnOnce(&mut V),
        then: impl FnOnce(&V) -> T,
    ) -> T {
        let unfill = Unfill {
            table,
            bucket,
            removes,
        };
        let Some(entry) = unfill.table.get_bucket_mut(bucket) else {
            unreachable!("the bucket was just found full");
        };
        f(&mut entry.value);
        self.recycle.shrink_excess(&mut entry.value);
        let out = then(&entry.value);
        mem::forget(unfill);
        out
    }

    /// Adds an entry for `key`; at the bound, the CLOCK victim makes room
    /// first ([`Inner::evict`]), and its value is refilled for the new key.
    #[inline(always)]
    fn insert_new<W: WriteKey<K>, F: FnOnce(&mut V), T>(
        &self,
        inner: &mut Inner<K, V>,
        hash: u64,
        key: W,
        cx: &mut WriteCx<'_>,
        fill: Fill<V, F>,
        then: impl FnOnce(&V) -> T,
    ) -> Step<V, T> {
        let mut evicted = None;
        if inner.table.len() >= inner.cap {
            evicted = inner.evict(&mut cx.now, cx.counters);
        }
        let (value, mut spill) = match fill {
            Fill::Value(value) => (value, evicted),
            Fill::With(f) => (self.fill_new(evicted, &mut inner.spares, f), None),
        };
        let out = then(&value);
        let Inner {
            table,
            spares,
            cap,
            sized,
            ..
        } = inner;
        let entry = Entry {
            key: key.into_owned(),
            value,
            meta: AtomicU64::new(cx.deadline << 1),
        };
        table.insert_unique(hash, entry, |e| self.hasher.hash_one(&e.key));
        if table.len() + spares.len() > *cap {
            spill = spill.or_else(|| spares.pop());
        }
        if table.len() >= *cap && !*sized {
            *sized = true;
            reserve_for_churn(table, spares, *cap, |e| self.hasher.hash_one(&e.key));
        }
        (Wrote::Inserted, out, spill)
    }

    /// A new entry's value, filled by `f`: the evicted value reset, else a
    /// spare or one from the pool.
    #[inline(always)]
    fn fill_new(&self, evicted: Option<V>, spares: &mut Vec<V>, f: impl FnOnce(&mut V)) -> V {
        let mut value = match evicted {
            Some(mut old) => {
                self.reset_for_fill(&mut old, spares);
                old
            }
            None => self.fresh(spares),
        };
        // A panic here drops `value`; the table has no trace of it.
        f(&mut value);
        self.recycle.shrink_excess(&mut value);
        value
    }

    /// Resets a value that left the map and keeps it as a spare (the caller
    /// made room: one entry fewer), or drops it if it retains more than the
    /// retention limit.
    pub(super) fn keep_spare(&self, spares: &mut Vec<V>, mut value: V) {
        self.recycle.reset(&mut value);
        if self.recycle.retained_bytes(&value) > self.retention_limit {
            bump(&self.counters().discards);
        } else {
            spares.push(value);
        }
    }

    /// Resets a value to be filled in place: the same value, or a fresh
    /// one if it retains more than the retention limit.
    fn reset_for_fill(&self, value: &mut V, spares: &mut Vec<V>) {
        self.recycle.reset(value);
        if self.recycle.retained_bytes(value) > self.retention_limit {
            bump(&self.counters().discards);
            *value = self.fresh(spares);
        }
    }

    /// A reset value for a new entry: a spare, else one from the pool.
    fn fresh(&self, spares: &mut Vec<V>) -> V {
        spares.pop().unwrap_or_else(|| self.pool.get().detach())
    }
}
