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
//! Each live `WorkerPool` (up to [`PRIVATE_SLOTS`] of them) gets a slot index *p*
//! when it is built. Every numbered thread keeps, in its thread-local
//! `LOCAL`, a parked-object pointer and a hit counter per index. A get
//! takes `parked[p]` and a guard's drop parks its object there: one load
//! and one store each, at an address the thread-local base and *p* give
//! directly (no table, no bound check: the entry says everything).
//!
//! An entry holds [`DISABLED`] (the thread has no slot in that pool: it is
//! not a worker, or its number is past the pool's magazines, or no pool has
//! the index), [`EMPTY`], [`OFF`] (set at thread exit; see below for
//! statics) or an object. A get takes what is above `OFF`; a drop parks
//! only into `EMPTY`. Threads that are not workers never leave
//! `DISABLED`, so the blocking pool's threads hold no objects (except a
//! worker thread that entered `block_in_place`: it keeps its number, its
//! magazines and its slots, exclusively, until it exits).
//!
//! # Statics' own entries
//!
//! A pool declared with `worker_pool!` has an index like any other, but
//! its slot on each thread is a [`PrivateEntry`] thread-local of its own
//! (declared by the macro), not an element of `LOCAL`. Other threads cannot
//! reach another thread's thread-local, so each thread enables its own
//! entry, at its first get or drop on the pool ([`enable_here`]): there
//! `DISABLED` means "not looked at yet", and a worker whose number is past
//! the pool's magazines (or a pool without an index, or a target without
//! native thread-locals) turns it `OFF` for good. The registry keeps where
//! each numbered thread's enabled entries are (`Number::statics`), for
//! stats, thread exit and the pool's orphans, which wait in the registry
//! until the next holder of the number first uses the pool (or a trim
//! takes them once the number is free).
//!
//! Other threads touch a thread's entries only under the [`REGISTRY`] lock,
//! and only when the owner cannot be using that index: a pool's builder
//! enables the entries of its new index before anyone holds the pool, a
//! pool's drop (no one holds it any more) takes back what is parked there,
//! and stats read them (relaxed atomics: a snapshot). A thread's exit leaves
//! its parked objects in the registry as orphans of its worker number,
//! under the lock: the next thread with that number finds them parked in
//! its own slots (for a static, at its first use of it), a pool's drop
//! takes its orphans back, and a `trim` moves the orphans of numbers no
//! thread holds to the depot. No object is dropped (no user code runs at
//! thread exit) or lost with a thread, and orphans are bounded by one per
//! (worker number, pool).
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
pub(crate) const PRIVATE_SLOTS: usize = 64;

/// The slot index of pools without one: its entry is `DISABLED` in every
/// thread forever.
pub(crate) const NO_PRIVATE: usize = PRIVATE_SLOTS;

/// Worker number of threads that have none.
pub(crate) const NO_ID: usize = usize::MAX;

/// Entry value: no private slot here.
const DISABLED: *mut () = ptr::null_mut();
/// Entry value: a private slot with nothing parked.
const EMPTY: *mut () = ptr::without_provenance_mut(1);
/// Entry value of a static pool's own entry (see [`PrivateEntry`]): this
/// thread has no private slot there and never will (its number is past
/// the pool's magazines, or it exited). `DISABLED` there means "not
/// looked at yet". Objects sit at addresses above it: heap blocks of a
/// non-zero size are never in the first page.
const OFF: *mut () = ptr::without_provenance_mut(2);

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

/// One private slot of one thread: an element of a thread's [`Local`]
/// array, or the thread-local of its own that a `worker_pool!` static
/// declares, whose address is a constant of the code that uses it (no
/// index to load first).
#[doc(hidden)]
#[derive(Debug)]
pub struct PrivateEntry {
    /// `DISABLED`, `EMPTY`, `OFF` (static pools' own entries only) or a
    /// parked object.
    parked: AtomicPtr<()>,
    /// Gets served from `parked`, since the entry was enabled.
    hits: AtomicU64,
}

impl PrivateEntry {
    /// A disabled entry (for `const` thread-locals).
    #[doc(hidden)]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            parked: AtomicPtr::new(DISABLED),
            hits: AtomicU64::new(0),
        }
    }
}

impl Default for PrivateEntry {
    fn default() -> Self {
        Self::new()
    }
}

/// A thread's private slots, by pool slot index (the last never enabled).
struct Local {
    entries: [PrivateEntry; PRIVATE_SLOTS + 1],
}

