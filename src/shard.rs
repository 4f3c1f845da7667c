//! The storage every pool shares: bounded stacks of pointers to objects that
//! never move, and shards that put one such stack behind a try-lock.
//!
//! Objects live in their own heap slots ([`Slot`]s, made once when the
//! pool creates the object). Stacks, magazines and the depot only move the
//! slots' addresses (see the [implementation notes](crate::implementation)
//! for why objects stay in place).
//!
//! A [`Shard`] is a test-and-test-and-set try-lock over a [`Stack`], plus the
//! shard's counters, all in one 128-byte-aligned block
//! ([`CachePadded`](crossbeam_utils::CachePadded)): a thread that holds the
//! lock owns the whole line, so the counters it bumps under the lock are
//! plain loads and stores, never contended read-modify-writes. The stack's
//! pointer buffer is padded with 128 bytes on each side for the same reason.

use std::ptr::{self, NonNull};

use crossbeam_utils::CachePadded;

use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Ordering, SpinWait, UnsafeCell};
pub(crate) use crate::slot::FirstPanic;
use crate::slot::Slot;

/// Pointers in 128 bytes: the padding on each side of a stack's buffer, so
/// that no other allocation shares a cache line with the used part.
const PAD: usize = 128 / size_of::<usize>();

/// A bounded LIFO stack of [`Slot`]s (their addresses) that never
/// allocates after its construction. The slots it holds are its own.
///
/// It also keeps the low-water mark of its length since the last
/// [`trim`](Stack::trim): the objects below it stayed idle the whole time,
/// which is what the victim-cache aging needs to know.
pub(crate) struct Stack<T> {
    /// `PAD` unused pointers, then `cap` places, then `PAD` unused again.
    buf: Box<[*mut T]>,
    len: usize,
    cap: usize,
    low: usize,
}

impl<T> Stack<T> {
    /// Places made up front; the buffer doubles on demand up to the
    /// capacity, so a large `max_idle` costs memory only once used.
    const INITIAL: usize = 256;

    pub(crate) fn with_capacity(cap: usize) -> Self {
        Self {
            buf: Self::buffer(cap.min(Self::INITIAL)),
            len: 0,
            cap,
            low: 0,
        }
    }

    /// A padded buffer with `places` places.
    fn buffer(places: usize) -> Box<[*mut T]> {
        vec![ptr::null_mut(); places + 2 * PAD].into_boxed_slice()
    }

    /// Places in the buffer now.
    #[inline(always)]
    fn places(&self) -> usize {
        self.buf.len() - 2 * PAD
    }

    /// Doubles the buffer (up to the capacity). Only while the stack reaches
    /// a new high-water mark: never in the steady state.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let places = self.places().saturating_mul(2).clamp(1, self.cap);
        let mut buf = Self::buffer(places);
        buf[PAD..PAD + self.len].copy_from_slice(&self.buf[PAD..PAD + self.len]);
        self.buf = buf;
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Slot<T>> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        if self.len < self.low {
            self.low = self.len;
        }
        let ptr = NonNull::new(self.buf[PAD + self.len])?;
        // SAFETY: the places below `len` hold what `push` stored, from
        // `Slot::into_raw`; the length now counts this one out, so the
        // stack gives it up.
        Some(unsafe { Slot::from_raw(ptr) })
    }

    #[inline]
    pub(crate) fn push(&mut self, slot: Slot<T>) -> Result<(), Slot<T>> {
        if self.len == self.cap {
            return Err(slot);
        }
        if self.len == self.places() {
            self.grow();
        }
        self.buf[PAD + self.len] = slot.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Removes the objects that stayed idle since the last trim (the ones
    /// below the low-water mark) and hands each to `dropped`; starts a new
    /// aging period. Returns how many were removed.
    pub(crate) fn trim(&mut self, mut dropped: impl FnMut(Slot<T>)) -> usize {
        let n = self.low.min(self.len);
        for i in 0..n {
            if let Some(ptr) = NonNull::new(self.buf[PAD + i]) {
                // SAFETY: as in `pop`: a stored slot, given up here (the
                // places below `n` leave the stack just after).
                dropped(unsafe { Slot::from_raw(ptr) });
            }
        }
        self.buf.copy_within(PAD + n..PAD + self.len, PAD);
        self.len -= n;
        self.low = self.len;
        n
    }

    /// Removes every pointer, handing each to `f`.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(Slot<T>)) {
        while let Some(slot) = self.pop() {
            f(slot);
        }
        self.low = 0;
    }
}

