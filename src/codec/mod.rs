//! `tokio_util::codec` integration (feature `codec`): frames in slab
//! chunks, pooled `Framed` buffers, and backpressure on slab capacity.
//!
//! See [`LengthDelimited`] for the native decoder, [`SlabDecoder`] to wrap
//! any other decoder, [`PooledFramed`] for pooled connection buffers and
//! [`Backpressure`] for the stream wrapper that waits for slab capacity.
//!
//! # Why
//!
//! `tokio_util`'s `LengthDelimitedCodec` hands out each frame as a
//! `split_to` view of the connection's read buffer. A frame kept by another
//! task keeps the whole buffer alive (one 100-byte frame pins 8 KiB or
//! more), the read buffer must then be reallocated, and a frame longer than
//! the buffer grows it. Here each frame is copied once, as it arrives, into
//! a slab chunk of its own size class: a kept frame pins only its chunk,
//! the read buffer stays small and is reused, and in the steady state
//! nothing is allocated.

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead, FramedWrite};

use crate::guard::{OwnedPooled, PoolKind, Pooled};
use crate::pool::Pool;
use crate::reset::Recycle;
use crate::slab::{Slab, SlabBuf, SlabWait};
use crate::worker::WorkerPool;
use crate::worker::statics::{SlotKey, StaticWorkerPool};

