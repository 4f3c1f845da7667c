//! [`FramedPool`]: the pools of `BytesMut` a framed transport can take its
//! buffers from, whatever form the caller holds them in; sealed.

use std::sync::{Arc, LazyLock};

use bytes::BytesMut;

use super::FramedGuard;
use crate::guard::{OwnedPooled, PoolKind, Pooled};
use crate::pool::Pool;
use crate::reset::Recycle;
use crate::worker::WorkerPool;
use crate::worker::statics::{PrivateKey, StaticWorkerPool};

/// Where the buffers of a [`PooledFramed`], [`SlabFramedRead`] or
/// [`SlabFramed`] come from: a pool of `BytesMut` that the caller has,
/// in whatever form.
///
/// [`PooledFramed`]: super::PooledFramed
/// [`SlabFramedRead`]: super::SlabFramedRead
/// [`SlabFramed`]: super::SlabFramed
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
    ///
    /// `#[track_caller]`: a pool with a hold warning records the caller's
    /// line (for the framed types, where they were made).
    #[track_caller]
    fn get_buffer(self) -> Self::Guard;
}

impl<R: Recycle<BytesMut> + 'static> sealed::Sealed for &Arc<WorkerPool<BytesMut, R>> {}
impl<R: Recycle<BytesMut> + 'static> FramedPool for &Arc<WorkerPool<BytesMut, R>> {
    type Pool = WorkerPool<BytesMut, R>;
    type Guard = OwnedPooled<BytesMut, WorkerPool<BytesMut, R>>;

    #[track_caller]
    fn get_buffer(self) -> Self::Guard {
        self.get_owned()
    }
}

impl<R: Recycle<BytesMut> + 'static> sealed::Sealed for &Arc<Pool<BytesMut, R>> {}
impl<R: Recycle<BytesMut> + 'static> FramedPool for &Arc<Pool<BytesMut, R>> {
    type Pool = Pool<BytesMut, R>;
    type Guard = OwnedPooled<BytesMut, Pool<BytesMut, R>>;

    #[track_caller]
    fn get_buffer(self) -> Self::Guard {
        self.get_owned()
    }
}

impl<R: Recycle<BytesMut>> sealed::Sealed for &'static WorkerPool<BytesMut, R> {}
impl<R: Recycle<BytesMut>> FramedPool for &'static WorkerPool<BytesMut, R> {
    type Pool = WorkerPool<BytesMut, R>;
    type Guard = Pooled<'static, BytesMut, WorkerPool<BytesMut, R>>;

    #[track_caller]
    fn get_buffer(self) -> Self::Guard {
        self.get()
    }
}

impl<R: Recycle<BytesMut>> sealed::Sealed for &'static Pool<BytesMut, R> {}
impl<R: Recycle<BytesMut>> FramedPool for &'static Pool<BytesMut, R> {
    type Pool = Pool<BytesMut, R>;
    type Guard = Pooled<'static, BytesMut, Pool<BytesMut, R>>;

    #[track_caller]
    fn get_buffer(self) -> Self::Guard {
        self.get()
    }
}

impl<R: Recycle<BytesMut>, K: PrivateKey> sealed::Sealed
    for &'static StaticWorkerPool<BytesMut, R, K>
{
}
impl<R: Recycle<BytesMut>, K: PrivateKey> FramedPool for &'static StaticWorkerPool<BytesMut, R, K> {
    type Pool = StaticWorkerPool<BytesMut, R, K>;
    type Guard = Pooled<'static, BytesMut, StaticWorkerPool<BytesMut, R, K>>;

    #[track_caller]
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

    #[track_caller]
    fn get_buffer(self) -> Self::Guard {
        let pool: &'static X = self;
        pool.get_buffer()
    }
}

pub(super) mod sealed {
    pub trait Sealed {}
}
