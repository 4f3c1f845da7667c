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

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;

use crate::pool::{DEFAULT_MAX_IDLE, DEFAULT_RETENTION_LIMIT, MAX_SHARDS, shard_hint};
use crate::reset::{Recycle, Reset, ResetWith, UseReset};
use crate::shard::FirstPanic;
use crate::stats::PoolStats;
use crate::worker::WorkerPool;

/// The error of [`PooledCache::new`] and [`PooledCacheBuilder::build`]: a
/// cache needs room for at least one entry.
///
/// ```
/// use capacitor_pool::PooledCache;
/// use capacitor_pool::cache::BuildError;
///
/// let err = PooledCache::<u64, String>::new(0).unwrap_err();
/// assert_eq!(err, BuildError::ZeroEntries);
/// assert_eq!(err.to_string(), "a pooled cache needs a max_entries of at least 1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A `max_entries` of 0.
    ZeroEntries,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroEntries => {
                f.write_str("a pooled cache needs a max_entries of at least 1")
            }
        }
    }
}

impl std::error::Error for BuildError {}

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

/// Shards per CPU unless [`shards`](PooledCacheBuilder::shards) says
/// otherwise.
const SHARDS_PER_CPU: usize = 4;

/// The fewest entries per shard the default shard count leaves (the bound is
/// split over the shards, so two keys of a one-entry shard evict each
/// other).
const MIN_SHARD_ENTRIES: usize = 32;

/// Shard index: the hash bits from 25 up. hashbrown probes with the low bits
/// and tags with the top 7, so neither loses entropy inside a shard.
const SHARD_SHIFT: u32 = 25;

/// A concurrent, bounded cache whose values are recycled; see the [`cache`
/// module](crate::cache#how-it-works) for how it works.
///
/// `K` is the key, `V` the value, `S` the [`BuildHasher`] (default
/// [`DefaultHashBuilder`]), `R` the [`Recycle`] policy that resets
/// displaced values (default [`UseReset`], the [`Reset`] trait).
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
}

/// One shard: its lock, in its own 128-byte-aligned block, with the
/// table's header in the same line as the lock word.
struct Shard<K, V> {
    inner: RwLock<Inner<K, V>>,
}

/// What the shard lock guards.
struct Inner<K, V> {
    /// The entries, in the table's buckets (live ones, and expired ones not
    /// yet recycled).
    table: HashTable<Entry<K, V>>,
    /// Reset values of removed, expired and replaced entries, ready for
    /// `insert_with`; `spares.len() + table.len() <= cap`.
    spares: Vec<V>,
    /// The CLOCK hand: the next bucket the sweep looks at.
    hand: usize,
    /// The most entries this shard holds.
    cap: usize,
    /// Whether the table was sized for churn at the bound.
    sized: bool,
}

/// The cache's counters, striped by thread (see [`shard_hint`]): each
/// stripe in its own 128-byte block, so counting never moves a cache line
/// between threads, and never touches the shard's lock line. Summed on
/// read.
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    /// Writes that added an entry (not those counted in `replaces`).
    inserts: AtomicU64,
    replaces: AtomicU64,
    removes: AtomicU64,
    /// Removes that handed the value to the caller (counted in `removes`
    /// too).
    takes: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    discards: AtomicU64,
}

/// Adds 1 to a counter.
#[inline(always)]
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// An entry, in place in a bucket of its shard's table: 40 bytes for a
/// `u64` key and a `Vec` value.
struct Entry<K, V> {
    key: K,
    value: V,
    /// CLOCK's reference bit (bit 0) and the deadline (bits 1 and up, see
    /// [`LazyNow`]; 0 for none). Readers set the bit under the shared lock
    /// with a plain store (every reader stores the same value, and writers
    /// are excluded); writers change it under the exclusive lock.
    meta: AtomicU64,
}

/// Bit 0 of [`Entry::meta`].
const REFERENCED: u64 = 1;

/// The largest deadline code; a TTL past it means no expiry.
const MAX_DEADLINE: u64 = u64::MAX >> 2;

/// The current time as a deadline code (nanoseconds since the cache's
/// epoch, plus 1, so that 0 means "no deadline"), read at most once, and
/// only if needed.
struct LazyNow {
    epoch: Instant,
    now: Option<u64>,
}

