//! `Slab`: fixed-size byte chunks in power-of-two size classes, carved from
//! pages and handed back on drop from any thread.
//!
//! See [`Slab`] for an example and how it works.

use std::alloc::{self, Layout};
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::{Pin, pin};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes};
use tokio::sync::Notify;

use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Mutex, NotifySteps, Ordering, dekker_fence};
use crate::pool::{Arrival, Pool, shard_hint};
use crate::reset::ResetWith;
use crate::shard::take_slot;
use crate::stats::PoolStats;

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
/// Free chunks of a class sit in a [`Pool`]: chunks stay where they were
/// carved, and only pointers to them move. The pool's shards are picked by
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
}

/// One size class.
struct Class {
    chunk_size: usize,
    page_size: usize,
    chunks_per_page: usize,
    max_pages: usize,
    zero_on_return: bool,
    /// Free chunks. Objects are never made by the pool (chunks are carved
    /// and adopted), and its reset is a no-op: zeroing, when asked for, is
    /// done by `SlabBuf::drop`, which knows how much was written.
    pool: Pool<Chunk, ResetWith<fn(&mut Chunk)>>,
    carve: Mutex<Carve>,
    live_pages: AtomicUsize,
    page_allocs: AtomicU64,
    page_frees: AtomicU64,
    heap_fallbacks: AtomicU64,
    exhausted: AtomicU64,
    /// Set when the last `Slab` handle is dropped: returned chunks are then
    /// dropped instead of kept.
    closed: AtomicBool,
    waiters: AtomicUsize,
    notify: Arc<Notify>,
    /// Marks each new `Notified` and each `notify_waiters` for loom (see
    /// [`NotifySteps`]).
    notify_steps: NotifySteps,
    /// Chunks left to carve in the current page (a hint, set under
    /// `carve`).
    carve_room: AtomicUsize,
}

/// The page chunks are being carved from.
struct Carve {
    page: Option<Arc<Page>>,
    next: usize,
}

/// A zeroed allocation chunks are carved from; freed when its last chunk
/// is dropped.
struct Page {
    mem: NonNull<u8>,
    layout: Layout,
    class: Arc<Class>,
}

// SAFETY: a page is a plain allocation; which chunk of it a thread may
// touch is decided by the `Chunk`s, each owned by one holder at a time.
unsafe impl Send for Page {}
// SAFETY: as above; `&Page` gives access to nothing but its fields.
unsafe impl Sync for Page {}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: `mem` was allocated in `Class::new_page` with `layout`,
        // and every chunk carved from it is gone (each held an `Arc` to
        // this page).
        unsafe { alloc::dealloc(self.mem.as_ptr(), self.layout) };
        let class = &self.class;
        class.page_frees.fetch_add(1, Ordering::Relaxed);
        class.live_pages.fetch_sub(1, Ordering::SeqCst);
        dekker_fence();
        if class.waiters.load(Ordering::SeqCst) > 0 {
            class.notify_steps.step();
            class.notify.notify_waiters();
        }
    }
}

/// One chunk of a page: `chunk_size` bytes at `ptr`, owned by whoever
/// holds this value.
struct Chunk {
    ptr: NonNull<u8>,
    _page: Arc<Page>,
}

// SAFETY: the bytes at `ptr` belong to this chunk alone (chunks are
// disjoint ranges of their page), and the page outlives the chunk.
unsafe impl Send for Chunk {}
// SAFETY: as above.
unsafe impl Sync for Chunk {}

fn no_reset(_: &mut Chunk) {}

impl Class {
    fn new(
        chunk_size: usize,
        page_size: usize,
        max_pages: usize,
        shards: Option<usize>,
        zero_on_return: bool,
    ) -> Self {
        let page_size = page_size.max(chunk_size);
        let chunks_per_page = page_size / chunk_size;
        let mut pool =
            Pool::builder(|| -> Chunk { unreachable!("slab pools only adopt carved chunks") });
        if let Some(n) = shards {
            pool = pool.shards(n);
        }
        // No bound of its own: the page bound limits the chunks, and a
        // return then never finds its shard full (the stacks grow only as
        // chunks arrive).
        let pool = pool
            .max_idle(usize::MAX)
            .retention_limit(usize::MAX)
            .reset(no_reset as fn(&mut Chunk))
            .build();
        Class {
            chunk_size,
            page_size,
            chunks_per_page,
            max_pages,
            zero_on_return,
            pool,
            carve: Mutex::new(Carve {
                page: None,
                next: 0,
            }),
            live_pages: AtomicUsize::new(0),
            page_allocs: AtomicU64::new(0),
            page_frees: AtomicU64::new(0),
            heap_fallbacks: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            notify: Arc::new(Notify::new()),
            notify_steps: NotifySteps::new(),
            carve_room: AtomicUsize::new(0),
        }
    }

