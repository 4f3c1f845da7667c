//! Guards: an object out of a pool, returned to it on drop.
//!
//! ```
//! use capacitor_pool::Pool;
//! use std::sync::Arc;
//!
//! let pool = Arc::new(Pool::new(String::new));
//! let mut s = pool.get(); // Pooled<'_, String>: borrows the pool
//! s.push_str("hello");
//! drop(s); // reset and returned
//!
//! let mut owned = pool.get_owned(); // OwnedPooled<String>: 'static
//! std::thread::spawn(move || owned.push_str("moved")).join().unwrap();
//! assert_eq!(pool.stats().num_idle, 1);
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use crate::pool::Pool;

pub(crate) mod sealed {
    use std::ptr::NonNull;

    /// What a guard needs from its pool. Sealed: the crate's pools only.
    pub trait Home<T> {
        /// Resets the object in `slot` and keeps or drops it.
        ///
        /// # Safety
        /// `slot` was handed out by this pool and its guard is done with it.
        unsafe fn recycle(&self, slot: NonNull<T>);

        /// Drops the object in `slot` without resetting it.
        ///
        /// # Safety
        /// As for `recycle`.
        unsafe fn discard(&self, slot: NonNull<T>);

        /// Takes the object out of `slot` and out of the pool's care.
        ///
        /// # Safety
        /// As for `recycle`.
        unsafe fn detach(&self, slot: NonNull<T>) -> T;
    }
}

/// A guard's pointer to its object, owned by the guard alone: `Send` and
/// `Sync` as the `T` it points to is.
///
/// The guards take their `Send` and `Sync` from their fields (this pointer,
/// `&P` or `Arc<P>`, `PhantomData<T>`), not from an impl of their own: such
/// an impl would repeat the guard's `P: PoolKind<T>` bound, which ties the
/// lifetimes in `T` to those in `P`. A future that holds a guard across
/// `.await` is checked for `Send` with each of those lifetimes erased to a
/// lifetime of its own, and the tie then fails ("implementation of
/// `PoolKind` is not general enough") for a `T` with a lifetime in it,
/// such as `FutureSlot<Result<O, Box<dyn Error + Send + Sync>>>`.
struct SlotPtr<T>(NonNull<T>);

// SAFETY: the guard owns its object exclusively (the pool handed the slot to
// it alone), so sending the pointer sends the `T`.
unsafe impl<T: Send> Send for SlotPtr<T> {}
// SAFETY: `&SlotPtr` gives out only `&T`.
unsafe impl<T: Sync> Sync for SlotPtr<T> {}

/// The pools a guard can come from: [`Pool`] and the crate's other pools.
///
/// This trait is sealed; it only names the pool type in
/// [`Pooled<'a, T, P>`](Pooled) and [`OwnedPooled<T, P>`](OwnedPooled).
///
/// ```
/// use capacitor_pool::{Pool, PoolKind, Pooled, RingPool};
///
/// // One function for guards from any of the crate's pools.
/// fn fill<P: PoolKind<Vec<u8>>>(mut buf: Pooled<'_, Vec<u8>, P>) -> usize {
///     buf.extend_from_slice(b"abc");
///     buf.len()
/// }
/// let pool = Pool::new(Vec::new);
/// let ring = RingPool::new(1, Vec::new).unwrap();
/// assert_eq!(fill(pool.get()), 3);
/// assert_eq!(fill(ring.try_get().unwrap()), 3);
/// ```
pub trait PoolKind<T>: sealed::Home<T> {}

