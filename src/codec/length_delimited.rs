//! [`LengthDelimited`]: the native length-delimited decoder, whose frames
//! are slab chunks filled as their bytes arrive.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;

use super::{FrameError, LengthDelimitedBuilder, LengthDelimitedEncoder};
use crate::slab::{Slab, SlabBuf};

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
/// [`Backpressure`](super::Backpressure).
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
/// of `BytesMut`, `Vec<u8>` or `String` ([`Pooled`](crate::Pooled),
/// [`OwnedPooled`], [`RingGuard`](crate::RingGuard), ...), so a pooled
/// buffer is sent as it is, without `&buf[..]`. The guard drops, and its
/// buffer goes back to its pool, once the frame is copied into the write
/// buffer. To encode without a slab, use [`LengthDelimitedEncoder`].
///
/// [`OwnedPooled`]: crate::OwnedPooled
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
    pub(super) cfg: LengthDelimitedBuilder,
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
        Self::with_checked(LengthDelimitedBuilder::new(), slab)
    }

    /// A codec with a configuration already checked (see
    /// [`LengthDelimitedBuilder::new_codec`]).
    pub(super) fn with_checked(cfg: LengthDelimitedBuilder, slab: &Slab) -> Self {
        LengthDelimited {
            cfg,
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
    /// [`SlabFramedRead`]: super::SlabFramedRead
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
