//! [`PooledCacheBuilder`], made by [`PooledCache::builder`] or
//! [`PooledCache::builder_with`], and the cache's constructors.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::shard::Shard;
use super::{BuildError, DEFAULT_MAX_ENTRIES, DefaultHashBuilder, PooledCache};
use crate::pool::{DEFAULT_MAX_IDLE, DEFAULT_RETENTION_LIMIT, MAX_SHARDS};
use crate::reset::{Recycle, Reset, ResetWith, UseReset};
use crate::worker::WorkerPool;

/// Shards per CPU unless [`shards`](PooledCacheBuilder::shards) says
/// otherwise.
const SHARDS_PER_CPU: usize = 4;

/// The fewest entries per shard the default shard count leaves (the bound is
/// split over the shards, so two keys of a one-entry shard evict each
/// other).
const MIN_SHARD_ENTRIES: usize = 32;

/// The recycler, shared between the cache (which resets values in place)
/// and its pool.
pub(super) struct SharedRecycle<R>(Arc<R>);

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
            name: None,
            _key: PhantomData,
        }
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
    name: Option<&'static str>,
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

    /// Names the cache: the name shows in `Debug`, in
    /// [`stats`](crate::PooledCache::stats) (and its pool's) and in the
    /// exported series; see [`observe`](crate::observe).
    ///
    /// ```
    /// use capacitor_pool::PooledCache;
    ///
    /// let cache = PooledCache::<u64, String>::builder().name("sessions").build().unwrap();
    /// assert_eq!(cache.stats().name, Some("sessions"));
    /// assert_eq!(cache.stats().pool.name, Some("sessions"));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
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
            name: self.name,
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
            name: self.name,
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
        let mut pool = WorkerPool::builder(self.make);
        if let Some(name) = self.name {
            pool = pool.name(name);
        }
        let pool = pool
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
            name: self.name,
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
    crate::thread::default_parallelism().clamp(1, MAX_SHARDS)
}
