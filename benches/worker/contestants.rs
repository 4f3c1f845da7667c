//! The contestants of the `worker` bench: one adapter per way to get a
//! 4 KiB `BytesMut`, use it and give it up (this crate's pools, a
//! `Mutex<Vec<T>>`, the peer crates, allocate-and-drop and two references,
//! `floor` and `tls_slot`), behind the `Contestant` trait, and `Cross` for
//! those whose buffers can cross from one worker to another.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use capacitor_pool::pool::DEFAULT_MAX_IDLE;
use capacitor_pool::worker::StaticWorkerPool;
use capacitor_pool::{
    OwnedPooled, OwnedWorkerPooled, Pool, Pooled, UseReset, WorkerPool, WorkerPooled,
};
use lockfree_object_pool::{LinearObjectPool, LinearOwnedReusable};

/// Magazines of the `WorkerPool`s: more than any worker number this process
/// gives out, so every worker has one.
const MAGAZINES: usize = 64;

/// `worker_pool_hold_warning`'s hold warning: far longer than any op, so
/// no guard is ever flagged and the bench measures the bookkeeping alone
/// (recording each get's call site and time, removing it at the drop).
const HOLD_WARNING: Duration = Duration::from_secs(10);

/// A fresh 4 KiB buffer.
#[inline]
fn make() -> BytesMut {
    BytesMut::with_capacity(4096)
}

/// Clears a buffer, keeping its capacity.
#[inline]
fn clear_buf(buf: &mut BytesMut) {
    buf.clear();
}

/// The write half of the work: append "test".
#[inline(always)]
fn write_buf(buf: &mut BytesMut) {
    buf.put_slice(b"test");
}

/// The read half of the work: read the bytes back.
#[inline(always)]
fn read_buf(buf: &BytesMut) {
    black_box(&buf[..]);
}

/// The work done with a buffer, whatever its source: write "test", read it
/// back.
#[inline(always)]
fn use_buf(buf: &mut BytesMut) {
    write_buf(buf);
    read_buf(buf);
}

/// One way to get a buffer, use it and give it up, on one worker.
pub(crate) trait Contestant: Send + Sync + 'static {
    /// What a task keeps between ops (the floor's own buffer).
    type Local: Send + 'static;

    /// A task's state, made before its ops.
    fn local(&self) -> Self::Local;

    /// Gets a buffer, uses it, resets it and returns it (or drops it).
    fn op(&self, local: &mut Self::Local);
}

/// A contestant whose buffers can be taken on one worker and given up on
/// another.
pub(crate) trait Cross: Contestant {
    /// A buffer in flight: a `'static` guard, or the buffer itself.
    type Item: Send + 'static;

    /// Gets a buffer and writes "test" into it (on the producer).
    fn take(&self) -> Self::Item;

    /// Reads the buffer back and gives it up (on the consumer).
    fn give(&self, item: Self::Item);
}

/// `floor`: the work alone, on one buffer the task owns.
struct Floor;

impl Contestant for Floor {
    type Local = BytesMut;

    fn local(&self) -> BytesMut {
        make()
    }

    #[inline(always)]
    fn op(&self, buf: &mut BytesMut) {
        // Through an opaque reference, as a pooled buffer is reached: the
        // compiler may not keep the buffer's fields in registers across ops
        // (it would fold the work away, which no real handler allows).
        let buf = black_box(buf);
        use_buf(buf);
        clear_buf(buf);
    }
}

/// `tls_slot`: the least a pool can do, as a reference (not a peer): one
/// buffer parked in a thread-local between ops, by pointer. No stats, no
/// bound, no retention check, no fallback tier, nothing given back at
/// thread exit (it leaks). What it costs over `floor` is what any pool whose
/// objects live outside the task pays at least: a thread-local read, a
/// take and a put back.
struct TlsSlot;

thread_local! {
    /// The parked buffer (null when taken or not made yet). A raw pointer:
    /// no destructor, so the access needs no liveness check.
    static PARKED: std::cell::Cell<*mut BytesMut> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

impl Contestant for TlsSlot {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut ptr = PARKED.replace(std::ptr::null_mut());
        if ptr.is_null() {
            ptr = Box::into_raw(Box::new(make()));
        }
        // SAFETY: `ptr` came from `Box::into_raw` and was taken out of the
        // thread-local, so this is its only use until it is parked again.
        let buf = unsafe { &mut *ptr };
        use_buf(buf);
        clear_buf(buf);
        PARKED.set(ptr);
    }
}

/// `new`: make a buffer and drop it, every time.
struct New;

impl Contestant for New {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = make();
        use_buf(&mut buf);
    }
}

impl Cross for New {
    type Item = BytesMut;

    #[inline]
    fn take(&self) -> BytesMut {
        let mut buf = make();
        write_buf(&mut buf);
        buf
    }

    #[inline]
    fn give(&self, buf: BytesMut) {
        read_buf(&buf);
    }
}

