//! [`Slot<T>`]: an object in a heap slot of its own, owned by whoever holds
//! the `Slot`.
//!
//! The pools never move their objects: each lives in one heap allocation,
//! made when the pool creates the object, and stacks, magazines, private
//! slots and guards pass the slot's address around. A `Slot<T>` is that
//! address with the ownership spelled in its type (as crossbeam-epoch's
//! `Owned<T>` is): not `Copy`, moved from tier to tier, so the functions
//! that take one need no safety contract. Only [`Slot::from_raw`], where an
//! address comes back out of a stack or a thread-local, is `unsafe`.
//!
//! A `Slot` has no `Drop`: an object's destructor is user code, and the
//! pools choose where it runs (never under a shard lock or the registry's
//! lock), with [`Slot::free`] or [`free_all`]. A `Slot` forgotten on some
//! path leaks its object, which is safe.

use std::any::Any;
use std::fmt;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;

/// An object in a heap slot of its own; see the [module docs](self).
#[must_use = "a slot is freed only by `free` or `into_inner`; dropping it leaks its object"]
#[repr(transparent)]
pub(crate) struct Slot<T>(NonNull<T>);

// SAFETY: a `Slot` owns its object alone, as a `Box<T>` does.
unsafe impl<T: Send> Send for Slot<T> {}
// SAFETY: `&Slot` gives out only `&T`.
unsafe impl<T: Sync> Sync for Slot<T> {}

impl<T> Slot<T> {
    /// Moves `value` into a slot of its own; the slot never moves after this.
    pub(crate) fn new(value: T) -> Self {
        Self(NonNull::from(Box::leak(Box::new(value))))
    }

    /// The slot at `ptr`, owned again.
    ///
    /// # Safety
    /// `ptr` came from [`into_raw`](Self::into_raw), and no other `Slot`
    /// or reference to the object is in use: ownership passes to the
    /// returned `Slot`.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        Self(ptr)
    }

    /// The slot's address, given up: to be stored, and owned again with
    /// [`from_raw`](Self::from_raw).
    #[inline(always)]
    pub(crate) fn into_raw(self) -> NonNull<T> {
        self.0
    }

    /// The slot's address as a number: the key of a hold table (the same
    /// as the object's [`Lent::addr`](crate::guard::sealed::Lent::addr)).
    #[inline(always)]
    pub(crate) fn addr(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// The slot's address, kept (the loom models watch objects by it).
    #[cfg(all(test, loom))]
    pub(crate) fn as_ptr(&self) -> NonNull<T> {
        self.0
    }

    /// The object, to reset or inspect.
    #[inline(always)]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: the slot holds a live `T` that only this `Slot` reaches,
        // and `&mut self` keeps the borrow unique.
        unsafe { &mut *self.0.as_ptr() }
    }

    /// Moves the object out and frees the slot.
    pub(crate) fn into_inner(self) -> T {
        // SAFETY: the slot is a leaked `Box<T>` that this `Slot` owns alone.
        *unsafe { Box::from_raw(self.0.as_ptr()) }
    }

    /// Drops the object and frees the slot.
    pub(crate) fn free(self) {
        // SAFETY: as in `into_inner`.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Slot").field(&self.0).finish()
    }
}

/// Frees every slot `slots` yields, going on with the rest if one object's
/// destructor panics; the first panic goes on once all are freed (see
/// [`FirstPanic`]).
pub(crate) fn free_all<T>(slots: impl IntoIterator<Item = Slot<T>>) {
    let mut panic = FirstPanic::default();
    for slot in slots {
        panic.run(|| slot.free());
    }
    panic.resume();
}

/// The first panic of a bulk free, kept while the rest goes on.
///
/// A panicking destructor must not leak the objects after it, and a second
/// one must not abort: each drop runs under `catch_unwind`, the first
/// payload is kept and [`resume`](Self::resume)d at the end, later ones are
/// dropped. This is what a `Vec`'s drop does, less its abort on a second
/// panic. The pools take slots out under their shard locks (or the
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops in the static it points to; panics on drop when
    /// its number is 13.
    struct Counted(u32, &'static AtomicUsize);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::Relaxed);
            assert_ne!(self.0, 13, "unlucky");
        }
    }

    #[test]
    fn a_slot_round_trips_through_its_address_and_frees_once() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let mut slot = Slot::new(Counted(1, &DROPS));
        slot.get_mut().0 = 2;
        let ptr = slot.into_raw();
        // SAFETY: `ptr` came from `into_raw` and nothing else uses it.
        let slot = unsafe { Slot::from_raw(ptr) };
        let value = slot.into_inner();
        assert_eq!((value.0, DROPS.load(Ordering::Relaxed)), (2, 0));
        drop(value);
        assert_eq!(DROPS.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn free_all_frees_the_rest_after_a_panic_and_then_raises_it() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        let slots = [1, 13, 3, 13, 5].map(|n| Slot::new(Counted(n, &DROPS)));
        let err = catch_unwind(AssertUnwindSafe(|| free_all(slots))).unwrap_err();
        let message = err.downcast_ref::<String>().expect("a formatted panic");
        assert!(message.contains("unlucky"), "{message}");
        // All five dropped: the two panics did not stop the rest.
        assert_eq!(DROPS.load(Ordering::Relaxed), 5);
    }
}
