//! [`PooledFramed`]: a `tokio_util` framed transport whose buffers are
//! lent by a pool; the traits it takes ([`FramedBuffers`], [`FramedGuard`])
//! and the connection buffer it and the slab framed types share.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Framed, FramedRead, FramedWrite};

use super::framed_pool::sealed;
use super::{BACKPRESSURE_BOUNDARY, FramedPool};
use crate::guard::{OwnedPooled, PoolKind, Pooled};

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

/// A guard whose `BytesMut` a [`PooledFramed`], [`SlabFramedRead`] or
/// [`SlabFramed`] can use as a connection buffer: an [`OwnedPooled`] (from
/// a pool in an `Arc`, by `get_owned`) or a `'static` [`Pooled`] (from a
/// pool in a `static`, by `get`: a [`worker_pool!`](crate::worker_pool)
/// static, or a `LazyLock` of a [`Pool`] or [`WorkerPool`]). Sealed.
///
/// [`SlabFramedRead`]: super::SlabFramedRead
/// [`SlabFramed`]: super::SlabFramed
/// [`Pool`]: crate::Pool
/// [`WorkerPool`]: crate::WorkerPool
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

/// A connection buffer: the transport's own, or one lent by a pool (cleared
/// and given back when it drops).
pub(super) enum Buffer<P: PoolKind<BytesMut> + 'static> {
    Own(BytesMut),
    Lent(Guard<P>),
}

impl<P: PoolKind<BytesMut> + 'static> Buffer<P> {
    pub(super) fn lent<G: FramedGuard<Pool = P>>(guard: G) -> Self {
        Buffer::Lent(guard.into_guard())
    }

    /// The bytes in the buffer, as a `BytesMut` of their own: the buffer
    /// itself if it is the transport's, a copy if it goes back to a pool.
    pub(super) fn into_bytes(mut self) -> BytesMut {
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
    /// [`WorkerPool`]: crate::WorkerPool
    /// [`Pool`]: crate::Pool
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
    #[track_caller]
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
    #[track_caller]
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
    #[track_caller]
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
