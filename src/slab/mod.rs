//! `Slab`: fixed-size byte chunks in power-of-two size classes, carved from
//! pages and handed back on drop from any thread.
//!
//! See [`Slab`] for an example and how it works. The module's files follow
//! its parts: [`Slab`] and its constants here, a size class and its carving
//! in `class.rs`, pages and chunks in `page.rs`, [`SlabBuf`] in `buf.rs`,
//! waiting for capacity in `wait.rs`, then [`SlabBuilder`], [`BuildError`]
//! and the stats.

use std::fmt;
use std::sync::Arc;

use crate::loom::{AtomicU64, Ordering};

mod buf;
mod builder;
mod class;
mod error;
#[cfg(all(test, loom))]
mod loom_tests;
mod page;
mod stats;
mod wait;

pub use self::buf::{CapacityError, SlabBuf};
pub use self::builder::SlabBuilder;
pub use self::error::BuildError;
pub use self::stats::{ClassStats, SlabStats};
#[cfg(feature = "codec")]
pub(crate) use self::wait::SlabWait;

use self::class::Class;

/// The smallest chunk unless the builder says otherwise.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::DEFAULT_MIN_CHUNK;
///
/// assert_eq!(Slab::new().chunk_size_for(1), Some(DEFAULT_MIN_CHUNK));
/// ```
pub const DEFAULT_MIN_CHUNK: usize = 64;
/// The largest chunk unless the builder says otherwise.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::DEFAULT_MAX_CHUNK;
///
/// let slab = Slab::new();
/// assert_eq!(slab.max_chunk(), DEFAULT_MAX_CHUNK);
/// assert!(slab.alloc(DEFAULT_MAX_CHUNK + 1).is_none());
/// ```
pub const DEFAULT_MAX_CHUNK: usize = 64 * 1024;
/// The page size unless the builder says otherwise.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::DEFAULT_PAGE_SIZE;
///
/// let class = Slab::new().class_stats(0).unwrap();
/// assert_eq!(class.chunk_size * class.chunks_per_page, DEFAULT_PAGE_SIZE);
/// ```
pub const DEFAULT_PAGE_SIZE: usize = 64 * 1024;
/// Pages per class unless the builder says otherwise (16 MiB of 64 KiB
/// pages per class at most; pages are allocated only when needed).
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::DEFAULT_MAX_PAGES_PER_CLASS;
///
/// let class = Slab::new().class_stats(0).unwrap();
/// assert_eq!(class.max_pages, DEFAULT_MAX_PAGES_PER_CLASS);
/// ```
pub const DEFAULT_MAX_PAGES_PER_CLASS: usize = 256;
/// The largest chunk or page a slab accepts (1 GiB).
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::BuildError;
/// use capacitor_pool::slab::MAX_CHUNK_LIMIT;
///
/// let err = Slab::builder().max_chunk(MAX_CHUNK_LIMIT + 1).build().unwrap_err();
/// let expected = BuildError::TooLarge {
///     what: "max_chunk",
///     requested: MAX_CHUNK_LIMIT + 1,
///     max: MAX_CHUNK_LIMIT,
/// };
/// assert_eq!(err, expected);
/// ```
pub const MAX_CHUNK_LIMIT: usize = 1 << 30;

/// The alignment of every page, hence of every chunk (all chunk sizes are
/// powers of two of at least this).
const PAGE_ALIGN: usize = 64;

