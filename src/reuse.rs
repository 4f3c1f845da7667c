//! A vector that keeps its cleared elements, with their allocations, for
//! reuse.
//!
//! ```
//! use capacitor_pool::ReusableVec;
//!
//! let mut names: ReusableVec<String> = ReusableVec::new();
//! names.push_with(|s| s.push_str("content-type"));
//! names.clear(); // the string is cleared and kept as a spare
//! assert_eq!((names.len(), names.spares()), (0, 1));
//! let reused = names.push_with(|s| s.push_str("host")); // no allocation
//! assert!(reused.capacity() >= "content-type".len());
//! ```
//!
//! # How it works
//!
//! A pooled object keeps its buffers across users only if its
//! [`Reset`] keeps them. For a `Vec<String>` it cannot: `Vec::clear` drops
//! the strings, and the next user allocates them again. `ReusableVec<T>` is
//! a `Vec<T>` plus a length: elements before the length are live, those
//! after it are *spares*, already reset. [`clear`](ReusableVec::clear) and
//! [`truncate`](ReusableVec::truncate) reset the elements they remove and
//! keep them as spares; [`push_with`](ReusableVec::push_with) takes the
//! first spare (or makes a `T::default()` when there is none) and lets the
//! caller fill it in place. Once every element has reached its largest
//! size, filling the vector again allocates nothing.
//!
//! This is the pattern of protobuf's C++ `RepeatedPtrField`, whose
//! `Clear()` keeps the cleared sub-messages allocated and whose `Add()`
//! hands one back before it makes a new one, and of Go's
//! `s = s[:0]` … `s = s[:n+1]` reslicing, with which `fasthttp` keeps the
//! byte slices of a request's headers between requests.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::mem::size_of;
use std::ops::{Deref, DerefMut, Index, IndexMut};
use std::slice::{self, SliceIndex};

use crate::reset::Reset;

/// A `Vec`-like vector whose removed elements are reset and kept as spares,
/// to be filled again in place: nested strings and vectors keep their
/// capacity across a pool's users.
///
/// The live elements are a slice (`ReusableVec<T>` derefs to `[T]`); the
/// spares are hidden, counted by [`spares`](ReusableVec::spares).
///
/// - [`push_with`](ReusableVec::push_with) fills a spare in place (or a
///   `T::default()` when there is none): the way to add elements that
///   allocates nothing once warm. [`push`](ReusableVec::push) moves a value
///   in, and drops the spare it takes the place of.
/// - [`clear`](ReusableVec::clear), [`truncate`](ReusableVec::truncate) and
///   [`Reset::reset`] reset the elements they remove (with `T: Reset`) and
///   keep them; [`pop`](ReusableVec::pop) hands the last element out;
///   [`shrink_spares`](ReusableVec::shrink_spares) drops spares.
/// - Its [`Reset::retained_bytes`] counts its buffer and what every element,
///   live or spare, retains: a pool's retention limit sees nested sizes.
///
/// Comparisons, hashing, `Debug`, `Clone` and iteration see the live
/// elements only.
///
/// # Examples
///
/// A pooled request whose headers keep their strings between requests:
///
/// ```
/// use capacitor_pool::{Pool, Reset, ReusableVec};
///
/// #[derive(Default)]
/// struct Header {
///     name: String,
///     value: String,
/// }
///
/// impl Reset for Header {
///     fn reset(&mut self) {
///         self.name.reset();
///         self.value.reset();
///     }
///     fn retained_bytes(&self) -> usize {
///         self.name.retained_bytes() + self.value.retained_bytes()
///     }
/// }
///
/// #[derive(Default)]
/// struct Request {
///     path: String,
///     headers: ReusableVec<Header>,
/// }
///
/// impl Reset for Request {
///     fn reset(&mut self) {
///         self.path.reset();
///         self.headers.reset(); // headers reset and kept as spares
///     }
///     fn retained_bytes(&self) -> usize {
///         self.path.retained_bytes() + self.headers.retained_bytes()
///     }
/// }
///
/// let pool = Pool::new(Request::default);
/// for _ in 0..3 {
///     let mut req = pool.get();
///     req.path.push_str("/index.html");
///     req.headers.push_with(|h| {
///         h.name.push_str("host");
///         h.value.push_str("example.com");
///     });
///     assert_eq!(req.headers[0].value, "example.com");
/// } // reset and returned: the header and its strings stay allocated
/// let req = pool.get();
/// assert!(req.headers.is_empty());
/// assert_eq!(req.headers.spares(), 1);
/// ```
///
/// With the `derive` feature, `#[derive(Reset)]` writes both impls.
pub struct ReusableVec<T> {
    /// Live elements in `items[..len]`; spares, already reset, in
    /// `items[len..]`.
    items: Vec<T>,
    len: usize,
}

