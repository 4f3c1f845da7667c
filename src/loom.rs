//! std or loom types for the lock-free parts of the crate.
//!
//! Under `RUSTFLAGS="--cfg loom" cargo test --lib` every atomic and cell the
//! crate's concurrent structures use comes from [`loom`], which explores
//! their interleavings; otherwise they are the std types (the wrappers
//! compile away).

#[cfg(all(test, loom))]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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
