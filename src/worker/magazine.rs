//! A worker's magazine: a bounded LIFO stack of slot pointers that only
//! the thread holding its worker number touches.

use std::ptr::{self, NonNull};

use crossbeam_utils::CachePadded;

use super::MAX_MAGAZINE_SIZE;
use crate::loom::{AtomicU64, Ordering, UnsafeCell};

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
    pub(super) hot: UnsafeCell<*mut T>,
    pub(super) slots: UnsafeCell<[*mut T; MAX_MAGAZINE_SIZE]>,
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
            hot: UnsafeCell::new(ptr::null_mut()),
            slots: UnsafeCell::new([ptr::null_mut(); MAX_MAGAZINE_SIZE]),
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

    /// Runs `f` on the stack's slot array and the stack's length (the
    /// objects below the hot slot).
    ///
    /// # Safety
    /// The calling thread owns this magazine (it holds the magazine's
    /// worker number, or holds the registry's lock while no thread holds
    /// it), and `f` does not reach this magazine again.
    #[inline(always)]
    pub(super) unsafe fn with_slots<R>(
        &self,
        f: impl FnOnce(&mut [*mut T; MAX_MAGAZINE_SIZE], usize) -> R,
    ) -> R {
        // SAFETY: as below.
        let hot = self.hot.with_mut(|h| unsafe { !(*h).is_null() });
        let len = (Self::load(&self.pushed) - Self::load(&self.popped)) as usize - usize::from(hot);
        // SAFETY: the caller is the only thread that uses this magazine and
        // does not re-enter it, so this is the only reference to the slots.
        self.slots.with_mut(|slots| f(unsafe { &mut *slots }, len))
    }

    /// Takes every object out (the stack, then the hot slot) into the
    /// front of `out`, counted as popped; returns how many.
    ///
    /// # Safety
    /// As for [`with_slots`](Self::with_slots); `out` has room for a full
    /// magazine.
    pub(super) unsafe fn drain(&self, out: &mut [*mut T]) -> usize {
        // SAFETY: forwarded; copying pointers.
        let mut n = unsafe {
            self.with_slots(|slots, len| {
                out[..len].copy_from_slice(&slots[..len]);
                len
            })
        };
        // SAFETY: as for `with_slots`. After the stack: its length counts
        // the hot slot out.
        let hot = self
            .hot
            .with_mut(|h| unsafe { ptr::replace(h, ptr::null_mut()) });
        if !hot.is_null() {
            out[n] = hot;
            n += 1;
        }
        Self::add(&self.popped, n as u64);
        n
    }

    /// Pops the hot slot, else the top of the stack.
    ///
    /// # Safety
    /// As for [`with_slots`](Self::with_slots).
    #[inline(always)]
    pub(super) unsafe fn pop(&self) -> Option<NonNull<T>> {
        let popped = Self::load(&self.popped);
        // SAFETY: as for `with_slots`: only the owner touches `hot`.
        let hot = self
            .hot
            .with_mut(|h| unsafe { ptr::replace(h, ptr::null_mut()) });
        if let Some(slot) = NonNull::new(hot) {
            self.popped.store(popped + 1, Ordering::Relaxed);
            return Some(slot);
        }
        // The hot slot is empty, so the stack holds them all.
        let len = Self::load(&self.pushed).wrapping_sub(popped) as usize;
        let top = len.checked_sub(1)?;
        // SAFETY: as for `with_slots`; reading one element.
        let slot = self
            .slots
            .with_mut(|slots| unsafe { (*slots).get(top).copied() })?;
        self.popped.store(popped + 1, Ordering::Relaxed);
        NonNull::new(slot)
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
    /// # Safety
    /// As for [`with_slots`](Self::with_slots).
    #[inline(always)]
    pub(super) unsafe fn push(&self, slot: NonNull<T>, cap: usize) -> Result<(), NonNull<T>> {
        let pushed = Self::load(&self.pushed);
        // SAFETY: as for `with_slots`: only the owner touches `hot`.
        let old = self
            .hot
            .with_mut(|h| unsafe { ptr::replace(h, slot.as_ptr()) });
        self.pushed.store(pushed + 1, Ordering::Relaxed);
        let Some(old) = NonNull::new(old) else {
            return Ok(());
        };
        // `old` leaves the hot slot for the stack, which held this many.
        let stack_len = pushed.wrapping_sub(Self::load(&self.popped)) as usize - 1;
        if stack_len + 2 > cap {
            return Err(old);
        }
        // SAFETY: as for `with_slots`; writing one element.
        let stored = self
            .slots
            .with_mut(|slots| match unsafe { (*slots).get_mut(stack_len) } {
                Some(place) => {
                    *place = old.as_ptr();
                    true
                }
                None => false,
            });
        if stored { Ok(()) } else { Err(old) }
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
