//! A counting global allocator, shared by the tests, examples and benches
//! (`#[path]`-included: each binary needs its own `#[global_allocator]`).
//!
//! It counts allocations and reallocations, in total (all threads) and for
//! the calling thread, and tracks live and peak heap bytes.
//!
//! The totals and the live/peak bytes are shared atomics: three or four
//! atomic read-modify-writes per allocation, contended across threads. The
//! benches turn them off with [`set_shared_counting`] before they time
//! anything, so that contestants that allocate pay what the system
//! allocator costs and no more; the per-thread count (a thread-local add)
//! stays on.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Wraps the system allocator and counts.
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Whether the shared counters above are kept (see the module docs).
static SHARED: AtomicBool = AtomicBool::new(true);

thread_local! {
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}

#[inline(always)]
fn count(grow: usize) {
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
    if SHARED.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        let live = LIVE.fetch_add(grow, Ordering::Relaxed).wrapping_add(grow);
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

#[inline(always)]
fn uncount(shrink: usize) {
    if SHARED.load(Ordering::Relaxed) {
        LIVE.fetch_sub(shrink, Ordering::Relaxed);
    }
}

// SAFETY: every call forwards to `System` with the same arguments; the
// counting touches only atomics and a const-initialised thread-local `Cell`
// (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        uncount(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        uncount(layout.size());
        count(new_size);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Turns the shared counters ([`allocs`], [`live_bytes`], [`peak_bytes`])
/// on or off; [`thread_allocs`] always counts. Off, they stop moving (and
/// live bytes are no longer exact once turned back on).
pub fn set_shared_counting(on: bool) {
    SHARED.store(on, Ordering::Relaxed);
}

/// Allocations and reallocations so far, all threads.
pub fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Allocations and reallocations so far, this thread.
pub fn thread_allocs() -> u64 {
    THREAD_ALLOCS.with(Cell::get)
}

/// Heap bytes live now.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resets the peak to the bytes live now.
pub fn reset_peak() {
    PEAK.store(live_bytes(), Ordering::Relaxed);
}

/// The most heap bytes live since the last `reset_peak`.
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}