thread_local! {
    /// This thread's private slots. `const` and without destructor: one
    /// thread-local address, no lazy initialisation, no liveness check.
    static LOCAL: Local = const {
        Local {
            entries: [const { PrivateEntry::new() }; PRIVATE_SLOTS + 1],
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
/// `slot` is at most [`NO_PRIVATE`] (what [`register_pool`] returns).
#[inline(always)]
pub(crate) unsafe fn take(slot: usize) -> Option<NonNull<()>> {
    if !NATIVE_TLS {
        return None;
    }
    LOCAL.with(|local| {
        debug_assert!(slot <= NO_PRIVATE);
        // SAFETY: `slot <= NO_PRIVATE` (the caller's contract), the array's
        // last index.
        take_entry(unsafe { local.entries.get_unchecked(slot) })
    })
}

/// Takes the object parked in `entry`, counting a hit (see [`take`]).
#[inline(always)]
pub(crate) fn take_entry(entry: &PrivateEntry) -> Option<NonNull<()>> {
    let parked = entry.parked.load(Relaxed);
    if parked.addr() <= OFF.addr() {
        return None;
    }
    entry.parked.store(EMPTY, Relaxed);
    let hits = &entry.hits;
    hits.store(hits.load(Relaxed).wrapping_add(1), Relaxed);
    NonNull::new(parked)
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
        debug_assert!(slot <= NO_PRIVATE);
        // SAFETY: `slot <= NO_PRIVATE` (the caller's contract), the array's
        // last index; the object is handed over as `park_entry` asks.
        unsafe { park_entry(local.entries.get_unchecked(slot), object) }
    })
}

/// Parks `object` in `entry` if it is enabled and empty (see [`park`]).
///
/// # Safety
/// `entry` is the calling thread's own, for the pool `object` belongs to;
/// `object` is idle, reset and handed over.
#[inline(always)]
pub(crate) unsafe fn park_entry(entry: &PrivateEntry, object: NonNull<()>) -> bool {
    if entry.parked.load(Relaxed) != EMPTY {
        return false;
    }
    entry.parked.store(object.as_ptr(), Relaxed);
    true
}

/// What `entry` holds, for tests: `None` if it is disabled, unchecked or
/// off, else whether an object is parked.
#[cfg(all(test, not(loom)))]
pub(crate) fn parked_state(entry: &PrivateEntry) -> Option<bool> {
    let parked = entry.parked.load(Relaxed);
    (parked == EMPTY || parked.addr() > OFF.addr()).then_some(parked != EMPTY)
}

/// Whether `entry` (a static pool's own) was never looked at on this
/// thread: then [`enable_here`] may give it a slot.
#[inline]
pub(crate) fn unchecked(entry: &PrivateEntry) -> bool {
    entry.parked.load(Relaxed) == DISABLED
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
    /// A `worker_pool!` static: each thread's slot is the static's own
    /// thread-local [`PrivateEntry`], enabled by the thread itself at its
    /// first use ([`enable_here`]), not the thread's `Local` array.
    pub(crate) dedicated: bool,
}

/// The private-slot counters of one thread for one pool, read by stats.
#[derive(Clone, Copy, Default)]
pub(crate) struct PrivateCounts {
    /// Gets served from the slot.
    pub(crate) hits: u64,
    /// Whether an object is parked there now.
    pub(crate) parked: bool,
}

/// What the registry keeps per worker number.
#[derive(Clone)]
struct Number {
    /// The `LOCAL` of the thread that holds the number, or null.
    local: *const Local,
    /// Objects left in the private slots of a thread that exited with this
    /// number, by slot index (null: none). The next thread with the number
    /// finds them parked in its own slots; the pool's drop takes them back.
    /// At most one per (number, pool).
    orphans: [*mut (); PRIVATE_SLOTS],
    /// The entries of `worker_pool!` statics that the holder enabled, by
    /// slot index: its own thread-locals.
    statics: Vec<(usize, *const PrivateEntry)>,
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
    pools: [Option<PoolEntry>; PRIVATE_SLOTS],
}

// SAFETY: the raw pointers are only dereferenced under the registry's lock:
// a thread's `LOCAL` and the entries in its `statics` while the thread is
// registered (`ReleaseId`, one of its thread-local destructors, takes both
// out under the lock; native thread-local storage, where all of them live,
// outlives every destructor of its thread, and entries are published only
// where `NATIVE_TLS` holds), a pool's magazines while the pool is
// registered (it unregisters at the start of its drop). Orphans are
// objects handed over to whoever takes them under the lock.
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 0,
    free_ids: Vec::new(),
    numbers: Vec::new(),
    pools: [const { None }; PRIVATE_SLOTS],
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // Nothing under the lock runs pool or user code (only the allocator,
    // for the registry's own vectors) or panics midway through an update,
    // so a poisoned lock still holds a consistent registry.
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

    /// The private slot of the thread holding `worker` for the pool with
    /// index `slot`: an element of its `Local` array, or, for a
    /// `worker_pool!` static, that static's own entry if the thread
    /// enabled it.
    fn entry(&self, worker: usize, slot: usize) -> Option<&PrivateEntry> {
        let local = self.thread(worker)?;
        if !self.pools[slot].as_ref().is_some_and(|p| p.dedicated) {
            return Some(&local.entries[slot]);
        }
        let statics = &self.numbers[worker].statics;
        let &(_, entry) = statics.iter().find(|(s, _)| *s == slot)?;
        // SAFETY: the holder's own thread-local, alive while it is
        // registered (as for `thread`).
        Some(unsafe { &*entry })
    }

    /// The orphan of number `worker` in slot `slot`, if any.
    fn orphan(&self, worker: usize, slot: usize) -> *mut () {
        self.numbers
            .get(worker)
            .map_or(ptr::null_mut(), |n| n.orphans[slot])
    }
}

