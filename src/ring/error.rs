//! The ring pool's errors, one per operation.

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
/// use capacitor_pool::RingPool;
/// use capacitor_pool::ring::TryGetError;
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
/// use capacitor_pool::RingPool;
/// use capacitor_pool::ring::GetTimeoutError;
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

/// The error of [`RingPool::new`](crate::RingPool::new) and
/// [`RingPoolBuilder::build`](super::RingPoolBuilder::build): a capacity of
/// zero, or over the most a ring holds.
///
/// ```
/// use capacitor_pool::RingPool;
/// use capacitor_pool::ring::BuildError;
///
/// let err = RingPool::new(0, String::new).unwrap_err();
/// assert_eq!(err, BuildError::ZeroCapacity);
/// assert_eq!(err.to_string(), "a ring pool needs a capacity of at least 1");
/// let err = RingPool::builder(usize::MAX, String::new).build().unwrap_err();
/// assert!(matches!(err, BuildError::CapacityTooLarge { .. }));
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
        }
    }
}

impl std::error::Error for BuildError {}
