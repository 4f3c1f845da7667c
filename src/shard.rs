//! The storage every pool shares: bounded stacks of pointers to objects that
//! never move, and shards that put one such stack behind a try-lock.
//!
//! Objects live in their own heap slots (one `Box<T>` each, made once when
//! the pool creates the object). Stacks, magazines and the depot only move
//! the slot pointers: "The hot path" in DESIGN.md measured moving a
//! `BytesMut` by value through a `Vec` at 10–14 ns against ~1.5 ns for using
//! it in place.
//!
//! A [`Shard`] is a test-and-test-and-set try-lock over a [`Stack`], plus the
//! shard's counters, all in one 128-byte-aligned block
//! ([`CachePadded`](crossbeam_utils::CachePadded)): a thread that holds the
//! lock owns the whole line, so the counters it bumps under the lock are
//! plain loads and stores, never contended read-modify-writes. The stack's
//! pointer buffer is padded with 128 bytes on each side for the same reason.

use std::any::Any;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::{self, NonNull};

use crossbeam_utils::CachePadded;

use crate::loom::{AtomicBool, AtomicU64, AtomicUsize, Ordering, SpinWait, UnsafeCell};

/// Pointers in 128 bytes: the padding on each side of a stack's buffer, so
/// that no other allocation shares a cache line with the used part.
const PAD: usize = 128 / size_of::<usize>();

/// Moves an object into a slot of its own; the slot never moves after this.
pub(crate) fn new_slot<T>(value: T) -> NonNull<T> {
    NonNull::from(Box::leak(Box::new(value)))
}

/// Drops the object in `slot` and frees the slot.
///
/// # Safety
/// `slot` came from [`new_slot`] and nothing else uses it any more.
pub(crate) unsafe fn free_slot<T>(slot: NonNull<T>) {
    // SAFETY: the caller guarantees `slot` is a leaked `Box<T>` it owns.
    drop(unsafe { Box::from_raw(slot.as_ptr()) });
}

/// Frees every slot `slots` yields, going on with the rest if one object's
/// destructor panics; the first panic goes on once all are freed (see
/// [`FirstPanic`]).
///
/// # Safety
/// As for [`free_slot`], for every slot yielded.
pub(crate) unsafe fn free_all<T>(slots: impl IntoIterator<Item = NonNull<T>>) {
    let mut panic = FirstPanic::default();
    for slot in slots {
        // SAFETY: the caller hands us these slots.
        panic.run(|| unsafe { free_slot(slot) });
    }
    panic.resume();
}

/// The first panic of a bulk free, kept while the rest goes on.
///
/// A panicking destructor must not leak the objects after it, and a second
/// one must not abort: each drop runs under `catch_unwind`, the first
/// payload is kept and [`resume`](Self::resume)d at the end, later ones are
/// dropped. This is what a `Vec`'s drop does, less its abort on a second
/// panic. The pools take slot pointers out under their shard locks (or the
/// registry's lock) and free them after releasing them, so no lock is held
/// while user `Drop` code runs.
#[derive(Default)]
pub(crate) struct FirstPanic(Option<Box<dyn Any + Send>>);

impl FirstPanic {
    /// Runs `f`, keeping its panic if it is the first.
    pub(crate) fn run(&mut self, f: impl FnOnce()) {
        let Err(payload) = catch_unwind(AssertUnwindSafe(f)) else {
            return;
        };
        if self.0.is_none() {
            self.0 = Some(payload);
        } else if let Err(nested) = catch_unwind(AssertUnwindSafe(|| drop(payload))) {
            // A payload whose own drop panics is leaked rather than let out.
            mem::forget(nested);
        }
    }

    /// Raises the first panic again, if there was one.
    pub(crate) fn resume(self) {
        if let Some(payload) = self.0 {
            resume_unwind(payload);
        }
    }
}

/// Moves the object out of `slot` and frees the slot.
///
/// # Safety
/// As for [`free_slot`].
pub(crate) unsafe fn take_slot<T>(slot: NonNull<T>) -> T {
    // SAFETY: the caller guarantees `slot` is a leaked `Box<T>` it owns.
    *unsafe { Box::from_raw(slot.as_ptr()) }
}

/// A bounded LIFO stack of slot pointers that never allocates after its
/// construction.
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
    pub(crate) fn pop(&mut self) -> Option<NonNull<T>> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        if self.len < self.low {
            self.low = self.len;
        }
        NonNull::new(self.buf[PAD + self.len])
    }

    #[inline]
    pub(crate) fn push(&mut self, slot: NonNull<T>) -> Result<(), NonNull<T>> {
        if self.len == self.cap {
            return Err(slot);
        }
        if self.len == self.places() {
            self.grow();
        }
        self.buf[PAD + self.len] = slot.as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Removes the objects that stayed idle since the last trim (the ones
    /// below the low-water mark) and hands each to `dropped`; starts a new
    /// aging period. Returns how many were removed.
    pub(crate) fn trim(&mut self, mut dropped: impl FnMut(NonNull<T>)) -> usize {
        let n = self.low.min(self.len);
        for i in 0..n {
            if let Some(slot) = NonNull::new(self.buf[PAD + i]) {
                dropped(slot);
            }
        }
        self.buf.copy_within(PAD + n..PAD + self.len, PAD);
        self.len -= n;
        self.low = self.len;
        n
    }

    /// Removes every pointer, handing each to `f`.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(NonNull<T>)) {
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