mod error;
pub use self::error::{BuildError, FrameError, MAX_HEADER_LENGTH};

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
    max_frame_len: usize,
    length_field_len: usize,
    length_field_offset: usize,
    length_adjustment: isize,
    num_skip: Option<usize>,
    big_endian: bool,
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
        Ok(LengthDelimited {
            cfg: self.checked()?,
            slab: slab.clone(),
            state: State::Head,
        })
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

    fn encode_frame(&self, data: &[u8], dst: &mut BytesMut) -> io::Result<()> {
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

    fn head_len(&self) -> usize {
        (self.length_field_offset + self.length_field_len).max(self.num_skip.unwrap_or(0))
    }

    fn skip(&self) -> usize {
        self.num_skip
            .unwrap_or(self.length_field_offset + self.length_field_len)
    }

    fn max_field_value(&self) -> u64 {
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

#[derive(Debug)]
enum State {
    /// Waiting for a header.
    Head,
    /// Filling `frame` up to `len` bytes. The chunk's first `init` bytes
    /// (at least those written) were written or zeroed for this frame:
    /// bytes past them may hold a previous user's data and are never handed
    /// out as initialized (see [`LengthDelimited::poll_read_payload`]).
    Data {
        frame: SlabBuf,
        len: usize,
        init: usize,
    },
}

/// A length-delimited codec whose frames are [`SlabBuf`]s: each payload is
/// written into a slab chunk of its own size class as its bytes arrive, so
/// that the read buffer never grows to hold a frame and a frame kept by
/// another task pins only its chunk. Wire-compatible with
/// `tokio_util::codec::LengthDelimitedCodec` for the same header options.
///
/// Frames longer than the slab's largest class (64 KiB by default), or
/// arriving while their class is at its bound, are heap buffers of their
/// exact length ([`SlabBuf::is_pooled`] is then `false`; the slab's stats
/// count them). To wait for capacity instead, wrap the stream in
/// [`Backpressure`].
///
/// # Errors
/// A length field over [`max_frame_length`](LengthDelimitedBuilder::max_frame_length)
/// or one the adjustment takes out of range is an `InvalidData` error
/// before anything is allocated for the frame; a stream that ends inside
/// a frame is an `InvalidData` error ([`FrameError::Truncated`]), where
/// `LengthDelimitedCodec` says "bytes remaining on stream" (or, when the
/// stream stops right after a header, nothing at all). Encoding a
/// frame over the maximum is an `InvalidInput` error, as there.
///
/// # Encoding
/// It encodes any item that dereferences to bytes (`I: Deref`,
/// `I::Target: AsRef<[u8]>`): `&[u8]`, `&str`, `Bytes`, `BytesMut`,
/// `Vec<u8>`, `String`, [`SlabBuf`] and `&SlabBuf`, and the crate's guards
/// of `BytesMut`, `Vec<u8>` or `String` ([`Pooled`],
/// [`OwnedPooled`], [`RingGuard`](crate::RingGuard), ...), so a pooled
/// buffer is sent as it is, without `&buf[..]`. The guard drops, and its
/// buffer goes back to its pool, once the frame is copied into the write
/// buffer. To encode without a slab, use [`LengthDelimitedEncoder`].
///
/// ```
/// use bytes::Bytes;
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::LengthDelimited;
/// use futures_util::{SinkExt, StreamExt};
/// use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slab = Slab::new();
/// let (client, server) = tokio::io::duplex(64 * 1024);
/// // A plain tokio_util writer on one end ...
/// let mut tx = FramedWrite::new(client, LengthDelimitedCodec::new());
/// tx.send(Bytes::from("hello")).await.unwrap();
/// // ... and slab frames on the other.
/// let mut rx = FramedRead::new(server, LengthDelimited::new(&slab));
/// let frame = rx.next().await.unwrap().unwrap();
/// assert_eq!(&frame[..], b"hello");
/// assert!(frame.is_pooled());
/// # }
/// ```
#[derive(Debug)]
pub struct LengthDelimited {
    cfg: LengthDelimitedBuilder,
    slab: Slab,
    state: State,
}

impl Clone for LengthDelimited {
    /// A codec with the same options and slab, and a fresh decode state
    /// (no frame in progress), as `LengthDelimitedCodec`'s clone.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::builder().max_frame_length(1024).new_codec(&Slab::new()).unwrap();
    /// let mut src = BytesMut::from(&b"\0\0\0\x05he"[..]);
    /// assert!(codec.decode(&mut src).unwrap().is_none());
    /// let copy = codec.clone();
    /// assert_eq!(codec.pending_frame_len(), Some(5));
    /// assert_eq!(copy.pending_frame_len(), None); // starts at a header
    /// assert_eq!(copy.max_frame_length(), 1024);
    /// ```
    fn clone(&self) -> Self {
        LengthDelimited {
            cfg: self.cfg,
            slab: self.slab.clone(),
            state: State::Head,
        }
    }
}

impl LengthDelimited {
    /// A codec with the default header (4-byte big-endian length), whose
    /// frames come from `slab`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::new(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x05hello"[..]);
    /// let frame = codec.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&frame[..], b"hello");
    /// assert!(frame.is_pooled() && src.is_empty());
    /// ```
    pub fn new(slab: &Slab) -> Self {
        // The default configuration is valid (and within its field's range).
        LengthDelimited {
            cfg: LengthDelimitedBuilder::new(),
            slab: slab.clone(),
            state: State::Head,
        }
    }

    /// A builder for other header options.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::builder().length_field_length(2).new_codec(&Slab::new()).unwrap();
    /// let mut src = BytesMut::from(&b"\x00\x03abc"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"abc");
    /// ```
    pub fn builder() -> LengthDelimitedBuilder {
        LengthDelimitedBuilder::new()
    }

    /// The maximum frame length.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    ///
    /// let slab = Slab::new();
    /// let codec = LengthDelimited::builder().max_frame_length(1024).new_codec(&slab).unwrap();
    /// assert_eq!(codec.max_frame_length(), 1024);
    /// let codec = LengthDelimited::builder().length_field_length(1).new_codec(&slab).unwrap();
    /// assert_eq!(codec.max_frame_length(), 255); // clamped to the field
    /// ```
    pub fn max_frame_length(&self) -> usize {
        self.cfg.max_frame_len
    }

    /// The slab frames come from.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::new(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x02hi"[..]);
    /// let frame = codec.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(codec.slab().stats().num_in_use(), 1);
    /// drop(frame);
    /// assert_eq!(codec.slab().stats().num_in_use(), 0);
    /// ```
    pub fn slab(&self) -> &Slab {
        &self.slab
    }

    /// An encoder with this codec's options, for a task that only writes
    /// (the write half of a split connection).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Encoder;
    ///
    /// let codec = LengthDelimited::builder().little_endian().new_codec(&Slab::new()).unwrap();
    /// let mut encoder = codec.encoder();
    /// let mut dst = BytesMut::new();
    /// encoder.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x02\0\0\0hi");
    /// ```
    pub fn encoder(&self) -> LengthDelimitedEncoder {
        LengthDelimitedEncoder { cfg: self.cfg }
    }

    /// The length of the frame being decoded, if its header has been read.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::new(&Slab::new());
    /// assert_eq!(codec.pending_frame_len(), None);
    /// let mut src = BytesMut::from(&b"\0\0\0\x05he"[..]); // 2 of 5 bytes
    /// assert!(codec.decode(&mut src).unwrap().is_none());
    /// assert_eq!(codec.pending_frame_len(), Some(5));
    /// src.extend_from_slice(b"llo");
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hello");
    /// assert_eq!(codec.pending_frame_len(), None);
    /// ```
    pub fn pending_frame_len(&self) -> Option<usize> {
        match &self.state {
            State::Head => None,
            State::Data { len, .. } => Some(*len),
        }
    }

    /// The part of the frame being decoded that has not arrived yet, if at
    /// least `min` bytes (and at least one) are missing, as uninitialized
    /// memory: a reader can read the rest of a large payload straight into
    /// the frame's chunk, saving the copy through the read buffer, then count
    /// what it wrote with [`payload_advance`](Self::payload_advance). Call it
    /// where `decode` has just returned `None` (it then consumed the whole
    /// read buffer).
    ///
    /// The slice is an [`UninitSlice`](bytes::buf::UninitSlice), as
    /// [`BufMut::chunk_mut`] returns: it can be written, never read, so a
    /// chunk's previous contents cannot leak through it.
    /// [`poll_read_payload`](Self::poll_read_payload) does the whole read
    /// safely; [`SlabFramedRead`] uses it while 4 KiB or more are missing.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::new(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x05he"[..]);
    /// assert!(codec.decode(&mut src).unwrap().is_none());
    /// let room = codec.payload_room(1).unwrap(); // 3 bytes still to come
    /// assert_eq!(room.len(), 3);
    /// room.copy_from_slice(b"llo"); // as a socket read would
    /// // SAFETY: the 3 bytes were written just above.
    /// unsafe { codec.payload_advance(3) };
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hello");
    /// assert!(codec.payload_room(1).is_none()); // no frame in progress
    /// ```
    pub fn payload_room(&mut self, min: usize) -> Option<&mut bytes::buf::UninitSlice> {
        let State::Data { frame, len, .. } = &mut self.state else {
            return None;
        };
        let missing = *len - frame.len();
        if missing < min.max(1) {
            return None;
        }
        Some(&mut frame.chunk_mut()[..missing])
    }

    /// Counts `n` bytes written at the front of the slice
    /// [`payload_room`](Self::payload_room) gave as received. More than
    /// that slice's length counts as its length; with no frame in progress
    /// it does nothing.
    ///
    /// # Safety
    /// The first `n` bytes of that slice (or all of it, if `n` is larger)
    /// were written since `payload_room` returned it: they become part of
    /// the frame, and bytes not written would show what the chunk held
    /// before, a previous frame's data. This is the contract of
    /// [`BufMut::advance_mut`].
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::new(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x04"[..]);
    /// assert!(codec.decode(&mut src).unwrap().is_none());
    /// codec.payload_room(1).unwrap()[..2].copy_from_slice(b"ab");
    /// // SAFETY: 2 bytes written just above.
    /// unsafe { codec.payload_advance(2) };
    /// assert_eq!(codec.payload_room(1).unwrap().len(), 2);
    /// ```
    pub unsafe fn payload_advance(&mut self, n: usize) {
        if let State::Data { frame, len, init } = &mut self.state {
            let n = n.min(*len - frame.len());
            // SAFETY: `n` is within the room `payload_room` gave (clamped
            // above), and the caller wrote those bytes.
            unsafe { frame.advance_mut(n) };
            *init = (*init).max(frame.len());
        }
    }

    /// Reads from `reader` straight into the frame being decoded, if at
    /// least `min` bytes (and at least one) of it are missing; `None` if
    /// not (read into the read buffer then). `Some(Ready(Ok(0)))` is the
    /// end of the stream. Call it where `decode` has just returned `None`.
    ///
    /// The reader gets the unwritten part of the chunk as a
    /// [`ReadBuf`](tokio::io::ReadBuf) over uninitialized memory: it sees
    /// no byte of the chunk's previous user, even if it inspects the buffer
    /// before writing. What it initializes (written, or zeroed by
    /// [`ReadBuf::initialize_unfilled`](tokio::io::ReadBuf::initialize_unfilled))
    /// is remembered for the frame, so that the next read does not zero it
    /// again.
    ///
    /// ```
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll, Waker};
    ///
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::LengthDelimited;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::new(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x05he"[..]);
    /// assert!(codec.decode(&mut src).unwrap().is_none());
    /// let mut reader = &b"llo"[..]; // the socket
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let read = codec.poll_read_payload(&mut cx, Pin::new(&mut reader), 1);
    /// assert!(matches!(read, Some(Poll::Ready(Ok(3)))));
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hello");
    /// ```
    pub fn poll_read_payload<R: AsyncRead + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        reader: Pin<&mut R>,
        min: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        let State::Data { frame, len, init } = &mut self.state else {
            return None;
        };
        let filled = frame.len();
        let missing = *len - filled;
        if missing < min.max(1) {
            return None;
        }
        // Bytes `filled..known` were written or zeroed for this frame.
        let known = (*init).max(filled).min(*len);
        let room = &mut frame.chunk_mut()[..missing];
        // SAFETY: `ReadBuf` writes only initialized bytes into the slice
        // (its safe API cannot de-initialize), and nothing reads it before
        // the reader initializes it.
        let mut buf = tokio::io::ReadBuf::uninit(unsafe { room.as_uninit_slice_mut() });
        // SAFETY: `known - filled` bytes at the front were initialized for
        // this frame (by this reader, or zeroed by `ReadBuf`): they hold no
        // previous user's data.
        unsafe { buf.assume_init(known - filled) };
        let polled = reader.poll_read(cx, &mut buf);
        let (n, initialized) = (buf.filled().len(), buf.initialized().len());
        *init = known.max(filled + initialized);
        Some(polled.map(|read| {
            read.map(|()| {
                // SAFETY: `ReadBuf` guarantees its filled part is
                // initialized, and it is the front of the room.
                unsafe { frame.advance_mut(n) };
                n
            })
        }))
    }

    /// Parses a header at the front of `src`: the payload length, checked.
    fn parse_head(&self, src: &[u8]) -> Result<usize, FrameError> {
        let cfg = &self.cfg;
        let raw = read_field(
            &src[cfg.length_field_offset..cfg.length_field_offset + cfg.length_field_len],
            cfg.big_endian,
        );
        if raw > cfg.max_frame_len as u64 {
            return Err(FrameError::TooLong {
                len: raw,
                max: cfg.max_frame_len,
            });
        }
        let raw = raw as usize; // checked above: no wider than usize
        let len = if cfg.length_adjustment < 0 {
            raw.checked_sub(cfg.length_adjustment.unsigned_abs())
        } else {
            raw.checked_add(cfg.length_adjustment as usize)
        };
        len.ok_or(FrameError::BadAdjustment)
    }

    /// Moves as much of `src` as the frame still needs into it.
    fn fill(frame: &mut SlabBuf, len: usize, src: &mut BytesMut) -> bool {
        let take = (len - frame.len()).min(src.len());
        frame.extend_from_slice(&src[..take]);
        src.advance(take);
        frame.len() == len
    }
}

/// Reads a length field of 1 to 8 bytes; the common widths compile to one
/// load and a byte swap.
#[inline(always)]
fn read_field(field: &[u8], big_endian: bool) -> u64 {
    fn fixed<const N: usize>(field: &[u8]) -> [u8; N] {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(&field[..N]);
        bytes
    }
    match (field.len(), big_endian) {
        (2, true) => u16::from_be_bytes(fixed(field)).into(),
        (2, false) => u16::from_le_bytes(fixed(field)).into(),
        (4, true) => u32::from_be_bytes(fixed(field)).into(),
        (4, false) => u32::from_le_bytes(fixed(field)).into(),
        (8, true) => u64::from_be_bytes(fixed(field)),
        (8, false) => u64::from_le_bytes(fixed(field)),
        (n, true) => (&field[..]).get_uint(n),
        (n, false) => (&field[..]).get_uint_le(n),
    }
}

impl Decoder for LengthDelimited {
    type Item = SlabBuf;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<SlabBuf>> {
        if let State::Head = self.state {
            let head = self.cfg.head_len();
            if src.len() < head {
                src.reserve(head - src.len());
                return Ok(None);
            }
            let len = self.parse_head(src)?;
            let skip = self.cfg.skip();
            let mut frame = self.slab.alloc_or_heap(len);
            let end = skip + len;
            if src.len() >= end {
                // The whole frame is here (the common case): one copy, one
                // advance, and the frame goes straight to the caller.
                frame.extend_from_slice(&src[skip..end]);
                src.advance(end);
                return Ok(Some(frame));
            }
            frame.extend_from_slice(&src[skip..]);
            // Advanced, not cleared: a cleared `BytesMut` keeps its read
            // position, so the next `reserve` would not take the room back.
            src.advance(src.len());
            let init = frame.len();
            self.state = State::Data { frame, len, init };
            return Ok(None);
        }
        let State::Data { frame, len, .. } = &mut self.state else {
            unreachable!("the Head state returned above")
        };
        if !Self::fill(frame, *len, src) {
            return Ok(None);
        }
        match std::mem::replace(&mut self.state, State::Head) {
            State::Data { frame, .. } => Ok(Some(frame)),
            State::Head => unreachable!("matched above"),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<SlabBuf>> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let received = match std::mem::replace(&mut self.state, State::Head) {
            State::Data { frame, .. } => frame.len() + self.cfg.skip() + src.len(),
            State::Head if src.is_empty() => return Ok(None),
            State::Head => src.len(),
        };
        src.clear();
        Err(FrameError::Truncated { received }.into())
    }
}

/// [`SlabFramedRead`]'s read buffer size (`FramedRead`'s too).
const READ_BUF_CAPACITY: usize = 8 * 1024;
/// The write buffer length past which a sink flushes before it takes
/// another frame (`FramedWrite`'s default).
const BACKPRESSURE_BOUNDARY: usize = 8 * 1024;
/// The smallest missing payload that [`SlabFramedRead`] reads straight
/// into its chunk: half its read buffer. Below it a buffered read is
/// better, since it brings the next frames' bytes along. A reader of your
/// own can pass it to [`LengthDelimited::payload_room`].
///
/// ```
/// use bytes::BytesMut;
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::{DIRECT_READ_MIN, LengthDelimited};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LengthDelimited::new(&Slab::new());
/// let mut src = BytesMut::from(&20_000u32.to_be_bytes()[..]);
/// assert!(codec.decode(&mut src).unwrap().is_none());
/// assert_eq!(codec.payload_room(DIRECT_READ_MIN).unwrap().len(), 20_000);
/// ```
pub const DIRECT_READ_MIN: usize = 4 * 1024;

/// The reading side of [`SlabFramedRead`] and [`SlabFramed`].
struct ReadState<P: PoolKind<BytesMut> + 'static> {
    codec: LengthDelimited,
    buf: Buffer<P>,
    eof: bool,
    done: bool,
}

impl<P: PoolKind<BytesMut> + 'static> ReadState<P> {
    fn new(codec: LengthDelimited, buf: Buffer<P>) -> Self {
        ReadState {
            codec,
            buf,
            eof: false,
            done: false,
        }
    }

    fn poll_next<R: AsyncRead + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
    ) -> Poll<Option<io::Result<SlabBuf>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) if self.eof => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            // More bytes needed: the rest of a large payload straight into
            // its chunk, anything else through the buffer.
            let read = match self
                .codec
                .poll_read_payload(cx, reader.as_mut(), DIRECT_READ_MIN)
            {
                Some(read) => ready!(read),
                None => {
                    self.buf.reserve(1);
                    ready!(tokio_util::io::poll_read_buf(
                        reader.as_mut(),
                        cx,
                        &mut *self.buf
                    ))
                }
            };
            match read {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

pin_project! {
    /// A `FramedRead` for [`LengthDelimited`] that reads the payload of a
    /// large frame straight into its slab chunk.
    ///
    /// `FramedRead` reads into a buffer and the decoder copies each payload
    /// from there into its chunk: two copies of every byte, where
    /// `LengthDelimitedCodec` makes one (and allocates a buffer per large
    /// frame instead). `SlabFramedRead` reads headers and small frames
    /// through an 8 KiB buffer like `FramedRead`, but while a frame still
    /// misses 4 KiB or more it reads the rest from the socket into the
    /// chunk itself: one copy, no allocation. Never more than the frame's
    /// own bytes, so the next frame's bytes stay in the socket for the
    /// buffered read.
    ///
    /// It yields `io::Result<SlabBuf>` items, like
    /// `FramedRead<_, LengthDelimited>`, and ends after the first error.
    /// Wrap it in [`Backpressure`] to hold the reads while the slab is full.
    /// [`with_pool`](SlabFramedRead::with_pool) takes its read buffer from
    /// a pool (`P` names the pool's type; the default is for
    /// [`new`](SlabFramedRead::new), whose buffer is its own). To write
    /// frames on the same connection, use [`SlabFramed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramedRead};
    /// use futures_util::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut wire = Vec::new();
    /// for payload in [&[7u8; 20_000][..], b"small"] {
    ///     wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    ///     wire.extend_from_slice(payload);
    /// }
    /// let slab = Slab::new();
    /// let mut frames = SlabFramedRead::new(&wire[..], LengthDelimited::new(&slab));
    /// let big = frames.next().await.unwrap().unwrap();
    /// assert!(big.len() == 20_000 && big.is_pooled());
    /// assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"small");
    /// assert!(frames.next().await.is_none());
    /// # }
    /// ```
    pub struct SlabFramedRead<R, P = WorkerPool<BytesMut>>
    where
        P: PoolKind<BytesMut>,
        P: 'static,
    {
        #[pin]
        reader: R,
        read: ReadState<P>,
    }
}

impl<R> SlabFramedRead<R> {
    /// Frames from `reader`, decoded by `codec`, through a read buffer of
    /// its own.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b""[..], LengthDelimited::new(&Slab::new()));
    /// assert_eq!(frames.read_buffer().capacity(), 8 * 1024);
    /// ```
    pub fn new(reader: R, codec: LengthDelimited) -> Self {
        let buf = Buffer::Own(BytesMut::with_capacity(READ_BUF_CAPACITY));
        Self {
            reader,
            read: ReadState::new(codec, buf),
        }
    }
}

impl<R, P: PoolKind<BytesMut> + 'static> SlabFramedRead<R, P> {
    /// Frames from `reader`, decoded by `codec`, through a read buffer
    /// taken from `pool` (any [`FramedPool`]: an `&Arc` of a pool, or a
    /// [`worker_pool!`](crate::worker_pool) static); the buffer goes back,
    /// cleared, when the stream drops.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{Slab, worker_pool};
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramedRead};
    /// use futures_util::StreamExt;
    ///
    /// worker_pool! {
    ///     static BUFFERS: WorkerPool<BytesMut> =
    ///         WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024));
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let io: &[u8] = b"\0\0\0\x02hi";
    /// let mut frames = SlabFramedRead::with_pool(io, LengthDelimited::new(&Slab::new()), &BUFFERS);
    /// assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"hi");
    /// drop(frames);
    /// assert_eq!(BUFFERS.stats().num_in_use, 0); // the buffer is back
    /// # }
    /// ```
    pub fn with_pool<S: FramedPool<Pool = P>>(reader: R, codec: LengthDelimited, pool: S) -> Self {
        Self {
            reader,
            read: ReadState::new(codec, Buffer::lent(pool.get_buffer())),
        }
    }

    /// The codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b""[..], LengthDelimited::new(&Slab::new()));
    /// assert_eq!(frames.codec().pending_frame_len(), None);
    /// ```
    pub fn codec(&self) -> &LengthDelimited {
        &self.read.codec
    }

    /// The bytes read but not decoded yet.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b""[..], LengthDelimited::new(&Slab::new()));
    /// assert!(frames.read_buffer().is_empty());
    /// ```
    pub fn read_buffer(&self) -> &BytesMut {
        &self.read.buf
    }

    /// The reader.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b"abc"[..], LengthDelimited::new(&Slab::new()));
    /// assert_eq!(*frames.get_ref(), b"abc");
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The reader, the codec and the bytes read but not decoded (copied
    /// out of a pooled read buffer, which goes back to its pool).
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b"abc"[..], LengthDelimited::new(&Slab::new()));
    /// let (reader, _codec, buffered) = frames.into_parts();
    /// assert_eq!((reader, buffered.len()), (&b"abc"[..], 0));
    /// ```
    pub fn into_parts(self) -> (R, LengthDelimited, BytesMut) {
        (self.reader, self.read.codec, self.read.buf.into_bytes())
    }
}

