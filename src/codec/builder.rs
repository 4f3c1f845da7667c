//! [`LengthDelimitedBuilder`]: the header options of a [`LengthDelimited`]
//! codec, checked once, and the constructors of every type that uses them.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, FramedRead, FramedWrite};

use super::{BuildError, LengthDelimited, LengthDelimitedEncoder, MAX_HEADER_LENGTH};
use crate::slab::Slab;

/// The default maximum frame length: 8 MiB, as `LengthDelimitedCodec`.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::{DEFAULT_MAX_FRAME_LENGTH, LengthDelimited};
///
/// let codec = LengthDelimited::new(&Slab::new());
/// assert_eq!(codec.max_frame_length(), DEFAULT_MAX_FRAME_LENGTH);
/// ```
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

/// Configures a [`LengthDelimited`] codec, with the header options of
/// `tokio_util::codec::length_delimited::Builder`, the same defaults and the
/// same meaning (a 4-byte big-endian length at offset 0, counting the
/// payload only, 8 MiB at most).
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::LengthDelimited;
///
/// // A 2-byte little-endian length after a 1-byte tag, counting the whole
/// // frame (so -3), with the tag kept in the frame.
/// let codec = LengthDelimited::builder()
///     .length_field_offset(1)
///     .length_field_length(2)
///     .little_endian()
///     .length_adjustment(-3)
///     .num_skip(0)
///     .max_frame_length(64 * 1024)
///     .new_codec(&Slab::new()).unwrap();
/// # drop(codec);
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a builder does nothing until a `new_*` method is called"]
pub struct LengthDelimitedBuilder {
    pub(super) max_frame_len: usize,
    pub(super) length_field_len: usize,
    pub(super) length_field_offset: usize,
    pub(super) length_adjustment: isize,
    pub(super) num_skip: Option<usize>,
    pub(super) big_endian: bool,
}

impl Default for LengthDelimitedBuilder {
    fn default() -> Self {
        LengthDelimitedBuilder {
            max_frame_len: DEFAULT_MAX_FRAME_LENGTH,
            length_field_len: 4,
            length_field_offset: 0,
            length_adjustment: 0,
            num_skip: None,
            big_endian: true,
        }
    }
}

impl LengthDelimitedBuilder {
    /// A builder with the defaults.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimitedBuilder;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimitedBuilder::new().new_codec(&Slab::new()).unwrap();
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\0\0\0\x02hi"); // 4-byte big-endian length
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads and writes the length field big-endian (the default).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_length(2)
    ///     .big_endian()
    ///     .new_codec(&Slab::new()).unwrap();
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x00\x02hi");
    /// ```
    pub fn big_endian(mut self) -> Self {
        self.big_endian = true;
        self
    }

    /// Reads and writes the length field little-endian.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_length(2)
    ///     .little_endian()
    ///     .new_codec(&Slab::new()).unwrap();
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x02\x00hi");
    /// ```
    pub fn little_endian(mut self) -> Self {
        self.big_endian = false;
        self
    }

    /// Reads and writes the length field in the machine's byte order.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_length(2)
    ///     .native_endian()
    ///     .new_codec(&Slab::new()).unwrap();
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(dst[..2], 2u16.to_ne_bytes());
    /// ```
    pub fn native_endian(mut self) -> Self {
        self.big_endian = cfg!(target_endian = "big");
        self
    }

