//! [`SlabFramedRead`]: a `FramedRead` for [`LengthDelimited`] that reads
//! large payloads straight into their chunks, and the reading side it
//! shares with [`SlabFramed`](super::SlabFramed).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;

use super::pooled_framed::Buffer;
use super::{FramedPool, LengthDelimited, READ_BUF_CAPACITY};
use crate::guard::PoolKind;
use crate::slab::SlabBuf;
use crate::worker::WorkerPool;

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
pub(super) struct ReadState<P: PoolKind<BytesMut> + 'static> {
    pub(super) codec: LengthDelimited,
    pub(super) buf: Buffer<P>,
    eof: bool,
    done: bool,
}

impl<P: PoolKind<BytesMut> + 'static> ReadState<P> {
    pub(super) fn new(codec: LengthDelimited, buf: Buffer<P>) -> Self {
        ReadState {
            codec,
            buf,
            eof: false,
            done: false,
        }
    }

    pub(super) fn poll_next<R: AsyncRead + ?Sized>(
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
    #[track_caller]
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