impl<R: AsyncRead, P: PoolKind<BytesMut> + 'static> Stream for SlabFramedRead<R, P> {
    type Item = io::Result<SlabBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        this.read.poll_next(cx, this.reader)
    }
}

impl<R: fmt::Debug, P: PoolKind<BytesMut> + 'static> fmt::Debug for SlabFramedRead<R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabFramedRead")
            .field("reader", &self.reader)
            .field("codec", &self.read.codec)
            .field("buf", &self.read.buf)
            .field("eof", &self.read.eof)
            .field("done", &self.read.done)
            .finish()
    }
}

pin_project! {
    /// [`SlabFramedRead`] and a writer in one: a `Stream` of
    /// `io::Result<SlabBuf>` frames, read as `SlabFramedRead` reads them
    /// (large payloads straight into their slab chunks), and a `Sink` of
    /// anything [`LengthDelimited`] encodes (`&[u8]`, `Bytes`, [`SlabBuf`],
    /// pooled buffers, ...), written through an encode buffer, on one
    /// connection and with one codec: no split of the socket, no
    /// `FramedWrite` beside it.
    ///
    /// [`new`](SlabFramed::new) gives it buffers of its own;
    /// [`with_pool`](SlabFramed::with_pool) takes both from a pool (`P`
    /// names the pool's type) and gives them back when it drops. The sink
    /// flushes before it takes a frame once 8 KiB are waiting, as
    /// `FramedWrite` does.
    ///
    /// The stream ends after its first error (a bad frame, or the socket's),
    /// as `SlabFramedRead`'s does; the sink stays usable, so a server can
    /// reply why before it hangs up. The sink takes many item types, so a
    /// bare `flush` or `close` names one:
    /// `SinkExt::<&[u8]>::flush(&mut conn)` (`send` and `feed` take it from
    /// their argument).
    ///
    /// # Examples
    ///
    /// An echo server: each frame goes back as it came, its chunk
    /// returning to the slab once it is written.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    /// use futures_util::{SinkExt, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let (client, server) = tokio::io::duplex(64 * 1024);
    /// let codec = LengthDelimited::new(&slab);
    /// tokio::spawn(async move {
    ///     let mut conn = SlabFramed::new(server, codec);
    ///     while let Some(frame) = conn.next().await {
    ///         conn.send(frame.unwrap()).await.unwrap();
    ///     }
    /// });
    /// let mut client = SlabFramed::new(client, LengthDelimited::new(&slab));
    /// client.send(&b"ping"[..]).await.unwrap();
    /// assert_eq!(&client.next().await.unwrap().unwrap()[..], b"ping");
    /// # }
    /// ```
    pub struct SlabFramed<T, P = WorkerPool<BytesMut>>
    where
        P: PoolKind<BytesMut>,
        P: 'static,
    {
        #[pin]
        io: T,
        read: ReadState<P>,
        write: Buffer<P>,
    }
}