/// A slab of byte chunks; cheap to clone (a handle to shared state).
///
/// ```
/// use bytes::BufMut;
/// use capacitor_pool::Slab;
///
/// let slab = Slab::new();
/// let mut frame = slab.alloc(100).expect("the 128-byte class has room");
/// assert_eq!(frame.capacity(), 128); // the class of 100 bytes
/// frame.put_slice(b"hello");
/// assert_eq!(&frame[..], b"hello"); // only the written bytes
///
/// let bytes = frame.into_bytes(); // no copy: the chunk goes back when
/// let clone = bytes.clone(); //      the last clone drops
/// drop(bytes);
/// assert_eq!(&clone[..], b"hello");
/// drop(clone);
/// assert_eq!(slab.stats().num_in_use(), 0);
/// ```
///
/// # How it works
///
/// A slab is a segregated-fit allocator in the manner of Bonwick's slab
/// allocator ("The Slab Allocator: An Object-Caching Kernel Memory
/// Allocator", USENIX 1994) and of `jemalloc`'s small size classes: one
/// class per power of two from [`min_chunk`](SlabBuilder::min_chunk) (64 B)
/// to [`max_chunk`](SlabBuilder::max_chunk) (64 KiB), each carving chunks
/// out of zeroed pages ([`page_size`](SlabBuilder::page_size), 64 KiB) up
/// to a bound of [`max_pages_per_class`](SlabBuilder::max_pages_per_class)
/// pages.
///
/// Free chunks of a class sit in sharded stacks, as a [`Pool`](crate::Pool)'s
/// idle objects do: chunks stay where they were carved, and only pointers
/// to them move. The shards are picked by
/// tokio worker, so a chunk freed on a worker is reused by that worker
/// first; a worker whose shard is empty takes from the others before the
/// class carves a new chunk, so a class never reports itself full while a
/// chunk is free anywhere.
///
/// A page lives as long as one of its chunks does. [`trim`](Slab::trim)
/// drops chunks that stayed free through two calls (the pools' victim-cache
/// aging), and a page whose chunks are all dropped goes back to the
/// allocator.
///
/// Waiting for capacity ([`alloc_wait`](Slab::alloc_wait)) registers as a
/// waiter, then looks at every shard under its lock; a chunk's return reads
/// the waiter count under the lock of the shard it goes into. Whichever
/// comes second sees the other (Dekker's pattern, with the shard lock as
/// the shared location), so a waiter never sleeps through a free chunk.
#[derive(Clone)]
pub struct Slab {
    shared: Arc<SlabShared>,
}

struct SlabShared {
    classes: Box<[Arc<Class>]>,
    min_shift: u32,
    max_chunk: usize,
    /// Heap buffers handed out for lengths over the largest class.
    oversized: AtomicU64,
    name: Option<&'static str>,
}

impl Drop for SlabShared {
    fn drop(&mut self) {
        for class in self.classes.iter() {
            class.close();
        }
    }
}

