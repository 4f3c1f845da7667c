//! [`ClassStats`] and [`SlabStats`]: a slab's counters.

use std::fmt;

use crate::stats::PoolStats;

/// The counters of one size class of a [`Slab`](super::Slab).
///
/// ```
/// use capacitor_pool::Slab;
///
/// let slab = Slab::new();
/// let _frame = slab.alloc(100).unwrap();
/// let class = slab.class_stats(1).unwrap();
/// assert_eq!((class.chunk_size, class.chunks_per_page), (128, 512));
/// assert_eq!((class.num_pages, class.page_alloc_count), (1, 1));
/// assert_eq!(class.pool.num_in_use, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// The class's chunk size, in bytes.
    pub chunk_size: usize,
    /// Chunks carved from each page.
    pub chunks_per_page: usize,
    /// Pages held now (each freed once all its chunks are dropped).
    pub num_pages: usize,
    /// The bound on `num_pages`.
    pub max_pages: usize,
    /// Pages allocated so far.
    pub page_alloc_count: u64,
    /// Pages given back so far.
    pub page_free_count: u64,
    /// Heap buffers handed out because the class was full.
    pub heap_fallback_count: u64,
    /// Times the class had no free chunk and no room for a page.
    pub exhausted_count: u64,
    /// Tasks waiting for a chunk now.
    pub num_waiters: usize,
    /// The free list's counters: `hit_count` counts chunks reused,
    /// `miss_count` allocations that found no free chunk, `created_count`
    /// chunks carved, `num_in_use` chunks held by `SlabBuf`s (and `Bytes`).
    pub pool: PoolStats,
}

/// A snapshot of a [`Slab`](super::Slab)'s counters, per class.
///
/// ```
/// use capacitor_pool::Slab;
///
/// let slab = Slab::new();
/// let _frame = slab.alloc(100).unwrap();
/// let _huge = slab.alloc_or_heap(1 << 20);
/// let stats = slab.stats();
/// assert_eq!(stats.classes[1].pool.num_in_use, 1);
/// assert_eq!(stats.oversized_count, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlabStats {
    /// The slab's name, if its builder gave it one.
    pub name: Option<&'static str>,
    /// One entry per class, smallest first.
    pub classes: Vec<ClassStats>,
    /// Heap buffers handed out for lengths over the largest class.
    pub oversized_count: u64,
}

impl SlabStats {
    /// Chunks held now, over all classes.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let small = slab.alloc(100).unwrap();
    /// let _large = slab.alloc(5000).unwrap();
    /// assert_eq!(slab.stats().num_in_use(), 2);
    /// drop(small);
    /// assert_eq!(slab.stats().num_in_use(), 1);
    /// ```
    pub fn num_in_use(&self) -> u64 {
        self.classes.iter().map(|c| c.pool.num_in_use).sum()
    }

    /// Pages held now, over all classes.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let _small = [slab.alloc(100).unwrap(), slab.alloc(100).unwrap()];
    /// let _large = slab.alloc(5000).unwrap();
    /// assert_eq!(slab.stats().num_pages(), 2); // one per class used
    /// ```
    pub fn num_pages(&self) -> usize {
        self.classes.iter().map(|c| c.num_pages).sum()
    }

    /// Bytes of pages held now, over all classes.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let _frame = slab.alloc(100).unwrap();
    /// assert_eq!(slab.stats().page_bytes(), 64 * 1024); // one default page
    /// ```
    pub fn page_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.num_pages * c.chunk_size * c.chunks_per_page)
            .sum()
    }

    /// Heap buffers handed out (class full, or over the largest class).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().max_pages_per_class(1).build().unwrap();
    /// let _held = slab.alloc(64 * 1024).unwrap(); // the whole class
    /// let _fallback = slab.alloc_or_heap(60_000); // class full
    /// let _oversized = slab.alloc_or_heap(1 << 20); // over the largest class
    /// assert_eq!(slab.stats().heap_count(), 2);
    /// ```
    pub fn heap_count(&self) -> u64 {
        self.oversized_count
            + self
                .classes
                .iter()
                .map(|c| c.heap_fallback_count)
                .sum::<u64>()
    }

    /// Chunks handed out, over all classes.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// drop(slab.alloc(100));
    /// drop(slab.alloc(5000));
    /// assert_eq!(slab.stats().alloc_count(), 2);
    /// ```
    pub fn alloc_count(&self) -> u64 {
        self.classes.iter().map(|c| c.pool.get_count).sum()
    }

    /// The share of allocations served by a reused chunk.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().shards(1).build().unwrap();
    /// drop(slab.alloc(100)); // carved
    /// drop(slab.alloc(100)); // reused
    /// assert_eq!(slab.stats().hit_rate(), 0.5);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        let gets = self.alloc_count();
        if gets == 0 {
            0.0
        } else {
            self.classes.iter().map(|c| c.pool.hit_count).sum::<u64>() as f64 / gets as f64
        }
    }
}

impl fmt::Display for SlabStats {
    /// One line of totals over all classes, as
    /// [`PoolStats`] prints; each class's
    /// [`ClassStats`] has the details.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::builder().shards(1).build().unwrap();
    /// drop(slab.alloc(100)); // carved
    /// let _held = slab.alloc(100).unwrap(); // reused
    /// assert_eq!(
    ///     slab.stats().to_string(),
    ///     "allocs 2 (hit rate 50.0%), in use 1, pages 1 (64 KiB), heap fallbacks 0"
    /// );
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "allocs {} (hit rate {:.1}%), in use {}, pages {} ({} KiB), heap fallbacks {}",
            self.alloc_count(),
            self.hit_rate() * 100.0,
            self.num_in_use(),
            self.num_pages(),
            self.page_bytes() / 1024,
            self.heap_count(),
        )
    }
}
