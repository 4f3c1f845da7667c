//! Error types, one per operation.

use std::fmt;

/// The error of [`RingPool::get`](crate::RingPool::get): the ring was
/// closed, before or while waiting.
///
/// ```
/// use capacitor_pool::RingPool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
/// ring.close();
/// let err = ring.get().await.unwrap_err();
/// assert_eq!(err.to_string(), "ring pool closed");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetError(pub(crate) ());

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ring pool closed")
    }
}

impl std::error::Error for GetError {}

/// The error of [`RingPool::try_get`](crate::RingPool::try_get).
///
/// ```
/// use capacitor_pool::{RingPool, TryGetError};
///
/// let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
/// let _held = ring.try_get().unwrap();
/// match ring.try_get() {
///     Err(TryGetError::Empty) => {} // all slots in use: try later, or `get().await`
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryGetError {
    /// Every slot is in use.
    Empty,
    /// The ring was closed.
    Closed,
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("every slot of the ring pool is in use"),
            TryGetError::Closed => f.write_str("ring pool closed"),
        }
    }
}

impl std::error::Error for TryGetError {}

/// The error of [`RingPool::get_timeout`](crate::RingPool::get_timeout).
///
/// ```
/// use capacitor_pool::{GetTimeoutError, RingPool};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
/// let _held = ring.try_get().unwrap();
/// let err = ring.get_timeout(Duration::from_millis(5)).await.unwrap_err();
/// assert_eq!(err, GetTimeoutError::Timeout);
/// ring.close();
/// let err = ring.get_timeout(Duration::from_millis(5)).await.unwrap_err();
/// assert_eq!(err, GetTimeoutError::Closed);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetTimeoutError {
    /// No slot came free in time.
    Timeout,
    /// The ring was closed.
    Closed,
}

impl fmt::Display for GetTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetTimeoutError::Timeout => f.write_str("timed out waiting for a ring pool slot"),
            GetTimeoutError::Closed => f.write_str("ring pool closed"),
        }
    }
}

impl std::error::Error for GetTimeoutError {}

/// The error of [`RingPoolBuilder::build`](crate::RingPoolBuilder::build)
/// and [`PooledCacheBuilder::build`](crate::PooledCacheBuilder::build).
///
/// ```
/// use capacitor_pool::{BuildError, PooledCache, RingPool};
///
/// let err = RingPool::new(0, String::new).unwrap_err();
/// assert_eq!(err, BuildError::ZeroCapacity);
/// assert_eq!(err.to_string(), "a ring pool needs a capacity of at least 1");
/// let err = PooledCache::<u64, String>::builder().max_entries(0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroEntries);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A ring needs at least one slot.
    ZeroCapacity,
    /// More slots than a ring can index (`usize::MAX >> 3`).
    CapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The most allowed.
        max: usize,
    },
    /// A cache needs room for at least one entry.
    ZeroEntries,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroCapacity => f.write_str("a ring pool needs a capacity of at least 1"),
            BuildError::CapacityTooLarge { requested, max } => {
                write!(
                    f,
                    "ring pool capacity {requested} is over the maximum of {max}"
                )
            }
            BuildError::ZeroEntries => {
                f.write_str("a pooled cache needs a max_entries of at least 1")
            }
        }
    }
}

impl std::error::Error for BuildError {}
