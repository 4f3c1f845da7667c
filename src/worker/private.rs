//! Tier 0 as the tiers see it: how a pool reaches the calling thread's
//! private slot. A pool built at run time reaches it by its index into the
//! thread's array ([`ByIndex`]); a [`worker_pool!`](crate::worker_pool)
//! static through a thread-local entry of its own ([`ByEntry`]). The tiers
//! behind it (`tiers.rs`) are written once, for both.

use std::marker::PhantomData;
use std::ptr::NonNull;

use super::WorkerPool;
use super::registry::{self as hot, PrivateEntry};
use crate::slot::Slot;

/// The calling thread's private slot in one pool of `T`s.
pub(super) trait Private<T>: Copy {
    /// Takes the object parked there, if any (counting a hit).
    fn take(self) -> Option<Slot<T>>;

    /// Parks `slot` (its object reset) if the private slot is there and
    /// empty; hands it back otherwise.
    fn park(self, slot: Slot<T>) -> Result<(), Slot<T>>;

    /// Whether the slot was never looked at on this thread: then
    /// [`enable`](Self::enable) may switch it on.
    fn first_use(self) -> bool;

    /// Switches the slot on for worker number `id`, in the pool whose
    /// registry index is `index`; whether it is on.
    fn enable(self, index: usize, id: usize) -> bool;
}

/// Hands `slot` to `park`, which stores its address and says whether it
/// did; the slot comes back if not.
#[inline(always)]
fn park_with<T>(slot: Slot<T>, park: impl FnOnce(NonNull<()>) -> bool) -> Result<(), Slot<T>> {
    let ptr = slot.into_raw();
    if park(ptr.cast()) {
        return Ok(());
    }
    // SAFETY: `park` did not store it: the address is still ours alone.
    Err(unsafe { Slot::from_raw(ptr) })
}

/// A pool's private slot by its index into the calling thread's array.
pub(super) struct ByIndex<T> {
    index: usize,
    _objects: PhantomData<fn(T) -> T>,
}

impl<T> Clone for ByIndex<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ByIndex<T> {}

impl<T> ByIndex<T> {
    /// `pool`'s private slot on the calling thread. Read before the reset of
    /// a returning object, whose stores the compiler cannot tell apart from
    /// the pool's fields: one load, not two.
    #[inline(always)]
    pub(super) fn of<R>(pool: &WorkerPool<T, R>) -> Self {
        Self {
            index: pool.private,
            _objects: PhantomData,
        }
    }
}

impl<T> Private<T> for ByIndex<T> {
    #[inline(always)]
    fn take(self) -> Option<Slot<T>> {
        // SAFETY: the index is a pool's of `T`s (from `register_pool`, or
        // `NO_PRIVATE`), and only that pool parks there: what is parked is
        // a slot of a `T`, handed over to us.
        let ptr = unsafe { hot::take(self.index) }?;
        // SAFETY: as above.
        Some(unsafe { Slot::from_raw(ptr.cast()) })
    }

    #[inline(always)]
    fn park(self, slot: Slot<T>) -> Result<(), Slot<T>> {
        // SAFETY: the index as in `take`; the object is reset, idle and
        // ours to hand over.
        park_with(slot, |ptr| unsafe { hot::park(self.index, ptr) })
    }

    #[inline(always)]
    fn first_use(self) -> bool {
        // The registry switches array slots on for a thread when it gets
        // its number.
        false
    }

    fn enable(self, _: usize, _: usize) -> bool {
        false
    }
}

/// A `worker_pool!` static's private slot: the calling thread's own entry
/// of the static.
pub(crate) struct ByEntry<'a, T> {
    entry: &'a PrivateEntry,
    _objects: PhantomData<fn(T) -> T>,
}

impl<T> Clone for ByEntry<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ByEntry<'_, T> {}

impl<'a, T> ByEntry<'a, T> {
    /// The private slot `entry` holds.
    ///
    /// # Safety
    /// `entry` is the calling thread's own entry of a `worker_pool!` static
    /// whose pool holds `T`s, and the result is used with that pool only.
    #[inline(always)]
    pub(crate) unsafe fn new(entry: &'a PrivateEntry) -> Self {
        Self {
            entry,
            _objects: PhantomData,
        }
    }
}

impl<T> Private<T> for ByEntry<'_, T> {
    #[inline(always)]
    fn take(self) -> Option<Slot<T>> {
        let ptr = hot::take_entry(self.entry)?;
        // SAFETY: the entry is this pool's (`new`'s contract): it holds
        // slots of our `T`, and the one taken is ours.
        Some(unsafe { Slot::from_raw(ptr.cast()) })
    }

    #[inline(always)]
    fn park(self, slot: Slot<T>) -> Result<(), Slot<T>> {
        // SAFETY: the object is reset, idle and ours to hand over; the
        // entry is this thread's for this pool (`new`'s contract).
        park_with(slot, |ptr| unsafe { hot::park_entry(self.entry, ptr) })
    }

    #[inline(always)]
    fn first_use(self) -> bool {
        hot::unchecked(self.entry)
    }

    fn enable(self, index: usize, id: usize) -> bool {
        // SAFETY: the entry is this thread's own for the static whose pool
        // has registry index `index` (`new`'s contract, and the caller's
        // pool).
        unsafe { hot::enable_here(index, self.entry, id) }
    }
}
