//! A worker's magazine: a bounded LIFO stack of [`Slot`]s that only the
//! thread holding its worker number touches.

use std::marker::PhantomData;

use crossbeam_utils::CachePadded;

use super::MAX_MAGAZINE_SIZE;
use crate::loom::{AtomicU64, Ordering, UnsafeCell};
use crate::slot::Slot;

/// A magazine: a bounded LIFO stack of slot pointers owned by one worker
/// thread.
///
/// Its length is not stored: it is `pushed - popped`, two monotonic counts
/// that the owner alone writes (a plain load and store each) and anyone may
/// read. A `get` writes only `popped` and a drop only `pushed`, so a tight
/// get/drop loop carries two independent store-to-load chains instead of one
/// chain through a shared length twice as long; and the counts double as the
/// statistics (hits are `popped - spilled`, returns `pushed - refilled`), so
/// the hot path bumps no counter of its own.
pub(super) struct Magazine<T> {
    /// Objects ever pushed: local returns plus refilled.
    pub(super) pushed: AtomicU64,
    /// Objects ever popped: local hits plus spilled.
    pub(super) popped: AtomicU64,
    /// The most recently returned object when the stack below is in use
    /// (Go's per-P `private` slot): a get and a drop in a row touch only
    /// this fixed place, whose address needs no length, so the pointer's
    /// trip through memory is one store-to-load forward and not three.
    pub(super) hot: UnsafeCell<Option<Slot<T>>>,
    pub(super) slots: UnsafeCell<[Option<Slot<T>>; MAX_MAGAZINE_SIZE]>,
    /// Cold-path counters, written by the owner alone too.
    pub(super) refills: AtomicU64,
    pub(super) refilled: AtomicU64,
    pub(super) spills: AtomicU64,
    pub(super) spilled: AtomicU64,
    pub(super) misses: AtomicU64,
    /// Private-slot hits of threads that held this worker number and
    /// exited. Each was also a return into the slot: the slot's returns are
    /// its hits plus the object parked there (or left as an orphan).
    pub(super) slot_hits: AtomicU64,
}

impl<T> Magazine<T> {
    pub(super) fn new() -> CachePadded<Self> {
        CachePadded::new(Self {
            pushed: AtomicU64::new(0),
            popped: AtomicU64::new(0),
            hot: UnsafeCell::new(None),
            slots: UnsafeCell::new([const { None }; MAX_MAGAZINE_SIZE]),
            refills: AtomicU64::new(0),
            refilled: AtomicU64::new(0),
            spills: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            slot_hits: AtomicU64::new(0),
        })
    }

    /// Adds `n` to a counter this thread owns: a load and a store.
    #[inline(always)]
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub(super) fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The owner's handle on this magazine, for the calls that touch its
    /// slots.
    ///
    /// # Safety
    /// The calling thread owns this magazine while the handle lives: it
    /// holds the magazine's worker number (or, in the loom models, a number
    /// only this model thread uses), or it holds the registry's lock while
    /// no thread holds the number, or it has the pool by `&mut`. No other
    /// handle on this magazine exists meanwhile.
    #[inline(always)]
    pub(super) unsafe fn owned(&self) -> Owned<'_, T> {
        Owned {
            mag: self,
            _not_send: PhantomData,
        }
    }
}

/// Exclusive use of a [`Magazine`]'s slots by its owner thread; made by
/// [`Magazine::owned`]. Its methods take `&mut self`, so a closure given
/// the slots cannot reach them again through the handle.
pub(super) struct Owned<'a, T> {
    mag: &'a Magazine<T>,
    /// The handle stays on the thread that owns the magazine.
    _not_send: PhantomData<*const ()>,
}

