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
use std::ptr;
use std::sync::Arc;

use crate::pool::Pool;

pub(crate) mod sealed {
    use std::marker::PhantomData;
    use std::ptr::NonNull;

    use crate::slot::Slot;

    /// What a guard needs from its pool. Sealed: the crate's pools only.
    pub trait Home<T> {
        /// Resets the object and keeps or drops it.
        fn recycle(&self, object: Lent<T, Self>);

        /// Drops the object without resetting it.
        fn discard(&self, object: Lent<T, Self>);

        /// Takes the object out of the pool's care.
        fn detach(&self, object: Lent<T, Self>) -> T;
    }

    /// An object a pool of type `P` lent to a guard. The guard owns it
    /// alone, and hands it back, by value, to the pool it came from: a
    /// pool's [`Home`] methods take only a `Lent` of their own type.
    ///
    /// `Send` and `Sync` as `T` is, whatever `P` is. The guards take their
    /// `Send` and `Sync` from their fields (this, `&P` or `Arc<P>`), not
    /// from an impl of their own: such an impl would repeat the guard's
    /// `P: PoolKind<T>` bound, which ties the lifetimes in `T` to those in
    /// `P`. A future that holds a guard across `.await` is checked for
    /// `Send` with each of those lifetimes erased to a lifetime of its own,
    /// and the tie then fails ("implementation of `PoolKind` is not general
    /// enough") for a `T` with a lifetime in it, such as
    /// `FutureSlot<Result<O, Box<dyn Error + Send + Sync>>>`.
    pub struct Lent<T, P: ?Sized> {
        pub(crate) ptr: NonNull<T>,
        _pool: PhantomData<fn() -> *const P>,
    }

    // SAFETY: a `Lent` owns its object alone (its pool lent it to one
    // holder), so sending it sends the `T`.
    unsafe impl<T: Send, P: ?Sized> Send for Lent<T, P> {}
    // SAFETY: `&Lent` gives out only `&T`.
    unsafe impl<T: Sync, P: ?Sized> Sync for Lent<T, P> {}

    impl<T, P: ?Sized> std::fmt::Debug for Lent<T, P> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_tuple("Lent").field(&self.ptr).finish()
        }
    }

    impl<T, P: ?Sized> Lent<T, P> {
        /// The object at `ptr`, lent out.
        ///
        /// # Safety
        /// `ptr` is a live object that a pool of type `P` lends out now,
        /// that nothing else uses until the `Lent` goes back, and the
        /// `Lent` goes back to that same pool: `P`'s [`Home`] relies on
        /// what its own `get` stored at `ptr`.
        #[inline(always)]
        pub(crate) unsafe fn from_raw(ptr: NonNull<T>) -> Self {
            Self {
                ptr,
                _pool: PhantomData,
            }
        }

        /// The object's address, as a key (for the hold tables).
        #[inline(always)]
        pub(crate) fn addr(&self) -> usize {
            self.ptr.as_ptr() as usize
        }

        /// The object's address, given back.
        #[inline(always)]
        pub(crate) fn into_raw(self) -> NonNull<T> {
            self.ptr
        }
    }

    /// Pools whose objects each live in a [`Slot`] of their own.
    pub trait SlotBacked {}

    /// A slot, lent out.
    impl<T, P: SlotBacked + ?Sized> From<Slot<T>> for Lent<T, P> {
        #[inline(always)]
        fn from(slot: Slot<T>) -> Self {
            Self {
                ptr: slot.into_raw(),
                _pool: PhantomData,
            }
        }
    }

    impl<T, P: SlotBacked + ?Sized> Lent<T, P> {
        /// The slot, back.
        #[inline(always)]
        pub(crate) fn into_slot(self) -> Slot<T> {
            // SAFETY: a pool of a slot-backed type lends slots only (by
            // `From<Slot<T>>`, or `from_raw` under its contract), so `ptr` is a
            // slot given up by `into_raw`, now handed back.
            unsafe { Slot::from_raw(self.ptr) }
        }
    }
}

use self::sealed::Lent;

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
    // `Lent`).
    lent: Lent<T, P>,
    pool: &'a P,
    _owns: PhantomData<T>,
}

impl<'a, T, P: PoolKind<T>> Pooled<'a, T, P> {
    #[inline]
    pub(crate) fn new(pool: &'a P, lent: Lent<T, P>) -> Self {
        Self {
            lent,
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
        // SAFETY: the guard is consumed without running its `Drop`: this
        // read is the last use of `lent`.
        let lent = unsafe { ptr::read(&this.lent) };
        this.pool.detach(lent)
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
        let lent = unsafe { ptr::read(&this.lent) };
        this.pool.discard(lent);
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
        // SAFETY: the lent object is live and this guard's alone until it
        // drops; `&self` borrows the guard.
        unsafe { self.lent.ptr.as_ref() }
    }
}

impl<T, P: PoolKind<T>> DerefMut for Pooled<'_, T, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { self.lent.ptr.as_mut() }
    }
}

impl<T, P: PoolKind<T>> Drop for Pooled<'_, T, P> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the guard is dropping and never reads `lent` again: this
        // read is its last use.
        let lent = unsafe { ptr::read(&self.lent) };
        self.pool.recycle(lent);
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
    lent: Lent<T, P>,
    pool: Arc<P>,
    _owns: PhantomData<T>,
}

impl<T, P: PoolKind<T>> OwnedPooled<T, P> {
    #[inline]
    pub(crate) fn new(pool: Arc<P>, lent: Lent<T, P>) -> Self {
        Self {
            lent,
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
        let (pool, lent) = self.into_parts();
        pool.detach(lent)
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
        let (pool, lent) = self.into_parts();
        pool.discard(lent);
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

    fn into_parts(self) -> (Arc<P>, Lent<T, P>) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so each field is read out exactly
        // once: the `Arc`'s count stays right and the `Lent` has one owner.
        unsafe { (ptr::read(&this.pool), ptr::read(&this.lent)) }
    }
}

impl<T, P: PoolKind<T>> Deref for OwnedPooled<T, P> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: as in `Pooled::deref`.
        unsafe { self.lent.ptr.as_ref() }
    }
}

impl<T, P: PoolKind<T>> DerefMut for OwnedPooled<T, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `Pooled::deref_mut`.
        unsafe { self.lent.ptr.as_mut() }
    }
}

impl<T, P: PoolKind<T>> Drop for OwnedPooled<T, P> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: as in `Pooled::drop`; the `Arc` field drops after this.
        let lent = unsafe { ptr::read(&self.lent) };
        self.pool.recycle(lent);
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