    /// A free chunk, else a new one carved; `None` if the class is full.
    #[inline]
    fn alloc(this: &Arc<Class>) -> Option<SlabBuf> {
        let hint = shard_hint();
        let slot = match this.pool.pop_slot(hint) {
            Some(slot) => slot,
            None => Class::alloc_slow(this, hint)?,
        };
        // SAFETY: the slot holds a live chunk that only we use now.
        let ptr = unsafe { slot.as_ref().ptr };
        Some(SlabBuf {
            ptr,
            len: 0,
            cap: this.chunk_size,
            origin: Origin::Chunk {
                slot,
                // From `Arc::as_ptr`, so that it may be turned back into an
                // `Arc` (see `give_back`).
                class: NonNull::new(Arc::as_ptr(this).cast_mut()).expect("not null"),
            },
        })
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(this: &Arc<Class>, hint: usize) -> Option<NonNull<Chunk>> {
        this.pool.count_miss(hint);
        match Class::carve(this) {
            Some(chunk) => Some(this.pool.adopt_slot(hint, chunk)),
            None => {
                this.exhausted.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Carves a chunk from the current page, or from a new page if the
    /// class is under its bound.
    fn carve(this: &Arc<Class>) -> Option<Chunk> {
        let mut carve = this.lock_carve();
        if carve.page.is_none() {
            if this.live_pages.load(Ordering::SeqCst) >= this.max_pages {
                return None;
            }
            carve.page = Some(Class::new_page(this)?);
            carve.next = 0;
        }
        let page = carve.page.as_ref().expect("set above");
        // SAFETY: `next < chunks_per_page`, so the chunk lies inside the
        // page's allocation of `chunks_per_page * chunk_size` bytes or more.
        let ptr = unsafe { page.mem.add(carve.next * this.chunk_size) };
        let chunk = Chunk {
            ptr,
            _page: Arc::clone(page),
        };
        carve.next += 1;
        let spent = if carve.next == this.chunks_per_page {
            carve.page.take()
        } else {
            None
        };
        let room = if spent.is_some() {
            0
        } else {
            this.chunks_per_page - carve.next
        };
        this.carve_room.store(room, Ordering::Relaxed);
        drop(carve);
        drop(spent); // its chunks keep it alive; never dropped under the lock
        Some(chunk)
    }

    fn new_page(this: &Arc<Class>) -> Option<Arc<Page>> {
        let layout = Layout::from_size_align(this.page_size, PAGE_ALIGN).ok()?;
        // SAFETY: the layout's size is at least 64 (the smallest chunk).
        let mem = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
        this.live_pages.fetch_add(1, Ordering::SeqCst);
        this.page_allocs.fetch_add(1, Ordering::Relaxed);
        Some(Arc::new(Page {
            mem,
            layout,
            class: Arc::clone(this),
        }))
    }

    /// Whether an `alloc` could succeed now: a free chunk in some shard
    /// (each looked at under its lock), room left in the page being carved,
    /// or room for another page.
    fn has_capacity(&self) -> bool {
        if self.pool.has_idle_locked() {
            return true;
        }
        let carve = self.lock_carve();
        carve.page.is_some() || self.live_pages.load(Ordering::SeqCst) < self.max_pages
    }

    /// The carving state (a panic under the lock leaves it consistent:
    /// every update is a single store).
    fn lock_carve(&self) -> crate::loom::MutexGuard<'_, Carve> {
        self.carve.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a waiter, before it looks for capacity. The count must be
    /// visible to any return that locks a shard after `has_capacity`
    /// unlocked it (the lock orders that), and to a page release (`SeqCst`
    /// with the page count).
    fn register_waiter(&self) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        dekker_fence();
    }

    fn unregister_waiter(&self) {
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }

    /// A lock-free guess at [`has_capacity`](Self::has_capacity), from
    /// gauges that may be a moment stale.
    #[inline]
    fn has_capacity_hint(&self) -> bool {
        // Cheapest first: two loads, then one per shard.
        self.live_pages.load(Ordering::Relaxed) < self.max_pages
            || self.carve_room.load(Ordering::Relaxed) > 0
            || self.pool.idle_hint() > 0
    }

    /// Takes a chunk back from a `SlabBuf`.
    ///
    /// # Safety
    /// `class` points to a live class (the chunk's page keeps it alive), and
    /// `slot` is one of its chunks that nothing else uses.
    #[inline]
    unsafe fn give_back(class: NonNull<Class>, slot: NonNull<Chunk>) {
        let hint = shard_hint();
        // Only raw pointers to the class live across the push: once the
        // chunk is in a shard and the shard unlocked, another thread may
        // drop the last chunk of the class and with it the class (see
        // `Pool::push_slot_gated`). The gate makes its references inside the
        // critical section, where our chunk still keeps the class alive.
        let mut wake = false;
        // SAFETY: the caller's contract: the class is live (our chunk's page
        // holds a count on it) until the chunk is pushed or handed back.
        let pool = unsafe { &raw const (*class.as_ptr()).pool };
        let gate = || {
            // SAFETY: called under a shard lock, before the chunk is pushed:
            // the class is alive (see above).
            let this = unsafe { class.as_ref() };
            if this.closed.load(Ordering::Relaxed) {
                return false;
            }
            if !wake && this.waiters.load(Ordering::Relaxed) > 0 {
                wake = true;
                // Keeps the class alive for the wake-up below, past the
                // moment the chunk is back in the pool.
                // SAFETY: `class` came from `Arc::as_ptr` (see `alloc`), and
                // our chunk's page holds a count on it.
                unsafe { Arc::increment_strong_count(class.as_ptr()) };
            }
            true
        };
        // SAFETY: as above; neither the pool nor the gate is used after the
        // push.
        let pushed = unsafe { Pool::push_slot_gated(pool, hint, slot, Arrival::Returned, gate) };
        match pushed {
            Ok(()) => {
                if wake {
                    // SAFETY: the count taken in the gate above.
                    let class = unsafe { Arc::from_raw(class.as_ptr()) };
                    class.notify_steps.step();
                    class.notify.notify_waiters();
                }
            }
            Err(slot) => {
                // The slab is gone (or, impossibly, every shard is full):
                // drop the chunk, which may free its page and the class.
                // SAFETY: the slot was handed back to us unused.
                drop(unsafe { take_slot(slot) });
            }
        }
    }

    fn stats(&self) -> ClassStats {
        ClassStats {
            chunk_size: self.chunk_size,
            chunks_per_page: self.chunks_per_page,
            num_pages: self.live_pages.load(Ordering::Relaxed),
            max_pages: self.max_pages,
            page_alloc_count: self.page_allocs.load(Ordering::Relaxed),
            page_free_count: self.page_frees.load(Ordering::Relaxed),
            heap_fallback_count: self.heap_fallbacks.load(Ordering::Relaxed),
            exhausted_count: self.exhausted.load(Ordering::Relaxed),
            num_waiters: self.waiters.load(Ordering::Relaxed),
            pool: self.pool.stats(),
        }
    }
}

impl Drop for SlabShared {
    fn drop(&mut self) {
        for class in self.classes.iter() {
            class.closed.store(true, Ordering::Relaxed);
            // Every shard is locked after the flag is set: a return that
            // pushed before its shard was locked here is cleared; one after
            // sees the flag (see `Class::give_back`).
            class.pool.clear();
            let spent = class.lock_carve().page.take();
            drop(spent);
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
        Class::alloc(class)
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
            Some(i) => match Class::alloc(&self.shared.classes[i]) {
                Some(buf) => buf,
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

    /// Waits until class `i` has capacity.
    async fn wait_class(&self, i: usize) {
        let class = &*self.shared.classes[i];
        loop {
            // Registered before the check, so a wake-up that follows the
            // check is not lost (`notify_waiters` wakes every `Notified`
            // made before it).
            class.notify_steps.step();
            let mut notified = pin!(class.notify.notified());
            notified.as_mut().enable();
            let _waiting = WaiterGuard::register(class);
            if class.has_capacity() {
                return;
            }
            notified.await;
        }
    }

    /// Drops free chunks that stayed free since the previous `trim` (see
    /// [`Pool::trim`]); a page whose chunks are all dropped goes back to
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
        let mut dropped = 0;
        for class in self.shared.classes.iter() {
            dropped += class.pool.trim();
            let mut carve = class.lock_carve();
            // A page still being carved whose carved chunks are all gone
            // holds memory for nothing: give it back.
            let idle_page = carve
                .page
                .as_ref()
                .is_some_and(|page| Arc::strong_count(page) == 1);
            let spent = if idle_page { carve.page.take() } else { None };
            if spent.is_some() {
                class.carve_room.store(0, Ordering::Relaxed);
            }
            drop(carve);
            drop(spent);
        }
        dropped
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

impl Default for Slab {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Slab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slab")
            .field("min_chunk", &self.shared.classes[0].chunk_size)
            .field("max_chunk", &self.shared.max_chunk)
            .field("classes", &self.shared.classes.len())
            .finish_non_exhaustive()
    }
}

/// A reusable, pollable wait for capacity in one class (the `Backpressure`
/// stream of the `codec` feature keeps one). `Unpin`: its `Notified` lives
/// in a box made at the first wait and reused by every later one.
pub(crate) struct SlabWait {
    class: Option<Arc<Class>>,
    notified: Option<Pin<Box<Option<tokio::sync::futures::OwnedNotified>>>>,
    registered: bool,
}

#[cfg_attr(not(feature = "codec"), allow(dead_code))]
impl SlabWait {
    /// A wait for a chunk of `len` bytes from `slab`; never waits over the
    /// largest class.
    pub(crate) fn new(slab: &Slab, len: usize) -> Self {
        SlabWait {
            class: slab
                .class_index(len)
                .map(|i| Arc::clone(&slab.shared.classes[i])),
            notified: None,
            registered: false,
        }
    }

    fn unregister(&mut self) {
        if std::mem::take(&mut self.registered) {
            if let Some(class) = &self.class {
                class.unregister_waiter();
            }
        }
        if let Some(slot) = self.notified.as_mut() {
            slot.as_mut().set(None);
        }
    }

    /// Ready when the class has (or, from a lock-free hint, seems to have)
    /// capacity. Allocates nothing unless it has to wait, and then only
    /// once per `SlabWait`.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(class) = self.class.clone() else {
            return Poll::Ready(());
        };
        loop {
            if self.registered {
                let slot = self
                    .notified
                    .as_mut()
                    .expect("registered waits have a slot");
                if let Some(notified) = slot.as_mut().as_pin_mut() {
                    if notified.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                self.unregister();
            }
            if class.has_capacity_hint() {
                return Poll::Ready(());
            }
            // As in `Slab::wait_class`: the wake-up is armed, then the waiter
            // counted, then every shard looked at under its lock.
            let slot = self.notified.get_or_insert_with(|| Box::pin(None));
            class.notify_steps.step();
            slot.as_mut()
                .set(Some(Arc::clone(&class.notify).notified_owned()));
            if let Some(notified) = slot.as_mut().as_pin_mut() {
                notified.enable();
            }
            class.register_waiter();
            self.registered = true;
            if class.has_capacity() {
                self.unregister();
                return Poll::Ready(());
            }
        }
    }
}

impl Drop for SlabWait {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl fmt::Debug for SlabWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabWait")
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

/// Counts a waiter on a class for as long as it lives.
struct WaiterGuard<'a>(&'a Class);

impl<'a> WaiterGuard<'a> {
    fn register(class: &'a Class) -> Self {
        class.register_waiter();
        WaiterGuard(class)
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.unregister_waiter();
    }
}

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
        }
    }
}

impl SlabBuilder {
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
    /// number of CPUs, as for [`Pool`].
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
            }),
        })
    }
}

