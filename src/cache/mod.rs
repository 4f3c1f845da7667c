//! `PooledCache<K, V>`: a sharded, bounded concurrent cache whose values are
//! recycled: overwriting a key fills the old value in place, and
//! invalidated, evicted and expired values are reset and reused.
//!
//! ```
//! use capacitor_pool::PooledCache;
//! use std::time::Duration;
//!
//! let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(10_000).unwrap();
//! cache.insert_with(7, |v| v.extend_from_slice(b"seven")); // fills a pooled value
//! assert_eq!(cache.view(&7, |v| v.len()), Some(5)); // read in place, no clone
//! assert_eq!(cache.get(&7).as_deref(), Some(&b"seven"[..])); // or a clone
//! assert_eq!(cache.get(&8), None); // a miss
//!
//! cache.insert_with(7, |v| v.push(1)); // overwrite: reset, then refilled in place
//! assert_eq!(cache.get(&7), Some(vec![1]));
//!
//! cache.insert_ttl(9, vec![9], Duration::from_millis(1));
//! std::thread::sleep(Duration::from_millis(2));
//! assert_eq!(cache.get(&9), None); // expired: never returned
//!
//! assert!(cache.invalidate(&7)); // the value is reset and kept for the next insert
//! let stats = cache.stats();
//! assert_eq!((stats.hit_count, stats.miss_count), (3, 2));
//! ```
//!
//! # How it works
//!
//! The Go original is a map under one `RWMutex` with entries from a
//! `sync.Pool`. Here the map is split into shards (a power of two, by default
//! four per CPU, rounded up, as `dashmap` does), each a
//! [`std::sync::RwLock`] in its own 128-byte block, so readers and writers
//! on different workers rarely meet. A key is hashed once (with
//! [`foldhash`] by default; a `S: BuildHasher` parameter as in std): bits 25
//! and up pick the shard, and the same hash probes the shard's
//! [`hashbrown::HashTable`] (which probes with the low bits and tags with
//! the top 7). Entries live in the table's buckets (40 bytes for a `u64` key
//! and a `Vec` value: key, value, and one word for the deadline and the
//! CLOCK bit), so a hit reads the lock's line and one bucket. A read takes
//! the shared lock and never clones. Counters are striped by thread, each
//! stripe in its own cache line, and summed by [`stats`](PooledCache::stats).
//!
//! Each shard also keeps **spares**: reset values of entries that left it,
//! at most as many as the shard has free room for. An overwrite by
//! [`insert_with`](PooledCache::insert_with) resets the key's value and
//! fills it in place; a new key takes a spare, or the value of the entry it
//! evicts, so in the steady state no write allocates (the counting
//! allocator in the tests checks it). For keys that own heap memory
//! (`String`), [`insert_with_ref`](PooledCache::insert_with_ref) takes the
//! key borrowed (`&str`) and makes the owned key only for a new entry, so
//! that an overwrite allocates no key either. Once a shard first fills up, its
//! table is sized to twice the bound, so churn at the bound never grows it
//! (hashbrown then clears tombstones by rehashing in place).
//!
//! **Eviction is CLOCK** (second chance; Corbató 1968, as in most OS page
//! caches). Every entry has a reference bit; a read sets it (a relaxed load,
//! and a store only when it was clear, so a hot entry's line is not written
//! on every read), which works under the shard's *shared* lock. When an
//! insert finds its shard full, the shard's hand sweeps the table's buckets:
//! an expired entry is taken at once, a referenced one has its bit cleared
//! and is passed over, and the first unreferenced one is the victim, whose
//! value is reset and filled for the new key. Hot keys keep their bit set
//! and survive; a key written once and never read (inserted with the bit
//! clear) is the first to go. CLOCK was chosen over sampled LRU because a
//! hit costs no timestamp write and no clock read (sampled LRU stores a
//! timestamp on every hit, dirtying the entry's line for every reader), and
//! eviction is amortised O(1) with no random sampling. The bound is split
//! over the shards (`max_entries / shards` each, spread so they add up to
//! `max_entries`), so a shard can evict while the cache as a whole has
//! room: `len()` never exceeds `max_entries`, but a skewed key set may hold
//! fewer.
//!
//! **Time to live** is an optional deadline per entry ([`insert_ttl`],
//! [`insert_with_ttl`], or the builder's
//! [`default_ttl`](PooledCacheBuilder::default_ttl)). The clock is read only
//! for entries that have one. Expired entries are never returned; they are
//! recycled lazily (by the read that finds one, by the next write of their
//! key, by the CLOCK sweep, which takes one whatever its reference bit)
//! or all at once by [`trim`](PooledCache::trim).
//!
//! **Recycling.** A displaced value (overwritten, invalidated, evicted or
//! expired; a value [`remove`](PooledCache::remove) hands back leaves the
//! cache instead) is reset with the cache's [`Recycle`] policy ([`Reset`] by
//! default, or the builder's [`reset`](PooledCacheBuilder::reset) closure)
//! and dropped instead if it then retains more than the retention limit
//! (1 MiB by default). It is refilled in place or kept as a spare of its
//! shard. A value filled in place is then trimmed to fit
//! ([`Recycle::shrink_excess`], [`Reset::shrink_excess`] by default): if it
//! holds more than a quarter over what its contents take, plus 256 bytes,
//! the excess is freed, so that entries of varied sizes hold about what
//! freshly made values would, not the capacity of the largest value their
//! slot ever held (values of about the same size are never trimmed, and
//! refill without allocating); a value displaced by [`insert`](PooledCache::insert) (which brings
//! its own) when the shard has no room for a spare goes to the cache's
//! [`WorkerPool`]. The pool also makes fresh values (with `V::default` or
//! the builder's constructor) when `insert_with` finds no spare; it is
//! bounded, and values it has no room for are dropped and counted
//! ([`CacheStats::discard_count`]).
//!
//! # Using it from async code
//!
//! Every method is synchronous and returns owned data; the shard lock is
//! taken and released inside the call (for one hash-table probe, plus the
//! closure you pass), and no guard escapes, so no lock can be held across
//! an `.await`. Share the cache as `Arc<PooledCache<..>>` or in a `static`
//! and call it from handlers directly. Keep the closures of
//! [`view`](PooledCache::view), [`insert_with`](PooledCache::insert_with)
//! and [`get_or_insert_with`](PooledCache::get_or_insert_with) short (they
//! run under the shard lock), copy out what you need before awaiting, and
//! never call the cache from inside them (that can deadlock).
//!
//! ```
//! use capacitor_pool::PooledCache;
//! use std::sync::LazyLock;
//!
//! static SESSIONS: LazyLock<PooledCache<u64, String>> =
//!     LazyLock::new(|| PooledCache::new(1024).unwrap());
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let handler = tokio::spawn(async {
//!     SESSIONS.insert_with(1, |s| s.push_str("alice"));
//!     let name_len = SESSIONS.view(&1, |s| s.len()); // lock released here
//!     tokio::task::yield_now().await; // nothing held across the await
//!     name_len
//! });
//! assert_eq!(handler.await.unwrap(), Some(5));
//! # }
//! ```
//!
//! A miss is `None`, as with std's maps, rather than a `NotFound` error:
//! a miss is an expected outcome of a cache, not a failure, and `Option`
//! composes with `?` and `.ok_or(MyError::NotFound)` where a caller wants
//! Go's `ErrNotFound`.
//!
//! [`insert_ttl`]: PooledCache::insert_ttl
//! [`insert_with_ttl`]: PooledCache::insert_with_ttl
//! [`Reset`]: crate::Reset
//! [`Reset::shrink_excess`]: crate::Reset::shrink_excess

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem::ManuallyDrop;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

mod builder;
mod clock;
mod error;
mod key;
mod remove;
mod shard;
mod stats;

pub use self::builder::PooledCacheBuilder;
pub use self::error::BuildError;
pub use self::stats::CacheStats;

use self::builder::SharedRecycle;
use self::key::BorrowedKey;
use self::shard::{Fill, Shard, Wrote};
use self::stats::{Counters, bump};
use crate::reset::{Recycle, UseReset};
use crate::shard::FirstPanic;
use crate::worker::WorkerPool;

// The cache is lock-based (std `RwLock` per shard) and has no lock-free
// protocol for loom to check, so it uses std's atomics directly: its
// atomics (reference bits and deadlines, counters) are only ever read
// and written with `Relaxed` as independent counters and flags.

/// The hasher [`PooledCache`] uses unless told otherwise: [`foldhash`]'s
/// fast, randomly seeded hasher (the default of `hashbrown` too). It is not
/// HashDoS-resistant in the way std's SipHash is; pass
/// [`std::collections::hash_map::RandomState`] to
/// [`PooledCacheBuilder::hasher`] for keys an attacker chooses.
///
/// ```
/// use capacitor_pool::PooledCache;
/// use capacitor_pool::cache::DefaultHashBuilder;
///
/// // The cache's third type parameter, written out and passed explicitly.
/// let cache: PooledCache<u64, String, DefaultHashBuilder> = PooledCache::builder()
///     .hasher(DefaultHashBuilder::default())
///     .build()
///     .unwrap();
/// cache.insert(7, "seven".into());
/// assert!(cache.contains_key(&7));
/// ```
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// The bound of [`PooledCache::builder`] unless
/// [`max_entries`](PooledCacheBuilder::max_entries) says otherwise.
///
/// ```
/// use capacitor_pool::PooledCache;
/// use capacitor_pool::cache::DEFAULT_MAX_ENTRIES;
///
/// let cache = PooledCache::<u64, String>::builder().build().unwrap();
/// assert_eq!(cache.max_entries(), DEFAULT_MAX_ENTRIES);
/// ```
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// A concurrent, bounded cache whose values are recycled; see the [`cache`
/// module](crate::cache#how-it-works) for how it works.
///
/// `K` is the key, `V` the value, `S` the [`BuildHasher`] (default
/// [`DefaultHashBuilder`]), `R` the [`Recycle`] policy that resets
/// displaced values (default [`UseReset`], the [`Reset`](crate::Reset) trait).
///
/// # Examples
///
/// ```
/// use capacitor_pool::PooledCache;
/// use std::time::Duration;
///
/// let cache = PooledCache::<String, Vec<u8>>::builder()
///     .max_entries(2)
///     .shards(1)
///     .default_ttl(Duration::from_secs(60))
///     .build()
///     .unwrap();
/// cache.insert_with("a".to_string(), |v| v.push(1));
/// cache.insert_with("b".to_string(), |v| v.push(2));
/// cache.view("a", |_| ()); // "a" is hot now
/// cache.insert_with("c".to_string(), |v| v.push(3)); // full: evicts "b"
/// assert_eq!(cache.len(), 2);
/// assert!(cache.contains_key("a") && !cache.contains_key("b"));
/// assert_eq!(cache.stats().eviction_count, 1);
/// ```
pub struct PooledCache<K, V, S = DefaultHashBuilder, R = UseReset> {
    shards: Box<[CachePadded<Shard<K, V>>]>,
    mask: usize,
    /// A power of two of them.
    counters: Box<[CachePadded<Counters>]>,
    hasher: S,
    recycle: Arc<R>,
    /// Dropped by the cache's drop, after the entries, so that a panic of
    /// theirs does not skip it.
    pool: ManuallyDrop<WorkerPool<V, SharedRecycle<R>>>,
    retention_limit: usize,
    default_ttl: Option<Duration>,
    max_entries: usize,
    /// Deadlines are nanoseconds since this instant.
    epoch: Instant,
    name: Option<&'static str>,
}

impl<K, V, S, R> PooledCache<K, V, S, R>
where
    K: Hash + Eq,
    S: BuildHasher,
    R: Recycle<V>,
{
    /// Runs `f` on the value of `key`, under the shard's shared lock, and
    /// returns what it returns; `None` on a miss (no entry, or an expired
    /// one). The value is not cloned. The name and shape are dashmap's
    /// `view` (whose closure also gets the key); to insert on a miss, see
    /// [`get_or_insert_with`](PooledCache::get_or_insert_with).
    ///
    /// `f` must not call back into the cache: a write to the same shard
    /// from inside it deadlocks.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<&str, Vec<u8>> = PooledCache::new(8).unwrap();
    /// cache.insert("k", b"value".to_vec());
    /// assert_eq!(cache.view("k", |v| v.len()), Some(5));
    /// assert_eq!(cache.view("other", |v| v.len()), None);
    /// ```
    #[inline]
    pub fn view<Q, T>(&self, key: &Q, f: impl FnOnce(&V) -> T) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        match self.read_live(hash, key, f) {
            Ok(out) => Some(out),
            Err((_, expired)) => {
                bump(&self.counters().misses);
                if expired {
                    // Found, but expired: recycle it now.
                    self.reclaim_expired(hash, key);
                }
                None
            }
        }
    }

    /// A clone of the value of `key`; `None` on a miss. Use
    /// [`view`](PooledCache::view) to read without cloning.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(8).unwrap();
    /// cache.insert(1, "one".into());
    /// assert_eq!(cache.get(&1), Some("one".to_string()));
    /// assert_eq!(cache.get(&2), None);
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.view(key, V::clone)
    }

    /// Whether `key` has an entry that has not expired. Counted as a hit or
    /// a miss, and marks the entry as used, as a read does.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(8).unwrap();
    /// cache.insert(1, String::new());
    /// assert!(cache.contains_key(&1));
    /// assert!(!cache.contains_key(&2));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.view(key, |_| ()).is_some()
    }

    /// Sets `key` to `value`, with the default TTL (if any). Returns whether
    /// it replaced a live entry.
    ///
    /// The replaced value is reset and kept for a later
    /// [`insert_with`](PooledCache::insert_with) (in its shard while the
    /// shard has room, else in the cache's pool); prefer that method where
    /// you can fill a value in place: it allocates nothing when it
    /// overwrites.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(8).unwrap();
    /// assert!(!cache.insert(1, vec![1]));
    /// assert!(cache.insert(1, vec![2])); // replaced; vec![1] is recycled
    /// assert_eq!(cache.get(&1), Some(vec![2]));
    /// ```
    pub fn insert(&self, key: K, value: V) -> bool {
        self.write_owned(key, self.default_ttl, Fill::<V, fn(&mut V)>::Value(value))
    }

    /// Like [`insert`](PooledCache::insert), with a time to live for this
    /// entry (instead of the default TTL). A TTL too long to represent as
    /// an `Instant` (such as `Duration::MAX`) means no expiry.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use std::time::Duration;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(8).unwrap();
    /// cache.insert_ttl(1, "short".into(), Duration::ZERO);
    /// assert_eq!(cache.get(&1), None); // expired at once
    /// cache.insert_ttl(2, "forever".into(), Duration::MAX);
    /// assert!(cache.get(&2).is_some());
    /// ```
    pub fn insert_ttl(&self, key: K, value: V, ttl: Duration) -> bool {
        self.write_owned(key, Some(ttl), Fill::<V, fn(&mut V)>::Value(value))
    }

    /// Sets `key` to a value that `fill` writes in place, with the default
    /// TTL (if any). Returns whether it replaced a live entry.
    ///
    /// `fill` gets a reset value: the old value of `key` if there was one,
    /// else a spare the shard kept from a removed or expired entry, else the
    /// value of the entry this insert evicts, else one from the cache's
    /// pool (made with the cache's constructor when the pool is empty). In
    /// the steady state, overwriting a key allocates nothing.
    ///
    /// `fill` runs under the shard's lock: keep it short and do not call the
    /// cache from it. If it panics, the entry is removed, its half-written
    /// value dropped, and the panic goes on; the shard stays consistent (the
    /// write is not counted as an insert, and a live entry it was
    /// overwriting counts as removed).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(8).unwrap();
    /// cache.insert_with(1, |v| v.extend_from_slice(b"first"));
    /// cache.insert_with(1, |v| {
    ///     assert!(v.is_empty()); // reset, capacity kept
    ///     v.extend_from_slice(b"second");
    /// });
    /// assert_eq!(cache.get(&1).as_deref(), Some(&b"second"[..]));
    /// ```
    pub fn insert_with(&self, key: K, fill: impl FnOnce(&mut V)) -> bool {
        self.write_owned(key, self.default_ttl, Fill::With(fill))
    }

    /// Like [`insert_with`](PooledCache::insert_with), with a time to live
    /// for this entry; see [`insert_ttl`](PooledCache::insert_ttl).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use std::time::Duration;
    ///
    /// let cache: PooledCache<u64, Vec<u8>> = PooledCache::new(8).unwrap();
    /// cache.insert_with_ttl(1, Duration::from_secs(30), |v| v.push(1));
    /// assert_eq!(cache.get(&1), Some(vec![1]));
    /// ```
    pub fn insert_with_ttl(&self, key: K, ttl: Duration, fill: impl FnOnce(&mut V)) -> bool {
        self.write_owned(key, Some(ttl), Fill::With(fill))
    }

    /// Like [`insert_with`](PooledCache::insert_with), with a borrowed key:
    /// the owned key is made (with [`ToOwned::to_owned`]) only when the
    /// entry is new, so overwriting an existing `String` key with a `&str`
    /// allocates nothing. The pattern of hashbrown's `entry_ref`, with the
    /// bound of std's `HashSet::get_or_insert_owned`: any `Q` the key
    /// borrows as whose `to_owned` makes a `K` (`str` for `String`, `[u8]`
    /// for `Vec<u8>`, `K` itself for a `Clone` key).
    ///
    /// Returns whether it replaced a live entry; the rest is as for
    /// [`insert_with`](PooledCache::insert_with).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<String, Vec<u8>> = PooledCache::new(8).unwrap();
    /// let key: &str = "user:42"; // say, borrowed from a request
    /// assert!(!cache.insert_with_ref(key, |v| v.extend_from_slice(b"alice"))); // new: one `String`
    /// assert!(cache.insert_with_ref(key, |v| v.extend_from_slice(b"bob"))); // overwrite: no `String`
    /// assert_eq!(cache.get(key).as_deref(), Some(&b"bob"[..]));
    /// ```
    pub fn insert_with_ref<Q>(&self, key: &Q, fill: impl FnOnce(&mut V)) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.write_borrowed(key, self.default_ttl, fill)
    }

    /// Like [`insert_with_ref`](PooledCache::insert_with_ref), with a time
    /// to live for this entry; see [`insert_ttl`](PooledCache::insert_ttl).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use std::time::Duration;
    ///
    /// let cache: PooledCache<String, Vec<u8>> = PooledCache::new(8).unwrap();
    /// cache.insert_with_ref_ttl("session", Duration::ZERO, |v| v.push(1));
    /// assert_eq!(cache.get("session"), None); // expired at once
    /// cache.insert_with_ref_ttl("session", Duration::from_secs(30), |v| v.push(2));
    /// assert_eq!(cache.get("session"), Some(vec![2]));
    /// ```
    pub fn insert_with_ref_ttl<Q>(&self, key: &Q, ttl: Duration, fill: impl FnOnce(&mut V)) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.write_borrowed(key, Some(ttl), fill)
    }

    /// Runs `read` on the value of `key`, first filling one in place with
    /// `fill` if `key` has no live entry: the get-or-insert of moka's
    /// `get_with` and of `HashMap`'s `entry(k).or_insert_with(..)`, for a
    /// cache that hands out no references (`read` copies out what the
    /// caller needs). The key is borrowed, and made owned only for a new
    /// entry, as in [`insert_with_ref`](PooledCache::insert_with_ref).
    ///
    /// A hit runs `read` under the shard's shared lock, as
    /// [`view`](PooledCache::view) does. A miss takes the exclusive lock,
    /// looks again, and, if `key` still has no live entry, fills one as
    /// [`insert_with_ref`](PooledCache::insert_with_ref) does (with the
    /// default TTL) and runs `read` on it; so of concurrent callers for the
    /// same missing key, one fills and the others read what it filled.
    /// Counted as one hit or one miss (and then one insert). `fill` and
    /// `read` run under the shard's lock: keep them short, and do not call
    /// the cache from them. If either panics, no entry is left for `key`.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<String, Vec<u8>> = PooledCache::new(8).unwrap();
    /// let len = cache.get_or_insert_with("k", |v| v.extend_from_slice(b"made"), |v| v.len());
    /// assert_eq!(len, 4); // a miss: filled, then read
    /// let first = cache.get_or_insert_with("k", |_| unreachable!(), |v| v.clone());
    /// assert_eq!(first, b"made"); // a hit: `fill` does not run
    /// let s = cache.stats();
    /// assert_eq!((s.hit_count, s.miss_count, s.insert_count), (1, 1, 1));
    /// ```
    pub fn get_or_insert_with<Q, T>(
        &self,
        key: &Q,
        fill: impl FnOnce(&mut V),
        read: impl FnOnce(&V) -> T,
    ) -> T
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let read = match self.read_live(hash, key, read) {
            Ok(out) => return out,
            Err((read, _)) => read,
        };
        let (wrote, out) = self.write(
            hash,
            BorrowedKey(key),
            self.default_ttl,
            Fill::With(fill),
            true,
            read,
        );
        let counters = self.counters();
        bump(if wrote == Wrote::Kept {
            &counters.hits
        } else {
            &counters.misses
        });
        out
    }

    /// Entries held now, including expired ones not yet recycled.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(8).unwrap();
    /// assert_eq!(cache.len(), 0);
    /// cache.insert(1, String::new());
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().table.len()).sum()
    }

    /// Whether [`len`](PooledCache::len) is 0.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(8).unwrap();
    /// assert!(cache.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.read().table.len() == 0)
    }
}

