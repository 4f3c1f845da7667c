//! How an object is made ready for its next user.
//!
//! ```
//! use capacitor_pool::Reset;
//!
//! let mut buf = Vec::with_capacity(64);
//! buf.extend_from_slice(b"secret");
//! buf.reset();
//! assert!(buf.is_empty());
//! assert_eq!(buf.retained_bytes(), 64);
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::mem::size_of;

use bytes::{Bytes, BytesMut};

/// An object that can be cleared for reuse by a pool.
///
/// `reset` must leave the object in the state a fresh user expects (empty
/// buffers, cleared maps); it should keep allocated capacity, since keeping
/// it is the point of pooling.
///
/// Every pool in the crate resets an object when its guard drops, before the
/// object can reach its next user: the Go guide's "forgot to reset" bug
/// (`defer pool.Put(buf)` without `buf.Reset()`) cannot happen. After the
/// reset, the pool asks the object how much memory it still holds on to
/// ([`Reset::retained_bytes`]); an object over the pool's retention limit
/// (1 MiB by default, the Go guide's "don't pool objects over 1 MB") is
/// dropped instead of kept, so one huge request does not pin a huge buffer
/// in the pool forever.
///
/// A pool can use a closure instead of the trait
/// ([`PoolBuilder::reset`](crate::pool::PoolBuilder::reset)), or any type that
/// implements [`Recycle`] for full control.
///
/// # Nested objects
///
/// A struct resets by resetting each of its fields, and retains what they
/// retain together: with the `derive` feature, [`#[derive(Reset)]`][derive]
/// writes that impl (the example below writes it by hand). A field that
/// should not be reset takes `#[reset(skip)]`, one set back to its default
/// `#[reset(default)]`.
///
/// A `Vec<T>`'s reset drops its elements, with their allocations: a pooled
/// `Vec<String>` allocates its strings again for each user. A
/// [`ReusableVec<T>`](crate::ReusableVec) resets its elements instead and
/// keeps them, to be filled again in place: with it, a pooled struct of
/// strings and vectors allocates nothing once warm, nested elements
/// included.
///
/// # Examples
///
/// ```
/// use capacitor_pool::{Pool, Reset};
///
/// #[derive(Default)]
/// struct Scratch {
///     names: Vec<String>,
///     total: u64,
/// }
///
/// impl Reset for Scratch {
///     fn reset(&mut self) {
///         self.names.clear();
///         self.total = 0;
///     }
///     fn retained_bytes(&self) -> usize {
///         self.names.retained_bytes()
///     }
/// }
///
/// let pool = Pool::new(Scratch::default);
/// let mut s = pool.get();
/// s.names.push("a".into());
/// s.total = 1;
/// drop(s);
/// let s = pool.get();
/// assert!(s.names.is_empty() && s.total == 0);
/// ```
///
/// Strings kept across users, in a [`ReusableVec`](crate::ReusableVec):
///
/// ```
/// use capacitor_pool::{Pool, ReusableVec};
///
/// let pool = Pool::new(ReusableVec::<String>::new);
/// pool.get().push_with(|s| s.push_str("kept for the next user"));
/// let mut names = pool.get();
/// assert!(names.is_empty()); // reset...
/// let name = names.push_with(|s| s.push_str("next"));
/// assert!(name.capacity() >= "kept for the next user".len()); // ...and reused
/// ```
#[cfg_attr(feature = "derive", doc = "", doc = "[derive]: macro@crate::Reset")]
#[cfg_attr(
    not(feature = "derive"),
    doc = "",
    doc = "[derive]: https://docs.rs/capacitor-pool/latest/capacitor_pool/derive.Reset.html"
)]
pub trait Reset {
    /// Clears the object for its next user, keeping its allocations.
    fn reset(&mut self);

    /// Bytes of heap memory the object keeps after a reset (its capacity).
    ///
    /// Pools drop an object whose retained bytes exceed their retention
    /// limit instead of keeping it. The default is 0: never too big.
    fn retained_bytes(&self) -> usize {
        0
    }

    /// Frees the capacity the object's current contents do not need, where
    /// it holds well over what they take: more than a quarter over, plus
    /// 256 bytes: the contents move to a new buffer of their size (rather
    /// than `shrink_to_fit`, whose in-place shrink leaves the freed tail as
    /// a fragment between live buffers).
    ///
    /// [`PooledCache`](crate::PooledCache) calls it on each value it has
    /// just filled in place, so that an entry holds about what its contents
    /// need, as a freshly made value would, and not the capacity of the
    /// largest value its slot ever held. Pools never call it (their objects
    /// are empty). The default does nothing; the impls for the std buffers
    /// shrink them, and `#[derive(Reset)]` shrinks each field.
    ///
    /// ```
    /// use capacitor_pool::Reset;
    ///
    /// let mut v: Vec<u8> = Vec::with_capacity(16 * 1024);
    /// v.extend_from_slice(b"small now");
    /// v.shrink_excess();
    /// assert!(v.capacity() < 1024 && v == b"small now");
    ///
    /// let mut s = String::with_capacity(300);
    /// s.push_str(&"x".repeat(250));
    /// s.shrink_excess(); // within a quarter and 256 bytes: kept
    /// assert_eq!(s.capacity(), 300);
    /// ```
    fn shrink_excess(&mut self) {}
}