impl Slab {
    /// A slab with the default classes (64 B to 64 KiB) and bounds.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// assert_eq!(slab.num_classes(), 11); // 64 B, 128 B, ..., 64 KiB
    /// assert_eq!(slab.stats().num_pages(), 0); // pages come with the first chunks
    /// ```
    pub fn new() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }

    /// A builder for a slab with other classes or bounds.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder()
    ///     .min_chunk(128)
    ///     .max_chunk(16 * 1024)
    ///     .max_pages_per_class(8)
    ///     .zero_on_return(true)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(slab.num_classes(), 8); // 128 B, 256 B, ..., 16 KiB
    /// ```
    pub fn builder() -> SlabBuilder {
        SlabBuilder::default()
    }

    /// The index of the class that serves `len` bytes; `None` over the
    /// largest class.
    #[inline(always)]
    fn class_index(&self, len: usize) -> Option<usize> {
        if len > self.shared.max_chunk {
            return None;
        }
        let bits = usize::BITS - (len.max(1) - 1).leading_zeros();
        Some(bits.saturating_sub(self.shared.min_shift) as usize)
    }

    /// A chunk for `len` bytes (empty, with a capacity of `len` rounded up
    /// to its class); `None` if `len` is over the largest class or the class
    /// is at its page bound with no free chunk.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().max_pages_per_class(1).build().unwrap();
    /// let big = slab.alloc(40_000).unwrap();
    /// assert_eq!(big.capacity(), 64 * 1024);
    /// assert!(slab.alloc(40_000).is_none()); // one 64 KiB page per class
    /// drop(big);
    /// assert!(slab.alloc(40_000).is_some());
    /// assert!(slab.alloc(1 << 20).is_none()); // over the largest class
    /// ```
    #[inline]
    pub fn alloc(&self, len: usize) -> Option<SlabBuf> {
        let class = &self.shared.classes[self.class_index(len)?];
        Class::lend(class).map(SlabBuf::lent)
    }

    /// A chunk for `len` bytes, else a heap buffer of exactly `len` bytes
    /// (counted in the stats as a heap fallback or an oversized
    /// allocation). Never fails.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let huge = slab.alloc_or_heap(1 << 20);
    /// assert!(!huge.is_pooled());
    /// assert_eq!(huge.capacity(), 1 << 20);
    /// assert_eq!(slab.stats().oversized_count, 1);
    /// ```
    #[inline]
    pub fn alloc_or_heap(&self, len: usize) -> SlabBuf {
        match self.class_index(len) {
            Some(i) => match Class::lend(&self.shared.classes[i]) {
                Some(chunk) => SlabBuf::lent(chunk),
                None => self.heap_fallback(Some(i), len),
            },
            None => self.heap_fallback(None, len),
        }
    }

    #[cold]
    #[inline(never)]
    fn heap_fallback(&self, class: Option<usize>, len: usize) -> SlabBuf {
        match class {
            Some(i) => &self.shared.classes[i].heap_fallbacks,
            None => &self.shared.oversized,
        }
        .fetch_add(1, Ordering::Relaxed);
        SlabBuf::heap(len)
    }

    /// A chunk holding a copy of `data` ([`alloc_or_heap`] then a copy).
    ///
    /// [`alloc_or_heap`]: Slab::alloc_or_heap
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let frame = slab.copy_from_slice(b"ping");
    /// assert_eq!(&frame[..], b"ping");
    /// ```
    pub fn copy_from_slice(&self, data: &[u8]) -> SlabBuf {
        let mut buf = self.alloc_or_heap(data.len());
        buf.extend_from_slice(data);
        buf
    }

    /// A chunk for `len` bytes, waiting for one to be freed if the class is
    /// at its bound. Over the largest class, a heap buffer at once.
    ///
    /// Waiting allocates nothing; waiters are woken when a chunk of the
    /// class is freed or one of its pages is released (`trim`), and the
    /// order in which they then get chunks is not specified.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped future holds no chunk and leaves no trace.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::builder().max_pages_per_class(1).build().unwrap();
    /// let held = slab.alloc(64 * 1024).unwrap(); // the whole class
    /// let waiter = tokio::spawn({
    ///     let slab = slab.clone();
    ///     async move { slab.alloc_wait(60_000).await.capacity() }
    /// });
    /// tokio::task::yield_now().await;
    /// drop(held); // wakes the waiter
    /// assert_eq!(waiter.await.unwrap(), 64 * 1024);
    /// # }
    /// ```
    pub async fn alloc_wait(&self, len: usize) -> SlabBuf {
        loop {
            if let Some(buf) = self.alloc(len) {
                return buf;
            }
            match self.class_index(len) {
                Some(i) => self.wait_class(i).await,
                None => return self.heap_fallback(None, len),
            }
        }
    }

    /// Waits until a chunk for `len` bytes could be had (it is not
    /// reserved: another task may take it first). Returns at once over the
    /// largest class. The backpressure stream of the `codec` feature waits
    /// here before it decodes the next frame.
    ///
    /// # Cancel safety
    /// Cancel safe.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::builder().max_pages_per_class(1).build().unwrap();
    /// let held = slab.alloc(64 * 1024).unwrap(); // the whole class
    /// let waiter = tokio::spawn({
    ///     let slab = slab.clone();
    ///     async move { slab.ready(60_000).await }
    /// });
    /// tokio::task::yield_now().await;
    /// assert!(!waiter.is_finished());
    /// drop(held); // wakes the waiter
    /// waiter.await.unwrap();
    /// assert!(slab.alloc(60_000).is_some());
    /// # }
    /// ```
    pub async fn ready(&self, len: usize) {
        if let Some(i) = self.class_index(len) {
            self.wait_class(i).await;
        }
    }

    /// Drops free chunks that stayed free since the previous `trim` (see
    /// [`Pool::trim`](crate::Pool::trim)); a page whose chunks are all dropped goes back to
    /// the allocator. Returns how many chunks were dropped.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// drop(slab.alloc(100));
    /// assert_eq!(slab.stats().num_pages(), 1);
    /// slab.trim();
    /// slab.trim(); // free through a whole period: dropped
    /// assert_eq!(slab.stats().num_pages(), 0);
    /// ```
    pub fn trim(&self) -> usize {
        self.shared.classes.iter().map(|class| class.trim()).sum()
    }

    /// A snapshot of the counters of every class.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let frame = slab.alloc(100).unwrap();
    /// let stats = slab.stats();
    /// assert_eq!(stats.classes.len(), slab.num_classes());
    /// assert_eq!(stats.num_in_use(), 1);
    /// drop(frame);
    /// assert_eq!(slab.stats().num_in_use(), 0);
    /// ```
    pub fn stats(&self) -> SlabStats {
        SlabStats {
            name: self.shared.name,
            classes: self.shared.classes.iter().map(|c| c.stats()).collect(),
            oversized_count: self.shared.oversized.load(Ordering::Relaxed),
        }
    }

    /// The counters of class `i` (`0` is the smallest); `None` past the
    /// last class.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let _frame = slab.alloc(100).unwrap();
    /// let class = slab.class_stats(1).unwrap();
    /// assert_eq!(class.chunk_size, 128);
    /// assert_eq!(class.pool.num_in_use, 1);
    /// assert!(slab.class_stats(slab.num_classes()).is_none());
    /// ```
    pub fn class_stats(&self, i: usize) -> Option<ClassStats> {
        self.shared.classes.get(i).map(|c| c.stats())
    }

    /// The number of size classes.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().min_chunk(1024).max_chunk(4096).build().unwrap();
    /// assert_eq!(slab.num_classes(), 3); // 1 KiB, 2 KiB, 4 KiB
    /// ```
    pub fn num_classes(&self) -> usize {
        self.shared.classes.len()
    }

    /// The chunk size that serves `len` bytes; `None` over the largest.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// assert_eq!(slab.chunk_size_for(0), Some(64));
    /// assert_eq!(slab.chunk_size_for(65), Some(128));
    /// assert_eq!(slab.chunk_size_for(64 * 1024 + 1), None);
    /// ```
    pub fn chunk_size_for(&self, len: usize) -> Option<usize> {
        Some(self.shared.classes[self.class_index(len)?].chunk_size)
    }

    /// The largest chunk.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().max_chunk(10_000).build().unwrap();
    /// assert_eq!(slab.max_chunk(), 16 * 1024); // rounded up to a power of two
    /// ```
    pub fn max_chunk(&self) -> usize {
        self.shared.max_chunk
    }
}

impl Slab {
    /// The slab's name, from [`SlabBuilder::name`].
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// assert_eq!(Slab::builder().name("frames").build().unwrap().name(), Some("frames"));
    /// assert_eq!(Slab::new().name(), None);
    /// ```
    pub fn name(&self) -> Option<&'static str> {
        self.shared.name
    }
}

impl crate::observe::sealed::Sealed for Slab {}

impl crate::observe::Observe for Slab {
    fn snapshot(&self) -> crate::observe::Snapshot {
        crate::observe::Snapshot::Slab(self.stats())
    }
}

impl Default for Slab {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Slab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slab")
            .field("name", &self.shared.name)
            .field("min_chunk", &self.shared.classes[0].chunk_size)
            .field("max_chunk", &self.shared.max_chunk)
            .field("classes", &self.shared.classes.len())
            .finish_non_exhaustive()
    }
}

// A panic never leaves a chunk half-returned (the return path runs no user
// code), so slabs may cross `catch_unwind`.
impl std::panic::UnwindSafe for Slab {}
impl std::panic::RefUnwindSafe for Slab {}