impl<K, V, S, R> PooledCache<K, V, S, R> {
    /// The bound on entries.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(1000).unwrap();
    /// assert_eq!(cache.max_entries(), 1000);
    /// ```
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The number of shards (a power of two).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, String>::builder().shards(5).build().unwrap();
    /// assert_eq!(cache.num_shards(), 8);
    /// ```
    pub fn num_shards(&self) -> usize {
        self.shards.len()
    }
}

impl<K, V, S, R> Drop for PooledCache<K, V, S, R> {
    /// Drops every entry, spare and pooled value, all of them even if one's
    /// destructor panics; then the first panic goes on.
    fn drop(&mut self) {
        let mut panic = FirstPanic::default();
        for shard in self.shards.iter_mut() {
            shard
                .inner
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .drop_all(&mut panic);
        }
        // SAFETY: the pool is dropped here alone, and never used after.
        panic.run(|| unsafe { ManuallyDrop::drop(&mut self.pool) });
        panic.resume();
    }
}

impl<K, V, S, R> PooledCache<K, V, S, R> {
    /// The cache's name, from [`PooledCacheBuilder::name`](crate::cache::PooledCacheBuilder::name).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, String>::builder().name("sessions").build().unwrap();
    /// assert_eq!(cache.name(), Some("sessions"));
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.name
    }
}

impl<K, V, S, R> crate::observe::sealed::Sealed for PooledCache<K, V, S, R> {}

impl<K, V, S, R> crate::observe::Observe for PooledCache<K, V, S, R>
where
    K: Hash + Eq + Send + Sync,
    V: Send + Sync,
    S: BuildHasher + Send + Sync,
    R: Recycle<V> + Send + Sync,
{
    fn snapshot(&self) -> crate::observe::Snapshot {
        crate::observe::Snapshot::Cache(self.stats())
    }
}

impl<K, V, S, R> fmt::Debug for PooledCache<K, V, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledCache")
            .field("name", &self.name)
            .field("max_entries", &self.max_entries)
            .field("shards", &self.shards.len())
            .field("default_ttl", &self.default_ttl)
            .field("retention_limit", &self.retention_limit)
            .finish_non_exhaustive()
    }
}