    /// The longest frame accepted; a longer length field is an
    /// `InvalidData` error before anything is allocated for the frame.
    /// Clamped to what the length field can express.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use std::io::ErrorKind;
    /// use tokio_util::codec::{Decoder, Encoder};
    ///
    /// let mut codec = LengthDelimited::builder().max_frame_length(4).new_codec(&Slab::new()).unwrap();
    /// let mut dst = BytesMut::new();
    /// let err = codec.encode(&b"hello"[..], &mut dst).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// let mut src = BytesMut::from(&b"\0\0\0\x05hello"[..]);
    /// assert_eq!(codec.decode(&mut src).unwrap_err().kind(), ErrorKind::InvalidData);
    /// ```
    pub fn max_frame_length(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    /// Bytes in the length field, 1 to 8 (4 by default).
    ///
    /// # Panics
    /// Outside 1 to 8, as `LengthDelimitedCodec`'s builder does.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder().length_field_length(1).new_codec(&Slab::new()).unwrap();
    /// assert_eq!(codec.max_frame_length(), 255); // what one byte can say
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x02hi");
    /// ```
    pub fn length_field_length(mut self, len: usize) -> Self {
        self.length_field_len = len;
        self
    }

    /// Bytes of header before the length field (decoding only).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// // A 1-byte tag, then a 2-byte length; the whole header is skipped.
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_offset(1)
    ///     .length_field_length(2)
    ///     .new_codec(&Slab::new()).unwrap();
    /// let mut src = BytesMut::from(&b"\x07\x00\x02hi"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hi");
    /// ```
    pub fn length_field_offset(mut self, offset: usize) -> Self {
        self.length_field_offset = offset;
        self
    }

    /// Added to the length field to give the payload length (e.g. `-4`
    /// when the field counts itself).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// // The length field counts its own 4 bytes.
    /// let mut codec = LengthDelimited::builder().length_adjustment(-4).new_codec(&Slab::new()).unwrap();
    /// let mut src = BytesMut::from(&b"\0\0\0\x06hi"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hi");
    /// ```
    pub fn length_adjustment(mut self, adjustment: isize) -> Self {
        self.length_adjustment = adjustment;
        self
    }

    /// Header bytes dropped before the frame (decoding only); by default
    /// the whole header (`length_field_offset + length_field_length`).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// // Keep the header in the frame: skip nothing, and count the header in.
    /// let mut codec = LengthDelimited::builder()
    ///     .num_skip(0)
    ///     .length_adjustment(4)
    ///     .new_codec(&Slab::new()).unwrap();
    /// let mut src = BytesMut::from(&b"\0\0\0\x02hi"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"\0\0\0\x02hi");
    /// ```
    pub fn num_skip(mut self, skip: usize) -> Self {
        self.num_skip = Some(skip);
        self
    }

    /// A codec with this configuration, whose frames come from `slab`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let slab = Slab::new();
    /// let mut codec = LengthDelimited::builder().new_codec(&slab).unwrap();
    /// let mut src = BytesMut::from(&b"\0\0\0\x02hi"[..]);
    /// let frame = codec.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&frame[..], b"hi");
    /// assert_eq!(slab.stats().num_in_use(), 1); // the frame's chunk
    /// ```
    pub fn new_codec(&self, slab: &Slab) -> Result<LengthDelimited, BuildError> {
        Ok(LengthDelimited::with_checked(self.checked()?, slab))
    }

    /// An encoder with this configuration, for a connection that only
    /// writes frames: no [`Slab`] needed.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut encoder = LengthDelimited::builder().length_field_length(2).new_encoder().unwrap();
    /// let mut dst = BytesMut::new();
    /// encoder.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x00\x02hi");
    /// ```
    pub fn new_encoder(&self) -> Result<LengthDelimitedEncoder, BuildError> {
        Ok(LengthDelimitedEncoder {
            cfg: self.checked()?,
        })
    }

    /// A `FramedRead` over `io` with this codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use futures_util::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let io: &[u8] = b"\0\0\0\x02hi\0\0\0\x01!";
    /// let mut frames = LengthDelimited::builder().new_read(io, &Slab::new()).unwrap();
    /// assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"hi");
    /// assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"!");
    /// assert!(frames.next().await.is_none());
    /// # }
    /// ```
    pub fn new_read<T: AsyncRead>(
        &self,
        io: T,
        slab: &Slab,
    ) -> Result<FramedRead<T, LengthDelimited>, BuildError> {
        Ok(FramedRead::new(io, self.new_codec(slab)?))
    }

    /// A `FramedWrite` over `io` with this codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use futures_util::SinkExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut sink = LengthDelimited::builder()
    ///     .length_field_length(1)
    ///     .new_write(Vec::new(), &Slab::new()).unwrap();
    /// sink.send(&b"hi"[..]).await.unwrap();
    /// assert_eq!(&sink.get_ref()[..], b"\x02hi");
    /// # }
    /// ```
    pub fn new_write<T: AsyncWrite>(
        &self,
        io: T,
        slab: &Slab,
    ) -> Result<FramedWrite<T, LengthDelimited>, BuildError> {
        Ok(FramedWrite::new(io, self.new_codec(slab)?))
    }

    /// A `Framed` over `io` with this codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use futures_util::{SinkExt, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut a = LengthDelimited::builder().new_framed(a, &slab).unwrap();
    /// let mut b = LengthDelimited::builder().new_framed(b, &slab).unwrap();
    /// a.send(&b"ping"[..]).await.unwrap();
    /// assert_eq!(&b.next().await.unwrap().unwrap()[..], b"ping");
    /// # }
    /// ```
    pub fn new_framed<T: AsyncRead + AsyncWrite>(
        &self,
        io: T,
        slab: &Slab,
    ) -> Result<Framed<T, LengthDelimited>, BuildError> {
        Ok(Framed::new(io, self.new_codec(slab)?))
    }

    /// This configuration, checked, with the maximum frame length clamped
    /// to what the length field can give.
    fn checked(&self) -> Result<Self, BuildError> {
        if !(1..=8).contains(&self.length_field_len) {
            return Err(BuildError::LengthFieldLength(self.length_field_len));
        }
        let field_end = self
            .length_field_offset
            .saturating_add(self.length_field_len);
        let head = field_end.max(self.num_skip.unwrap_or(0));
        if head > MAX_HEADER_LENGTH {
            return Err(BuildError::HeaderTooLong {
                len: head,
                max: MAX_HEADER_LENGTH,
            });
        }
        let mut cfg = *self;
        cfg.max_frame_len = cfg.max_frame_len.min(cfg.max_allowed());
        Ok(cfg)
    }

    pub(super) fn head_len(&self) -> usize {
        (self.length_field_offset + self.length_field_len).max(self.num_skip.unwrap_or(0))
    }

    pub(super) fn skip(&self) -> usize {
        self.num_skip
            .unwrap_or(self.length_field_offset + self.length_field_len)
    }

    pub(super) fn max_field_value(&self) -> u64 {
        if self.length_field_len >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * self.length_field_len)) - 1
        }
    }

    fn max_allowed(&self) -> usize {
        let max = self
            .max_field_value()
            .saturating_add_signed(self.length_adjustment as i64);
        usize::try_from(max).unwrap_or(usize::MAX)
    }
}