/// The error of [`SlabBuilder::build`].
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::BuildError;
///
/// let err = Slab::builder().min_chunk(4096).max_chunk(1024).build().unwrap_err();
/// assert_eq!(err, BuildError::MinOverMax { min: 4096, max: 1024 });
/// assert_eq!(err.to_string(), "slab min_chunk 4096 is over max_chunk 1024");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A size (`min_chunk`, `max_chunk` or `page_size`) was zero.
    ZeroSize(&'static str),
    /// A size was over [`MAX_CHUNK_LIMIT`].
    TooLarge {
        /// Which size.
        what: &'static str,
        /// The size asked for.
        requested: usize,
        /// The most allowed.
        max: usize,
    },
    /// `min_chunk` was over `max_chunk`.
    MinOverMax {
        /// The smallest chunk asked for.
        min: usize,
        /// The largest chunk asked for.
        max: usize,
    },
    /// `max_pages_per_class` was zero.
    ZeroPages,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroSize(what) => write!(f, "slab {what} must be at least 1 byte"),
            BuildError::TooLarge {
                what,
                requested,
                max,
            } => write!(
                f,
                "slab {what} of {requested} bytes is over the maximum of {max}"
            ),
            BuildError::MinOverMax { min, max } => {
                write!(f, "slab min_chunk {min} is over max_chunk {max}")
            }
            BuildError::ZeroPages => f.write_str("a slab needs at least 1 page per class"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Where a [`SlabBuf`]'s bytes come from.
enum Origin {
    /// A chunk of a class (the chunk's page keeps the class alive).
    Chunk {
        slot: NonNull<Chunk>,
        class: NonNull<Class>,
    },
    /// A `Box<[u8]>` of `cap` bytes (a heap fallback).
    Heap,
}

/// A byte buffer in a slab chunk (or, from the fallback methods, on the
/// heap), returned to its slab when dropped, on any thread.
///
/// It derefs to the bytes written so far and can be written up to its
/// [`capacity`](SlabBuf::capacity) (its class size) through [`BufMut`],
/// [`io::Write`] or [`extend_from_slice`](SlabBuf::extend_from_slice).
/// Bytes past the written length are never readable, so a chunk's previous
/// contents cannot leak into its next user.
///
/// ```
/// use capacitor_pool::Slab;
/// use std::io::Write;
///
/// let slab = Slab::new();
/// let mut buf = slab.alloc(64).unwrap();
/// write!(buf, "{}-{}", 4, 2).unwrap();
/// assert_eq!(&buf[..], b"4-2");
/// buf[0] = b'5';
/// assert_eq!(&buf[..], b"5-2");
/// ```
pub struct SlabBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    origin: Origin,
}

// SAFETY: a `SlabBuf` owns its bytes (a chunk no one else uses, or a heap
// box); its return path (`Class::give_back`) works from any thread.
unsafe impl Send for SlabBuf {}
// SAFETY: `&SlabBuf` only reads the bytes.
unsafe impl Sync for SlabBuf {}

// A panic never leaves a chunk half-returned (the return path runs no user
// code), so buffers and slabs may cross `catch_unwind`.
impl std::panic::UnwindSafe for SlabBuf {}
impl std::panic::RefUnwindSafe for SlabBuf {}
impl std::panic::UnwindSafe for Slab {}
impl std::panic::RefUnwindSafe for Slab {}

/// The error of [`SlabBuf::try_extend_from_slice`]: the bytes do not fit.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::CapacityError;
///
/// let slab = Slab::new();
/// let mut buf = slab.alloc(64).unwrap();
/// let err = buf.try_extend_from_slice(&[0; 100]).unwrap_err();
/// assert_eq!(err, CapacityError { requested: 100, remaining: 64 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    /// Bytes asked for.
    pub requested: usize,
    /// Bytes of room left.
    pub remaining: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes do not fit in the {} bytes left in the slab buffer",
            self.requested, self.remaining
        )
    }
}

