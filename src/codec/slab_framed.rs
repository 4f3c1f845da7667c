//! [`SlabFramed`]: [`SlabFramedRead`](super::SlabFramedRead) and a writer
//! on one connection, with one codec.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Encoder;

use super::framed_read::ReadState;
use super::pooled_framed::Buffer;
use super::{BACKPRESSURE_BOUNDARY, FramedPool, LengthDelimited, READ_BUF_CAPACITY};
use crate::guard::PoolKind;
use crate::slab::SlabBuf;
use crate::worker::WorkerPool;

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
    #[track_caller]
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
