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
//! `DISABLED`, so the blocking pool's threads hold no objects (except a
//! worker thread that entered `block_in_place`: it keeps its number, its
//! magazines and its slots, exclusively, until it exits).
//!
//! Other threads touch a thread's entries only under the [`REGISTRY`] lock,
//! and only when the owner cannot be using that index: a pool's builder
//! enables the entries of its new index before anyone holds the pool, a
//! pool's drop (no one holds it any more) takes back what is parked there,
//! and stats read them (relaxed atomics: a snapshot). A thread's exit leaves
//! its parked objects in the registry as orphans of its worker number,
//! under the lock: the next thread with that number finds them parked in
//! its own slots, and a pool's drop takes its orphans back. No object is
//! dropped (no user code runs at thread exit) or lost with a thread, and
//! orphans are bounded by one per (worker number, pool).
//!
//! The array is a `const` thread-local with no destructor. On the targets
//! listed in `NATIVE_TLS` std keeps it in native thread-local storage, which
//! lives as long as the thread, through its thread-local destructors; other
//! threads keep a pointer to it only while the thread is registered. On
//! other targets (and under loom) the private tier is off and pools start at
//! the magazines.

use std::cell::Cell;
use std::mem;
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

/// Whether this build has the private tier (see the module docs): targets
/// whose std keeps `#[thread_local]` statics in native thread-local
/// storage. Not Android or OpenHarmony, whose thread-locals are emulated
/// (boxed and freed by a key destructor in no fixed order).
const NATIVE_TLS: bool = cfg!(all(
    not(loom),
    any(
        all(
            target_os = "linux",
            any(target_env = "gnu", target_env = "musl")
        ),
        target_os = "macos",
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
/// The entry's value tells whether this thread has the slot.
///
/// # Safety
/// `slot` is at most [`NO_SLOT`] (what [`register_pool`] returns).
#[inline(always)]
pub(crate) unsafe fn take(slot: usize) -> Option<NonNull<()>> {
    if !NATIVE_TLS {
        return None;
    }
    LOCAL.with(|local| {
        debug_assert!(slot <= NO_SLOT);
        // SAFETY: `slot <= NO_SLOT` (the caller's contract), the arrays'
        // last index.
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
/// # Safety
/// `slot` as for [`take`]; `object` is an idle object of the pool that
/// holds `slot`, already reset, handed over.
#[inline(always)]
pub(crate) unsafe fn park(slot: usize, object: NonNull<()>) -> bool {
    if !NATIVE_TLS {
        return false;
    }
    LOCAL.with(|local| {
        debug_assert!(slot <= NO_SLOT);
        // SAFETY: `slot <= NO_SLOT` (the caller's contract), the arrays'
        // last index.
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
    /// Adds the slot hits of an exiting thread that held number `worker`
    /// to magazine `worker`'s counters (owned by that thread until its
    /// number is given back). Runs no user code.
    pub(crate) fold_hits: unsafe fn(mags: *const (), worker: usize, hits: u64),
}

/// The private-slot counters of one thread for one pool, read by stats.
#[derive(Clone, Copy, Default)]
pub(crate) struct SlotCounts {
    /// Gets served from the slot.
    pub(crate) hits: u64,
    /// Whether an object is parked there now.
    pub(crate) parked: bool,
}

/// What the registry keeps per worker number.
#[derive(Clone, Copy)]
struct Number {
    /// The `LOCAL` of the thread that holds the number, or null.
    local: *const Local,
    /// Objects left in the private slots of a thread that exited with this
    /// number, by slot index (null: none). The next thread with the number
    /// finds them parked in its own slots; the pool's drop takes them back.
    /// At most one per (number, pool).
    orphans: [*mut (); SLOTS],
}

/// Numbered threads and pools with slot indices.
struct Registry {
    /// The next worker number never given out.
    next_id: usize,
    /// Numbers given back by exited threads.
    free_ids: Vec<usize>,
    /// By worker number.
    numbers: Vec<Number>,
    /// By slot index.
    pools: [Option<PoolEntry>; SLOTS],
}

// SAFETY: the raw pointers are only dereferenced under the registry's lock:
// a thread's `LOCAL` while the thread is registered (it unregisters in its
// last thread-local destructor, and native thread-local storage outlives
// those), a pool's magazines while the pool is registered (it unregisters
// at the start of its drop). Orphans are objects handed over to whoever
// takes them under the lock.
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 0,
    free_ids: Vec::new(),
    numbers: Vec::new(),
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
        let local = self.numbers.get(worker)?.local;
        // SAFETY: registered threads are alive (they unregister at exit,
        // under this lock), and `LOCAL` lives as long as its thread.
        (!local.is_null()).then(|| unsafe { &*local })
    }

    /// The orphan of number `worker` in slot `slot`, if any.
    fn orphan(&self, worker: usize, slot: usize) -> *mut () {
        self.numbers
            .get(worker)
            .map_or(ptr::null_mut(), |n| n.orphans[slot])
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
        // Orphans of this index went with the last pool that had it.
        debug_assert!(reg.orphan(worker, slot).is_null());
        if let Some(local) = reg.thread(worker) {
            local.parked[slot].store(EMPTY, Relaxed);
            local.hits[slot].store(0, Relaxed);
        }
    }
    reg.pools[slot] = Some(entry);
    slot
}

/// Takes slot index `slot` back from a pool being dropped (no one holds it
/// any more), disabling it everywhere; returns the objects parked there
/// and the orphans of that index, for the caller to drop (user code: not
/// under the lock).
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
            if let Some(number) = reg.numbers.get_mut(worker) {
                let orphan = mem::replace(&mut number.orphans[slot], ptr::null_mut());
                parked.extend(NonNull::new(orphan));
            }
        }
    }
    parked
}

/// Calls `f` with each worker number in `workers` and the slot counters
/// of the thread holding it for slot `slot` (an orphan counts as parked
/// where no thread holds the number), under one lock; `f` must not use a
/// `WorkerPool`'s cold paths.
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
        let counts = match reg.thread(worker) {
            Some(local) => SlotCounts {
                hits: local.hits[slot].load(Relaxed),
                parked: local.parked[slot].load(Relaxed).addr() > EMPTY.addr(),
            },
            None => SlotCounts {
                hits: 0,
                parked: !reg.orphan(worker, slot).is_null(),
            },
        };
        f(worker, counts);
    }
}

/// Calls `f` with each worker number below `workers` that no thread holds
/// (given back by a thread that exited), and the orphan that number holds
/// in slot `slot`, taken out of the registry (`None`: none).
///
/// Runs under the registry's lock, so no thread takes any of these numbers
/// until `f` is done with all of them: `f` owns their magazines meanwhile.
/// `f` must run no user code and must not use a `WorkerPool`'s cold paths
/// (which take the lock).
#[cfg(not(loom))]
pub(crate) fn with_unheld_numbers(
    slot: usize,
    workers: usize,
    mut f: impl FnMut(usize, Option<NonNull<()>>),
) {
    let mut reg = registry();
    let reg = &mut *reg;
    for &worker in reg.free_ids.iter().filter(|&&w| w < workers) {
        let orphan = match reg.numbers.get_mut(worker) {
            Some(number) if slot < SLOTS => {
                debug_assert!(number.local.is_null(), "a free number has no thread");
                mem::replace(&mut number.orphans[slot], ptr::null_mut())
            }
            _ => ptr::null_mut(),
        };
        f(worker, NonNull::new(orphan));
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
                if reg.numbers.len() <= id {
                    let unheld = Number {
                        local: ptr::null(),
                        orphans: [ptr::null_mut(); SLOTS],
                    };
                    reg.numbers.resize(id + 1, unheld);
                }
                reg.numbers[id].local = local;
                // SAFETY: this thread's own `LOCAL`.
                let local = unsafe { &*local };
                for slot in 0..SLOTS {
                    if reg.pools[slot].as_ref().is_some_and(|e| id < e.workers) {
                        // The last holder's parked object, if it left one.
                        let orphan =
                            mem::replace(&mut reg.numbers[id].orphans[slot], ptr::null_mut());
                        let entry = if orphan.is_null() { EMPTY } else { orphan };
                        local.parked[slot].store(entry, Relaxed);
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
/// leaving its parked objects as orphans for the next holder.
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
        if NATIVE_TLS && reg.numbers.get(id).is_some_and(|n| !n.local.is_null()) {
            let local = LOCAL.with(ptr::from_ref);
            // SAFETY: this thread's own `LOCAL`, alive until it ends.
            let local = unsafe { &*local };
            for slot in 0..SLOTS {
                let object = local.parked[slot].swap(DISABLED, Relaxed);
                let hits = local.hits[slot].swap(0, Relaxed);
                if object == DISABLED {
                    continue; // not enabled here: no pool, or `id` past it
                }
                let Some(entry) = &reg.pools[slot] else {
                    continue;
                };
                // SAFETY: the entry was enabled, so `id < entry.workers`;
                // the pool is registered, so alive; this thread still holds
                // number `id`, so owns magazine `id`.
                unsafe { (entry.fold_hits)(entry.mags, id, hits) };
                if object.addr() > EMPTY.addr() {
                    // Still idle and counted as parked: the next thread
                    // with this number (or the pool's drop) takes it.
                    reg.numbers[id].orphans[slot] = object;
                }
            }
            reg.numbers[id].local = ptr::null();
        }
        reg.free_ids.push(id);
    }
}