impl std::error::Error for CapacityError {}

impl SlabBuf {
    fn heap(len: usize) -> SlabBuf {
        let boxed: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let cap = boxed.len();
        let ptr = NonNull::new(Box::into_raw(boxed).cast::<u8>()).expect("boxes are not null");
        SlabBuf {
            ptr,
            len: 0,
            cap,
            origin: Origin::Heap,
        }
    }

    /// The number of bytes written.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.extend_from_slice(b"abc");
    /// assert_eq!(buf.len(), 3);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte was written.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// assert!(buf.is_empty());
    /// buf.extend_from_slice(b"a");
    /// assert!(!buf.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most bytes the buffer can hold (its class size).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let buf = Slab::new().alloc(1000).unwrap();
    /// assert_eq!(buf.capacity(), 1024); // the class of 1000 bytes
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes of room left.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.extend_from_slice(&[7; 10]);
    /// assert_eq!(buf.spare_capacity(), 54);
    /// ```
    #[inline]
    pub fn spare_capacity(&self) -> usize {
        self.cap - self.len
    }

    /// Whether the bytes are in a slab chunk (`false` for a heap fallback).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// assert!(slab.alloc(100).unwrap().is_pooled());
    /// assert!(!slab.alloc_or_heap(1 << 20).is_pooled()); // over the largest class
    /// ```
    pub fn is_pooled(&self) -> bool {
        matches!(self.origin, Origin::Chunk { .. })
    }