impl<T> Owned<'_, T> {
    /// Runs `f` on the stack's slot array and the stack's length (the
    /// objects below the hot slot).
    #[inline(always)]
    pub(super) fn with_slots<R>(
        &mut self,
        f: impl FnOnce(&mut [Option<Slot<T>>; MAX_MAGAZINE_SIZE], usize) -> R,
    ) -> R {
        let mag = self.mag;
        // SAFETY: this handle's owner is the only thread that uses the
        // magazine, and `&mut self` keeps this the only reference.
        let hot = mag.hot.with_mut(|h| unsafe { (*h).is_some() });
        let len = (Magazine::<T>::load(&mag.pushed) - Magazine::<T>::load(&mag.popped)) as usize
            - usize::from(hot);
        // SAFETY: as above; `f` gets the only reference to the slots.
        mag.slots.with_mut(|slots| f(unsafe { &mut *slots }, len))
    }

    /// Takes every object out (the stack, then the hot slot) into the
    /// front of `out`, counted as popped; returns how many. `out` has room
    /// for a full magazine.
    pub(super) fn drain(&mut self, out: &mut [Option<Slot<T>>]) -> usize {
        let mut n = self.with_slots(|slots, len| {
            for (place, slot) in out.iter_mut().zip(&mut slots[..len]) {
                *place = slot.take();
            }
            len
        });
        let mag = self.mag;
        // SAFETY: as in `with_slots`. After the stack: its length counts
        // the hot slot out.
        if let Some(hot) = mag.hot.with_mut(|h| unsafe { (*h).take() }) {
            out[n] = Some(hot);
            n += 1;
        }
        Magazine::<T>::add(&mag.popped, n as u64);
        n
    }

    /// Pops the hot slot, else the top of the stack.
    #[inline(always)]
    pub(super) fn pop(&mut self) -> Option<Slot<T>> {
        let mag = self.mag;
        let popped = Magazine::<T>::load(&mag.popped);
        // SAFETY: as in `with_slots`: only the owner touches `hot`.
        if let Some(slot) = mag.hot.with_mut(|h| unsafe { (*h).take() }) {
            mag.popped.store(popped + 1, Ordering::Relaxed);
            return Some(slot);
        }
        // The hot slot is empty, so the stack holds them all.
        let len = Magazine::<T>::load(&mag.pushed).wrapping_sub(popped) as usize;
        let top = len.checked_sub(1)?;
        // SAFETY: as in `with_slots`; taking one element.
        let slot = mag
            .slots
            .with_mut(|slots| unsafe { (*slots).get_mut(top).and_then(Option::take) })?;
        mag.popped.store(popped + 1, Ordering::Relaxed);
        Some(slot)
    }

    /// Puts `slot` in the hot slot; the object that was there (if any)
    /// moves onto the stack when the magazine holds fewer than `cap`
    /// objects. Otherwise that older object comes back as `Err`: it is
    /// still counted in the magazine, and [`WorkerPool::spill`] must place
    /// it.
    ///
    /// The store of `slot` does not wait for the load of the old hot
    /// pointer, so a get/drop loop carries one store-to-load forward per
    /// round trip.
    ///
    /// [`WorkerPool::spill`]: super::WorkerPool::spill
    #[inline(always)]
    pub(super) fn push(&mut self, slot: Slot<T>, cap: usize) -> Result<(), Slot<T>> {
        let mag = self.mag;
        let pushed = Magazine::<T>::load(&mag.pushed);
        // SAFETY: as in `with_slots`: only the owner touches `hot`.
        let old = mag.hot.with_mut(|h| unsafe { (*h).replace(slot) });
        mag.pushed.store(pushed + 1, Ordering::Relaxed);
        let Some(old) = old else {
            return Ok(());
        };
        // `old` leaves the hot slot for the stack, which held this many.
        let stack_len = pushed.wrapping_sub(Magazine::<T>::load(&mag.popped)) as usize - 1;
        if stack_len + 2 > cap {
            return Err(old);
        }
        // SAFETY: as in `with_slots`; writing one element.
        mag.slots
            .with_mut(|slots| match unsafe { (*slots).get_mut(stack_len) } {
                Some(place) => {
                    *place = Some(old);
                    Ok(())
                }
                None => Err(old),
            })
    }
}

/// [`PoolEntry::fold_hits`] for a pool of `T`s (its parked object, if
/// any, stays counted as parked, as an orphan).
///
/// # Safety
/// `mags` points to the magazines of a live `WorkerPool<T, _>` with more
/// than `worker` of them, and the calling thread holds worker number
/// `worker`.
pub(super) unsafe fn fold_slot_hits<T>(mags: *const (), worker: usize, hits: u64) {
    // SAFETY: the caller's contract.
    let mag = unsafe { &*mags.cast::<CachePadded<Magazine<T>>>().add(worker) };
    Magazine::<T>::add(&mag.slot_hits, hits);
}