impl<T> ReusableVec<T> {
    /// An empty vector; allocates nothing until the first element.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let v = ReusableVec::<String>::new();
    /// assert_eq!((v.len(), v.spares(), v.capacity()), (0, 0, 0));
    /// ```
    pub const fn new() -> Self {
        Self {
            items: Vec::new(),
            len: 0,
        }
    }

    /// An empty vector whose buffer holds `capacity` elements, live and
    /// spare together, before it grows.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let v = ReusableVec::<String>::with_capacity(8);
    /// assert!(v.capacity() >= 8);
    /// assert!(v.is_empty());
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            len: 0,
        }
    }

    /// The number of live elements.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let v: ReusableVec<u32> = [1, 2, 3].into_iter().collect();
    /// assert_eq!(v.len(), 3);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no live element (there may be spares).
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<String> = ReusableVec::new();
    /// assert!(v.is_empty());
    /// v.push("a".to_string());
    /// assert!(!v.is_empty());
    /// v.clear();
    /// assert!(v.is_empty() && v.spares() == 1);
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of spares: removed elements, reset and kept for
    /// [`push_with`](ReusableVec::push_with) to fill again.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<Vec<u8>> = ReusableVec::new();
    /// v.push_with(|buf| buf.extend_from_slice(b"one"));
    /// v.push_with(|buf| buf.extend_from_slice(b"two"));
    /// v.truncate(1);
    /// assert_eq!((v.len(), v.spares()), (1, 1));
    /// v.push_with(|buf| buf.push(3)); // takes the spare
    /// assert_eq!((v.len(), v.spares()), (2, 0));
    /// ```
    #[inline]
    pub fn spares(&self) -> usize {
        self.items.len() - self.len
    }

    /// The number of elements, live and spare together, the buffer holds
    /// before it grows.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<String> = ReusableVec::with_capacity(4);
    /// v.push_with(|s| s.push('a'));
    /// v.clear();
    /// assert!(v.capacity() >= 4);
    /// assert!(v.capacity() >= v.len() + v.spares());
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// Makes room for at least `additional` more live elements, counting the
    /// spares as room.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<String> = ReusableVec::new();
    /// v.reserve(10);
    /// assert!(v.capacity() >= 10);
    /// ```
    pub fn reserve(&mut self, additional: usize) {
        let room = self.spares();
        self.items.reserve(additional.saturating_sub(room));
    }

    /// The live elements.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let v: ReusableVec<u32> = [1, 2].into_iter().collect();
    /// assert_eq!(v.as_slice(), [1, 2]);
    /// ```
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }

    /// The live elements, mutably.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<u32> = [1, 2].into_iter().collect();
    /// v.as_mut_slice()[0] = 7;
    /// assert_eq!(v, [7, 2]);
    /// ```
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }

    /// An iterator over the live elements.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let v: ReusableVec<u32> = [1, 2, 3].into_iter().collect();
    /// assert_eq!(v.iter().sum::<u32>(), 6);
    /// ```
    #[inline]
    pub fn iter(&self) -> slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// An iterator over the live elements that allows changing them.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<u32> = [1, 2, 3].into_iter().collect();
    /// v.iter_mut().for_each(|x| *x *= 10);
    /// assert_eq!(v, [10, 20, 30]);
    /// ```
    #[inline]
    pub fn iter_mut(&mut self) -> slice::IterMut<'_, T> {
        self.as_mut_slice().iter_mut()
    }

    /// Appends `value` as a live element. It takes the place of the first
    /// spare, if any, which is dropped with its allocations: to reuse
    /// spares, fill them with [`push_with`](ReusableVec::push_with).
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<String> = ReusableVec::new();
    /// v.push("a".to_string());
    /// v.push("b".to_string());
    /// assert_eq!(v, ["a", "b"]);
    /// v.clear();
    /// v.push("c".to_string()); // in the first spare's place: that one is dropped
    /// assert_eq!((v.len(), v.spares()), (1, 1));
    /// ```
    #[inline]
    pub fn push(&mut self, value: T) {
        if self.len < self.items.len() {
            self.items[self.len] = value;
        } else {
            self.items.push(value);
        }
        self.len += 1;
    }

    /// Removes the last live element and returns it, or `None` if there is
    /// none. It leaves the vector: it does not become a spare.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<String> = ReusableVec::new();
    /// v.push_with(|s| s.push_str("kept"));
    /// v.push_with(|s| s.push_str("popped"));
    /// v.truncate(1);
    /// v.push_with(|s| s.push_str("last"));
    /// assert_eq!(v.pop().as_deref(), Some("last"));
    /// assert_eq!(v, ["kept"]);
    /// assert_eq!(v.spares(), 0);
    /// ```
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // The last spare, if any, moves into the freed position: spares
        // stay after the live elements, in any order.
        Some(self.items.swap_remove(self.len))
    }

    /// Drops spares until at most `max` are left; the buffer keeps its
    /// capacity.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<String> = ReusableVec::new();
    /// for _ in 0..4 {
    ///     v.push_with(|s| s.push_str("header"));
    /// }
    /// v.clear();
    /// v.shrink_spares(1);
    /// assert_eq!(v.spares(), 1);
    /// ```
    pub fn shrink_spares(&mut self, max: usize) {
        self.items.truncate(self.len.saturating_add(max));
    }
}