    /// Forgets the written bytes (the capacity stays).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().copy_from_slice(b"hello");
    /// buf.clear();
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), 64);
    /// ```
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `len` written bytes (no effect if `len` is not less
    /// than [`len`](SlabBuf::len)).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().copy_from_slice(b"hello");
    /// buf.truncate(2);
    /// assert_eq!(&buf[..], b"he");
    /// buf.truncate(10); // no effect
    /// assert_eq!(&buf[..], b"he");
    /// ```
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends `data`.
    ///
    /// # Panics
    /// If `data` does not fit; see
    /// [`try_extend_from_slice`](SlabBuf::try_extend_from_slice).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.extend_from_slice(b"ab");
    /// buf.extend_from_slice(b"cd");
    /// assert_eq!(&buf[..], b"abcd");
    /// ```
    #[inline]
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        if let Err(e) = self.try_extend_from_slice(data) {
            panic!("{e}");
        }
    }

    /// Appends `data`, or says how much room is left.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let mut buf = slab.alloc(64).unwrap();
    /// assert!(buf.try_extend_from_slice(&[1; 64]).is_ok());
    /// let err = buf.try_extend_from_slice(&[2]).unwrap_err();
    /// assert_eq!(err.remaining, 0);
    /// ```
    #[inline]
    pub fn try_extend_from_slice(&mut self, data: &[u8]) -> Result<(), CapacityError> {
        if data.len() > self.spare_capacity() {
            return Err(CapacityError {
                requested: data.len(),
                remaining: self.spare_capacity(),
            });
        }
        // SAFETY: `len + data.len() <= cap`, the bytes are ours (see
        // `full_mut`), and `data` cannot overlap them (it is borrowed
        // shared while we hold `&mut self`).
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), data.len());
        }
        self.len += data.len();
        Ok(())
    }

    /// Resizes the written part to `new_len`, filling new bytes with
    /// `value`.
    ///
    /// # Panics
    /// If `new_len` is over the capacity.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let mut buf = Slab::new().alloc(64).unwrap();
    /// buf.resize(4, b'x');
    /// assert_eq!(&buf[..], b"xxxx");
    /// buf.resize(2, 0);
    /// assert_eq!(&buf[..], b"xx");
    /// ```
    pub fn resize(&mut self, new_len: usize, value: u8) {
        assert!(
            new_len <= self.cap,
            "new length {new_len} is over the slab buffer's capacity of {}",
            self.cap
        );
        if new_len > self.len {
            let len = self.len;
            self.full_mut()[len..new_len].fill(value);
        }
        self.len = new_len;
    }

    /// All `cap` bytes, written or not.
    fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `cap` initialized bytes (pages are zeroed
        // when allocated, heap buffers are `vec![0; len]`) that only this
        // `SlabBuf` uses: a chunk is handed to one `SlabBuf` at a time (the
        // pool's slot protocol), and its page outlives it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    /// A [`Bytes`] over the written bytes, without a copy: the chunk goes
    /// back to its slab when the last clone of the `Bytes` drops.
    ///
    /// This makes one small allocation (the `Bytes`' shared header, from
    /// [`Bytes::from_owner`]); keep frames as `SlabBuf` where you can.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let bytes = slab.copy_from_slice(b"hello world").into_bytes();
    /// let world = bytes.slice(6..);
    /// drop(bytes);
    /// assert_eq!(&world[..], b"world");
    /// assert_eq!(slab.stats().num_in_use(), 1); // held by `world`
    /// ```
    pub fn into_bytes(self) -> Bytes {
        if self.is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(self)
    }
}