/// Whether a buffer of `capacity` bytes holding `len` holds well over what
/// its contents take (see [`Reset::shrink_excess`]).
#[inline]
pub(crate) fn has_excess(capacity: usize, len: usize) -> bool {
    capacity > len.saturating_add(len / 4).saturating_add(EXCESS_SLACK)
}

/// The bytes a buffer may hold past a quarter over its contents before
/// [`Reset::shrink_excess`] frees them.
const EXCESS_SLACK: usize = 256;

impl<T> Reset for Vec<T> {
    #[inline]
    fn reset(&mut self) {
        self.clear();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        self.capacity().saturating_mul(size_of::<T>())
    }

    #[inline]
    fn shrink_excess(&mut self) {
        let size = size_of::<T>();
        if has_excess(
            self.capacity().saturating_mul(size),
            self.len().saturating_mul(size),
        ) {
            let mut fit = Vec::with_capacity(self.len());
            fit.append(self);
            *self = fit;
        }
    }
}

impl Reset for String {
    #[inline]
    fn reset(&mut self) {
        self.clear();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        self.capacity()
    }

    #[inline]
    fn shrink_excess(&mut self) {
        if has_excess(self.capacity(), self.len()) {
            let mut fit = String::with_capacity(self.len());
            fit.push_str(self);
            *self = fit;
        }
    }
}

impl Reset for BytesMut {
    #[inline]
    fn reset(&mut self) {
        self.clear();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        self.capacity()
    }

    /// `BytesMut` cannot shrink in place: its contents move to a new
    /// buffer of their size.
    #[inline]
    fn shrink_excess(&mut self) {
        if has_excess(self.capacity(), self.len()) {
            *self = BytesMut::from(&self[..]);
        }
    }
}

/// A `Bytes` is an immutable view of a shared, reference-counted buffer:
/// it cannot be refilled in place, so its reset lets go of the buffer and
/// leaves the empty `Bytes` (which allocates nothing). It then retains no
/// bytes of its own (0), whatever the size of the buffer it was a view of.
/// This is what lets a [`PooledCache`](crate::PooledCache) store `Bytes`
/// values, for GET responses served without a copy.
///
/// The reset assigns `Bytes::new()` rather than calling `Bytes::clear`:
/// the same empty contents, but in bytes releases before the fix of
/// tokio-rs/bytes#840, `clear` only set the length to 0 and kept its
/// reference to the buffer, which would pin a buffer of any size behind a
/// value that looks empty and retains 0 bytes.
///
/// ```
/// use bytes::Bytes;
/// use capacitor_pool::Reset;
///
/// let body = Bytes::from(vec![7u8; 4096]);
/// let mut view = body.slice(..16); // shares body's buffer
/// view.reset();
/// assert!(view.is_empty());
/// assert_eq!(view.retained_bytes(), 0);
/// // The reset value holds no reference: `body` owns its buffer alone again.
/// assert!(body.try_into_mut().is_ok());
/// ```
impl Reset for Bytes {
    #[inline]
    fn reset(&mut self) {
        *self = Bytes::new();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        0
    }
}

impl<T> Reset for VecDeque<T> {
    #[inline]
    fn reset(&mut self) {
        self.clear();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        self.capacity().saturating_mul(size_of::<T>())
    }

