//! The key a write brings: owned, or borrowed and made owned only for a new
//! entry.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

/// The key a write brings: owned, or borrowed and made owned only for a
/// new entry (the pattern of hashbrown's `entry_ref`).
pub(super) trait WriteKey<K> {
    /// The key's hash; equal for a borrowed key and its owned form, by
    /// the contract of [`Borrow`].
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64;

    /// Whether `key` is this key.
    fn is(&self, key: &K) -> bool;

    /// The key to store in a new entry.
    fn into_owned(self) -> K;
}

/// A key the caller gives away (`insert`, `insert_with`).
pub(super) struct OwnedKey<K>(pub(super) K);

impl<K: Hash + Eq> WriteKey<K> for OwnedKey<K> {
    #[inline]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(&self.0)
    }

    #[inline]
    fn is(&self, key: &K) -> bool {
        *key == self.0
    }

    #[inline]
    fn into_owned(self) -> K {
        self.0
    }
}

/// A key the caller lends (`insert_with_ref`, `get_or_insert_with`).
pub(super) struct BorrowedKey<'a, Q: ?Sized>(pub(super) &'a Q);

impl<K, Q> WriteKey<K> for BorrowedKey<'_, Q>
where
    K: Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    #[inline]
    fn hash_with<S: BuildHasher>(&self, hasher: &S) -> u64 {
        hasher.hash_one(self.0)
    }

    #[inline]
    fn is(&self, key: &K) -> bool {
        key.borrow() == self.0
    }

    #[inline]
    fn into_owned(self) -> K {
        self.0.to_owned()
    }
}