impl From<SlabBuf> for Bytes {
    /// [`SlabBuf::into_bytes`]: no copy, the chunk goes back to its slab
    /// when the last clone of the `Bytes` drops.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use capacitor_pool::Slab;
    ///
    /// let slab = Slab::new();
    /// let bytes = Bytes::from(slab.copy_from_slice(b"frame"));
    /// assert_eq!(&bytes[..], b"frame");
    /// assert_eq!(slab.stats().num_in_use(), 1); // the chunk, held by `bytes`
    /// drop(bytes);
    /// assert_eq!(slab.stats().num_in_use(), 0);
    /// ```
    fn from(buf: SlabBuf) -> Bytes {
        buf.into_bytes()
    }
}

impl Drop for SlabBuf {
    fn drop(&mut self) {
        match self.origin {
            Origin::Chunk { slot, class } => {
                // SAFETY: the chunk's page keeps its class alive.
                if unsafe { class.as_ref() }.zero_on_return {
                    let len = self.len;
                    self.full_mut()[..len].fill(0);
                }
                // SAFETY: the slot and class came from `Class::alloc`, and
                // this `SlabBuf` was the chunk's only user.
                unsafe { Class::give_back(class, slot) };
            }
            Origin::Heap => {
                let raw = ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.cap);
                // SAFETY: `ptr` and `cap` came from `Box::into_raw` of a
                // `Box<[u8]>` in `SlabBuf::heap`, freed only here.
                drop(unsafe { Box::from_raw(raw) });
            }
        }
    }
}