impl<T> SlabFramed<T> {
    /// Frames over `io`, decoded and encoded by `codec`, through read and
    /// write buffers of its own.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    ///
    /// let (io, _peer) = tokio::io::duplex(1024);
    /// let framed = SlabFramed::new(io, LengthDelimited::new(&Slab::new()));
    /// assert_eq!(framed.read_buffer().capacity(), 8 * 1024);
    /// assert!(framed.write_buffer().is_empty());
    /// ```
    pub fn new(io: T, codec: LengthDelimited) -> Self {
        SlabFramed {
            io,
            read: ReadState::new(
                codec,
                Buffer::Own(BytesMut::with_capacity(READ_BUF_CAPACITY)),
            ),
            write: Buffer::Own(BytesMut::new()),
        }
    }
}

impl<T, P: PoolKind<BytesMut> + 'static> SlabFramed<T, P> {
    /// Frames over `io`, decoded and encoded by `codec`, through a read
    /// and a write buffer taken from `pool` (any [`FramedPool`]); both go
    /// back, cleared, when it drops.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{Slab, worker_pool};
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    /// use futures_util::{SinkExt, StreamExt};
    ///
    /// worker_pool! {
    ///     static BUFFERS: WorkerPool<BytesMut> =
    ///         WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024));
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut a = SlabFramed::with_pool(a, LengthDelimited::new(&slab), &BUFFERS);
    /// let mut b = SlabFramed::with_pool(b, LengthDelimited::new(&slab), &BUFFERS);
    /// a.send(&b"ping"[..]).await.unwrap();
    /// assert_eq!(&b.next().await.unwrap().unwrap()[..], b"ping");
    /// assert_eq!(BUFFERS.stats().num_in_use, 4);
    /// drop((a, b));
    /// assert_eq!(BUFFERS.stats().num_in_use, 0);
    /// # }
    /// ```
    pub fn with_pool<S: FramedPool<Pool = P>>(io: T, codec: LengthDelimited, pool: S) -> Self {
        SlabFramed {
            io,
            read: ReadState::new(codec, Buffer::lent(pool.get_buffer())),
            write: Buffer::lent(pool.get_buffer()),
        }
    }

    /// The codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    ///
    /// let framed = SlabFramed::new(tokio::io::empty(), LengthDelimited::new(&Slab::new()));
    /// assert_eq!(framed.codec().pending_frame_len(), None);
    /// ```
    pub fn codec(&self) -> &LengthDelimited {
        &self.read.codec
    }

    /// The bytes read but not decoded yet.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    ///
    /// let framed = SlabFramed::new(tokio::io::empty(), LengthDelimited::new(&Slab::new()));
    /// assert!(framed.read_buffer().is_empty());
    /// ```
    pub fn read_buffer(&self) -> &BytesMut {
        &self.read.buf
    }

    /// The frames encoded but not written yet.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    /// use futures_util::SinkExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut framed = SlabFramed::new(Vec::new(), LengthDelimited::new(&Slab::new()));
    /// framed.feed(&b"hi"[..]).await.unwrap(); // encoded, not flushed
    /// assert_eq!(&framed.write_buffer()[..], b"\0\0\0\x02hi");
    /// SinkExt::<&[u8]>::flush(&mut framed).await.unwrap();
    /// assert!(framed.write_buffer().is_empty());
    /// assert_eq!(&framed.get_ref()[..], b"\0\0\0\x02hi");
    /// # }
    /// ```
    pub fn write_buffer(&self) -> &BytesMut {
        &self.write
    }

    /// The I/O object.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    ///
    /// let framed = SlabFramed::new(Vec::<u8>::new(), LengthDelimited::new(&Slab::new()));
    /// assert!(framed.get_ref().is_empty());
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The I/O object, mutably. Reading or writing it directly can lose
    /// bytes buffered here.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    ///
    /// let mut framed = SlabFramed::new(Vec::<u8>::new(), LengthDelimited::new(&Slab::new()));
    /// framed.get_mut().extend_from_slice(b"raw");
    /// assert_eq!(&framed.get_ref()[..], b"raw");
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Unwraps the I/O object; bytes buffered here are lost.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{LengthDelimited, SlabFramed};
    ///
    /// let framed = SlabFramed::new(Vec::<u8>::new(), LengthDelimited::new(&Slab::new()));
    /// let io: Vec<u8> = framed.into_inner();
    /// assert!(io.is_empty());
    /// ```
    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: AsyncRead, P: PoolKind<BytesMut> + 'static> Stream for SlabFramed<T, P> {
    type Item = io::Result<SlabBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        this.read.poll_next(cx, this.io)
    }
}

