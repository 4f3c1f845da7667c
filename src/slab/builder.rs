//! [`SlabBuilder`]: a slab's classes, pages and bounds.

use std::sync::Arc;

use super::class::Class;
use super::{
    BuildError, DEFAULT_MAX_CHUNK, DEFAULT_MAX_PAGES_PER_CLASS, DEFAULT_MIN_CHUNK,
    DEFAULT_PAGE_SIZE, MAX_CHUNK_LIMIT, PAGE_ALIGN, Slab, SlabShared,
};
use crate::loom::AtomicU64;

/// Configures a [`Slab`]: its classes, pages and bounds.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::SlabBuilder;
///
/// let slab: Slab = SlabBuilder::default().page_size(4096).build().unwrap();
/// assert_eq!(slab.class_stats(0).unwrap().chunks_per_page, 4096 / 64);
/// ```
#[derive(Debug, Clone)]
pub struct SlabBuilder {
    min_chunk: usize,
    max_chunk: usize,
    page_size: usize,
    max_pages: usize,
    shards: Option<usize>,
    zero_on_return: bool,
    name: Option<&'static str>,
}

impl Default for SlabBuilder {
    fn default() -> Self {
        SlabBuilder {
            min_chunk: DEFAULT_MIN_CHUNK,
            max_chunk: DEFAULT_MAX_CHUNK,
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES_PER_CLASS,
            shards: None,
            zero_on_return: false,
            name: None,
        }
    }
}

impl SlabBuilder {
    /// Names the slab: the name shows in `Debug`, in
    /// [`stats`](Slab::stats) and in the exported series; see
    /// [`observe`](crate::observe).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().name("frames").build().unwrap();
    /// assert_eq!(slab.stats().name, Some("frames"));
    /// ```
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// The smallest chunk, rounded up to a power of two of at least 64.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().min_chunk(100).build().unwrap();
    /// assert_eq!(slab.chunk_size_for(1), Some(128));
    /// let slab = Slab::builder().min_chunk(1).build().unwrap();
    /// assert_eq!(slab.chunk_size_for(1), Some(64)); // never under 64
    /// ```
    pub fn min_chunk(mut self, bytes: usize) -> Self {
        self.min_chunk = bytes;
        self
    }

    /// The largest chunk, rounded up to a power of two; longer lengths get
    /// `None` from [`Slab::alloc`] or a heap buffer from
    /// [`Slab::alloc_or_heap`].
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().max_chunk(1024).build().unwrap();
    /// assert!(slab.alloc(2000).is_none());
    /// assert!(!slab.alloc_or_heap(2000).is_pooled());
    /// ```
    pub fn max_chunk(mut self, bytes: usize) -> Self {
        self.max_chunk = bytes;
        self
    }

    /// The size of the pages chunks are carved from (rounded up to a power
    /// of two); a class whose chunks are larger uses pages of one chunk.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().page_size(4096).build().unwrap();
    /// assert_eq!(slab.class_stats(0).unwrap().chunks_per_page, 64); // 64 B chunks
    /// let last = slab.class_stats(slab.num_classes() - 1).unwrap();
    /// assert_eq!((last.chunk_size, last.chunks_per_page), (64 * 1024, 1));
    /// ```
    pub fn page_size(mut self, bytes: usize) -> Self {
        self.page_size = bytes;
        self
    }

    /// The most pages each class may hold at once: the bound on the slab's
    /// memory, `max_pages_per_class * page_size` per class.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder()
    ///     .min_chunk(4096)
    ///     .max_chunk(4096)
    ///     .page_size(4096)
    ///     .max_pages_per_class(2)
    ///     .build()
    ///     .unwrap();
    /// let (_a, _b) = (slab.alloc(4096).unwrap(), slab.alloc(4096).unwrap());
    /// assert!(slab.alloc(4096).is_none()); // two pages of one chunk each
    /// assert_eq!(slab.stats().page_bytes(), 2 * 4096);
    /// ```
    pub fn max_pages_per_class(mut self, pages: usize) -> Self {
        self.max_pages = pages;
        self
    }

    /// The number of free-list shards per class (rounded up to a power of
    /// two, 0 counts as 1, at most
    /// [`MAX_SHARDS`](crate::pool::MAX_SHARDS)); the default follows the
    /// number of CPUs, as for [`Pool`](crate::Pool).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().shards(1).build().unwrap();
    /// drop(slab.alloc(100));
    /// drop(slab.alloc(100)); // the chunk freed above, from the one shard
    /// assert_eq!(slab.class_stats(1).unwrap().pool.hit_count, 1);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Zero the written bytes of every chunk when it is freed, so that no
    /// secret outlives its frame (off by default: chunks are handed out
    /// with only their written length readable either way).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().zero_on_return(true).build().unwrap();
    /// let mut key = slab.alloc(64).unwrap();
    /// key.extend_from_slice(b"secret");
    /// drop(key); // the six bytes are zeroed here
    /// let reused = slab.alloc(64).unwrap();
    /// assert!(reused.is_empty());
    /// ```
    pub fn zero_on_return(mut self, zero: bool) -> Self {
        self.zero_on_return = zero;
        self
    }

    /// Builds the slab. No page is allocated until a chunk is asked for.
    ///
    /// # Errors
    /// [`BuildError`] if a size is zero or over [`MAX_CHUNK_LIMIT`],
    /// `min_chunk` is over `max_chunk`, or `max_pages_per_class` is zero.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::slab::BuildError;
    ///
    /// let err = Slab::builder().max_pages_per_class(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroPages);
    /// ```
    pub fn build(self) -> Result<Slab, BuildError> {
        let sizes = [
            ("min_chunk", self.min_chunk),
            ("max_chunk", self.max_chunk),
            ("page_size", self.page_size),
        ];
        for (what, size) in sizes {
            if size == 0 {
                return Err(BuildError::ZeroSize(what));
            }
            if size > MAX_CHUNK_LIMIT {
                return Err(BuildError::TooLarge {
                    what,
                    requested: size,
                    max: MAX_CHUNK_LIMIT,
                });
            }
        }
        if self.max_pages == 0 {
            return Err(BuildError::ZeroPages);
        }
        if self.min_chunk > self.max_chunk {
            return Err(BuildError::MinOverMax {
                min: self.min_chunk,
                max: self.max_chunk,
            });
        }
        let min = self.min_chunk.max(PAGE_ALIGN).next_power_of_two();
        let max = self.max_chunk.next_power_of_two().max(min);
        let page = self.page_size.next_power_of_two();
        let mut classes = Vec::new();
        let mut size = min;
        while size <= max {
            classes.push(Arc::new(Class::new(
                size,
                page,
                self.max_pages,
                self.shards,
                self.zero_on_return,
            )));
            size *= 2;
        }
        Ok(Slab {
            shared: Arc::new(SlabShared {
                classes: classes.into_boxed_slice(),
                min_shift: min.trailing_zeros(),
                max_chunk: max,
                oversized: AtomicU64::new(0),
                name: self.name,
            }),
        })
    }
}
