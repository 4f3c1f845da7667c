//! std or loom types for the lock-free parts of the crate.
//!
//! Under `RUSTFLAGS="--cfg loom" cargo test --lib` every atomic and cell the
//! crate's concurrent structures use comes from [`loom`], which explores
//! their interleavings; otherwise they are the std types (the wrappers
//! compile away).
//!
//! The one cfg spelling is `#[cfg(all(test, loom))]` (and its `not`): the
//! loom crate is a test-only dependency. The models sit in a
//! `loom_tests.rs` beside each module they check (`pool`, `worker`,
//! `ring`, `slab`).
//!
//! Two parts use std types directly, on purpose: the worker registry and
//! the private slots (`worker/registry.rs`), which are thread-locals and a
//! std mutex that loom cannot model and which are compiled out under loom
//! (the pools start at the magazines there; the ordinary tests cover
//! them), and `PooledCache` (`cache/`), whose shards are `RwLock`s with no
//! lock-free part to model.

#[cfg(all(test, loom))]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// `std::cell::UnsafeCell` with loom's closure-based API, so the code that
/// uses it is the same under both.
#[cfg(not(all(test, loom)))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(all(test, loom)))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Waits a little before trying a busy lock again: backs off with
/// exponential spinning, then yields the thread (under loom, yields at once
/// so the model checker can run the holder).
#[derive(Debug, Default)]
pub(crate) struct SpinWait {
    #[cfg(not(all(test, loom)))]
    backoff: crossbeam_utils::Backoff,
}

impl SpinWait {
    #[inline]
    pub(crate) fn wait(&mut self) {
        #[cfg(all(test, loom))]
        loom::thread::yield_now();
        #[cfg(not(all(test, loom)))]
        self.backoff.snooze();
    }
}

/// Orders a sequentially consistent write before a later sequentially
/// consistent read of another variable (Dekker's pattern).
///
/// With std, the crate's `SeqCst` accesses already give this (C11 forbids
/// the store-buffering outcome between `SeqCst` accesses), so this is a
/// no-op. Loom models `SeqCst` accesses as `AcqRel` and would report a false
/// alarm, but it models `fence(SeqCst)` exactly, so under loom this is that
/// fence: the models check the guarantee the real accesses have.
#[inline(always)]
pub(crate) fn dekker_fence() {
    #[cfg(all(test, loom))]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// A loom-visible step before each use of a `tokio::sync::Notify` that
/// decides whether a wake-up is lost: making a `Notified` (it sees every
/// later `notify_waiters`) and calling `notify_waiters`.
///
/// tokio's `Notify` is made of std atomics and locks, which loom does not
/// see: its exploration would never order a notify against a new
/// `Notified` unless some loom access did. Under loom, [`step`] is a
/// relaxed read-modify-write of a counter (one per `Notify`; relaxed, so
/// that it orders nothing else), placed right before the `Notify` call,
/// so that the calls happen in the order of their steps and loom tries
/// both. Without loom it is a zero-sized no-op.
///
/// [`step`]: NotifySteps::step
#[derive(Debug)]
pub(crate) struct NotifySteps {
    #[cfg(all(test, loom))]
    steps: AtomicUsize,
}

impl NotifySteps {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(all(test, loom))]
            steps: AtomicUsize::new(0),
        }
    }

    /// Marks the `Notify` call that follows.
    #[inline(always)]
    pub(crate) fn step(&self) {
        #[cfg(all(test, loom))]
        self.steps.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the loom models of every pool share: an object that catches being
/// handed to two holders at once, or to the next holder without the last
/// holder's writes.
#[cfg(all(test, loom))]
pub(crate) mod model {
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A pooled object with a "held" flag (a std atomic: it checks the
    /// model, it is not part of it) and data each holder writes (a loom
    /// cell: loom reports a causality violation when a hand-over does not
    /// order one holder's write before the next one's, as a missing
    /// `Release`/`Acquire` pair would).
    pub(crate) struct Obj {
        held: AtomicBool,
        data: loom::cell::UnsafeCell<u64>,
    }

    impl Obj {
        pub(crate) fn new() -> Self {
            Self {
                held: AtomicBool::new(false),
                data: loom::cell::UnsafeCell::new(0),
            }
        }
    }

    impl crate::Reset for Obj {
        fn reset(&mut self) {}
    }

    /// Marks the object in `slot` held, panicking if it already was, and
    /// writes its data.
    pub(crate) fn hold(slot: NonNull<Obj>) {
        // SAFETY: the models only use the object through `&`, and the slot
        // is live while a model thread holds it.
        let obj = unsafe { slot.as_ref() };
        assert!(!obj.held.swap(true, Ordering::SeqCst), "handed out twice");
        // SAFETY: the holder alone touches the data (what the flag above
        // and loom's access tracking check).
        obj.data.with_mut(|d| unsafe { *d += 1 });
    }

    /// Marks the object in `slot` free again.
    pub(crate) fn release(slot: NonNull<Obj>) {
        // SAFETY: as in `hold`.
        unsafe { slot.as_ref() }.held.store(false, Ordering::SeqCst);
    }
}