impl<T: Default> ReusableVec<T> {
    /// Appends a live element, filled in place by `fill`: the first spare if
    /// there is one (reset, with the allocations it had), else a
    /// `T::default()`. Returns it.
    ///
    /// If `fill` panics, the element stays live, as `fill` left it.
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut lines: ReusableVec<String> = ReusableVec::new();
    /// lines.push_with(|s| s.push_str("a long first line"));
    /// let capacity = lines[0].capacity();
    /// lines.clear();
    /// let line = lines.push_with(|s| s.push_str("short"));
    /// assert_eq!(line, "short");
    /// assert_eq!(line.capacity(), capacity); // the spare's buffer, reused
    /// ```
    #[inline]
    pub fn push_with(&mut self, fill: impl FnOnce(&mut T)) -> &mut T {
        if self.len == self.items.len() {
            self.items.push(T::default());
        }
        // Live from here on: a panic in `fill` leaves no half-filled spare.
        self.len += 1;
        let item = &mut self.items[self.len - 1];
        fill(item);
        item
    }
}

impl<T: Reset> ReusableVec<T> {
    /// Resets every live element and keeps it as a spare; the vector is
    /// then empty.
    ///
    /// If an element's reset panics, the live elements stay live (some of
    /// them reset).
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<Vec<u8>> = ReusableVec::new();
    /// v.push_with(|buf| buf.extend_from_slice(&[0; 100]));
    /// v.clear();
    /// assert!(v.is_empty());
    /// let buf = v.push_with(|_| {});
    /// assert!(buf.is_empty() && buf.capacity() >= 100);
    /// ```
    #[inline]
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Resets the live elements from `len` on and keeps them as spares,
    /// leaving `len` live elements. Does nothing if there are `len` or
    /// fewer.
    ///
    /// If an element's reset panics, the live elements stay live (some of
    /// them reset).
    ///
    /// ```
    /// use capacitor_pool::ReusableVec;
    ///
    /// let mut v: ReusableVec<String> = ["a", "b", "c"].map(String::from).into_iter().collect();
    /// v.truncate(1);
    /// assert_eq!(v, ["a"]);
    /// assert_eq!(v.spares(), 2);
    /// v.truncate(5); // nothing to remove
    /// assert_eq!(v.len(), 1);
    /// ```
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        for item in &mut self.items[len..self.len] {
            item.reset();
        }
        self.len = len;
    }
}

impl<T: Reset> Reset for ReusableVec<T> {
    /// Resets every live element and keeps it as a spare
    /// ([`clear`](ReusableVec::clear)).
    #[inline]
    fn reset(&mut self) {
        self.clear();
    }

    /// The buffer (every element's inline size, up to the capacity) plus
    /// what each element, live or spare, retains.
    fn retained_bytes(&self) -> usize {
        self.items.iter().fold(
            self.items.capacity().saturating_mul(size_of::<T>()),
            |bytes, item| bytes.saturating_add(item.retained_bytes()),
        )
    }