impl LazyNow {
    #[inline]
    fn new(epoch: Instant) -> Self {
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
    fn expired(&mut self, meta: u64) -> bool {
        let deadline = meta >> 1;
        deadline != 0 && self.get() >= deadline
    }

    /// The deadline code of an entry that lives `ttl` from now (0: none).
    fn deadline(&mut self, ttl: Option<Duration>) -> u64 {
        let Some(ttl) = ttl else { return 0 };
        let end = u128::from(self.get()) + ttl.as_nanos();
        if end >= u128::from(MAX_DEADLINE) {
            0
        } else {
            end as u64
        }
    }
}

/// The recycler, shared between the cache (which resets values in place)
/// and its pool.
struct SharedRecycle<R>(Arc<R>);

impl<T, R: Recycle<T>> Recycle<T> for SharedRecycle<R> {
    #[inline]
    fn reset(&self, value: &mut T) {
        self.0.reset(value);
    }

    #[inline]
    fn retained_bytes(&self, value: &T) -> usize {
        self.0.retained_bytes(value)
    }
}

/// How a write fills its entry.
enum Fill<V, F> {
    /// With a value the caller brings.
    Value(V),
    /// In place, with a reset value.
    With(F),
}

/// The key a write brings: owned, or borrowed and made owned only for a
/// new entry (the pattern of hashbrown's `entry_ref`).
trait WriteKey<K> {
    /// The key's hash; equal for a borrowed key and its owned form, by
    /// the contract of [`Borrow`].
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64;

    /// Whether `key` is this key.
    fn is(&self, key: &K) -> bool;

    /// The key to store in a new entry.
    fn into_owned(self) -> K;
}

/// A key the caller gives away (`insert`, `insert_with`).
struct OwnedKey<K>(K);

impl<K: Hash + Eq> WriteKey<K> for OwnedKey<K> {
    #[inline]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(&self.0)
    }

    #[inline]
    fn is(&self, key: &K) -> bool {
        *key == self.0
    }

    #[inline]
    fn into_owned(self) -> K {
        self.0
    }
}

/// A key the caller lends (`insert_with_ref`, `get_or_insert_with`).
struct BorrowedKey<'a, Q: ?Sized>(&'a Q);

impl<K, Q> WriteKey<K> for BorrowedKey<'_, Q>
where
    K: Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    #[inline]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(self.0)
    }

    #[inline]
    fn is(&self, key: &K) -> bool {
        key.borrow() == self.0
    }

    #[inline]
    fn into_owned(self) -> K {
        self.0.to_owned()
    }
}

/// What a write did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wrote {
    /// Added an entry (or refilled an expired one).
    Inserted,
    /// Overwrote a live entry.
    Replaced,
    /// Found a live entry and left it as it was (`get_or_insert_with`).
    Kept,
}

