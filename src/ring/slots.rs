//! The ring's slots and the bitmap of free ones.
//!
//! Slot `i` is bit `i / words` of word `i % words` of the bitmap: at most
//! 64 slots per 128-byte-aligned word, and at least one word per CPU (while
//! there are slots for it), so that slots are dealt out round-robin and each
//! worker claims and frees in a cache line of its own in the common case,
//! where a task frees its slot on the worker that claimed it.
//!
//! A slot taken out of the bitmap is a [`Claimed`] token: only the code that
//! holds one may write the slot's object or free the slot.

use std::cell::UnsafeCell as StdUnsafeCell;
use std::mem;
use std::ptr::NonNull;

use crossbeam_utils::CachePadded;

use crate::loom::{AtomicU64, Ordering};
use crate::shard::FirstPanic;

/// The most slots a ring may have: slot indices stay below the grant
/// markers of the wait list ([`GRANT_CLOSED`](super::wait_list::GRANT_CLOSED)
/// and `NOT_GRANTED`).
pub(super) const MAX_CAPACITY: usize = usize::MAX >> 3;

/// One slot: the object, in place for the ring's whole life.
///
/// `repr(C)` with `value` first: [`Slots::index_of`] divides a value
/// pointer's offset by the slot size, which needs every value at offset 0 of
/// its slot (without it, rustc may place a zero-sized `value` after `uses`).
#[repr(C)]
struct RingSlot<T> {
    value: StdUnsafeCell<T>,
    /// Times the slot was handed out; written by its holder alone.
    uses: AtomicU64,
}

/// Slot `index`, held by whoever has this token: taken from the bitmap
/// (by [`Slots::claim`] or [`Slots::take_bit`]), or vouched for with
/// [`Claimed::assume`] where the claim travelled as a plain index or
/// pointer (a hand-over through a waiter's node, a guard giving its object
/// back). Neither `Clone` nor `Copy`: there is one token per claim, and it
/// is used up by freeing the slot ([`Slots::free`]) or handing its object
/// out ([`Slots::hand_out`]). Dropping one leaks the slot (the ring loses
/// its capacity) but is sound.
#[must_use = "dropping a claimed slot loses it for good"]
#[derive(Debug)]
pub(super) struct Claimed(usize);

impl Claimed {
    /// The token for slot `index`.
    ///
    /// # Safety
    /// The caller holds slot `index` of the ring it will use the token with
    /// (it was handed to it through a waiter's node, or back from a guard),
    /// and no other token or pointer to the slot's object is in use.
    #[inline]
    pub(super) unsafe fn assume(index: usize) -> Self {
        Self(index)
    }

    /// The slot's index.
    #[inline]
    pub(super) fn index(&self) -> usize {
        self.0
    }

    /// The slot's index, to pass the claim through a waiter's node.
    #[inline]
    pub(super) fn into_index(self) -> usize {
        self.0
    }
}

/// The ring's slots and the bitmap of free ones.
pub(super) struct Slots<T> {
    slots: Box<[RingSlot<T>]>,
    /// One bit per slot, set while the slot is free and not handed over.
    free: Box<[CachePadded<AtomicU64>]>,
}

impl<T> Slots<T> {
    /// `capacity` slots (1 to [`MAX_CAPACITY`]) of objects made now with
    /// `make`, all free.
    pub(super) fn new(capacity: usize, make: impl Fn() -> T) -> Self {
        let slots = (0..capacity)
            .map(|_| RingSlot {
                value: StdUnsafeCell::new(make()),
                uses: AtomicU64::new(0),
            })
            .collect();
        #[cfg(not(all(test, loom)))]
        let cpus = crate::thread::default_parallelism();
        // The models explore the same layout on every host: two words once
        // there are two slots.
        #[cfg(all(test, loom))]
        let cpus = 2;
        let words = capacity.div_ceil(64).max(cpus.min(capacity));
        let free = (0..words)
            .map(|w| {
                let bits = (capacity - w).div_ceil(words);
                let word = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                CachePadded::new(AtomicU64::new(word))
            })
            .collect();
        Self { slots, free }
    }