    /// Drops the spares, shrinks each live element, and shrinks the buffer
    /// if it holds well over the live elements.
    ///
    /// ```
    /// use capacitor_pool::{Reset, ReusableVec};
    ///
    /// let mut v: ReusableVec<String> = ReusableVec::new();
    /// v.push_with(|s| s.push_str(&"x".repeat(4096)));
    /// v.clear();
    /// v.push_with(|s| s.push_str("short")); // refills the 4 KiB spare
    /// v.shrink_excess();
    /// assert!(v.retained_bytes() < 1024 && v == ["short"]);
    /// ```
    fn shrink_excess(&mut self) {
        self.items.truncate(self.len);
        for item in &mut self.items {
            item.shrink_excess();
        }
        self.items.shrink_excess();
    }
}

impl<T> Default for ReusableVec<T> {
    /// An empty vector, as [`new`](ReusableVec::new).
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for ReusableVec<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for ReusableVec<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T, I: SliceIndex<[T]>> Index<I> for ReusableVec<T> {
    type Output = I::Output;

    #[inline]
    fn index(&self, index: I) -> &I::Output {
        &self.as_slice()[index]
    }
}

impl<T, I: SliceIndex<[T]>> IndexMut<I> for ReusableVec<T> {
    #[inline]
    fn index_mut(&mut self, index: I) -> &mut I::Output {
        &mut self.as_mut_slice()[index]
    }
}

impl<T> AsRef<[T]> for ReusableVec<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> AsMut<[T]> for ReusableVec<T> {
    fn as_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: fmt::Debug> fmt::Debug for ReusableVec<T> {
    /// The live elements, as a list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Clone> Clone for ReusableVec<T> {
    /// A vector of clones of the live elements, without spares.
    fn clone(&self) -> Self {
        Self::from(self.as_slice().to_vec())
    }
}

impl<T, U> PartialEq<ReusableVec<U>> for ReusableVec<T>
where
    T: PartialEq<U>,
{
    fn eq(&self, other: &ReusableVec<U>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for ReusableVec<T> {}

impl<T, U> PartialEq<[U]> for ReusableVec<T>
where
    T: PartialEq<U>,
{
    fn eq(&self, other: &[U]) -> bool {
        self.as_slice() == other
    }
}

impl<T, U, const N: usize> PartialEq<[U; N]> for ReusableVec<T>
where
    T: PartialEq<U>,
{
    fn eq(&self, other: &[U; N]) -> bool {
        self.as_slice() == other
    }
}

impl<T, U> PartialEq<Vec<U>> for ReusableVec<T>
where
    T: PartialEq<U>,
{
    fn eq(&self, other: &Vec<U>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Hash> Hash for ReusableVec<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<T> From<Vec<T>> for ReusableVec<T> {
    /// All of `items` live, no spares; no allocation.
    fn from(items: Vec<T>) -> Self {
        let len = items.len();
        Self { items, len }
    }
}

impl<T> From<ReusableVec<T>> for Vec<T> {
    /// The live elements; the spares are dropped.
    fn from(mut v: ReusableVec<T>) -> Self {
        v.items.truncate(v.len);
        v.items
    }
}

impl<T> FromIterator<T> for ReusableVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::from(Vec::from_iter(iter))
    }
}

impl<T> Extend<T> for ReusableVec<T> {
    /// Pushes each value, as [`push`](ReusableVec::push) does.
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        self.reserve(iter.size_hint().0);
        for value in iter {
            self.push(value);
        }
    }
}

impl<T> IntoIterator for ReusableVec<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    /// The live elements, by value; the spares are dropped.
    fn into_iter(self) -> Self::IntoIter {
        Vec::from(self).into_iter()
    }
}

impl<'a, T> IntoIterator for &'a ReusableVec<T> {
    type Item = &'a T;
    type IntoIter = slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut ReusableVec<T> {
    type Item = &'a mut T;
    type IntoIter = slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_follow_the_live_elements_after_every_operation() {
        let mut v: ReusableVec<String> = ReusableVec::new();
        let check = |v: &ReusableVec<String>| {
            assert!(v.len <= v.items.len());
            assert!(v.items[v.len..].iter().all(String::is_empty));
        };
        for round in 0..3 {
            for i in 0..5 {
                v.push_with(|s| s.push_str(&format!("{round}-{i}")));
                check(&v);
            }
            v.truncate(3);
            check(&v);
            assert_eq!(v.pop().as_deref(), Some(&*format!("{round}-2")));
            check(&v);
            v.push(String::from("moved"));
            check(&v);
            v.clear();
            check(&v);
        }
        // Five elements at most, less the one popped: nothing piled up.
        assert_eq!(v.items.len(), 4);
    }
}
