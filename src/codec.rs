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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead, FramedWrite};

use crate::guard::{OwnedPooled, PoolKind};
use crate::reset::Recycle;
use crate::slab::{Slab, SlabBuf, SlabWait};
use crate::worker::WorkerPool;

/// What went wrong with a frame; carried inside the `io::Error` that
/// decoders and encoders return (get it back with
/// [`io::Error::get_ref`] and `downcast_ref`).
///
/// ```
/// use bytes::BytesMut;
/// use capacitor_pool::{FrameError, LengthDelimited, Slab};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LengthDelimited::builder().max_frame_length(1024).new_codec(&Slab::new());
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

/// The default maximum frame length: 8 MiB, as `LengthDelimitedCodec`.
///
/// ```
/// use capacitor_pool::{DEFAULT_MAX_FRAME_LENGTH, LengthDelimited, Slab};
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
/// use capacitor_pool::{LengthDelimited, Slab};
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
///     .new_codec(&Slab::new());
/// # drop(codec);
/// ```
#[derive(Debug, Clone, Copy)]
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
    /// use capacitor_pool::{LengthDelimitedBuilder, Slab};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimitedBuilder::new().new_codec(&Slab::new());
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
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_length(2)
    ///     .big_endian()
    ///     .new_codec(&Slab::new());
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x00\x02hi");
    /// ```
    pub fn big_endian(&mut self) -> &mut Self {
        self.big_endian = true;
        self
    }

    /// Reads and writes the length field little-endian.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_length(2)
    ///     .little_endian()
    ///     .new_codec(&Slab::new());
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x02\x00hi");
    /// ```
    pub fn little_endian(&mut self) -> &mut Self {
        self.big_endian = false;
        self
    }

    /// Reads and writes the length field in the machine's byte order.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_length(2)
    ///     .native_endian()
    ///     .new_codec(&Slab::new());
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(dst[..2], 2u16.to_ne_bytes());
    /// ```
    pub fn native_endian(&mut self) -> &mut Self {
        self.big_endian = cfg!(target_endian = "big");
        self
    }

    /// The longest frame accepted; a longer length field is an
    /// `InvalidData` error before anything is allocated for the frame.
    /// Clamped to what the length field can express.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use std::io::ErrorKind;
    /// use tokio_util::codec::{Decoder, Encoder};
    ///
    /// let mut codec = LengthDelimited::builder().max_frame_length(4).new_codec(&Slab::new());
    /// let mut dst = BytesMut::new();
    /// let err = codec.encode(&b"hello"[..], &mut dst).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// let mut src = BytesMut::from(&b"\0\0\0\x05hello"[..]);
    /// assert_eq!(codec.decode(&mut src).unwrap_err().kind(), ErrorKind::InvalidData);
    /// ```
    pub fn max_frame_length(&mut self, len: usize) -> &mut Self {
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
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Encoder;
    ///
    /// let mut codec = LengthDelimited::builder().length_field_length(1).new_codec(&Slab::new());
    /// assert_eq!(codec.max_frame_length(), 255); // what one byte can say
    /// let mut dst = BytesMut::new();
    /// codec.encode(&b"hi"[..], &mut dst).unwrap();
    /// assert_eq!(&dst[..], b"\x02hi");
    /// ```
    pub fn length_field_length(&mut self, len: usize) -> &mut Self {
        assert!(
            (1..=8).contains(&len),
            "length field length must be 1 to 8 bytes, not {len}"
        );
        self.length_field_len = len;
        self
    }

    /// Bytes of header before the length field (decoding only).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Decoder;
    ///
    /// // A 1-byte tag, then a 2-byte length; the whole header is skipped.
    /// let mut codec = LengthDelimited::builder()
    ///     .length_field_offset(1)
    ///     .length_field_length(2)
    ///     .new_codec(&Slab::new());
    /// let mut src = BytesMut::from(&b"\x07\x00\x02hi"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hi");
    /// ```
    pub fn length_field_offset(&mut self, offset: usize) -> &mut Self {
        self.length_field_offset = offset;
        self
    }

    /// Added to the length field to give the payload length (e.g. `-4`
    /// when the field counts itself).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Decoder;
    ///
    /// // The length field counts its own 4 bytes.
    /// let mut codec = LengthDelimited::builder().length_adjustment(-4).new_codec(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x06hi"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hi");
    /// ```
    pub fn length_adjustment(&mut self, adjustment: isize) -> &mut Self {
        self.length_adjustment = adjustment;
        self
    }

    /// Header bytes dropped before the frame (decoding only); by default
    /// the whole header (`length_field_offset + length_field_length`).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Decoder;
    ///
    /// // Keep the header in the frame: skip nothing, and count the header in.
    /// let mut codec = LengthDelimited::builder()
    ///     .num_skip(0)
    ///     .length_adjustment(4)
    ///     .new_codec(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x02hi"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"\0\0\0\x02hi");
    /// ```
    pub fn num_skip(&mut self, skip: usize) -> &mut Self {
        self.num_skip = Some(skip);
        self
    }

    /// A codec with this configuration, whose frames come from `slab`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Decoder;
    ///
    /// let slab = Slab::new();
    /// let mut codec = LengthDelimited::builder().new_codec(&slab);
    /// let mut src = BytesMut::from(&b"\0\0\0\x02hi"[..]);
    /// let frame = codec.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&frame[..], b"hi");
    /// assert_eq!(slab.stats().num_in_use(), 1); // the frame's chunk
    /// ```
    pub fn new_codec(&self, slab: &Slab) -> LengthDelimited {
        let mut cfg = *self;
        cfg.max_frame_len = cfg.max_frame_len.min(cfg.max_allowed());
        LengthDelimited {
            cfg,
            slab: slab.clone(),
            state: State::Head,
        }
    }

    /// A `FramedRead` over `io` with this codec.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use futures_util::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let io: &[u8] = b"\0\0\0\x02hi\0\0\0\x01!";
    /// let mut frames = LengthDelimited::builder().new_read(io, &Slab::new());
    /// assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"hi");
    /// assert_eq!(&frames.next().await.unwrap().unwrap()[..], b"!");
    /// assert!(frames.next().await.is_none());
    /// # }
    /// ```
    pub fn new_read<T: AsyncRead>(&self, io: T, slab: &Slab) -> FramedRead<T, LengthDelimited> {
        FramedRead::new(io, self.new_codec(slab))
    }

    /// A `FramedWrite` over `io` with this codec.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use futures_util::SinkExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut sink = LengthDelimited::builder()
    ///     .length_field_length(1)
    ///     .new_write(Vec::new(), &Slab::new());
    /// sink.send(&b"hi"[..]).await.unwrap();
    /// assert_eq!(&sink.get_ref()[..], b"\x02hi");
    /// # }
    /// ```
    pub fn new_write<T: AsyncWrite>(&self, io: T, slab: &Slab) -> FramedWrite<T, LengthDelimited> {
        FramedWrite::new(io, self.new_codec(slab))
    }

    /// A `Framed` over `io` with this codec.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use futures_util::{SinkExt, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let slab = Slab::new();
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut a = LengthDelimited::builder().new_framed(a, &slab);
    /// let mut b = LengthDelimited::builder().new_framed(b, &slab);
    /// a.send(&b"ping"[..]).await.unwrap();
    /// assert_eq!(&b.next().await.unwrap().unwrap()[..], b"ping");
    /// # }
    /// ```
    pub fn new_framed<T: AsyncRead + AsyncWrite>(
        &self,
        io: T,
        slab: &Slab,
    ) -> Framed<T, LengthDelimited> {
        Framed::new(io, self.new_codec(slab))
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
/// ```
/// use bytes::Bytes;
/// use capacitor_pool::{LengthDelimited, Slab};
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

impl LengthDelimited {
    /// A codec with the default header (4-byte big-endian length), whose
    /// frames come from `slab`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::new(&Slab::new());
    /// let mut src = BytesMut::from(&b"\0\0\0\x05hello"[..]);
    /// let frame = codec.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(&frame[..], b"hello");
    /// assert!(frame.is_pooled() && src.is_empty());
    /// ```
    pub fn new(slab: &Slab) -> Self {
        LengthDelimitedBuilder::new().new_codec(slab)
    }

    /// A builder for other header options.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LengthDelimited::builder().length_field_length(2).new_codec(&Slab::new());
    /// let mut src = BytesMut::from(&b"\x00\x03abc"[..]);
    /// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"abc");
    /// ```
    pub fn builder() -> LengthDelimitedBuilder {
        LengthDelimitedBuilder::new()
    }

    /// The maximum frame length.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab};
    ///
    /// let slab = Slab::new();
    /// let codec = LengthDelimited::builder().max_frame_length(1024).new_codec(&slab);
    /// assert_eq!(codec.max_frame_length(), 1024);
    /// let codec = LengthDelimited::builder().length_field_length(1).new_codec(&slab);
    /// assert_eq!(codec.max_frame_length(), 255); // clamped to the field
    /// ```
    pub fn max_frame_length(&self) -> usize {
        self.cfg.max_frame_len
    }

    /// The slab frames come from.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
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

    /// The length of the frame being decoded, if its header has been read.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, Slab};
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
    /// use capacitor_pool::{LengthDelimited, Slab};
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
    /// use capacitor_pool::{LengthDelimited, Slab};
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
    /// use capacitor_pool::{LengthDelimited, Slab};
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

    fn encode_slice(&mut self, data: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        let cfg = &self.cfg;
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
/// The smallest missing payload that [`SlabFramedRead`] reads straight
/// into its chunk: half its read buffer. Below it a buffered read is
/// better, since it brings the next frames' bytes along. A reader of your
/// own can pass it to [`LengthDelimited::payload_room`].
///
/// ```
/// use bytes::BytesMut;
/// use capacitor_pool::{DIRECT_READ_MIN, LengthDelimited, Slab};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LengthDelimited::new(&Slab::new());
/// let mut src = BytesMut::from(&20_000u32.to_be_bytes()[..]);
/// assert!(codec.decode(&mut src).unwrap().is_none());
/// assert_eq!(codec.payload_room(DIRECT_READ_MIN).unwrap().len(), 20_000);
/// ```
pub const DIRECT_READ_MIN: usize = 4 * 1024;

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
    ///
    /// # Examples
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab, SlabFramedRead};
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
    #[derive(Debug)]
    pub struct SlabFramedRead<R> {
        #[pin]
        reader: R,
        codec: LengthDelimited,
        buf: BytesMut,
        eof: bool,
        done: bool,
    }
}

impl<R> SlabFramedRead<R> {
    /// Frames from `reader`, decoded by `codec`.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b""[..], LengthDelimited::new(&Slab::new()));
    /// assert_eq!(frames.read_buffer().capacity(), 8 * 1024);
    /// ```
    pub fn new(reader: R, codec: LengthDelimited) -> Self {
        Self {
            reader,
            codec,
            buf: BytesMut::with_capacity(READ_BUF_CAPACITY),
            eof: false,
            done: false,
        }
    }

    /// The codec.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b""[..], LengthDelimited::new(&Slab::new()));
    /// assert_eq!(frames.codec().pending_frame_len(), None);
    /// ```
    pub fn codec(&self) -> &LengthDelimited {
        &self.codec
    }

    /// The bytes read but not decoded yet.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b""[..], LengthDelimited::new(&Slab::new()));
    /// assert!(frames.read_buffer().is_empty());
    /// ```
    pub fn read_buffer(&self) -> &BytesMut {
        &self.buf
    }

    /// The reader.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b"abc"[..], LengthDelimited::new(&Slab::new()));
    /// assert_eq!(*frames.get_ref(), b"abc");
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The reader, the codec and the bytes read but not decoded.
    ///
    /// ```
    /// use capacitor_pool::{LengthDelimited, Slab, SlabFramedRead};
    ///
    /// let frames = SlabFramedRead::new(&b"abc"[..], LengthDelimited::new(&Slab::new()));
    /// let (reader, _codec, buffered) = frames.into_parts();
    /// assert_eq!((reader, buffered.len()), (&b"abc"[..], 0));
    /// ```
    pub fn into_parts(self) -> (R, LengthDelimited, BytesMut) {
        (self.reader, self.codec, self.buf)
    }
}

impl<R: AsyncRead> Stream for SlabFramedRead<R> {
    type Item = io::Result<SlabBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            let decoded = if *this.eof {
                this.codec.decode_eof(this.buf)
            } else {
                this.codec.decode(this.buf)
            };
            match decoded {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) if *this.eof => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(e) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            // More bytes needed: the rest of a large payload straight into
            // its chunk, anything else through the buffer.
            let read = match this
                .codec
                .poll_read_payload(cx, this.reader.as_mut(), DIRECT_READ_MIN)
            {
                Some(read) => ready!(read),
                None => {
                    this.buf.reserve(1);
                    ready!(tokio_util::io::poll_read_buf(
                        this.reader.as_mut(),
                        cx,
                        this.buf
                    ))
                }
            };
            match read {
                Ok(0) => *this.eof = true,
                Ok(_) => {}
                Err(e) => {
                    *this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl Encoder<SlabBuf> for LengthDelimited {
    type Error = io::Error;

    fn encode(&mut self, frame: SlabBuf, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_slice(&frame, dst)
    }
}

impl Encoder<&SlabBuf> for LengthDelimited {
    type Error = io::Error;

    fn encode(&mut self, frame: &SlabBuf, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_slice(frame, dst)
    }
}

impl Encoder<&[u8]> for LengthDelimited {
    type Error = io::Error;

    fn encode(&mut self, data: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        self.encode_slice(data, dst)
    }
}

impl Encoder<Bytes> for LengthDelimited {
    type Error = io::Error;

    fn encode(&mut self, data: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_slice(&data, dst)
    }
}

/// Wraps any decoder whose frames are bytes (`BytesMut` from
/// `LengthDelimitedCodec` or `BytesCodec`, `String` from `LinesCodec`, your
/// own) and hands out each frame copied into a slab chunk of its size, so
/// the frame no longer pins the connection's read buffer. Encoding goes to
/// the wrapped codec unchanged.
///
/// ```
/// use capacitor_pool::{Slab, SlabDecoder};
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
    /// use capacitor_pool::{Slab, SlabDecoder};
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
    /// use capacitor_pool::{Slab, SlabDecoder};
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
    /// use capacitor_pool::{Slab, SlabDecoder};
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
    /// use capacitor_pool::{Slab, SlabDecoder};
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
    /// use capacitor_pool::{Slab, SlabDecoder};
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
/// use capacitor_pool::FramedBuffers;
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
    /// use capacitor_pool::{LengthDelimited, PooledFramed, Slab, WorkerPool};
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
    {
        #[pin]
        inner: F,
        read: Option<OwnedPooled<BytesMut, P>>,
        write: Option<OwnedPooled<BytesMut, P>>,
    }

    impl<F, P> PinnedDrop for PooledFramed<F, P>
    where
        F: FramedBuffers,
        P: PoolKind<BytesMut>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // SAFETY: only the transport's buffers are touched (swapped
            // with the guards' placeholders); the transport itself, and the
            // I/O object it pins, are not moved.
            let inner = unsafe { this.inner.get_unchecked_mut() };
            give_back(inner, this.read, this.write);
        }
    }
}

/// Swaps each guard's buffer with the transport's (lending the pool's
/// buffers at the start, taking them back at the end); returns the guards
/// that now hold the transport's former buffers.
fn swap_buffers<'g, F: FramedBuffers, P: PoolKind<BytesMut>>(
    inner: &mut F,
    read: &'g mut Option<OwnedPooled<BytesMut, P>>,
    write: &'g mut Option<OwnedPooled<BytesMut, P>>,
) -> [Option<&'g mut BytesMut>; 2] {
    let mut swapped = [None, None];
    if let (Some(guard), Some(buf)) = (read.as_mut(), inner.read_buf()) {
        std::mem::swap(&mut **guard, buf);
        swapped[0] = Some(&mut **guard);
    }
    if let (Some(guard), Some(buf)) = (write.as_mut(), inner.write_buf()) {
        std::mem::swap(&mut **guard, buf);
        swapped[1] = Some(&mut **guard);
    }
    swapped
}

/// Takes the buffers back from the transport, ready for the pool.
fn give_back<F: FramedBuffers, P: PoolKind<BytesMut>>(
    inner: &mut F,
    read: &mut Option<OwnedPooled<BytesMut, P>>,
    write: &mut Option<OwnedPooled<BytesMut, P>>,
) {
    for buf in swap_buffers(inner, read, write).into_iter().flatten() {
        reclaim(buf);
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

impl<F: FramedBuffers, P: PoolKind<BytesMut>> PooledFramed<F, P> {
    /// Lends the buffers held by `read` and `write` to `inner` (whose own
    /// buffers, empty if it was built with a capacity of 0, are kept in the
    /// guards meanwhile). A transport without a read (or write) buffer
    /// leaves that guard unused.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{Pool, PooledFramed};
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
    pub fn from_guards(
        mut inner: F,
        read: Option<OwnedPooled<BytesMut, P>>,
        write: Option<OwnedPooled<BytesMut, P>>,
    ) -> Self {
        let (mut read, mut write) = (read, write);
        swap_buffers(&mut inner, &mut read, &mut write);
        PooledFramed { inner, read, write }
    }

    /// The wrapped transport.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{Pool, PooledFramed};
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
    /// use capacitor_pool::{Pool, PooledFramed};
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

impl<T, U, R> PooledFramed<Framed<T, U>, WorkerPool<BytesMut, R>>
where
    T: AsyncRead + AsyncWrite,
    R: Recycle<BytesMut> + 'static,
{
    /// A `Framed` over `io` whose read and write buffers come from `pool`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{LengthDelimited, PooledFramed, Slab, WorkerPool};
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
    pub fn framed(io: T, codec: U, pool: &Arc<WorkerPool<BytesMut, R>>) -> Self {
        let mut inner = Framed::with_capacity(io, codec, 0);
        inner.set_backpressure_boundary(8 * 1024);
        Self::from_guards(inner, Some(pool.get_owned()), Some(pool.get_owned()))
    }
}

impl<T, D, R> PooledFramed<FramedRead<T, D>, WorkerPool<BytesMut, R>>
where
    T: AsyncRead,
    D: Decoder,
    R: Recycle<BytesMut> + 'static,
{
    /// A `FramedRead` over `io` whose read buffer comes from `pool`.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{PooledFramed, WorkerPool};
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
    pub fn framed_read(io: T, decoder: D, pool: &Arc<WorkerPool<BytesMut, R>>) -> Self {
        Self::from_guards(
            FramedRead::with_capacity(io, decoder, 0),
            Some(pool.get_owned()),
            None,
        )
    }
}

impl<T, E, R> PooledFramed<FramedWrite<T, E>, WorkerPool<BytesMut, R>>
where
    T: AsyncWrite,
    R: Recycle<BytesMut> + 'static,
{
    /// A `FramedWrite` over `io` whose write buffer comes from `pool` (with
    /// `tokio_util`'s default backpressure boundary of 8 KiB).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use capacitor_pool::{PooledFramed, WorkerPool};
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
    pub fn framed_write(io: T, encoder: E, pool: &Arc<WorkerPool<BytesMut, R>>) -> Self {
        let mut inner = FramedWrite::with_capacity(io, encoder, 0);
        inner.set_backpressure_boundary(8 * 1024);
        Self::from_guards(inner, None, Some(pool.get_owned()))
    }
}

impl<F, P> Stream for PooledFramed<F, P>
where
    F: FramedBuffers + Stream,
    P: PoolKind<BytesMut>,
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
    P: PoolKind<BytesMut>,
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

impl<F: FramedBuffers + fmt::Debug, P: PoolKind<BytesMut>> fmt::Debug for PooledFramed<F, P> {
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
    /// use capacitor_pool::{Backpressure, LengthDelimited, Slab};
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
    /// use capacitor_pool::{Backpressure, LengthDelimited, Slab};
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
    /// use capacitor_pool::{Backpressure, LengthDelimited, Slab};
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
    /// use capacitor_pool::{Backpressure, Slab};
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
    /// use capacitor_pool::{Backpressure, Slab};
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
