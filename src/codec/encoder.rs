//! Encoding: [`LengthDelimitedEncoder`], and the `Encoder` impls of it and
//! of [`LengthDelimited`] for any item that dereferences to bytes.

use std::io;
use std::ops::Deref;

use bytes::{BufMut, BytesMut};
use tokio_util::codec::Encoder;

use super::{FrameError, LengthDelimited, LengthDelimitedBuilder};

impl LengthDelimitedBuilder {
    /// Writes `data` as one frame: its header, then its bytes.
    pub(super) fn encode_frame(&self, data: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        let cfg = self;
        let n = data.len();
        if n > cfg.max_frame_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                FrameError::TooLong {
                    len: n as u64,
                    max: cfg.max_frame_len,
                },
            ));
        }
        let field = if cfg.length_adjustment < 0 {
            n.checked_add(cfg.length_adjustment.unsigned_abs())
        } else {
            n.checked_sub(cfg.length_adjustment as usize)
        };
        let field = field
            .filter(|&f| f as u64 <= cfg.max_field_value())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, FrameError::BadAdjustment)
            })?;
        dst.reserve(cfg.length_field_len + n);
        if cfg.big_endian {
            dst.put_uint(field as u64, cfg.length_field_len);
        } else {
            dst.put_uint_le(field as u64, cfg.length_field_len);
        }
        dst.extend_from_slice(data);
        Ok(())
    }
}

/// Encodes any item that dereferences to bytes (see
/// [`LengthDelimited`]'s "Encoding" section).
impl<I> Encoder<I> for LengthDelimited
where
    I: Deref,
    I::Target: AsRef<[u8]>,
{
    type Error = io::Error;

    fn encode(&mut self, item: I, dst: &mut BytesMut) -> io::Result<()> {
        self.cfg.encode_frame((*item).as_ref(), dst)
    }
}

/// The encoding half of [`LengthDelimited`], without a [`Slab`]: for a
/// connection (or a `FramedWrite`) that only writes frames. Made by
/// [`LengthDelimitedEncoder::new`], by
/// [`LengthDelimitedBuilder::new_encoder`] for other header options, or
/// from a codec by [`LengthDelimited::encoder`]; it writes exactly what a
/// `LengthDelimited` with the same options writes, and encodes the same
/// items (anything that dereferences to bytes).
///
/// [`Slab`]: crate::Slab
///
/// ```
/// use capacitor_pool::codec::LengthDelimitedEncoder;
/// use futures_util::SinkExt;
/// use tokio_util::codec::FramedWrite;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut sink = FramedWrite::new(Vec::new(), LengthDelimitedEncoder::new());
/// sink.send(&b"hi"[..]).await.unwrap();
/// sink.send(String::from("!")).await.unwrap();
/// assert_eq!(&sink.get_ref()[..], b"\0\0\0\x02hi\0\0\0\x01!");
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LengthDelimitedEncoder {
    pub(super) cfg: LengthDelimitedBuilder,
}

impl LengthDelimitedEncoder {
    /// An encoder with the default header (4-byte big-endian length, 8 MiB
    /// at most).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::codec::LengthDelimitedEncoder;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut encoder = LengthDelimitedEncoder::new();
    /// let mut dst = BytesMut::new();
    /// encoder.encode(&b"hello"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\0\0\0\x05hello");
    /// ```
    pub fn new() -> Self {
        LengthDelimitedBuilder::new().new_encoder().unwrap()
    }

    /// The maximum frame length.
    ///
    /// ```
    /// use capacitor_pool::codec::LengthDelimited;
    ///
    /// let encoder = LengthDelimited::builder().length_field_length(2).new_encoder().unwrap();
    /// assert_eq!(encoder.max_frame_length(), 65_535); // clamped to the field
    /// ```
    pub fn max_frame_length(&self) -> usize {
        self.cfg.max_frame_len
    }
}

/// Encodes any item that dereferences to bytes, as [`LengthDelimited`]
/// does.
impl<I> Encoder<I> for LengthDelimitedEncoder
where
    I: Deref,
    I::Target: AsRef<[u8]>,
{
    type Error = io::Error;

    fn encode(&mut self, item: I, dst: &mut BytesMut) -> io::Result<()> {
        self.cfg.encode_frame((*item).as_ref(), dst)
    }
}
