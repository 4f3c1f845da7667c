//! Worker numbers and tier 0 of [`WorkerPool`](crate::WorkerPool): one
//! private slot per (worker thread, pool), in a thread-local array.
//!
//! # Worker numbers
//!
//! A tokio worker thread gets a dense number at its first use of any
//! `WorkerPool` ([`worker_id`]); the number is given back when the thread
//! exits. The thread then owns magazine *n* of every pool, and its private
//! slots, with no atomic read-modify-write: exclusivity holds by
//! construction.
//!
//! # Private slots
//!
//! Each live `WorkerPool` (up to [`SLOTS`] of them) gets a slot index *p*
//! when it is built. Every numbered thread keeps, in its thread-local
//! `LOCAL`, a parked-object pointer and a hit counter per index. A get
//! takes `parked[p]` and a guard's drop parks its object there: one load
//! and one store each, at an address the thread-local base and *p* give
//! directly (no table, no bound check: the entry says everything).
//!
//! An entry holds [`DISABLED`] (the thread has no slot in that pool: it is
//! not a worker, or its number is past the pool's magazines, or no pool has
//! the index), [`EMPTY`], or an object. A get takes what is above `EMPTY`; a
//! drop parks only into `EMPTY`. Threads that are not workers never leave
//! `DISABLED`, so the blocking pool's threads hold no objects.
//!
//! Other threads touch a thread's entries only under the [`REGISTRY`] lock,
//! and only when the owner cannot be using that index: a pool's builder
//! enables the entries of its new index before anyone holds the pool, a
//! pool's drop (no one holds it any more) takes back what is parked there,
//! and stats read them (relaxed atomics: a snapshot). A thread's exit moves
//! its parked objects into its own magazines, under the lock, so no object
//! is ever dropped or lost with a thread.
//!
//! The array is a `const` thread-local with no destructor. On the targets
//! listed in `NATIVE_TLS` std keeps it in native thread-local storage, which
//! lives as long as the thread, through its thread-local destructors; other
//! threads keep a pointer to it only while the thread is registered. On
//! other targets (and under loom) the private tier is off and pools start at
//! the magazines.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Relaxed};

/// Pools that get a private slot on each worker thread; pools built while
/// this many are alive start at the magazines.
pub(crate) const SLOTS: usize = 64;

/// The slot index of pools without one: its entry is `DISABLED` in every
/// thread forever.
pub(crate) const NO_SLOT: usize = SLOTS;

/// Worker number of threads that have none.
pub(crate) const NO_ID: usize = usize::MAX;

/// Entry value: no private slot here.
const DISABLED: *mut () = ptr::null_mut();
/// Entry value: a private slot with nothing parked.
const EMPTY: *mut () = ptr::without_provenance_mut(1);

/// Whether this build has the private tier (see the module docs).
const NATIVE_TLS: bool = cfg!(all(
    not(loom),
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        all(windows, target_env = "msvc"),
    )
));

/// A thread's private slots, by pool slot index (the last never enabled).
struct Local {
    parked: [AtomicPtr<()>; SLOTS + 1],
    /// Gets served from `parked`, since the index was enabled here.
    hits: [AtomicU64; SLOTS + 1],
}

thread_local! {
    /// This thread's private slots. `const` and without destructor: one
    /// thread-local address, no lazy initialisation, no liveness check.
    static LOCAL: Local = const {
        Local {
            parked: [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS + 1],
            hits: [const { AtomicU64::new(0) }; SLOTS + 1],
        }
    };
    /// The calling thread's worker number, or `NO_ID`. No destructor, so
    /// reading it is one thread-local load.
    static WORKER_ID: Cell<usize> = const { Cell::new(NO_ID) };
    /// Gives the number back when the thread exits (registered at the first
    /// assignment only).
    static RELEASE: ReleaseId = const { ReleaseId };
}

/// Takes the object parked in slot `slot` of the calling thread, counting a
/// hit.
///
/// `slot` must be at most [`NO_SLOT`] (every `WorkerPool` keeps its index
/// so); the entry's value tells whether this thread has the slot.
#[inline(always)]
pub(crate) fn take(slot: usize) -> Option<NonNull<()>> {
    if !NATIVE_TLS {
        return None;
    }
    LOCAL.with(|local| {
        debug_assert!(slot <= NO_SLOT);
        // SAFETY: `slot <= NO_SLOT`, the arrays' last index.
        let entry = unsafe { local.parked.get_unchecked(slot) };
        let parked = entry.load(Relaxed);
        if parked.addr() <= EMPTY.addr() {
            return None;
        }
        entry.store(EMPTY, Relaxed);
        // SAFETY: as above.
        let hits = unsafe { local.hits.get_unchecked(slot) };
        hits.store(hits.load(Relaxed).wrapping_add(1), Relaxed);
        NonNull::new(parked)
    })
}