impl<T, P, I> Sink<I> for SlabFramed<T, P>
where
    T: AsyncWrite,
    P: PoolKind<BytesMut> + 'static,
    LengthDelimited: Encoder<I, Error = io::Error>,
{
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write.len() >= BACKPRESSURE_BOUNDARY {
            <Self as Sink<I>>::poll_flush(self, cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, item: I) -> io::Result<()> {
        let this = self.project();
        this.read.codec.encode(item, this.write)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        while !this.write.is_empty() {
            let n = ready!(tokio_util::io::poll_write_buf(
                this.io.as_mut(),
                cx,
                &mut **this.write
            ))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write frame to transport",
                )));
            }
        }
        this.io.poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(<Self as Sink<I>>::poll_flush(self.as_mut(), cx))?;
        self.project().io.poll_shutdown(cx)
    }
}

impl<T: fmt::Debug, P: PoolKind<BytesMut> + 'static> fmt::Debug for SlabFramed<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabFramed")
            .field("io", &self.io)
            .field("codec", &self.read.codec)
            .field("read_buf", &self.read.buf)
            .field("write_buf", &*self.write)
            .finish()
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
    cfg: LengthDelimitedBuilder,
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

/// Wraps any decoder whose frames are bytes (`BytesMut` from
/// `LengthDelimitedCodec` or `BytesCodec`, `String` from `LinesCodec`, your
/// own) and hands out each frame copied into a slab chunk of its size, so
/// the frame no longer pins the connection's read buffer. Encoding goes to
/// the wrapped codec unchanged.
///
/// ```
/// use capacitor_pool::Slab;
/// use capacitor_pool::codec::SlabDecoder;
/// use futures_util::StreamExt;
/// use tokio_util::codec::{FramedRead, LinesCodec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slab = Slab::new();
/// let io: &[u8] = b"first\nsecond\n";
/// let mut lines = FramedRead::new(io, SlabDecoder::new(LinesCodec::new(), &slab));
/// assert_eq!(&lines.next().await.unwrap().unwrap()[..], b"first");
/// assert_eq!(&lines.next().await.unwrap().unwrap()[..], b"second");
/// # }
/// ```
#[derive(Debug)]
pub struct SlabDecoder<D> {
    inner: D,
    slab: Slab,
}

impl<D> SlabDecoder<D> {
    /// Wraps `inner`; frames come from `slab`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::{BytesCodec, Decoder};
    ///
    /// let mut decoder = SlabDecoder::new(BytesCodec::new(), &Slab::new());
    /// let mut src = BytesMut::from("abc");
    /// let frame = decoder.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&frame[..], b"abc");
    /// assert!(frame.is_pooled());
    /// ```
    pub fn new(inner: D, slab: &Slab) -> Self {
        SlabDecoder {
            inner,
            slab: slab.clone(),
        }
    }

    /// The wrapped codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::LinesCodec;
    ///
    /// let decoder = SlabDecoder::new(LinesCodec::new_with_max_length(80), &Slab::new());
    /// assert_eq!(decoder.get_ref().max_length(), 80);
    /// ```
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The wrapped codec, mutably.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::LengthDelimitedCodec;
    ///
    /// let mut decoder = SlabDecoder::new(LengthDelimitedCodec::new(), &Slab::new());
    /// decoder.get_mut().set_max_frame_length(16);
    /// assert_eq!(decoder.get_ref().max_frame_length(), 16);
    /// ```
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the codec.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::LinesCodec;
    ///
    /// let decoder = SlabDecoder::new(LinesCodec::new_with_max_length(80), &Slab::new());
    /// let lines: LinesCodec = decoder.into_inner();
    /// assert_eq!(lines.max_length(), 80);
    /// ```
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// The slab frames come from.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::SlabDecoder;
    /// use tokio_util::codec::{Decoder, LinesCodec};
    ///
    /// let mut decoder = SlabDecoder::new(LinesCodec::new(), &Slab::new());
    /// let mut src = BytesMut::from("hello\n");
    /// let line = decoder.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&line[..], b"hello");
    /// assert_eq!(decoder.slab().stats().num_in_use(), 1);
    /// ```
    pub fn slab(&self) -> &Slab {
        &self.slab
    }
}

impl<D> Decoder for SlabDecoder<D>
where
    D: Decoder,
    D::Item: AsRef<[u8]>,
{
    type Item = SlabBuf;
    type Error = D::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SlabBuf>, D::Error> {
        Ok(self
            .inner
            .decode(src)?
            .map(|frame| self.slab.copy_from_slice(frame.as_ref())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<SlabBuf>, D::Error> {
        Ok(self
            .inner
            .decode_eof(src)?
            .map(|frame| self.slab.copy_from_slice(frame.as_ref())))
    }
}

impl<D: Encoder<I>, I> Encoder<I> for SlabDecoder<D> {
    type Error = D::Error;

    fn encode(&mut self, item: I, dst: &mut BytesMut) -> Result<(), D::Error> {
        self.inner.encode(item, dst)
    }
}

/// A framed transport that can lend its read and write buffers.
///
/// Implemented for `Framed`, `FramedRead` and `FramedWrite`; sealed.
///
/// ```
/// use capacitor_pool::codec::FramedBuffers;
/// use tokio_util::codec::{BytesCodec, FramedRead, FramedWrite};
///
/// fn buffers<F: FramedBuffers>(f: &mut F) -> (bool, bool) {
///     (f.read_buf().is_some(), f.write_buf().is_some())
/// }
/// let io: &[u8] = b"";
/// assert_eq!(buffers(&mut FramedRead::new(io, BytesCodec::new())), (true, false));
/// let sink = Vec::<u8>::new();
/// assert_eq!(buffers(&mut FramedWrite::new(sink, BytesCodec::new())), (false, true));
/// ```
pub trait FramedBuffers: sealed::Sealed {
    /// The read buffer, if the transport has one.
    fn read_buf(&mut self) -> Option<&mut BytesMut>;
    /// The write buffer, if the transport has one.
    fn write_buf(&mut self) -> Option<&mut BytesMut>;
}

mod sealed {
    pub trait Sealed {}
}

/// A guard whose `BytesMut` a [`PooledFramed`], [`SlabFramedRead`] or
/// [`SlabFramed`] can use as a connection buffer: an [`OwnedPooled`] (from
/// a pool in an `Arc`, by `get_owned`) or a `'static` [`Pooled`] (from a
/// pool in a `static`, by `get`: a [`worker_pool!`](crate::worker_pool)
/// static, or a `LazyLock` of a [`Pool`] or [`WorkerPool`]). Sealed.
///
/// ```
/// use bytes::BytesMut;
/// use capacitor_pool::worker_pool;
/// use capacitor_pool::codec::PooledFramed;
/// use tokio_util::codec::{FramedRead, LinesCodec};
///
/// worker_pool! {
///     static BUFFERS: WorkerPool<BytesMut> =
///         WorkerPool::builder(|| BytesMut::with_capacity(4096));
/// }
///
/// let inner = FramedRead::with_capacity(tokio::io::empty(), LinesCodec::new(), 0);
/// // A `Pooled<'static, BytesMut, _>`, straight from the static.
/// let lines = PooledFramed::from_guards(inner, Some(BUFFERS.get()), None);
/// assert!(lines.get_ref().read_buffer().capacity() >= 4096);
/// ```
pub trait FramedGuard: DerefMut<Target = BytesMut> + sealed::Sealed {
    /// The pool the buffer goes back to.
    type Pool: PoolKind<BytesMut> + 'static;

    #[doc(hidden)]
    fn into_guard(self) -> Guard<Self::Pool>;
}

impl<P: PoolKind<BytesMut> + 'static> sealed::Sealed for OwnedPooled<BytesMut, P> {}
impl<P: PoolKind<BytesMut> + 'static> FramedGuard for OwnedPooled<BytesMut, P> {
    type Pool = P;

    fn into_guard(self) -> Guard<P> {
        Guard::Owned(self)
    }
}

impl<P: PoolKind<BytesMut> + 'static> sealed::Sealed for Pooled<'static, BytesMut, P> {}
impl<P: PoolKind<BytesMut> + 'static> FramedGuard for Pooled<'static, BytesMut, P> {
    type Pool = P;

    fn into_guard(self) -> Guard<P> {
        Guard::Static(self)
    }
}

/// A guard of either kind. Not a public API (what
/// [`FramedGuard`] converts to).
#[doc(hidden)]
#[derive(Debug)]
pub enum Guard<P: PoolKind<BytesMut> + 'static> {
    /// From a pool in an `Arc`.
    Owned(OwnedPooled<BytesMut, P>),
    /// From a pool in a `static`.
    Static(Pooled<'static, BytesMut, P>),
}

/// Where the buffers of a [`PooledFramed`], [`SlabFramedRead`] or
/// [`SlabFramed`] come from: a pool of `BytesMut` that the caller has,
/// in whatever form.
///
/// | you have | pass | guard |
/// |---|---|---|
/// | `Arc<WorkerPool<BytesMut>>` or `Arc<Pool<BytesMut>>` | `&pool` | [`OwnedPooled`] |
/// | a [`worker_pool!`](crate::worker_pool) static `BUFFERS` | `&BUFFERS` (or `&*BUFFERS`) | `Pooled<'static, _, StaticWorkerPool<..>>` |
/// | a `static` `LazyLock<WorkerPool<BytesMut>>` or `LazyLock<Pool<BytesMut>>` | `&BUFFERS` | `Pooled<'static, _>` |
///
/// Sealed; the pool's custom recycler, if any, is kept.
///
/// ```
/// use bytes::BytesMut;
/// use capacitor_pool::{WorkerPool, worker_pool};
/// use capacitor_pool::codec::{FramedPool, PooledFramed};
/// use std::sync::Arc;
/// use tokio_util::codec::LinesCodec;
///
/// worker_pool! {
///     static BUFFERS: WorkerPool<BytesMut> =
///         WorkerPool::builder(|| BytesMut::with_capacity(4096));
/// }
///
/// // One function for any pool the caller has.
/// fn lines<S: FramedPool>(pool: S) -> usize {
///     let sink = PooledFramed::framed_write(Vec::new(), LinesCodec::new(), pool);
///     sink.get_ref().write_buffer().capacity()
/// }
/// let arc = Arc::new(WorkerPool::new(|| BytesMut::with_capacity(4096)));
/// assert!(lines(&arc) >= 4096);
/// assert!(lines(&BUFFERS) >= 4096);
/// ```
pub trait FramedPool: Copy + sealed::Sealed {
    /// The pool kind named in the guard's type.
    type Pool: PoolKind<BytesMut> + 'static;
    /// The guard `get_buffer` returns.
    type Guard: FramedGuard<Pool = Self::Pool>;

    /// Takes a buffer from the pool (or makes one).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::codec::FramedPool;
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(Pool::new(|| BytesMut::with_capacity(64)));
    /// let buf = (&pool).get_buffer(); // an `OwnedPooled<BytesMut>`
    /// assert!(buf.capacity() >= 64);
    /// ```
    fn get_buffer(self) -> Self::Guard;
}

impl<R: Recycle<BytesMut> + 'static> sealed::Sealed for &Arc<WorkerPool<BytesMut, R>> {}
impl<R: Recycle<BytesMut> + 'static> FramedPool for &Arc<WorkerPool<BytesMut, R>> {
    type Pool = WorkerPool<BytesMut, R>;
    type Guard = OwnedPooled<BytesMut, WorkerPool<BytesMut, R>>;

    fn get_buffer(self) -> Self::Guard {
        self.get_owned()
    }
}

impl<R: Recycle<BytesMut> + 'static> sealed::Sealed for &Arc<Pool<BytesMut, R>> {}
impl<R: Recycle<BytesMut> + 'static> FramedPool for &Arc<Pool<BytesMut, R>> {
    type Pool = Pool<BytesMut, R>;
    type Guard = OwnedPooled<BytesMut, Pool<BytesMut, R>>;

    fn get_buffer(self) -> Self::Guard {
        self.get_owned()
    }
}

