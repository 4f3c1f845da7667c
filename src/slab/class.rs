//! One size class: its free list, the page its chunks are carved from, its
//! bound and its waiters; and [`LentChunk`], a chunk out of the free list.

use std::ptr::NonNull;
use std::sync::Arc;

use tokio::sync::Notify;

use super::ClassStats;
use super::page::{Chunk, Page};
use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Mutex, NotifySteps, Ordering, dekker_fence};
use crate::pool::{Arrival, Depot};
use crate::slot::Slot;
use crate::thread::shard_hint;

/// One size class.
pub(super) struct Class {
    pub(super) chunk_size: usize,
    pub(super) page_size: usize,
    chunks_per_page: usize,
    max_pages: usize,
    pub(super) zero_on_return: bool,
    /// Free chunks (carved here and adopted). Nothing resets them:
    /// zeroing, when asked for, is done by `SlabBuf::drop`, which knows how
    /// much was written.
    free: Depot<Chunk>,
    carve: Mutex<Carve>,
    live_pages: AtomicUsize,
    page_allocs: AtomicU64,
    page_frees: AtomicU64,
    pub(super) heap_fallbacks: AtomicU64,
    exhausted: AtomicU64,
    /// Set when the last `Slab` handle is dropped: returned chunks are then
    /// dropped instead of kept.
    closed: AtomicBool,
    waiters: AtomicUsize,
    pub(super) notify: Arc<Notify>,
    /// Marks each new `Notified` and each `notify_waiters` for loom (see
    /// [`NotifySteps`]).
    pub(super) notify_steps: NotifySteps,
    /// Chunks left to carve in the current page (a hint, set under
    /// `carve`).
    carve_room: AtomicUsize,
}

/// The page chunks are being carved from.
struct Carve {
    page: Option<Arc<Page>>,
    next: usize,
}