impl Deref for SlabBuf {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized and ours (see
        // `full_mut`); `&self` only allows reads.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for SlabBuf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.full_mut()[..len]
    }
}

impl AsRef<[u8]> for SlabBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for SlabBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl std::borrow::Borrow<[u8]> for SlabBuf {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for SlabBuf {
    fn eq(&self, other: &SlabBuf) -> bool {
        **self == **other
    }
}

impl Eq for SlabBuf {}

impl PartialEq<[u8]> for SlabBuf {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl fmt::Debug for SlabBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabBuf")
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("pooled", &self.is_pooled())
            .finish()
    }
}

// SAFETY: `remaining_mut` is the room left; `chunk_mut` hands out exactly
// that room; `advance_mut` only moves `len` within `cap`.
unsafe impl BufMut for SlabBuf {
    #[inline]
    fn remaining_mut(&self) -> usize {
        self.spare_capacity()
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(
            cnt <= self.spare_capacity(),
            "cannot advance past the slab buffer's capacity"
        );
        self.len += cnt;
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        let len = self.len;
        UninitSlice::new(&mut self.full_mut()[len..])
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }
}

impl io::Write for SlabBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.spare_capacity());
        if n == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The counters of one size class of a [`Slab`].
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

/// A snapshot of a [`Slab`]'s counters, per class.
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

#[cfg(all(test, loom))]
mod loom_models {
    //! Loom models of chunk free and reuse across threads, and of the
    //! return/waiter handshake that `alloc_wait` relies on. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test --release --lib`.

    use super::*;
    use crate::loom::model::{Obj, hold, release};
    use loom::sync::Arc as LoomArc;
    use loom::thread;

    /// A slab of one class with a single chunk and one shard.
    fn one_chunk_slab() -> Slab {
        Slab::builder()
            .min_chunk(64)
            .max_chunk(64)
            .page_size(64)
            .max_pages_per_class(1)
            .shards(1)
            .build()
            .unwrap()
    }

    /// A chunk written on one thread and freed on another comes back with
    /// its page, and is reused (not carved again) by the first thread; it
    /// is never visible to two holders.
    #[test]
    fn chunk_freed_on_another_thread_is_reused() {
        loom::model(|| {
            let slab = one_chunk_slab();
            let mut buf = slab.alloc(10).unwrap();
            buf.extend_from_slice(b"hello");
            let freer = thread::spawn(move || {
                assert_eq!(&buf[..], b"hello");
                drop(buf);
            });
            let again = loop {
                if let Some(buf) = slab.alloc(10) {
                    break buf;
                }
                thread::yield_now();
            };
            assert!(again.is_empty());
            freer.join().unwrap();
            let stats = slab.class_stats(0).unwrap();
            assert_eq!(stats.pool.created_count, 1);
            assert_eq!(stats.num_pages, 1);
        });
    }

