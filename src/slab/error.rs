//! [`BuildError`], the error of [`SlabBuilder::build`](super::SlabBuilder::build).

use std::fmt;

/// The error of [`SlabBuilder::build`](super::SlabBuilder::build).
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::slab::BuildError;
///
/// let err = Slab::builder().min_chunk(4096).max_chunk(1024).build().unwrap_err();
/// assert_eq!(err, BuildError::MinOverMax { min: 4096, max: 1024 });
/// assert_eq!(err.to_string(), "slab min_chunk 4096 is over max_chunk 1024");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A size (`min_chunk`, `max_chunk` or `page_size`) was zero.
    ZeroSize(&'static str),
    /// A size was over [`MAX_CHUNK_LIMIT`](super::MAX_CHUNK_LIMIT).
    TooLarge {
        /// Which size.
        what: &'static str,
        /// The size asked for.
        requested: usize,
        /// The most allowed.
        max: usize,
    },
    /// `min_chunk` was over `max_chunk`.
    MinOverMax {
        /// The smallest chunk asked for.
        min: usize,
        /// The largest chunk asked for.
        max: usize,
    },
    /// `max_pages_per_class` was zero.
    ZeroPages,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroSize(what) => write!(f, "slab {what} must be at least 1 byte"),
            BuildError::TooLarge {
                what,
                requested,
                max,
            } => write!(
                f,
                "slab {what} of {requested} bytes is over the maximum of {max}"
            ),
            BuildError::MinOverMax { min, max } => {
                write!(f, "slab min_chunk {min} is over max_chunk {max}")
            }
            BuildError::ZeroPages => f.write_str("a slab needs at least 1 page per class"),
        }
    }
}

impl std::error::Error for BuildError {}