/// An object borrowed from a pool; returned to the pool when dropped.
///
/// Made by [`Pool::get`] (and the `get` of the crate's other pools). A pool
/// in a `static` gives `Pooled<'static, T>`, which can move into
/// `tokio::spawn`.
///
/// A guard owns its object exclusively from the `get` that made it until it
/// drops; its object sits in a heap slot that does not move, so the guard is
/// one pointer plus the pool reference. On drop, the pool resets the object
/// ([`Reset`](crate::Reset) or the pool's reset closure), drops it if it
/// retains more than the retention limit, and otherwise keeps it for the
/// next `get`. Guards are `Send` when `T` is, so they cross `.await` points
/// and tokio workers; the object goes back to the pool of the thread that
/// drops the guard.
///
/// If a thread panics while it holds a guard, unwinding drops the guard and
/// the object is reset and returned like any other: the pool stays
/// consistent. If the reset itself panics, the object is dropped and counted
/// as discarded.
///
/// # Examples
///
/// ```
/// use capacitor_pool::{Pool, Pooled};
/// use std::sync::LazyLock;
///
/// static BUFFERS: LazyLock<Pool<Vec<u8>>> = LazyLock::new(|| Pool::new(Vec::new));
///
/// fn take() -> Pooled<'static, Vec<u8>> {
///     BUFFERS.get()
/// }
///
/// let mut buf = take();
/// buf.extend_from_slice(b"abc");
/// assert_eq!(&buf[..], b"abc");
/// ```
#[must_use = "dropping the guard returns the object to the pool at once"]
pub struct Pooled<'a, T, P: PoolKind<T> = Pool<T>> {
    // `Send` when `T` is, `Sync` when `T` is; `&P` when `P: Sync` (see
    // `SlotPtr`).
    slot: SlotPtr<T>,
    pool: &'a P,
    _owns: PhantomData<T>,
}

impl<'a, T, P: PoolKind<T>> Pooled<'a, T, P> {
    #[inline]
    pub(crate) fn new(pool: &'a P, slot: NonNull<T>) -> Self {
        Self {
            slot: SlotPtr(slot),
            pool,
            _owns: PhantomData,
        }
    }

    /// Takes the object out of the pool's care: the pool will not get it
    /// back and counts it as detached.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(String::new);
    /// let mut s = pool.get();
    /// s.push_str("kept");
    /// let s: String = s.detach();
    /// assert_eq!(s, "kept");
    /// assert_eq!(pool.stats().detach_count, 1);
    /// ```
    pub fn detach(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: the slot came from `this.pool` and, the guard being
        // consumed without running its `Drop`, is used by no one else.
        unsafe { this.pool.detach(this.slot.0) }
    }

    /// Drops the object instead of returning it, for an object an error left
    /// in an unknown state. Counted as a discarded drop.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(Vec::<u8>::new);
    /// pool.get().discard();
    /// assert_eq!(pool.stats().num_idle, 0);
    /// assert_eq!(pool.stats().drop_discarded_count, 1);
    /// ```
    pub fn discard(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: as in `detach`.
        unsafe { this.pool.discard(this.slot.0) }
    }

    /// The pool the object returns to.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    ///
    /// let pool = Pool::new(String::new);
    /// let s = pool.get();
    /// assert!(std::ptr::eq(s.pool(), &pool));
    /// assert_eq!(s.pool().stats().num_in_use, 1);
    /// ```
    pub fn pool(&self) -> &'a P {
        self.pool
    }
}

impl<T, P: PoolKind<T>> Deref for Pooled<'_, T, P> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the slot holds a live `T` owned by this guard alone until
        // it drops; `&self` borrows the guard.
        unsafe { self.slot.0.as_ref() }
    }
}

impl<T, P: PoolKind<T>> DerefMut for Pooled<'_, T, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { self.slot.0.as_mut() }
    }
}

impl<T, P: PoolKind<T>> Drop for Pooled<'_, T, P> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the slot came from `self.pool`, and the guard, now
        // dropping, never touches it again.
        unsafe { self.pool.recycle(self.slot.0) }
    }
}

impl<T: fmt::Debug, P: PoolKind<T>> fmt::Debug for Pooled<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pooled").field(&**self).finish()
    }
}

impl<T, P: PoolKind<T>> AsRef<T> for Pooled<'_, T, P> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T, P: PoolKind<T>> AsMut<T> for Pooled<'_, T, P> {
    fn as_mut(&mut self) -> &mut T {
        self
    }
}