    /// Two threads freeing and allocating the one chunk: each sees its own
    /// writes only.
    #[test]
    fn two_threads_share_one_chunk_in_turn() {
        loom::model(|| {
            let slab = one_chunk_slab();
            let threads: Vec<_> = (0..2u8)
                .map(|t| {
                    let slab = slab.clone();
                    thread::spawn(move || {
                        if let Some(mut buf) = slab.alloc(1) {
                            buf.extend_from_slice(&[t]);
                            thread::yield_now();
                            assert_eq!(&buf[..], &[t]);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(slab.stats().num_in_use(), 0, "{:?}", slab.stats());
        });
    }

    /// `alloc_wait` on a full class while another thread returns the
    /// chunk: the return (`Class::give_back`, which reads the waiter count
    /// under the shard's lock) wakes the waiter, or the waiter (counted,
    /// then looking at every shard under its lock) sees the chunk. A lost
    /// wake-up leaves the waiter parked, which loom reports as a deadlock.
    #[test]
    fn a_returned_chunk_reaches_a_waiting_alloc() {
        loom::model(|| {
            let slab = one_chunk_slab();
            let held = slab.alloc(1).unwrap();
            let returner = thread::spawn(move || drop(held));
            let buf = loom::future::block_on(slab.alloc_wait(1));
            assert!(buf.is_pooled());
            returner.join().unwrap();
            drop(buf);
            let stats = slab.class_stats(0).unwrap();
            assert_eq!((stats.pool.created_count, stats.num_waiters), (1, 0));
        });
    }

    /// The codec's backpressure wait (`SlabWait`, which reads lock-free
    /// hints before it counts itself) on a full class while another thread
    /// returns the chunk: as for `alloc_wait`, the wait ends.
    #[test]
    fn a_returned_chunk_ends_a_slab_wait() {
        loom::model(|| {
            let slab = one_chunk_slab();
            let held = slab.alloc(1).unwrap();
            let returner = thread::spawn(move || drop(held));
            let mut wait = SlabWait::new(&slab, 1);
            loom::future::block_on(std::future::poll_fn(|cx| wait.poll_ready(cx)));
            returner.join().unwrap();
            drop(wait);
            assert!(slab.alloc(1).is_some());
            assert_eq!(slab.class_stats(0).unwrap().num_waiters, 0);
        });
    }

    /// `alloc_wait` on a full class while `trim` ages out its last chunk
    /// and with it the page: the page's release (page count down, then the
    /// waiter count read) wakes the waiter, or the waiter (counted, then
    /// reading the page count) sees room for a new page: Dekker's pattern,
    /// with `dekker_fence` on both sides.
    #[test]
    fn a_page_freed_by_trim_reaches_a_waiting_alloc() {
        loom::model(|| {
            let slab = one_chunk_slab();
            drop(slab.alloc(1).unwrap());
            // Starts the aging period: the next trim drops the idle chunk,
            // the last one of its page.
            slab.trim();
            let trimmer = {
                let slab = slab.clone();
                thread::spawn(move || slab.trim())
            };
            let buf = loom::future::block_on(slab.alloc_wait(1));
            assert!(buf.is_pooled());
            let trimmed = trimmer.join().unwrap();
            drop(buf);
            let stats = slab.class_stats(0).unwrap();
            // The idle chunk was reused, or trimmed and a new page carved.
            assert_eq!(stats.page_alloc_count, 1 + trimmed as u64, "{stats:?}");
            assert_eq!(stats.num_waiters, 0);
        });
    }

    /// The handshake of `alloc_wait`: a waiter counts itself, then looks at
    /// every shard under its lock; a return reads the count under the lock
    /// of the shard it pushes to. Whatever the interleaving, the waiter sees
    /// the returned object or the return sees the waiter.
    #[test]
    fn a_waiter_sees_the_return_or_the_return_sees_the_waiter() {
        loom::model(|| {
            let pool = LoomArc::new(Pool::builder(Obj::new).shards(2).max_idle(2).build());
            let waiters = LoomArc::new(AtomicUsize::new(0));
            let slot = pool.take_or_make(0);
            hold(slot);
            let returner = {
                let (pool, waiters) = (LoomArc::clone(&pool), LoomArc::clone(&waiters));
                let slot = SendPtr(slot);
                thread::spawn(move || {
                    let slot = slot;
                    release(slot.0);
                    let mut saw_waiter = false;
                    let gate = || {
                        saw_waiter = waiters.load(Ordering::Relaxed) > 0;
                        true
                    };
                    // SAFETY: `pool` is held by this thread's `Arc`.
                    let pushed = unsafe {
                        Pool::push_slot_gated(&*pool, 1, slot.0, Arrival::Returned, gate)
                    };
                    assert!(pushed.is_ok());
                    saw_waiter
                })
            };
            waiters.fetch_add(1, Ordering::Relaxed);
            let saw_object = pool.has_idle_locked();
            let saw_waiter = returner.join().unwrap();
            assert!(saw_object || saw_waiter, "a lost wake-up");
        });
    }

    struct SendPtr(std::ptr::NonNull<Obj>);
    // SAFETY: the model hands the slot to one thread.
    unsafe impl Send for SendPtr {}
}