impl<R: Recycle<BytesMut>> sealed::Sealed for &'static WorkerPool<BytesMut, R> {}
impl<R: Recycle<BytesMut>> FramedPool for &'static WorkerPool<BytesMut, R> {
    type Pool = WorkerPool<BytesMut, R>;
    type Guard = Pooled<'static, BytesMut, WorkerPool<BytesMut, R>>;

    fn get_buffer(self) -> Self::Guard {
        self.get()
    }
}

impl<R: Recycle<BytesMut>> sealed::Sealed for &'static Pool<BytesMut, R> {}
impl<R: Recycle<BytesMut>> FramedPool for &'static Pool<BytesMut, R> {
    type Pool = Pool<BytesMut, R>;
    type Guard = Pooled<'static, BytesMut, Pool<BytesMut, R>>;

    fn get_buffer(self) -> Self::Guard {
        self.get()
    }
}

impl<R: Recycle<BytesMut>, K: SlotKey> sealed::Sealed
    for &'static StaticWorkerPool<BytesMut, R, K>
{
}
impl<R: Recycle<BytesMut>, K: SlotKey> FramedPool for &'static StaticWorkerPool<BytesMut, R, K> {
    type Pool = StaticWorkerPool<BytesMut, R, K>;
    type Guard = Pooled<'static, BytesMut, StaticWorkerPool<BytesMut, R, K>>;

    fn get_buffer(self) -> Self::Guard {
        self.get()
    }
}

impl<X, F> sealed::Sealed for &'static LazyLock<X, F>
where
    F: FnOnce() -> X,
    &'static X: FramedPool,
{
}
impl<X, F> FramedPool for &'static LazyLock<X, F>
where
    F: FnOnce() -> X,
    &'static X: FramedPool,
{
    type Pool = <&'static X as FramedPool>::Pool;
    type Guard = <&'static X as FramedPool>::Guard;

    fn get_buffer(self) -> Self::Guard {
        let pool: &'static X = self;
        pool.get_buffer()
    }
}

/// A connection buffer: the transport's own, or one lent by a pool (cleared
/// and given back when it drops).
enum Buffer<P: PoolKind<BytesMut> + 'static> {
    Own(BytesMut),
    Lent(Guard<P>),
}

impl<P: PoolKind<BytesMut> + 'static> Buffer<P> {
    fn lent<G: FramedGuard<Pool = P>>(guard: G) -> Self {
        Buffer::Lent(guard.into_guard())
    }

    /// The bytes in the buffer, as a `BytesMut` of their own: the buffer
    /// itself if it is the transport's, a copy if it goes back to a pool.
    fn into_bytes(mut self) -> BytesMut {
        match &mut self {
            Buffer::Own(buf) => std::mem::take(buf),
            Buffer::Lent(_) => BytesMut::from(&self[..]),
        }
    }
}

impl<P: PoolKind<BytesMut> + 'static> Deref for Buffer<P> {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        match self {
            Buffer::Own(buf) => buf,
            Buffer::Lent(Guard::Owned(guard)) => guard,
            Buffer::Lent(Guard::Static(guard)) => guard,
        }
    }
}

impl<P: PoolKind<BytesMut> + 'static> DerefMut for Buffer<P> {
    fn deref_mut(&mut self) -> &mut BytesMut {
        match self {
            Buffer::Own(buf) => buf,
            Buffer::Lent(Guard::Owned(guard)) => guard,
            Buffer::Lent(Guard::Static(guard)) => guard,
        }
    }
}

impl<P: PoolKind<BytesMut> + 'static> Drop for Buffer<P> {
    fn drop(&mut self) {
        if let Buffer::Lent(_) = self {
            reclaim(self);
        }
    }
}

impl<P: PoolKind<BytesMut> + 'static> fmt::Debug for Buffer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T, U> sealed::Sealed for Framed<T, U> {}
impl<T, U> FramedBuffers for Framed<T, U> {
    fn read_buf(&mut self) -> Option<&mut BytesMut> {
        Some(self.read_buffer_mut())
    }
    fn write_buf(&mut self) -> Option<&mut BytesMut> {
        Some(self.write_buffer_mut())
    }
}

impl<T, D> sealed::Sealed for FramedRead<T, D> {}
impl<T, D> FramedBuffers for FramedRead<T, D> {
    fn read_buf(&mut self) -> Option<&mut BytesMut> {
        Some(self.read_buffer_mut())
    }
    fn write_buf(&mut self) -> Option<&mut BytesMut> {
        None
    }
}

