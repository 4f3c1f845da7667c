//! The ring's FIFO of waiting tasks: an intrusive doubly linked list of
//! nodes that live inside the pinned `get` futures, so that waiting
//! allocates nothing (as in `tokio::sync::Semaphore`).
//!
//! Every node's links are read and written under the ring's list lock,
//! which `&mut WaitList` stands for (the list lives in a [`Mutex`]). A node
//! is reached through a [`QueueEntry`], whose one `unsafe` constructor,
//! [`WaitList::with_node`], states the whole contract: a node joins only
//! its own ring's list, and stays in place until it leaves it.

use std::marker::PhantomPinned;
use std::ptr::{self, NonNull};
use std::sync::PoisonError;
use std::task::Waker;

use crate::loom::{AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, UnsafeCell, dekker_fence};

/// `Waiter::granted` before a slot is handed over.
pub(super) const NOT_GRANTED: usize = usize::MAX;
/// `Waiter::granted` when the ring closed while the task waited.
pub(super) const GRANT_CLOSED: usize = usize::MAX - 1;

/// The ring's waiting state: the wait list and what changes with it.
pub(super) struct WaitState {
    /// The FIFO of waiting tasks.
    list: Mutex<WaitList>,
    /// Tasks registered as waiting: queued in `list`, or registering under
    /// its lock. A task counts itself before its last look at the bitmap,
    /// so a releaser that sees none knows a later waiter will see the bit
    /// it sets. Changed only under `list`'s lock; read without it.
    waiters: AtomicUsize,
    /// Gets that had to wait; written under the lock only.
    waits: AtomicU64,
}

impl WaitState {
    pub(super) fn new() -> Self {
        Self {
            list: Mutex::new(WaitList {
                head: ptr::null(),
                tail: ptr::null(),
            }),
            waiters: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
        }
    }

    /// Locks the list.
    pub(super) fn lock(&self) -> MutexGuard<'_, WaitList> {
        // The list is consistent at every unlock (no code that can panic
        // runs while a change is half made), so a poisoned lock is usable.
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a registering waiter, under the list's lock (a plain add
    /// would do, but the `SeqCst` read-modify-write also orders the
    /// registering task's next look at the bitmap after it: Dekker's pattern
    /// with `RingPool::release`).
    pub(super) fn add_waiter(&self) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        dekker_fence();
    }

    /// Uncounts a waiter, under the list's lock: a load and a store (no
    /// update can be lost under the lock). A releaser that reads the old
    /// count meanwhile only takes the lock for nothing.
    pub(super) fn sub_waiter(&self) {
        let n = self.waiters.load(Ordering::Relaxed);
        self.waiters.store(n - 1, Ordering::Release);
    }

    /// Whether a task is registered as waiting: `RingPool::release`'s half
    /// of Dekker's pattern.
    #[inline]
    pub(super) fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Counts a get that had to wait, under the list's lock; returns how
    /// many waited before it.
    pub(super) fn count_wait(&self) -> u64 {
        // Only written under the lock: a load and a store.
        let n = self.waits.load(Ordering::Relaxed);
        self.waits.store(n + 1, Ordering::Relaxed);
        n
    }

    /// Tasks waiting now.
    pub(super) fn num_waiters(&self) -> usize {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Gets that had to wait so far.
    pub(super) fn wait_count(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// The FIFO of waiting tasks. Only reached under the ring's list lock.
pub(super) struct WaitList {
    head: *const Waiter,
    tail: *const Waiter,
}

// SAFETY: the list only holds pointers to nodes, reached under the ring's
// lock; a node is `Sync` (see `Waiter`).
unsafe impl Send for WaitList {}

impl WaitList {
    /// `node`, ready to be queued, looked at or taken out under the lock.
    ///
    /// # Safety
    /// `node` is queued in this list or in none (a node joins only its own
    /// ring's list). While it is queued (also once queued through the
    /// entry), it stays at its address: its owner takes it out under this
    /// lock ([`QueueEntry::unlink`]), or sees its grant, before it moves or
    /// frees it.
    #[inline]
    pub(super) unsafe fn with_node<'l>(&'l mut self, node: &'l Waiter) -> QueueEntry<'l> {
        QueueEntry { list: self, node }
    }

    /// Takes the head of the queue, with its waker. The node stays valid
    /// while the lock guard that `&mut self` borrows from is held: until
    /// its `granted` is written (under the lock), its task cannot free it.
    pub(super) fn pop_front(&mut self) -> Option<(&Waiter, Option<Waker>)> {
        // SAFETY: queued nodes stay valid while queued (the contract of
        // `with_node`); the reference lives no longer than the lock guard
        // borrowed by `&mut self`, and the node's task frees it only after
        // it sees its grant, which is written under the lock.
        let node = unsafe { self.head.as_ref()? };
        // `node` is this list's head: the entry's contract holds.
        let waker = QueueEntry { list: self, node }.unlink();
        Some((node, waker))
    }

    /// Whether no node is queued.
    #[cfg(all(test, loom))]
    pub(super) fn is_empty(&self) -> bool {
        self.head.is_null() && self.tail.is_null()
    }
}

/// A node queued in this list or in none, with the list's lock held (see
/// [`WaitList::with_node`]): its links may be read and written.
pub(super) struct QueueEntry<'l> {
    list: &'l mut WaitList,
    node: &'l Waiter,
}

impl QueueEntry<'_> {
    /// Queues the node at the tail.
    ///
    /// # Panics
    /// If the node is queued already (a bug of the caller: a node is
    /// queued once per wait).
    pub(super) fn push_back(self, waker: Waker) {
        let Self { list, node } = self;
        let tail = list.tail;
        // SAFETY: under the lock, which guards every node's links; the
        // node is queued here or nowhere (the entry's contract).
        unsafe {
            node.with_links(|l| {
                assert!(!l.queued, "a queued node pushed again");
                l.prev = tail;
                l.next = ptr::null();
                l.waker = Some(waker);
                l.queued = true;
            });
        }
        match NonNull::new(tail.cast_mut()) {
            // SAFETY: queued nodes are valid (the contract of `with_node`),
            // and the lock is held.
            Some(tail) => unsafe { tail.as_ref().with_links(|l| l.next = node) },
            None => list.head = node,
        }
        list.tail = node;
    }

    /// Takes the node out of the queue (a no-op if it is not queued);
    /// returns its waker, to be dropped after the lock.
    pub(super) fn unlink(self) -> Option<Waker> {
        let Self { list, node } = self;
        // SAFETY: under the lock; the node is queued here or nowhere.
        let (queued, prev, next) = unsafe { node.with_links(|l| (l.queued, l.prev, l.next)) };
        if !queued {
            return None;
        }
        let is_head = ptr::eq(list.head, node);
        // SAFETY: the neighbours are queued, hence valid; under the lock.
        // The head's `prev` is never read: it may still name a node popped
        // before it (`pop_front` does not touch the next node, which keeps
        // a hand-over to one remote cache line inside the lock).
        unsafe {
            if is_head {
                list.head = next;
            } else if let Some(p) = prev.as_ref() {
                p.with_links(|l| l.next = next);
            }
            match next.as_ref() {
                // Its `prev` only matters while it is not the head.
                Some(n) if !is_head => n.with_links(|l| l.prev = prev),
                Some(_) => {}
                None => list.tail = if is_head { ptr::null() } else { prev },
            }
            node.with_links(|l| {
                l.prev = ptr::null();
                l.next = ptr::null();
                l.queued = false;
                l.waker.take()
            })
        }
    }

    /// Stores `waker` unless the stored one wakes the same task; returns
    /// the waker replaced, to be dropped after the lock.
    pub(super) fn set_waker(self, waker: &Waker) -> Option<Waker> {
        // SAFETY: under the lock; the node is queued here or nowhere.
        unsafe {
            self.node.with_links(|l| match &l.waker {
                Some(w) if w.will_wake(waker) => None,
                _ => l.waker.replace(waker.clone()),
            })
        }
    }
}