/// `worker_pool`: this crate's `WorkerPool` (the guard resets on drop, into
/// the magazine of the worker it drops on). Also `worker_pool_hold_warning`:
/// the same pool built with a hold warning, which records every guard out.
struct Worker(Arc<WorkerPool<BytesMut>>);

impl Contestant for Worker {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf: WorkerPooled<'_, BytesMut> = self.0.get();
        use_buf(&mut buf);
    }
}

impl Cross for Worker {
    type Item = OwnedWorkerPooled<BytesMut>;

    #[inline]
    fn take(&self) -> Self::Item {
        let mut buf = self.0.get_owned();
        write_buf(&mut buf);
        buf
    }

    #[inline]
    fn give(&self, buf: Self::Item) {
        read_buf(&buf);
    }
}

/// `worker_pool_pair`: a handler that holds two buffers at once (a read and
/// a write buffer) from one `WorkerPool`: one op is a pair. The second get
/// finds the private slot empty and the second drop finds it full, so this
/// is the magazine's own fast path.
struct WorkerPair(Arc<WorkerPool<BytesMut>>);

impl Contestant for WorkerPair {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut read: WorkerPooled<'_, BytesMut> = self.0.get();
        let mut write: WorkerPooled<'_, BytesMut> = self.0.get();
        use_buf(&mut read);
        use_buf(&mut write);
    }
}

capacitor_pool::worker_pool! {
    /// `worker_static`'s pool: a `WorkerPool` declared with `worker_pool!`,
    /// whose private slot on each worker is a thread-local of its own.
    static STATIC_BUFFERS: WorkerPool<BytesMut> = WorkerPool::builder(make).workers(MAGAZINES);
}

/// A guard of `STATIC_BUFFERS`.
type StaticGuard = Pooled<'static, BytesMut, StaticWorkerPool<BytesMut, UseReset, STATIC_BUFFERS>>;

/// `worker_static`: this crate's `WorkerPool` declared with `worker_pool!`
/// (one static for the whole process: the groups share it).
struct WorkerStatic;

impl Contestant for WorkerStatic {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = STATIC_BUFFERS.get();
        use_buf(&mut buf);
    }
}

impl Cross for WorkerStatic {
    type Item = StaticGuard;

    #[inline]
    fn take(&self) -> Self::Item {
        let mut buf = STATIC_BUFFERS.get();
        write_buf(&mut buf);
        buf
    }

    #[inline]
    fn give(&self, buf: Self::Item) {
        read_buf(&buf);
    }
}

/// `capacitor_pool`: this crate's `Pool` (the guard resets on drop).
struct Capacitor(Arc<Pool<BytesMut>>);

impl Contestant for Capacitor {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = self.0.get();
        use_buf(&mut buf);
    }
}

impl Cross for Capacitor {
    type Item = OwnedPooled<BytesMut>;

    #[inline]
    fn take(&self) -> Self::Item {
        let mut buf = self.0.get_owned();
        write_buf(&mut buf);
        buf
    }

    #[inline]
    fn give(&self, buf: Self::Item) {
        read_buf(&buf);
    }
}

/// `mutex_vec`: a `Mutex<Vec<T>>`, popped or made, cleared and pushed back
/// (dropped when it holds `DEFAULT_MAX_IDLE`).
struct MutexVec(Mutex<Vec<BytesMut>>);

impl MutexVec {
    #[inline]
    fn pop(&self) -> BytesMut {
        let idle = self.0.lock().unwrap().pop();
        idle.unwrap_or_else(make)
    }

    #[inline]
    fn push(&self, mut buf: BytesMut) {
        clear_buf(&mut buf);
        let mut idle = self.0.lock().unwrap();
        if idle.len() < DEFAULT_MAX_IDLE {
            idle.push(buf);
        } else {
            drop(idle);
            drop(buf);
        }
    }
}

impl Contestant for MutexVec {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = self.pop();
        use_buf(&mut buf);
        self.push(buf);
    }
}

impl Cross for MutexVec {
    type Item = BytesMut;

    #[inline]
    fn take(&self) -> BytesMut {
        let mut buf = self.pop();
        write_buf(&mut buf);
        buf
    }

    #[inline]
    fn give(&self, buf: BytesMut) {
        read_buf(&buf);
        self.push(buf);
    }
}

/// `object_pool`: `object_pool::Pool` (a `parking_lot` mutex over a `Vec`,
/// unbounded); cleared by hand before the guard gives it back.
struct ObjectPool(Arc<object_pool::Pool<BytesMut>>);

impl Contestant for ObjectPool {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = self.0.pull(make);
        use_buf(&mut buf);
        clear_buf(&mut buf);
    }
}

impl Cross for ObjectPool {
    type Item = object_pool::ReusableOwned<BytesMut>;

    #[inline]
    fn take(&self) -> Self::Item {
        let mut buf = self.0.pull_owned(make);
        write_buf(&mut buf);
        buf
    }

