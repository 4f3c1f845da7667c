//! The cache's error.

use std::fmt;

/// The error of [`PooledCache::new`](super::PooledCache::new) and
/// [`PooledCacheBuilder::build`](super::PooledCacheBuilder::build): a
/// cache needs room for at least one entry.
///
/// ```
/// use capacitor_pool::PooledCache;
/// use capacitor_pool::cache::BuildError;
///
/// let err = PooledCache::<u64, String>::new(0).unwrap_err();
/// assert_eq!(err, BuildError::ZeroEntries);
/// assert_eq!(err.to_string(), "a pooled cache needs a max_entries of at least 1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A `max_entries` of 0.
    ZeroEntries,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroEntries => {
                f.write_str("a pooled cache needs a max_entries of at least 1")
            }
        }
    }
}

impl std::error::Error for BuildError {}
