//! [`Backpressure`]: a stream of frames that waits for slab capacity
//! before it reads the next one.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::slab::{Slab, SlabWait};

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