    #[inline]
    fn shrink_excess(&mut self) {
        let size = size_of::<T>();
        if has_excess(
            self.capacity().saturating_mul(size),
            self.len().saturating_mul(size),
        ) {
            let mut fit = VecDeque::with_capacity(self.len());
            fit.append(self);
            *self = fit;
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Reset for HashMap<K, V, S> {
    #[inline]
    fn reset(&mut self) {
        self.clear();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        // Buckets plus one control byte each, as hashbrown lays them out.
        self.capacity()
            .saturating_mul(size_of::<(K, V)>().saturating_add(1))
    }

    #[inline]
    fn shrink_excess(&mut self) {
        let size = size_of::<(K, V)>().saturating_add(1);
        if has_excess(
            self.capacity().saturating_mul(size),
            self.len().saturating_mul(size),
        ) {
            self.shrink_to_fit();
        }
    }
}

/// Nothing to clear: a pool of `()` hands out permits, not objects. A
/// [`RingPool<()>`](crate::RingPool) is a plain limit on work in flight,
/// with the ring's FIFO, cancel-safe `get().await`.
///
/// ```
/// use capacitor_pool::RingPool;
///
/// let permits = RingPool::new(2, || ()).unwrap();
/// let a = permits.try_get().unwrap();
/// let b = permits.try_get().unwrap();
/// assert!(permits.try_get().is_err()); // two in flight at most
/// drop((a, b));
/// assert_eq!(permits.stats().num_idle, 2);
/// ```
impl Reset for () {
    #[inline(always)]
    fn reset(&mut self) {}
}

impl<T: Reset + ?Sized> Reset for Box<T> {
    #[inline]
    fn reset(&mut self) {
        (**self).reset();
    }

    #[inline]
    fn retained_bytes(&self) -> usize {
        size_of_val::<T>(self).saturating_add((**self).retained_bytes())
    }

    #[inline]
    fn shrink_excess(&mut self) {
        (**self).shrink_excess();
    }
}

/// A pool's policy for recycling objects: how to reset one, and how much
/// memory it retains (checked against the pool's retention limit).
///
/// [`UseReset`] (the default) calls the [`Reset`] trait, [`ResetWith`] a
/// closure. Implement it yourself for a policy that needs state.
///
/// # Examples
///
/// ```
/// use capacitor_pool::{Pool, Recycle};
///
/// // Keep buffers, but only up to 4 KiB of capacity each.
/// struct SmallOnly;
/// impl Recycle<Vec<u8>> for SmallOnly {
///     fn reset(&self, v: &mut Vec<u8>) {
///         v.clear();
///     }
///     fn retained_bytes(&self, v: &Vec<u8>) -> usize {
///         v.capacity()
///     }
/// }
///
/// let pool = Pool::builder(Vec::new)
///     .recycler(SmallOnly)
///     .retention_limit(4096)
///     .build();
/// let mut v = pool.get();
/// v.resize(10_000, 0);
/// drop(v); // too big: dropped, not kept
/// assert_eq!(pool.stats().num_idle, 0);
/// ```
pub trait Recycle<T>: Send + Sync {
    /// Clears `value` for its next user.
    fn reset(&self, value: &mut T);

    /// Bytes of memory `value` retains after [`reset`](Recycle::reset).
    fn retained_bytes(&self, value: &T) -> usize;

    /// Frees the capacity `value`'s contents do not need (see
    /// [`Reset::shrink_excess`]); [`PooledCache`](crate::PooledCache) calls
    /// it on each value it has just filled in place. The default does
    /// nothing.
    fn shrink_excess(&self, value: &mut T) {
        let _ = value;
    }
}

/// The default [`Recycle`] policy: the object's own [`Reset`] impl.
///
/// ```
/// use capacitor_pool::{Pool, Recycle, UseReset};
///
/// // The default policy, named: the same pool as `Pool::new(Vec::new)`.
/// let pool: Pool<Vec<u8>, UseReset> = Pool::builder(Vec::new).recycler(UseReset).build();
/// pool.get().push(1);
/// assert!(pool.get().is_empty());
/// let mut v = vec![1u8, 2];
/// UseReset.reset(&mut v); // calls `Reset::reset`
/// assert!(v.is_empty());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct UseReset;

impl<T: Reset> Recycle<T> for UseReset {
    #[inline(always)]
    fn reset(&self, value: &mut T) {
        value.reset();
    }

    #[inline(always)]
    fn retained_bytes(&self, value: &T) -> usize {
        value.retained_bytes()
    }

    #[inline(always)]
    fn shrink_excess(&self, value: &mut T) {
        value.shrink_excess();
    }
}

/// A [`Recycle`] policy made from a reset closure (see
/// [`PoolBuilder::reset`](crate::pool::PoolBuilder::reset)).
///
/// A closure cannot say how much memory the object retains, so pools with
/// this policy never drop an object for its size; use your own [`Recycle`]
/// impl where you need both.
///
/// ```
/// use capacitor_pool::{Pool, Recycle, ResetWith};
///
/// let zero = ResetWith(|v: &mut Vec<u8>| v.fill(0));
/// let mut v = vec![1u8, 2];
/// zero.reset(&mut v);
/// assert_eq!(v, [0, 0]);
/// assert_eq!(zero.retained_bytes(&v), 0); // never too big to keep
/// let pool = Pool::builder(|| vec![0u8; 2]).recycler(zero).build();
/// pool.get()[0] = 9;
/// assert_eq!(*pool.get(), [0, 0]);
/// ```
#[derive(Clone, Copy)]
pub struct ResetWith<F>(pub F);

impl<F> std::fmt::Debug for ResetWith<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetWith(..)")
    }
}

impl<T, F: Fn(&mut T) + Send + Sync> Recycle<T> for ResetWith<F> {
    #[inline(always)]
    fn reset(&self, value: &mut T) {
        (self.0)(value);
    }

    #[inline(always)]
    fn retained_bytes(&self, _value: &T) -> usize {
        0
    }
}