/// Counters of one shard. The first group is written only by the holder of
/// the shard's lock, with a plain load and store; the second group is bumped
/// with `fetch_add` from paths that do not hold it (all of them cold).
#[derive(Default)]
#[repr(C)]
pub(crate) struct Counters {
    // Written under the lock.
    pub(crate) hits: AtomicU64,
    pub(crate) returns: AtomicU64,
    pub(crate) idle: AtomicUsize,
    pub(crate) adopted: AtomicU64,
    pub(crate) drops_aged: AtomicU64,
    // Written anywhere, with read-modify-writes.
    pub(crate) misses: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) drops_full: AtomicU64,
    pub(crate) drops_oversized: AtomicU64,
    pub(crate) drops_discarded: AtomicU64,
    pub(crate) detached: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One shard: a try-lock over a [`Stack`], and its counters.
///
/// `repr(C)` keeps what every get and return touches (the lock, the stack's
/// header, the hit and return counts, the idle gauge) in the first 128-byte
/// line, and the cold counters after it.
#[repr(C)]
pub(crate) struct Shard<T> {
    locked: AtomicBool,
    stack: UnsafeCell<Stack<T>>,
    pub(crate) counters: Counters,
    /// The stack's capacity, readable without the lock.
    pub(crate) cap: usize,
}

impl<T> Shard<T> {
    pub(crate) fn new(cap: usize) -> CachePadded<Self> {
        CachePadded::new(Self {
            locked: AtomicBool::new(false),
            cap,
            stack: UnsafeCell::new(Stack::with_capacity(cap)),
            counters: Counters::default(),
        })
    }

    /// Takes the lock if it is free, without waiting. (No test before the
    /// test-and-set: on the fast path the shard is almost always free, and
    /// the extra load would only wait for the last unlock's store.)
    #[inline(always)]
    pub(crate) fn try_lock(&self) -> Option<ShardGuard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| ShardGuard { shard: self })
    }

    /// Takes the lock, waiting for it (spinning, then yielding) if needed.
    /// Holders only push or pop a few pointers, so the wait is short.
    #[cold]
    pub(crate) fn lock(&self) -> ShardGuard<'_, T> {
        let mut wait = SpinWait::default();
        loop {
            if let Some(guard) = self.try_lock() {
                return guard;
            }
            wait.wait();
        }
    }

    /// The number of idle objects, as of the last change (no lock taken).
    pub(crate) fn idle(&self) -> usize {
        self.counters.idle.load(Ordering::Relaxed)
    }
}

/// Exclusive access to a shard's stack; releases the lock on drop.
pub(crate) struct ShardGuard<'a, T> {
    shard: &'a Shard<T>,
}

impl<T> ShardGuard<'_, T> {
    /// Runs `f` on the shard's stack.
    #[inline]
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut Stack<T>) -> R) -> R {
        let (r, len) = self.shard.stack.with_mut(|stack| {
            // SAFETY: `self` exists only while this thread holds the shard's
            // lock (taken with an Acquire CAS in `try_lock`, released with a
            // Release store in `drop`), so no other reference to the stack
            // exists; `&mut self` keeps this one unique within the thread.
            let stack = unsafe { &mut *stack };
            let r = f(stack);
            (r, stack.len())
        });
        self.shard.counters.idle.store(len, Ordering::Relaxed);
        r
    }

    /// Adds `n` to a counter of the lock-holder group.
    #[inline]
    pub(crate) fn bump(&self, counter: impl FnOnce(&Counters) -> &AtomicU64, n: u64) {
        let counter = counter(&self.shard.counters);
        // Only the lock holder writes this group: a load and a store suffice.
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

impl<T> Drop for ShardGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.shard.locked.store(false, Ordering::Release);
    }
}