/// Gives a slot index to a pool with `entry.workers` magazines, enabling it
/// on the numbered threads below that; [`NO_PRIVATE`] when all are taken (or
/// the private tier is off).
pub(crate) fn register_pool(entry: PoolEntry) -> usize {
    if !NATIVE_TLS {
        return NO_PRIVATE;
    }
    let mut reg = registry();
    let Some(slot) = reg.pools.iter().position(Option::is_none) else {
        return NO_PRIVATE;
    };
    for worker in 0..entry.workers {
        // Orphans of this index went with the last pool that had it.
        debug_assert!(reg.orphan(worker, slot).is_null());
        if entry.dedicated {
            continue; // each thread enables its own entry
        }
        if let Some(local) = reg.thread(worker) {
            local.entries[slot].parked.store(EMPTY, Relaxed);
            local.entries[slot].hits.store(0, Relaxed);
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
    if slot >= PRIVATE_SLOTS {
        return parked;
    }
    let mut reg = registry();
    let Some(workers) = reg.pools[slot].as_ref().map(|e| e.workers) else {
        return parked;
    };
    for worker in 0..workers {
        if let Some(entry) = reg.entry(worker, slot) {
            // A static pool's own entry is never enabled again: its index
            // may go to another pool.
            let off = if reg.pools[slot].as_ref().is_some_and(|p| p.dedicated) {
                OFF
            } else {
                DISABLED
            };
            let object = entry.parked.swap(off, Relaxed);
            entry.hits.store(0, Relaxed);
            if object.addr() > OFF.addr() {
                parked.extend(NonNull::new(object));
            }
        }
        if let Some(number) = reg.numbers.get_mut(worker) {
            number.statics.retain(|(s, _)| *s != slot);
            let orphan = mem::replace(&mut number.orphans[slot], ptr::null_mut());
            parked.extend(NonNull::new(orphan));
        }
    }
    reg.pools[slot] = None;
    parked
}

/// Calls `f` with each worker number in `workers` and the slot counters
/// of the thread holding it for slot `slot` (an orphan counts as parked
/// where no thread holds the number), under one lock; `f` must not use a
/// `WorkerPool`'s cold paths.
pub(crate) fn private_counts(
    slot: usize,
    workers: std::ops::Range<usize>,
    mut f: impl FnMut(usize, PrivateCounts),
) {
    if slot >= PRIVATE_SLOTS {
        return workers.for_each(|w| f(w, PrivateCounts::default()));
    }
    let reg = registry();
    for worker in workers {
        // A static pool's orphan waits for its thread's first use: it may
        // be there with the number held.
        let orphan = !reg.orphan(worker, slot).is_null();
        let counts = match reg.entry(worker, slot) {
            Some(entry) => PrivateCounts {
                hits: entry.hits.load(Relaxed),
                parked: orphan || entry.parked.load(Relaxed).addr() > OFF.addr(),
            },
            None => PrivateCounts {
                hits: 0,
                parked: orphan,
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
#[cfg(not(all(test, loom)))]
pub(crate) fn with_unheld_numbers(
    slot: usize,
    workers: usize,
    mut f: impl FnMut(usize, Option<NonNull<()>>),
) {
    let mut reg = registry();
    let reg = &mut *reg;
    for &worker in reg.free_ids.iter().filter(|&&w| w < workers) {
        let orphan = match reg.numbers.get_mut(worker) {
            Some(number) if slot < PRIVATE_SLOTS => {
                debug_assert!(number.local.is_null(), "a free number has no thread");
                mem::replace(&mut number.orphans[slot], ptr::null_mut())
            }
            _ => ptr::null_mut(),
        };
        f(worker, NonNull::new(orphan));
    }
}

/// Gives the calling thread, worker number `id` (from [`worker_id`]), a
/// private slot in the `worker_pool!` static with index `slot`, in `entry`
/// (not looked at yet): if the number has a magazine there, the entry
/// becomes empty (or gets the orphan its number's last holder left) and
/// the registry learns where it is; if not, the entry is off for good.
/// Returns whether the entry is enabled.
///
/// # Safety
/// `entry` is the calling thread's own entry of the static pool that holds
/// index `slot` (or `NO_PRIVATE`), a `const` thread-local without destructor.
#[cold]
#[inline(never)]
pub(crate) unsafe fn enable_here(slot: usize, entry: &PrivateEntry, id: usize) -> bool {
    if !unchecked(entry) {
        return false;
    }
    if !NATIVE_TLS || slot >= PRIVATE_SLOTS {
        entry.parked.store(OFF, Relaxed);
        return false;
    }
    let mut reg = registry();
    let reg = &mut *reg;
    let fits = reg.pools[slot]
        .as_ref()
        .is_some_and(|p| p.dedicated && id < p.workers);
    let Some(number) = reg
        .numbers
        .get_mut(id)
        .filter(|n| fits && !n.local.is_null())
    else {
        entry.parked.store(OFF, Relaxed);
        return false;
    };
    let orphan = mem::replace(&mut number.orphans[slot], ptr::null_mut());
    entry.hits.store(0, Relaxed);
    entry
        .parked
        .store(if orphan.is_null() { EMPTY } else { orphan }, Relaxed);
    number.statics.push((slot, ptr::from_ref(entry)));
    true
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
                        orphans: [ptr::null_mut(); PRIVATE_SLOTS],
                        statics: Vec::new(),
                    };
                    reg.numbers.resize(id + 1, unheld);
                }
                reg.numbers[id].local = local;
                // SAFETY: this thread's own `LOCAL`.
                let local = unsafe { &*local };
                for slot in 0..PRIVATE_SLOTS {
                    // Static pools' orphans wait for the thread's first use
                    // of the pool (`enable_here`).
                    if reg.pools[slot]
                        .as_ref()
                        .is_some_and(|e| id < e.workers && !e.dedicated)
                    {
                        // The last holder's parked object, if it left one.
                        let orphan =
                            mem::replace(&mut reg.numbers[id].orphans[slot], ptr::null_mut());
                        let entry = if orphan.is_null() { EMPTY } else { orphan };
                        local.entries[slot].parked.store(entry, Relaxed);
                        local.entries[slot].hits.store(0, Relaxed);
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
            let statics = mem::take(&mut reg.numbers[id].statics);
            let entries = local.entries[..PRIVATE_SLOTS].iter().enumerate();
            // SAFETY: this thread's own entries, alive until it ends.
            let own = statics.iter().map(|&(slot, e)| (slot, unsafe { &*e }));
            for (slot, entry) in entries.chain(own) {
                // `OFF`: a later use on this exiting thread must not enable
                // a static pool's entry again.
                let object = entry.parked.swap(OFF, Relaxed);
                let hits = entry.hits.swap(0, Relaxed);
                if object == DISABLED || object == OFF {
                    continue; // not enabled here: no pool, or `id` past it
                }
                let Some(pool) = &reg.pools[slot] else {
                    continue;
                };
                // SAFETY: the entry was enabled, so `id < pool.workers`;
                // the pool is registered, so alive; this thread still holds
                // number `id`, so owns magazine `id`.
                unsafe { (pool.fold_hits)(pool.mags, id, hits) };
                if object.addr() > OFF.addr() {
                    // Still idle and counted as parked: the next thread
                    // with this number (or the pool's drop) takes it.
                    debug_assert!(reg.numbers[id].orphans[slot].is_null());
                    reg.numbers[id].orphans[slot] = object;
                }
            }
            reg.numbers[id].local = ptr::null();
        }
        reg.free_ids.push(id);
    }
}