/// An object taken from a pool behind an [`Arc`]; returned to it when
/// dropped. `'static`, so it moves into spawned tasks and threads.
///
/// Made by [`Pool::get_owned`] (and the `get_owned` of the crate's other
/// pools).
///
/// # Examples
///
/// ```
/// use capacitor_pool::Pool;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let pool = Arc::new(Pool::new(Vec::<u8>::new));
/// let mut buf = pool.get_owned();
/// let len = tokio::spawn(async move {
///     buf.extend_from_slice(b"request");
///     buf.len()
/// })
/// .await
/// .unwrap();
/// assert_eq!(len, 7);
/// assert_eq!(pool.stats().num_idle, 1);
/// # }
/// ```
#[must_use = "dropping the guard returns the object to the pool at once"]
pub struct OwnedPooled<T, P: PoolKind<T> = Pool<T>> {
    // As in `Pooled`; `Arc<P>` when `P: Send + Sync`.
    slot: SlotPtr<T>,
    pool: Arc<P>,
    _owns: PhantomData<T>,
}

impl<T, P: PoolKind<T>> OwnedPooled<T, P> {
    #[inline]
    pub(crate) fn new(pool: Arc<P>, slot: NonNull<T>) -> Self {
        Self {
            slot: SlotPtr(slot),
            pool,
            _owns: PhantomData,
        }
    }

    /// Takes the object out of the pool's care; see [`Pooled::detach`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(String::new));
    /// let mut s = pool.get_owned();
    /// s.push_str("kept");
    /// let s: String = s.detach();
    /// assert_eq!(s, "kept");
    /// assert_eq!(pool.stats().detach_count, 1);
    /// ```
    pub fn detach(self) -> T {
        let (pool, slot) = self.into_parts();
        // SAFETY: the slot came from `pool` and the consumed guard no longer
        // uses it.
        unsafe { pool.detach(slot) }
    }

    /// Drops the object instead of returning it; see [`Pooled::discard`].
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(Vec::<u8>::new));
    /// pool.get_owned().discard();
    /// assert_eq!(pool.stats().num_idle, 0);
    /// assert_eq!(pool.stats().drop_discarded_count, 1);
    /// ```
    pub fn discard(self) {
        let (pool, slot) = self.into_parts();
        // SAFETY: as in `detach`.
        unsafe { pool.discard(slot) }
    }

    /// The pool the object returns to.
    ///
    /// ```
    /// use capacitor_pool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(String::new));
    /// let s = pool.get_owned();
    /// assert!(Arc::ptr_eq(s.pool(), &pool));
    /// assert_eq!(Arc::strong_count(&pool), 2); // the guard holds one
    /// ```
    pub fn pool(&self) -> &Arc<P> {
        &self.pool
    }

    fn into_parts(self) -> (Arc<P>, NonNull<T>) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the `Arc` is read out exactly
        // once and its count stays right.
        let pool = unsafe { ptr::read(&this.pool) };
        (pool, this.slot.0)
    }
}

impl<T, P: PoolKind<T>> Deref for OwnedPooled<T, P> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: as in `Pooled::deref`.
        unsafe { self.slot.0.as_ref() }
    }
}

impl<T, P: PoolKind<T>> DerefMut for OwnedPooled<T, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `Pooled::deref_mut`.
        unsafe { self.slot.0.as_mut() }
    }
}

impl<T, P: PoolKind<T>> Drop for OwnedPooled<T, P> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: as in `Pooled::drop`; the `Arc` field drops after this.
        unsafe { self.pool.recycle(self.slot.0) }
    }
}

impl<T: fmt::Debug, P: PoolKind<T>> fmt::Debug for OwnedPooled<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedPooled").field(&**self).finish()
    }
}

impl<T, P: PoolKind<T>> AsRef<T> for OwnedPooled<T, P> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T, P: PoolKind<T>> AsMut<T> for OwnedPooled<T, P> {
    fn as_mut(&mut self) -> &mut T {
        self
    }
}