    #[inline]
    fn give(&self, mut buf: Self::Item) {
        read_buf(&buf);
        clear_buf(&mut buf);
    }
}

/// `lockfree_linear`: `lockfree_object_pool::LinearObjectPool`, which
/// resets on drop.
struct LockfreeLinear(Arc<LinearObjectPool<BytesMut>>);

impl Contestant for LockfreeLinear {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = self.0.pull();
        use_buf(&mut buf);
    }
}

impl Cross for LockfreeLinear {
    type Item = LinearOwnedReusable<BytesMut>;

    #[inline]
    fn take(&self) -> Self::Item {
        let mut buf = self.0.pull_owned();
        write_buf(&mut buf);
        buf
    }

    #[inline]
    fn give(&self, buf: Self::Item) {
        read_buf(&buf);
    }
}

/// `opool`'s allocator for our buffers; opool resets an object when it is
/// taken, not when it is returned.
struct OpoolAlloc;

impl opool::PoolAllocator<BytesMut> for OpoolAlloc {
    #[inline]
    fn allocate(&self) -> BytesMut {
        make()
    }

    #[inline]
    fn reset(&self, buf: &mut BytesMut) {
        clear_buf(buf);
    }
}

/// `opool`: `opool::Pool` (an `ArrayQueue` of `DEFAULT_MAX_IDLE`).
struct Opool(Arc<opool::Pool<OpoolAlloc, BytesMut>>);

impl Contestant for Opool {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = self.0.get();
        use_buf(&mut buf);
    }
}

/// A `BytesMut` for `sharded_slab::Pool`, which needs `Default` (how slots
/// are first filled) and its `Clear` (run when a key is cleared).
struct SlabBuf(BytesMut);

impl Default for SlabBuf {
    fn default() -> Self {
        Self(make())
    }
}

impl sharded_slab::Clear for SlabBuf {
    #[inline]
    fn clear(&mut self) {
        clear_buf(&mut self.0);
    }
}

/// `sharded_slab`: `sharded_slab::Pool` (per-thread shards, objects cleared
/// in place): `create`, use, drop the guard, `clear` the key.
struct ShardedSlab(Arc<sharded_slab::Pool<SlabBuf>>);

impl Contestant for ShardedSlab {
    type Local = ();

    fn local(&self) {}

    #[inline(always)]
    fn op(&self, _: &mut ()) {
        let mut buf = self.0.create().expect("sharded_slab: shard full");
        use_buf(&mut buf.0);
        let key = buf.key();
        drop(buf);
        self.0.clear(key);
    }
}

/// Something done with each contestant in turn.
pub(crate) trait Visit {
    /// A contestant benched on one worker and on two.
    fn visit<C: Contestant>(&mut self, name: &'static str, contestant: Arc<C>);

    /// A contestant benched on one worker, on two, and across two.
    fn visit_cross<C: Cross>(&mut self, name: &'static str, contestant: Arc<C>) {
        self.visit(name, contestant);
    }
}

/// Hands each contestant, freshly built, to `v`.
pub(crate) fn contestants<V: Visit>(v: &mut V) {
    v.visit("floor", Arc::new(Floor));
    v.visit("tls_slot", Arc::new(TlsSlot));
    v.visit_cross("new", Arc::new(New));
    v.visit_cross(
        "worker_pool",
        Arc::new(Worker(Arc::new(
            WorkerPool::builder(make).workers(MAGAZINES).build(),
        ))),
    );
    v.visit_cross(
        "worker_pool_hold_warning",
        Arc::new(Worker(Arc::new(
            WorkerPool::builder(make)
                .workers(MAGAZINES)
                .hold_warning(HOLD_WARNING)
                .build(),
        ))),
    );
    v.visit(
        "worker_pool_pair",
        Arc::new(WorkerPair(Arc::new(
            WorkerPool::builder(make).workers(MAGAZINES).build(),
        ))),
    );
    v.visit_cross("worker_static", Arc::new(WorkerStatic));
    v.visit_cross(
        "capacitor_pool",
        Arc::new(Capacitor(Arc::new(Pool::new(make)))),
    );
    v.visit_cross("mutex_vec", Arc::new(MutexVec(Mutex::new(Vec::new()))));
    v.visit_cross(
        "object_pool",
        Arc::new(ObjectPool(Arc::new(object_pool::Pool::new(0, make)))),
    );
    v.visit_cross(
        "lockfree_linear",
        Arc::new(LockfreeLinear(Arc::new(LinearObjectPool::new(
            make, clear_buf,
        )))),
    );
    v.visit(
        "opool",
        Arc::new(Opool(Arc::new(opool::Pool::new(
            DEFAULT_MAX_IDLE,
            OpoolAlloc,
        )))),
    );
    v.visit(
        "sharded_slab",
        Arc::new(ShardedSlab(Arc::new(sharded_slab::Pool::new()))),
    );
}