/// A node of the FIFO, inside a `get` future (pinned while queued).
pub(super) struct Waiter {
    /// The slot handed over, [`NOT_GRANTED`] until then, [`GRANT_CLOSED`]
    /// if the ring closed. Written once, under the list lock, by the task
    /// that takes the node off the list, as its last touch of the node
    /// (`Release`); read by the node's own task (`Acquire`), which may then
    /// free the node without the lock.
    granted: AtomicUsize,
    /// Read and written under the list lock only.
    links: UnsafeCell<Links>,
    _pinned: PhantomPinned,
}

struct Links {
    prev: *const Waiter,
    next: *const Waiter,
    waker: Option<Waker>,
    queued: bool,
}

// SAFETY: while a node is queued, `links` is reached only under the ring's
// list lock (every access goes through `with_links`, whose callers hold it);
// `granted` is atomic. The node's own drop glue drops `links.waker` without
// the lock, which is sound: by then the node is off the list, and the last
// write to it by another thread (its grant, or its unlinking under the
// lock) happened-before the read that let its task drop it. The waker is
// `Send + Sync`.
unsafe impl Send for Waiter {}
// SAFETY: as above.
unsafe impl Sync for Waiter {}

impl Waiter {
    pub(super) fn new() -> Self {
        Self {
            granted: AtomicUsize::new(NOT_GRANTED),
            links: UnsafeCell::new(Links {
                prev: ptr::null(),
                next: ptr::null(),
                waker: None,
                queued: false,
            }),
            _pinned: PhantomPinned,
        }
    }

    /// The grant: a slot index, [`NOT_GRANTED`] or [`GRANT_CLOSED`].
    /// `Acquire`: pairs with [`grant`](Self::grant), so that the granting
    /// task's writes (the last holder's, for a slot) are visible.
    #[inline]
    pub(super) fn granted(&self) -> usize {
        self.granted.load(Ordering::Acquire)
    }

    /// Writes the grant, under the list's lock, after the node left the
    /// list: the last touch of the node, whose task may free it from then on.
    #[inline]
    pub(super) fn grant(&self, grant: usize) {
        self.granted.store(grant, Ordering::Release);
    }

    /// Runs `f` on the node's links.
    ///
    /// # Safety
    /// No one else reaches the links meanwhile: the node is queued and its
    /// list's lock is held, or it is queued nowhere and the caller owns it.
    #[inline]
    unsafe fn with_links<U>(&self, f: impl FnOnce(&mut Links) -> U) -> U {
        // SAFETY: the only access (the contract).
        self.links.with_mut(|l| f(unsafe { &mut *l }))
    }
}