/// Parks `object` in slot `slot` of the calling thread if that slot is
/// there and empty; `false` otherwise (the caller keeps the object).
///
/// `slot` as for [`take`]; `object` is an idle object of the pool that
/// holds `slot`, already reset, handed over.
#[inline(always)]
pub(crate) fn park(slot: usize, object: NonNull<()>) -> bool {
    if !NATIVE_TLS {
        return false;
    }
    LOCAL.with(|local| {
        debug_assert!(slot <= NO_SLOT);
        // SAFETY: `slot <= NO_SLOT`, the arrays' last index.
        let entry = unsafe { local.parked.get_unchecked(slot) };
        if entry.load(Relaxed) != EMPTY {
            return false;
        }
        entry.store(object.as_ptr(), Relaxed);
        true
    })
}

/// The calling thread's worker number: `Some` on tokio worker threads
/// (given at their first call), `None` elsewhere and once the thread is
/// exiting.
#[inline(always)]
pub(crate) fn worker_id() -> Option<usize> {
    match WORKER_ID.try_with(Cell::get) {
        Ok(NO_ID) => assign_worker_id(),
        Ok(id) => Some(id),
        Err(_) => None,
    }
}

/// The calling thread's worker number as stored: `NO_ID` where
/// [`worker_id`] would say `None` or has not numbered the thread yet.
#[inline(always)]
pub(crate) fn raw_worker_id() -> usize {
    WORKER_ID.try_with(Cell::get).unwrap_or(NO_ID)
}

/// What the registry knows of a pool with a slot index.
pub(crate) struct PoolEntry {
    /// The pool's magazines (type-erased; a heap block that does not move
    /// with the pool).
    pub(crate) mags: *const (),
    /// How many magazines: threads with a number below it get the slot.
    pub(crate) workers: usize,
    /// Takes in what an exiting thread `worker` had in the slot: `hits`
    /// and the parked object, if any, which goes into magazine `worker`
    /// (owned by the exiting thread until its number is given back). Runs
    /// no user code.
    pub(crate) absorb:
        unsafe fn(mags: *const (), worker: usize, parked: Option<NonNull<()>>, hits: u64),
}

/// The private-slot counters of one thread for one pool, read by stats.
#[derive(Clone, Copy, Default)]
pub(crate) struct SlotCounts {
    /// Gets served from the slot.
    pub(crate) hits: u64,
    /// Whether an object is parked there now.
    pub(crate) parked: bool,
}

/// Numbered threads and pools with slot indices.
struct Registry {
    /// The next worker number never given out.
    next_id: usize,
    /// Numbers given back by exited threads.
    free_ids: Vec<usize>,
    /// By worker number: the `LOCAL` of the thread that holds it, or null.
    threads: Vec<*const Local>,
    /// By slot index.
    pools: [Option<PoolEntry>; SLOTS],
}

// SAFETY: the raw pointers are only dereferenced under the registry's lock,
// while the thread (for `threads`) or the pool (for `pools`) they point into
// is registered, which is while it is alive.
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 0,
    free_ids: Vec::new(),
    threads: Vec::new(),
    pools: [const { None }; SLOTS],
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // Nothing under the lock runs user code or panics midway through an
    // update, so a poisoned lock still holds a consistent registry.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// The `LOCAL` of the thread holding `worker`, if any.
    fn thread(&self, worker: usize) -> Option<&Local> {
        let local = *self.threads.get(worker)?;
        // SAFETY: registered threads are alive (they unregister at exit,
        // under this lock), and `LOCAL` lives as long as its thread.
        (!local.is_null()).then(|| unsafe { &*local })
    }
}

/// Gives a slot index to a pool with `entry.workers` magazines, enabling it
/// on the numbered threads below that; [`NO_SLOT`] when all are taken (or
/// the private tier is off).
pub(crate) fn register_pool(entry: PoolEntry) -> usize {
    if !NATIVE_TLS {
        return NO_SLOT;
    }
    let mut reg = registry();
    let Some(slot) = reg.pools.iter().position(Option::is_none) else {
        return NO_SLOT;
    };
    for worker in 0..entry.workers {
        if let Some(local) = reg.thread(worker) {
            local.parked[slot].store(EMPTY, Relaxed);
            local.hits[slot].store(0, Relaxed);
        }
    }
    reg.pools[slot] = Some(entry);
    slot
}