impl<T, E> sealed::Sealed for FramedWrite<T, E> {}
impl<T, E> FramedBuffers for FramedWrite<T, E> {
    fn read_buf(&mut self) -> Option<&mut BytesMut> {
        None
    }
    fn write_buf(&mut self) -> Option<&mut BytesMut> {
        Some(self.write_buffer_mut())
    }
}

pin_project! {
    /// A `Framed`, `FramedRead` or `FramedWrite` whose buffers were taken
    /// from a pool, and go back to it (reset, and dropped instead if a huge
    /// frame grew them past the pool's retention limit) when the connection
    /// ends. A server with many short connections then allocates nothing
    /// per connection.
    ///
    /// It is a `Stream` and a `Sink` whenever the wrapped transport is.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{Slab, WorkerPool};
    /// use capacitor_pool::codec::{LengthDelimited, PooledFramed};
    /// use futures_util::{SinkExt, StreamExt};
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let buffers = Arc::new(
    ///     WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024))
    ///         .retention_limit(64 * 1024) // a buffer grown past it is dropped
    ///         .build(),
    /// );
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut a = PooledFramed::framed(a, LengthDelimited::new(&slab), &buffers);
    /// let mut b = PooledFramed::framed(b, LengthDelimited::new(&slab), &buffers);
    /// a.send(&b"ping"[..]).await.unwrap();
    /// assert_eq!(&b.next().await.unwrap().unwrap()[..], b"ping");
    /// drop((a, b));
    /// assert_eq!(buffers.stats().num_idle, 4); // two connections' buffers
    /// # }
    /// ```
    #[project = PooledFramedProj]
    pub struct PooledFramed<F, P>
    where
        F: FramedBuffers,
        P: PoolKind<BytesMut>,
        P: 'static,
    {
        #[pin]
        inner: F,
        read: Option<Buffer<P>>,
        write: Option<Buffer<P>>,
    }

    impl<F, P> PinnedDrop for PooledFramed<F, P>
    where
        F: FramedBuffers,
        P: PoolKind<BytesMut>,
        P: 'static,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // SAFETY: only the transport's buffers are touched (swapped
            // with the guards' placeholders); the transport itself, and the
            // I/O object it pins, are not moved.
            let inner = unsafe { this.inner.get_unchecked_mut() };
            // The pool's buffers back in the guards, which clear them and
            // return them as the fields drop.
            swap_buffers(inner, this.read, this.write);
        }
    }
}

/// Swaps each guard's buffer with the transport's (lending the pool's
/// buffers at the start, taking them back at the end).
fn swap_buffers<F: FramedBuffers, P: PoolKind<BytesMut> + 'static>(
    inner: &mut F,
    read: &mut Option<Buffer<P>>,
    write: &mut Option<Buffer<P>>,
) {
    if let (Some(guard), Some(buf)) = (read.as_mut(), inner.read_buf()) {
        std::mem::swap(&mut **guard, buf);
    }
    if let (Some(guard), Some(buf)) = (write.as_mut(), inner.write_buf()) {
        std::mem::swap(&mut **guard, buf);
    }
}

/// Clears a buffer coming back from a transport and takes back, without
/// allocating, the room that was consumed off its front or hidden by a small
/// `reserve`, so that its `capacity` (what the pool's retention limit looks
/// at) covers at least half of the allocation it holds: a buffer that one
/// huge frame grew is then seen as huge, and dropped instead of kept.
fn reclaim(buf: &mut BytesMut) {
    buf.clear();
    // Doubling probes: each success means the allocation is at least that
    // large; a buffer that is all there fails the first one.
    while buf.try_reclaim(buf.capacity().saturating_mul(2).max(64)) {}
}

impl<F: FramedBuffers, P: PoolKind<BytesMut> + 'static> PooledFramed<F, P> {
    /// Lends the buffers held by `read` and `write` to `inner` (whose own
    /// buffers, empty if it was built with a capacity of 0, are kept in the
    /// guards meanwhile). A transport without a read (or write) buffer
    /// leaves that guard unused. The guards are [`OwnedPooled`] (from a
    /// pool in an `Arc`) or `'static` [`Pooled`] (from a pool in a
    /// `static`, such as a [`worker_pool!`](crate::worker_pool) static):
    /// see [`FramedGuard`].
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::codec::PooledFramed;
    /// use futures_util::StreamExt;
    /// use std::sync::Arc;
    /// use tokio_util::codec::{FramedRead, LinesCodec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Arc::new(Pool::new(|| BytesMut::with_capacity(4096)));
    /// let io: &[u8] = b"one\ntwo\n";
    /// let inner = FramedRead::with_capacity(io, LinesCodec::new(), 0);
    /// let mut lines = PooledFramed::from_guards(inner, Some(pool.get_owned()), None);
    /// assert_eq!(lines.next().await.unwrap().unwrap(), "one");
    /// drop(lines);
    /// assert_eq!(pool.stats().num_idle, 1); // the read buffer is back
    /// # }
    /// ```
    pub fn from_guards<G: FramedGuard<Pool = P>>(
        mut inner: F,
        read: Option<G>,
        write: Option<G>,
    ) -> Self {
        let mut read = read.map(Buffer::lent);
        let mut write = write.map(Buffer::lent);
        swap_buffers(&mut inner, &mut read, &mut write);
        PooledFramed { inner, read, write }
    }

    /// The wrapped transport.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::codec::PooledFramed;
    /// use std::sync::Arc;
    /// use tokio_util::codec::{FramedRead, LinesCodec};
    ///
    /// let pool = Arc::new(Pool::new(|| BytesMut::with_capacity(4096)));
    /// let inner = FramedRead::with_capacity(tokio::io::empty(), LinesCodec::new(), 0);
    /// let lines = PooledFramed::from_guards(inner, Some(pool.get_owned()), None);
    /// assert!(lines.get_ref().read_buffer().capacity() >= 4096); // the pooled one
    /// ```
    pub fn get_ref(&self) -> &F {
        &self.inner
    }

    /// The wrapped transport, mutably.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::Pool;
    /// use capacitor_pool::codec::PooledFramed;
    /// use std::sync::Arc;
    /// use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
    ///
    /// let pool = Arc::new(Pool::new(|| BytesMut::with_capacity(4096)));
    /// let inner = FramedRead::with_capacity(tokio::io::empty(), LengthDelimitedCodec::new(), 0);
    /// let mut frames = PooledFramed::from_guards(inner, Some(pool.get_owned()), None);
    /// frames.get_mut().decoder_mut().set_max_frame_length(16);
    /// assert_eq!(frames.get_ref().decoder().max_frame_length(), 16);
    /// ```
    pub fn get_mut(&mut self) -> &mut F
    where
        F: Unpin,
    {
        &mut self.inner
    }
}

impl<T, U, P> PooledFramed<Framed<T, U>, P>
where
    T: AsyncRead + AsyncWrite,
    P: PoolKind<BytesMut> + 'static,
{
    /// A `Framed` over `io` whose read and write buffers come from `pool`:
    /// an `&Arc` of a [`WorkerPool`] or [`Pool`], or a pool in a `static`,
    /// such as a [`worker_pool!`](crate::worker_pool) static (see
    /// [`FramedPool`]).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{Slab, WorkerPool};
    /// use capacitor_pool::codec::{LengthDelimited, PooledFramed};
    /// use std::sync::Arc;
    ///
    /// let buffers = Arc::new(WorkerPool::new(|| BytesMut::with_capacity(8 * 1024)));
    /// let (io, _peer) = tokio::io::duplex(1024);
    /// let framed = PooledFramed::framed(io, LengthDelimited::new(&Slab::new()), &buffers);
    /// assert!(framed.get_ref().read_buffer().capacity() >= 8 * 1024);
    /// assert!(framed.get_ref().write_buffer().capacity() >= 8 * 1024);
    /// drop(framed);
    /// assert_eq!(buffers.stats().num_idle, 2);
    /// ```
    ///
    /// With a `worker_pool!` static:
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{Slab, worker_pool};
    /// use capacitor_pool::codec::{LengthDelimited, PooledFramed};
    /// use futures_util::{SinkExt, StreamExt};
    ///
    /// worker_pool! {
    ///     static BUFFERS: WorkerPool<BytesMut> =
    ///         WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024));
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut a = PooledFramed::framed(a, LengthDelimited::new(&slab), &BUFFERS);
    /// let mut b = PooledFramed::framed(b, LengthDelimited::new(&slab), &BUFFERS);
    /// a.send(&b"ping"[..]).await.unwrap();
    /// assert_eq!(&b.next().await.unwrap().unwrap()[..], b"ping");
    /// drop((a, b));
    /// assert_eq!(BUFFERS.stats().num_in_use, 0); // all four back
    /// # }
    /// ```
    pub fn framed<S: FramedPool<Pool = P>>(io: T, codec: U, pool: S) -> Self {
        let mut inner = Framed::with_capacity(io, codec, 0);
        inner.set_backpressure_boundary(BACKPRESSURE_BOUNDARY);
        Self::from_guards(inner, Some(pool.get_buffer()), Some(pool.get_buffer()))
    }
}