    /// The number of slots.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Claims a free slot from the bitmap, scanning from a word picked by
    /// `hint` so that threads spread out; `None` if no bit is set.
    #[inline]
    pub(super) fn claim(&self, hint: usize) -> Option<Claimed> {
        let words = self.free.len();
        let start = if words == 1 { 0 } else { hint % words };
        for k in 0..words {
            let w = if start + k < words {
                start + k
            } else {
                start + k - words
            };
            let word = &self.free[w];
            // SeqCst: a waiter's look must be ordered after its
            // registration (see `RingPool`'s docs); on x86 it is a plain
            // load.
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let mask = 1u64 << bits.trailing_zeros();
                // Acquire (within SeqCst) pairs with the release of the
                // `fetch_or` that freed the slot: the last holder's writes
                // are visible.
                let prev = word.fetch_and(!mask, Ordering::SeqCst);
                if prev & mask != 0 {
                    return Some(Claimed(mask.trailing_zeros() as usize * words + w));
                }
                bits = prev & !mask;
            }
        }
        None
    }

    /// The value pointer of the claimed slot, counting the use. The pointer
    /// carries the claim from here on (to a guard, which gives it back).
    #[inline]
    pub(super) fn hand_out(&self, slot: Claimed) -> NonNull<T> {
        let slot = &self.slots[slot.0];
        // Only this holder writes `uses` until it frees the slot.
        slot.uses
            .store(slot.uses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        NonNull::from(&slot.value).cast()
    }

    /// Frees the slot to the bitmap, where any `claim` may take it.
    #[inline]
    pub(super) fn free(&self, slot: Claimed) {
        let words = self.free.len();
        let index = slot.0;
        self.free[index % words].fetch_or(1 << (index / words), Ordering::SeqCst);
    }

    /// Takes slot `index` back out of the bitmap, if its bit is still set.
    pub(super) fn take_bit(&self, index: usize) -> Option<Claimed> {
        let words = self.free.len();
        let mask = 1u64 << (index / words);
        let prev = self.free[index % words].fetch_and(!mask, Ordering::SeqCst);
        (prev & mask != 0).then_some(Claimed(index))
    }

    /// Puts `fresh` in the claimed slot and returns the object it held.
    pub(super) fn swap_value(&self, slot: &Claimed, fresh: T) -> T {
        let value = self.slots[slot.0].value.get();
        // SAFETY: the token is the claim on the slot: no one else touches
        // its object until it is freed.
        mem::replace(unsafe { &mut *value }, fresh)
    }

    /// The index of the slot whose value `ptr` points to.
    #[inline]
    pub(super) fn index_of(&self, ptr: NonNull<T>) -> usize {
        // Plain address arithmetic: `RingSlot` is never zero-sized (it
        // holds an `AtomicU64`), and `ptr` points into `slots`.
        let offset = ptr.as_ptr() as usize - self.slots.as_ptr() as usize;
        offset / size_of::<RingSlot<T>>()
    }

    /// Free slots now.
    pub(super) fn num_free(&self) -> u64 {
        self.free
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// Objects handed out so far.
    pub(super) fn use_count(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.uses.load(Ordering::Relaxed))
            .sum()
    }

    /// Whether slot `index`'s bit is set: a free slot, which any `claim`
    /// takes.
    #[cfg(all(test, loom))]
    pub(super) fn is_free(&self, index: usize) -> bool {
        let words = self.free.len();
        self.free[index % words].load(Ordering::SeqCst) & (1 << (index / words)) != 0
    }
}

impl<T> Drop for Slots<T> {
    /// Drops every object, all of them even if one's destructor panics (no
    /// guard is left: each borrows the ring or holds an `Arc` of it); then
    /// the first panic goes on.
    fn drop(&mut self) {
        let mut panic = FirstPanic::default();
        for slot in mem::take(&mut self.slots) {
            panic.run(|| drop(slot));
        }
        panic.resume();
    }
}