impl Class {
    pub(super) fn new(
        chunk_size: usize,
        page_size: usize,
        max_pages: usize,
        shards: Option<usize>,
        zero_on_return: bool,
    ) -> Self {
        let page_size = page_size.max(chunk_size);
        let chunks_per_page = page_size / chunk_size;
        // No bound of its own: the page bound limits the chunks, and a
        // return then never finds its shard full (the stacks grow only as
        // chunks arrive).
        let free = Depot::new(shards, usize::MAX);
        Class {
            chunk_size,
            page_size,
            chunks_per_page,
            max_pages,
            zero_on_return,
            free,
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
    pub(super) fn lend(this: &Arc<Class>) -> Option<LentChunk> {
        let hint = shard_hint();
        let slot = match this.free.pop_slot(hint) {
            Some(slot) => slot,
            None => Class::lend_slow(this, hint)?,
        };
        // The slot holds a live chunk that only we use now, and the chunk's
        // page keeps the class alive: the `LentChunk` invariant.
        Some(LentChunk {
            slot: slot.into_raw(),
            // From `Arc::as_ptr`, so that it may be turned back into an
            // `Arc` (see `LentChunk::drop`).
            class: NonNull::new(Arc::as_ptr(this).cast_mut()).expect("not null"),
        })
    }

    #[cold]
    #[inline(never)]
    fn lend_slow(this: &Arc<Class>, hint: usize) -> Option<Slot<Chunk>> {
        this.free.count_miss(hint);
        match Class::carve(this) {
            Some(chunk) => Some(this.free.adopt(hint, chunk)),
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
            carve.page = Some(Page::new(this)?);
            carve.next = 0;
        }
        let page = carve.page.as_ref().expect("set above");
        // `next < chunks_per_page`: the chunk lies inside the page, and no
        // other chunk was carved at this offset.
        let chunk = Page::chunk(page, carve.next * this.chunk_size, this.chunk_size);
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

    /// Counts a page just allocated (see [`Page::new`]).
    pub(super) fn page_allocated(&self) {
        self.live_pages.fetch_add(1, Ordering::SeqCst);
        self.page_allocs.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a page just freed (see `Page::drop`) and wakes the waiters:
    /// the class has room for another page. The page count goes down before
    /// the waiter count is read, as a waiter counts itself before it reads
    /// the page count (Dekker's pattern).
    pub(super) fn page_released(&self) {
        self.page_frees.fetch_add(1, Ordering::Relaxed);
        self.live_pages.fetch_sub(1, Ordering::SeqCst);
        dekker_fence();
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.notify_steps.step();
            self.notify.notify_waiters();
        }
    }

    /// Drops the free chunks that stayed free since the previous call (see
    /// [`Pool::trim`](crate::Pool::trim)) and the page being carved if none of its chunks is
    /// left. Returns how many chunks were dropped.
    pub(super) fn trim(&self) -> usize {
        let dropped = self.free.trim();
        let mut carve = self.lock_carve();
        // A page still being carved whose carved chunks are all gone
        // holds memory for nothing: give it back.
        let idle_page = carve
            .page
            .as_ref()
            .is_some_and(|page| Arc::strong_count(page) == 1);
        let spent = if idle_page { carve.page.take() } else { None };
        if spent.is_some() {
            self.carve_room.store(0, Ordering::Relaxed);
        }
        drop(carve);
        drop(spent);
        dropped
    }

    /// Closes the class when the last `Slab` handle is dropped: its free
    /// chunks are dropped now, and chunks returned later are dropped too.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        // Every shard is locked after the flag is set: a return that
        // pushed before its shard was locked here is cleared; one after
        // sees the flag (see `LentChunk::drop`).
        self.free.clear();
        let spent = self.lock_carve().page.take();
        drop(spent);
    }

    /// Whether an `alloc` could succeed now: a free chunk in some shard
    /// (each looked at under its lock), room left in the page being carved,
    /// or room for another page.
    pub(super) fn has_capacity(&self) -> bool {
        if self.free.has_idle_locked() {
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
    pub(super) fn register_waiter(&self) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        dekker_fence();
    }

    pub(super) fn unregister_waiter(&self) {
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }

    /// A lock-free guess at [`has_capacity`](Self::has_capacity), from
    /// gauges that may be a moment stale.
    #[inline]
    pub(super) fn has_capacity_hint(&self) -> bool {
        // Cheapest first: two loads, then one per shard.
        self.live_pages.load(Ordering::Relaxed) < self.max_pages
            || self.carve_room.load(Ordering::Relaxed) > 0
            || self.free.idle_hint() > 0
    }

    pub(super) fn stats(&self) -> ClassStats {
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
            pool: self.free.stats(),
        }
    }
}

/// A chunk lent out of its class's free list, as a
/// [`SlabBuf`](super::SlabBuf) holds it; dropping it gives the chunk back
/// to the class, on any thread.
///
/// Only [`Class::lend`] makes one, so its fields keep this invariant: `slot`
/// holds a live chunk of `class` that nothing else uses, and `class` came
/// from `Arc::as_ptr` and is kept alive by the chunk's page.
pub(super) struct LentChunk {
    slot: NonNull<Chunk>,
    class: NonNull<Class>,
}

impl LentChunk {
    /// The chunk's bytes (`class().chunk_size` of them).
    #[inline]
    pub(super) fn ptr(&self) -> NonNull<u8> {
        // SAFETY: the slot holds a live chunk that only we use (the
        // invariant).
        unsafe { self.slot.as_ref() }.ptr()
    }

    /// The chunk's class.
    #[inline]
    pub(super) fn class(&self) -> &Class {
        // SAFETY: the chunk's page keeps its class alive while we hold the
        // chunk (the invariant).
        unsafe { self.class.as_ref() }
    }
}

impl Drop for LentChunk {
    #[inline]
    fn drop(&mut self) {
        let (class, slot) = (self.class, self.slot);
        let hint = shard_hint();
        // Only raw pointers to the class live across the push: once the
        // chunk is in a shard and the shard unlocked, another thread may
        // drop the last chunk of the class and with it the class (see
        // `Depot::push_slot_gated`). The gate makes its references inside the
        // critical section, where our chunk still keeps the class alive.
        let mut wake = false;
        // SAFETY: the invariant: the class is live (our chunk's page holds
        // a count on it) until the chunk is pushed or handed back.
        let free = unsafe { &raw const (*class.as_ptr()).free };
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
                // SAFETY: `class` came from `Arc::as_ptr` (see `lend`), and
                // our chunk's page holds a count on it.
                unsafe { Arc::increment_strong_count(class.as_ptr()) };
            }
            true
        };
        // SAFETY: the invariant: a chunk of this class that only we use,
        // given up by this drop.
        let slot = unsafe { Slot::from_raw(slot) };
        // SAFETY: as above; neither the depot nor the gate is used after the
        // push.
        let pushed = unsafe { Depot::push_slot_gated(free, hint, slot, Arrival::Returned, gate) };
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
                slot.free();
            }
        }
    }
}