impl<T, D, P> PooledFramed<FramedRead<T, D>, P>
where
    T: AsyncRead,
    D: Decoder,
    P: PoolKind<BytesMut> + 'static,
{
    /// A `FramedRead` over `io` whose read buffer comes from `pool` (any
    /// [`FramedPool`]).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::WorkerPool;
    /// use capacitor_pool::codec::PooledFramed;
    /// use futures_util::StreamExt;
    /// use std::sync::Arc;
    /// use tokio_util::codec::LinesCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let buffers = Arc::new(WorkerPool::new(|| BytesMut::with_capacity(8 * 1024)));
    /// let io: &[u8] = b"one\ntwo\n";
    /// let mut lines = PooledFramed::framed_read(io, LinesCodec::new(), &buffers);
    /// assert_eq!(lines.next().await.unwrap().unwrap(), "one");
    /// drop(lines);
    /// assert_eq!(buffers.stats().num_idle, 1);
    /// # }
    /// ```
    pub fn framed_read<S: FramedPool<Pool = P>>(io: T, decoder: D, pool: S) -> Self {
        Self::from_guards(
            FramedRead::with_capacity(io, decoder, 0),
            Some(pool.get_buffer()),
            None,
        )
    }
}

impl<T, E, P> PooledFramed<FramedWrite<T, E>, P>
where
    T: AsyncWrite,
    P: PoolKind<BytesMut> + 'static,
{
    /// A `FramedWrite` over `io` whose write buffer comes from `pool` (any
    /// [`FramedPool`]), with `tokio_util`'s default backpressure boundary
    /// of 8 KiB.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::WorkerPool;
    /// use capacitor_pool::codec::PooledFramed;
    /// use futures_util::SinkExt;
    /// use std::sync::Arc;
    /// use tokio_util::codec::LinesCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let buffers = Arc::new(WorkerPool::new(|| BytesMut::with_capacity(8 * 1024)));
    /// let mut sink = PooledFramed::framed_write(Vec::new(), LinesCodec::new(), &buffers);
    /// sink.send("hi").await.unwrap();
    /// assert_eq!(&sink.get_ref().get_ref()[..], b"hi\n");
    /// # }
    /// ```
    pub fn framed_write<S: FramedPool<Pool = P>>(io: T, encoder: E, pool: S) -> Self {
        let mut inner = FramedWrite::with_capacity(io, encoder, 0);
        inner.set_backpressure_boundary(BACKPRESSURE_BOUNDARY);
        Self::from_guards(inner, None, Some(pool.get_buffer()))
    }
}

impl<F, P> Stream for PooledFramed<F, P>
where
    F: FramedBuffers + Stream,
    P: PoolKind<BytesMut> + 'static,
{
    type Item = F::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Item>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<F, P, I> Sink<I> for PooledFramed<F, P>
where
    F: FramedBuffers + Sink<I>,
    P: PoolKind<BytesMut> + 'static,
{
    type Error = F::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), F::Error>> {
        self.project().inner.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: I) -> Result<(), F::Error> {
        self.project().inner.start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), F::Error>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), F::Error>> {
        self.project().inner.poll_close(cx)
    }
}

impl<F: FramedBuffers + fmt::Debug, P: PoolKind<BytesMut> + 'static> fmt::Debug
    for PooledFramed<F, P>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledFramed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A stream of frames that, before it polls for the next frame, waits
    /// until its slab could hand out a chunk of `reserve` bytes. A consumer
    /// that holds on to frames thus slows the reading of the socket (whose
    /// read buffer stays as it is) instead of growing memory: at most one
    /// frame per stream is decoded past the slab's bound (as a heap buffer,
    /// counted in the slab's stats).
    ///
    /// Pass as `reserve` the frame size you expect (the class that must
    /// have room); frames of other sizes are still decoded, into their own
    /// class or the heap.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{Backpressure, LengthDelimited};
    /// use futures_util::{SinkExt, StreamExt};
    /// use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // One 64 KiB page of 128-byte chunks: 512 frames at most in flight.
    /// let slab = Slab::builder().max_pages_per_class(1).build().unwrap();
    /// let (client, server) = tokio::io::duplex(64 * 1024);
    /// let mut tx = FramedWrite::new(client, LengthDelimitedCodec::new());
    /// tokio::spawn(async move {
    ///     for _ in 0..1000 {
    ///         tx.send(Bytes::from(vec![7u8; 100])).await.unwrap();
    ///     }
    /// });
    /// let frames = FramedRead::new(server, LengthDelimited::new(&slab));
    /// let mut frames = Backpressure::new(frames, &slab, 100);
    /// let mut kept = Vec::new();
    /// for _ in 0..512 {
    ///     kept.push(frames.next().await.unwrap().unwrap());
    /// }
    /// // The slab is full: the next frame waits until one is dropped.
    /// let next = tokio::time::timeout(std::time::Duration::from_millis(50), frames.next());
    /// assert!(next.await.is_err());
    /// kept.clear();
    /// assert!(frames.next().await.unwrap().is_ok());
    /// # }
    /// ```
    #[project = BackpressureProj]
    pub struct Backpressure<S> {
        #[pin]
        inner: S,
        slab: Slab,
        reserve: usize,
        wait: SlabWait,
    }
}

impl<S> Backpressure<S> {
    /// Wraps `inner`, a stream of frames from `slab`.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{Backpressure, LengthDelimited};
    /// use futures_util::StreamExt;
    /// use tokio_util::codec::FramedRead;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let io: &[u8] = b"\0\0\0\x02hi";
    /// let frames = FramedRead::new(io, LengthDelimited::new(&slab));
    /// let mut frames = Backpressure::new(frames, &slab, 100); // room for 100 B first
    /// assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"hi");
    /// # }
    /// ```
    pub fn new(inner: S, slab: &Slab, reserve: usize) -> Self {
        Backpressure {
            inner,
            slab: slab.clone(),
            reserve,
            wait: SlabWait::new(slab, reserve),
        }
    }

    /// The wrapped stream.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::{Backpressure, LengthDelimited};
    /// use tokio_util::codec::FramedRead;
    ///
    /// let slab = Slab::new();
    /// let io: &[u8] = b"";
    /// let frames = FramedRead::new(io, LengthDelimited::new(&slab));
    /// let frames = Backpressure::new(frames, &slab, 100);
    /// assert_eq!(frames.get_ref().decoder().max_frame_length(), 8 * 1024 * 1024);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::Backpressure;
    /// use futures_util::{StreamExt, stream};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let mut items = Backpressure::new(stream::iter([1, 2]), &slab, 100);
    /// assert_eq!(items.get_mut().next().await, Some(1)); // no wait for the slab
    /// assert_eq!(items.next().await, Some(2));
    /// # }
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the stream.
    ///
    /// ```
    /// use capacitor_pool::Slab;
    /// use capacitor_pool::codec::Backpressure;
    /// use futures_util::{StreamExt, stream};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items = Backpressure::new(stream::iter([1, 2, 3]), &Slab::new(), 100);
    /// let rest: Vec<i32> = items.into_inner().collect().await;
    /// assert_eq!(rest, [1, 2, 3]);
    /// # }
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Stream> Stream for Backpressure<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        ready!(this.wait.poll_ready(cx));
        this.inner.poll_next(cx)
    }
}

impl<S: fmt::Debug> fmt::Debug for Backpressure<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backpressure")
            .field("inner", &self.inner)
            .field("reserve", &self.reserve)
            .finish_non_exhaustive()
    }
}