impl<K, V> Shard<K, V> {
    fn new(cap: usize) -> CachePadded<Self> {
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
    fn read(&self) -> RwLockReadGuard<'_, Inner<K, V>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn write(&self) -> RwLockWriteGuard<'_, Inner<K, V>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sizes a full shard's table and spare list so that churn (evictions,
/// removals and inserts at the bound) never allocates: with room for twice
/// the bound, hashbrown clears its tombstones by rehashing in place instead
/// of growing.
#[cold]
fn reserve_for_churn<K, V>(
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

impl<K, V> PooledCache<K, V>
where
    K: Hash + Eq,
    V: Reset + Default + Send + 'static,
{
    /// A cache of at most `max_entries` entries, with the default shards,
    /// hasher and no TTL; values are made with `V::default` and reset with
    /// [`Reset`].
    ///
    /// # Errors
    /// [`BuildError::ZeroEntries`] for a `max_entries` of 0, as
    /// [`builder`](PooledCache::builder) gives.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache: PooledCache<u64, String> = PooledCache::new(100).unwrap();
    /// cache.insert(1, "one".to_string());
    /// assert_eq!(cache.get(&1).as_deref(), Some("one"));
    /// assert_eq!(cache.max_entries(), 100);
    /// ```
    pub fn new(max_entries: usize) -> Result<Self, BuildError> {
        Self::builder().max_entries(max_entries).build()
    }
}

impl<K, V> PooledCache<K, V>
where
    V: Default + Send + 'static,
{
    /// A builder for a cache whose fresh values come from `V::default`.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use capacitor_pool::cache::BuildError;
    ///
    /// let err = PooledCache::<u64, Vec<u8>>::builder().max_entries(0).build();
    /// assert_eq!(err.unwrap_err(), BuildError::ZeroEntries);
    /// ```
    pub fn builder() -> PooledCacheBuilder<K, V> {
        Self::builder_with(V::default)
    }
}

impl<K, V> PooledCache<K, V>
where
    V: Send + 'static,
{
    /// A builder for a cache whose fresh values come from `make`, for a `V`
    /// without a useful `Default`.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, Vec<u8>>::builder_with(|| Vec::with_capacity(64))
    ///     .max_entries(16)
    ///     .build()
    ///     .unwrap();
    /// cache.insert_with(1, |v| v.push(1));
    /// assert!(cache.view(&1, |v| v.capacity() >= 64).unwrap());
    /// ```
    pub fn builder_with(make: impl Fn() -> V + Send + Sync + 'static) -> PooledCacheBuilder<K, V> {
        PooledCacheBuilder {
            make: Box::new(make),
            recycle: UseReset,
            hasher: DefaultHashBuilder::default(),
            max_entries: DEFAULT_MAX_ENTRIES,
            shards: None,
            default_ttl: None,
            max_spare: DEFAULT_MAX_IDLE,
            retention_limit: DEFAULT_RETENTION_LIMIT,
            _key: PhantomData,
        }
    }
}

impl<K, V, S, R> PooledCache<K, V, S, R>
where
    K: Hash + Eq,
    S: BuildHasher,
    R: Recycle<V>,
{
    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[(hash >> SHARD_SHIFT) as usize & self.mask]
    }

    /// The calling thread's stripe of counters.
    #[inline]
    fn counters(&self) -> &Counters {
        &self.counters[shard_hint() & (self.counters.len() - 1)]
    }

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

    /// Runs `f` on the live value of `key` under the shard's shared lock,
    /// marks the entry as used and counts a hit. On a miss, counts nothing
    /// and gives `f` back, with whether an expired entry was found.
    #[inline]
    fn read_live<Q, T, F>(&self, hash: u64, key: &Q, f: F) -> Result<T, (F, bool)>
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

    /// The `insert` methods with an owned key.
    #[inline]
    fn write_owned<F: FnOnce(&mut V)>(
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
    fn write_borrowed<Q>(&self, key: &Q, ttl: Option<Duration>, fill: impl FnOnce(&mut V)) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let wrote = self.write(hash, BorrowedKey(key), ttl, Fill::With(fill), false, |_| ());
        wrote.0 == Wrote::Replaced
    }

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
    /// [`WorkerPool::trim`]). Returns the number of expired entries
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

    /// Recycles `key`'s entry if it is still there and expired (after a
    /// read found it so).
    #[cold]
    #[inline(never)]
    fn reclaim_expired<Q>(&self, hash: u64, key: &Q)
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

    /// Resets a value that left the map and keeps it as a spare (the caller
    /// made room: one entry fewer), or drops it if it retains more than the
    /// retention limit.
    fn keep_spare(&self, spares: &mut Vec<V>, mut value: V) {
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

    /// Whether an entry with this `meta` has expired; reads the clock only
    /// for an entry with a deadline.
    #[inline]
    fn expired(&self, meta: u64) -> bool {
        meta >> 1 != 0 && LazyNow::new(self.epoch).expired(meta)
    }

    /// The write path of the `insert` methods and of `get_or_insert_with`:
    /// sets the entry of `key` (whose hash is `hash`) and runs `then` on its
    /// value, under the shard lock. With `keep_live`, a live entry is left
    /// as it is (and marked as used) instead of overwritten. A panic of
    /// `fill` or `then` leaves no entry for `key` (see `Unfill`).
    fn write<W, F, T>(
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
        let shard = self.shard(hash);
        let mut guard = shard.write();
        let Inner {
            table,
            spares,
            hand,
            cap,
            sized,
        } = &mut *guard;
        let cap = *cap;
        // A value displaced by `insert`, for the pool (outside the lock).
        let mut spill = None;
        let found = table.find_bucket_index(hash, |e| key.is(&e.key));
        let (wrote, out) = match found.and_then(|i| table.get_bucket_mut(i).map(|e| (i, e))) {
            Some((bucket, entry)) => {
                let meta = entry.meta.get_mut();
                let expired = now.expired(*meta);
                if keep_live && !expired {
                    *meta |= REFERENCED;
                    let out = then(&entry.value);
                    return (Wrote::Kept, out);
                }
                // Overwrite, in place.
                if expired {
                    bump(&counters.expirations);
                }
                *meta = deadline << 1 | REFERENCED;
                let out = match fill {
                    Fill::Value(value) => {
                        let old = mem::replace(&mut entry.value, value);
                        let out = then(&entry.value);
                        if spares.len() + table.len() < cap {
                            self.keep_spare(spares, old);
                        } else {
                            spill = Some(old);
                        }
                        out
                    }
                    Fill::With(f) => {
                        self.reset_for_fill(&mut entry.value, spares);
                        let unfill = Unfill {
                            table: &mut *table,
                            bucket,
                            // A live entry lost to a panic counts as removed.
                            removes: (!expired).then_some(&counters.removes),
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
                };
                let wrote = if expired {
                    Wrote::Inserted
                } else {
                    Wrote::Replaced
                };
                (wrote, out)
            }
            None => {
                // A new entry; at the bound, the CLOCK victim makes room.
                let mut evicted = None;
                if table.len() >= cap {
                    let victim = clock_victim(table, hand, &mut now);
                    if let Some(Ok(found)) = victim.map(|i| table.get_bucket_entry(i)) {
                        let (old, _) = found.remove();
                        if now.expired(old.meta.into_inner()) {
                            bump(&counters.expirations);
                        } else {
                            bump(&counters.evictions);
                        }
                        evicted = Some(old.value);
                    }
                }
                let value = match fill {
                    Fill::Value(value) => {
                        if let Some(old) = evicted {
                            spill = Some(old);
                        }
                        value
                    }
                    Fill::With(f) => {
                        let mut value = match evicted {
                            Some(mut old) => {
                                self.reset_for_fill(&mut old, spares);
                                old
                            }
                            None => self.fresh(spares),
                        };
                        // A panic here drops `value`; the table has no
                        // trace of it.
                        f(&mut value);
                        self.recycle.shrink_excess(&mut value);
                        value
                    }
                };
                let out = then(&value);
                let entry = Entry {
                    key: key.into_owned(),
                    value,
                    meta: AtomicU64::new(deadline << 1),
                };
                table.insert_unique(hash, entry, |e| self.hasher.hash_one(&e.key));
                if table.len() + spares.len() > cap {
                    spill = spill.or_else(|| spares.pop());
                }
                if table.len() >= cap && !*sized {
                    *sized = true;
                    reserve_for_churn(table, spares, cap, |e| self.hasher.hash_one(&e.key));
                }
                (Wrote::Inserted, out)
            }
        };
        drop(guard);
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
            pool: self.pool.stats(),
            ..CacheStats::default()
        };
        for c in self.counters.iter() {
            let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            s.hit_count += load(&c.hits);
            s.miss_count += load(&c.misses);
            s.insert_count += load(&c.inserts);
            s.replace_count += load(&c.replaces);
            s.remove_count += load(&c.removes);
            s.taken_count += load(&c.takes);
            s.eviction_count += load(&c.evictions);
            s.expiration_count += load(&c.expirations);
            s.discard_count += load(&c.discards);
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
            let inner = shard
                .inner
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            for Entry { key, value, .. } in inner.table.drain() {
                panic.run(|| drop(key));
                panic.run(|| drop(value));
            }
            for value in inner.spares.drain(..) {
                panic.run(|| drop(value));
            }
        }
        // SAFETY: the pool is dropped here alone, and never used after.
        panic.run(|| unsafe { ManuallyDrop::drop(&mut self.pool) });
        panic.resume();
    }
}

impl<K, V, S, R> fmt::Debug for PooledCache<K, V, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledCache")
            .field("max_entries", &self.max_entries)
            .field("shards", &self.shards.len())
            .field("default_ttl", &self.default_ttl)
            .field("retention_limit", &self.retention_limit)
            .finish_non_exhaustive()
    }
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

/// Builds a [`PooledCache`]; made by [`PooledCache::builder`] or
/// [`PooledCache::builder_with`].
///
/// ```
/// use capacitor_pool::PooledCache;
/// use capacitor_pool::cache::PooledCacheBuilder;
/// use std::time::Duration;
///
/// let builder: PooledCacheBuilder<u64, Vec<u8>> = PooledCache::builder();
/// let cache = builder.max_entries(64).default_ttl(Duration::from_secs(60)).build().unwrap();
/// cache.insert_with(1, |v| v.extend_from_slice(b"value"));
/// assert_eq!(cache.get(&1).as_deref(), Some(&b"value"[..]));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PooledCacheBuilder<K, V, S = DefaultHashBuilder, R = UseReset> {
    make: Box<dyn Fn() -> V + Send + Sync>,
    recycle: R,
    hasher: S,
    max_entries: usize,
    shards: Option<usize>,
    default_ttl: Option<Duration>,
    max_spare: usize,
    retention_limit: usize,
    _key: PhantomData<fn() -> K>,
}

impl<K, V: 'static, S, R> PooledCacheBuilder<K, V, S, R> {
    /// The most entries the cache holds (default [`DEFAULT_MAX_ENTRIES`]);
    /// 0 makes [`build`](PooledCacheBuilder::build) fail.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, String>::builder().max_entries(2).build().unwrap();
    /// for k in 0..10 {
    ///     cache.insert(k, k.to_string());
    /// }
    /// assert_eq!(cache.len(), 2);
    /// ```
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// The number of shards, rounded up to a power of two (0 counts as 1),
    /// at most [`MAX_SHARDS`] (1,024) and at most
    /// the largest power of two not over `max_entries`. The default is four per CPU (or per runtime worker,
    /// if more), rounded up, but no more than leaves each shard 32 entries
    /// (a small cache gets fewer shards, or one).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, String>::builder()
    ///     .max_entries(4)
    ///     .shards(64) // at most one shard per entry
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(cache.num_shards(), 4);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The time to live of entries inserted without one (default: none).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use std::time::Duration;
    ///
    /// let cache = PooledCache::<u64, String>::builder()
    ///     .default_ttl(Duration::ZERO)
    ///     .build()
    ///     .unwrap();
    /// cache.insert(1, "gone".into());
    /// assert_eq!(cache.get(&1), None);
    /// ```
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The most spare values the cache's pool keeps (its `max_idle`, default
    /// [`DEFAULT_MAX_IDLE`]); spares kept by the shards
    /// are bounded by `max_entries` already.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, Vec<u8>>::builder()
    ///     .max_entries(1)
    ///     .max_spare(0) // keep no values beyond the entries
    ///     .build()
    ///     .unwrap();
    /// cache.insert(1, vec![1]);
    /// cache.insert(2, vec![2]); // evicts 1; its value has nowhere to go
    /// assert_eq!(cache.stats().discard_count, 1);
    /// ```
    pub fn max_spare(mut self, max_spare: usize) -> Self {
        self.max_spare = max_spare;
        self
    }

    /// Values that retain more bytes than this after their reset are
    /// dropped instead of kept (default
    /// [`DEFAULT_RETENTION_LIMIT`], 1 MiB).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, Vec<u8>>::builder()
    ///     .retention_limit(1024)
    ///     .build()
    ///     .unwrap();
    /// cache.insert(1, vec![0; 4096]);
    /// cache.invalidate(&1); // reset, but too big to keep
    /// assert_eq!(cache.stats().num_spare, 0);
    /// ```
    pub fn retention_limit(mut self, bytes: usize) -> Self {
        self.retention_limit = bytes;
        self
    }

    /// Hashes keys with `hasher` instead of [`DefaultHashBuilder`].
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use std::collections::hash_map::RandomState;
    ///
    /// let cache = PooledCache::<String, String>::builder()
    ///     .hasher(RandomState::new()) // SipHash, for untrusted keys
    ///     .build()
    ///     .unwrap();
    /// cache.insert("k".into(), "v".into());
    /// assert!(cache.contains_key("k"));
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> PooledCacheBuilder<K, V, S2, R> {
        PooledCacheBuilder {
            make: self.make,
            recycle: self.recycle,
            hasher,
            max_entries: self.max_entries,
            shards: self.shards,
            default_ttl: self.default_ttl,
            max_spare: self.max_spare,
            retention_limit: self.retention_limit,
            _key: PhantomData,
        }
    }

    /// Resets displaced values with a closure instead of the [`Reset`]
    /// trait. A closure cannot report retained capacity, so the retention
    /// limit does not apply; implement [`Recycle`] to have both.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// #[derive(Clone, Default)]
    /// struct Row { cols: Vec<String>, version: u64 }
    ///
    /// let cache = PooledCache::<u64, Row>::builder()
    ///     .reset(|r: &mut Row| {
    ///         r.cols.clear();
    ///         r.version = 0;
    ///     })
    ///     .build()
    ///     .unwrap();
    /// cache.insert_with(1, |r| r.version = 7);
    /// cache.insert_with(1, |r| assert_eq!(r.version, 0)); // reset first
    /// ```
    pub fn reset<F>(self, reset: F) -> PooledCacheBuilder<K, V, S, ResetWith<F>>
    where
        F: Fn(&mut V) + Send + Sync,
    {
        self.recycler(ResetWith(reset))
    }

    /// Recycles displaced values with a [`Recycle`] policy.
    ///
    /// ```
    /// use capacitor_pool::{PooledCache, Recycle};
    ///
    /// // Clear strings, and keep none over 256 bytes of capacity.
    /// struct Small;
    /// impl Recycle<String> for Small {
    ///     fn reset(&self, s: &mut String) {
    ///         s.clear();
    ///     }
    ///     fn retained_bytes(&self, s: &String) -> usize {
    ///         s.capacity()
    ///     }
    /// }
    ///
    /// let cache = PooledCache::<u64, String>::builder()
    ///     .recycler(Small)
    ///     .retention_limit(256)
    ///     .build()
    ///     .unwrap();
    /// cache.insert(1, "x".repeat(1000));
    /// cache.invalidate(&1);
    /// assert_eq!(cache.stats().discard_count, 1);
    /// ```
    pub fn recycler<R2: Recycle<V>>(self, recycle: R2) -> PooledCacheBuilder<K, V, S, R2> {
        PooledCacheBuilder {
            make: self.make,
            recycle,
            hasher: self.hasher,
            max_entries: self.max_entries,
            shards: self.shards,
            default_ttl: self.default_ttl,
            max_spare: self.max_spare,
            retention_limit: self.retention_limit,
            _key: PhantomData,
        }
    }

    /// Builds the cache. Its storage grows with use, up to the bound.
    ///
    /// # Errors
    /// [`BuildError::ZeroEntries`] for a `max_entries` of 0.
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    /// use capacitor_pool::cache::BuildError;
    ///
    /// let cache = PooledCache::<u64, String>::builder().max_entries(100).build();
    /// assert!(cache.is_ok());
    /// let none = PooledCache::<u64, String>::builder().max_entries(0).build();
    /// assert_eq!(none.unwrap_err(), BuildError::ZeroEntries);
    /// ```
    pub fn build(self) -> Result<PooledCache<K, V, S, R>, BuildError>
    where
        R: Recycle<V>,
        V: Send,
    {
        let max_entries = self.max_entries;
        if max_entries == 0 {
            return Err(BuildError::ZeroEntries);
        }
        let wanted = match self.shards {
            Some(n) => n.clamp(1, MAX_SHARDS),
            // Small caches get fewer shards, each holding a useful share.
            None => default_shards()
                .clamp(1, MAX_SHARDS)
                .min(1 << (max_entries / MIN_SHARD_ENTRIES).max(1).ilog2()),
        };
        // Every shard holds at least one entry.
        let most = 1usize << max_entries.ilog2();
        let n = wanted.checked_next_power_of_two().unwrap_or(most).min(most);
        let shards: Box<[_]> = (0..n)
            .map(|i| Shard::new(max_entries / n + usize::from(i < max_entries % n)))
            .collect();
        let recycle = Arc::new(self.recycle);
        let pool = WorkerPool::builder(self.make)
            .max_idle(self.max_spare)
            .retention_limit(self.retention_limit)
            .recycler(SharedRecycle(Arc::clone(&recycle)))
            .build();
        let stripes = default_stripes().next_power_of_two();
        Ok(PooledCache {
            shards,
            mask: n - 1,
            counters: (0..stripes).map(|_| CachePadded::default()).collect(),
            hasher: self.hasher,
            recycle,
            pool: ManuallyDrop::new(pool),
            retention_limit: self.retention_limit,
            default_ttl: self.default_ttl,
            max_entries,
            epoch: Instant::now(),
        })
    }
}

impl<K, V, S, R> fmt::Debug for PooledCacheBuilder<K, V, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledCacheBuilder")
            .field("max_entries", &self.max_entries)
            .field("shards", &self.shards)
            .field("default_ttl", &self.default_ttl)
            .field("max_spare", &self.max_spare)
            .field("retention_limit", &self.retention_limit)
            .finish_non_exhaustive()
    }
}

/// Four shards per CPU (or runtime worker, if more).
fn default_shards() -> usize {
    default_stripes().saturating_mul(SHARDS_PER_CPU)
}

/// One stripe of counters per CPU (or runtime worker, if more), at most
/// [`MAX_SHARDS`].
fn default_stripes() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_workers());
    cpus.max(workers).clamp(1, MAX_SHARDS)
}