/// Takes slot index `slot` back from a pool being dropped (no one holds it
/// any more), disabling it everywhere; returns the objects parked there,
/// for the caller to drop (user code: not under the lock).
pub(crate) fn unregister_pool(slot: usize) -> Vec<NonNull<()>> {
    let mut parked = Vec::new();
    if slot >= SLOTS {
        return parked;
    }
    let mut reg = registry();
    if let Some(entry) = reg.pools[slot].take() {
        for worker in 0..entry.workers {
            if let Some(local) = reg.thread(worker) {
                let object = local.parked[slot].swap(DISABLED, Relaxed);
                local.hits[slot].store(0, Relaxed);
                if object.addr() > EMPTY.addr() {
                    parked.extend(NonNull::new(object));
                }
            }
        }
    }
    parked
}

/// Calls `f` with each worker number in `workers` and the slot counters
/// of the thread holding it for slot `slot` (zeros where no thread holds
/// it), under one lock; `f` must not use a `WorkerPool`'s cold paths.
pub(crate) fn slot_counts(
    slot: usize,
    workers: std::ops::Range<usize>,
    mut f: impl FnMut(usize, SlotCounts),
) {
    if slot >= SLOTS {
        return workers.for_each(|w| f(w, SlotCounts::default()));
    }
    let reg = registry();
    for worker in workers {
        let counts = reg
            .thread(worker)
            .map_or_else(SlotCounts::default, |local| SlotCounts {
                hits: local.hits[slot].load(Relaxed),
                parked: local.parked[slot].load(Relaxed).addr() > EMPTY.addr(),
            });
        f(worker, counts);
    }
}

#[cold]
#[inline(never)]
fn assign_worker_id() -> Option<usize> {
    tokio::runtime::worker_index()?;
    // Register the release first: if the thread is already exiting (its
    // destructors running), it gets no number.
    RELEASE.try_with(|_| ()).ok()?;
    WORKER_ID
        .try_with(|cell| {
            let mut reg = registry();
            // The smallest free number keeps the numbers dense.
            let id = match reg.free_ids.iter().enumerate().min_by_key(|(_, id)| **id) {
                Some((i, _)) => reg.free_ids.swap_remove(i),
                None => {
                    reg.next_id += 1;
                    reg.next_id - 1
                }
            };
            if NATIVE_TLS {
                let local: *const Local = LOCAL.with(ptr::from_ref);
                if reg.threads.len() <= id {
                    reg.threads.resize(id + 1, ptr::null());
                }
                reg.threads[id] = local;
                // SAFETY: this thread's own `LOCAL`.
                let local = unsafe { &*local };
                for (slot, entry) in reg.pools.iter().enumerate() {
                    if entry.as_ref().is_some_and(|e| id < e.workers) {
                        local.parked[slot].store(EMPTY, Relaxed);
                        local.hits[slot].store(0, Relaxed);
                    }
                }
            }
            cell.set(id);
            id
        })
        .ok()
}

/// Returns the thread's worker number to the free list at thread exit,
/// after moving its parked objects into its magazines.
struct ReleaseId;

impl Drop for ReleaseId {
    fn drop(&mut self) {
        // From here on the thread uses the depot.
        let id = WORKER_ID.try_with(|id| id.replace(NO_ID)).unwrap_or(NO_ID);
        if id == NO_ID {
            return;
        }
        // Everything this thread did to its magazines happens-before the
        // next owner's use, through this mutex.
        let mut reg = registry();
        if NATIVE_TLS && reg.threads.get(id).is_some_and(|l| !l.is_null()) {
            let local = LOCAL.with(ptr::from_ref);
            // SAFETY: this thread's own `LOCAL`, alive until it ends.
            let local = unsafe { &*local };
            for (slot, entry) in reg.pools.iter().enumerate() {
                let Some(entry) = entry else { continue };
                let object = local.parked[slot].swap(DISABLED, Relaxed);
                let hits = local.hits[slot].swap(0, Relaxed);
                if object != DISABLED {
                    let parked = NonNull::new(object).filter(|p| p.as_ptr().addr() > EMPTY.addr());
                    // SAFETY: the pool is registered, so alive; this
                    // thread still holds number `id`, so owns magazine
                    // `id`; `absorb` runs no user code.
                    unsafe { (entry.absorb)(entry.mags, id, parked, hits) };
                }
            }
            reg.threads[id] = ptr::null();
        }
        reg.free_ids.push(id);
    }
}
