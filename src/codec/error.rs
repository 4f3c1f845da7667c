//! The codecs' errors: [`FrameError`] for bad frames, [`BuildError`] for a
//! configuration that cannot work.

use std::fmt;
use std::io;

/// What went wrong with a frame; carried inside the `io::Error` that
/// decoders and encoders return (get it back with
/// [`io::Error::get_ref`] and `downcast_ref`).
///
/// ```
/// use bytes::BytesMut;
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::{FrameError, LengthDelimited};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LengthDelimited::builder().max_frame_length(1024).new_codec(&Slab::new()).unwrap();
/// let mut src = BytesMut::from(&b"\xff\xff\xff\xff lies"[..]); // claims 4 GiB
/// let err = codec.decode(&mut src).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
/// let why = err.get_ref().unwrap().downcast_ref::<FrameError>().unwrap();
/// assert_eq!(*why, FrameError::TooLong { len: u32::MAX as u64, max: 1024 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The length field is over the maximum frame length.
    TooLong {
        /// The length the field gave (before adjustment), or of the frame
        /// to encode.
        len: u64,
        /// The maximum frame length.
        max: usize,
    },
    /// The length adjustment took the length below zero or past `usize`.
    BadAdjustment,
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes of the frame (header included) that did arrive.
        received: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { len, max } => {
                write!(f, "frame of {len} bytes is over the maximum of {max}")
            }
            FrameError::BadAdjustment => {
                f.write_str("frame length out of range after the length adjustment")
            }
            FrameError::Truncated { received } => {
                write!(f, "stream ended inside a frame ({received} bytes received)")
            }
        }
    }
}

impl std::error::Error for FrameError {}

impl From<FrameError> for io::Error {
    /// Bad input: `InvalidData`, whatever the variant (an encoder's errors,
    /// `InvalidInput`, are made where they arise).
    fn from(e: FrameError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The most bytes a frame's header may span: the length field's offset
/// plus its length, or `num_skip` if larger (64 KiB).
pub const MAX_HEADER_LENGTH: usize = 64 * 1024;

/// The error of [`LengthDelimitedBuilder`](super::LengthDelimitedBuilder)'s
/// `new_*` methods: a header the codec cannot read.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::{BuildError, LengthDelimited};
///
/// let err = LengthDelimited::builder().length_field_length(9).new_codec(&Slab::new());
/// assert_eq!(err.unwrap_err(), BuildError::LengthFieldLength(9));
/// let err = LengthDelimited::builder().length_field_offset(usize::MAX).new_encoder();
/// assert!(matches!(err.unwrap_err(), BuildError::HeaderTooLong { .. }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A length field of 0 bytes or more than 8.
    LengthFieldLength(usize),
    /// A header (the length field's offset plus its length, or `num_skip`)
    /// over [`MAX_HEADER_LENGTH`] bytes.
    HeaderTooLong {
        /// The header's length (`usize::MAX` if the sum overflows).
        len: usize,
        /// The most allowed.
        max: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::LengthFieldLength(len) => {
                write!(f, "length field length must be 1 to 8 bytes, not {len}")
            }
            BuildError::HeaderTooLong { len, max } => {
                write!(
                    f,
                    "frame header of {len} bytes is over the maximum of {max}"
                )
            }
        }
    }
}

impl std::error::Error for BuildError {}

impl From<BuildError> for io::Error {
    /// A configuration that cannot work: `InvalidInput`.
    fn from(e: BuildError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}
