//! Zero allocations in the steady state, proved with a counting allocator.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, BytesMut};
use capacitor_pool::Pool;
use counting_alloc::{Counting, thread_allocs};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests in this file measure one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const OPS: u64 = 10_000;

fn cycle(pool: &Pool<BytesMut>) {
    let mut buf = pool.get();
    buf.put_slice(b"test");
    black_box(&buf[..]);
}

#[test]
fn pooled_bytes_mut_cycles_allocate_nothing_after_warm_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::new(|| BytesMut::with_capacity(4096));
    cycle(&pool); // warm-up: the one miss
    let before = thread_allocs();
    for _ in 0..OPS {
        cycle(&pool);
    }
    let allocs = thread_allocs() - before;
    assert_eq!(allocs, 0, "{allocs} allocations in {OPS} pooled cycles");
    assert_eq!(pool.stats().hit_count, OPS);
}

#[test]
fn plain_bytes_mut_allocates_every_time_so_the_counter_works() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = thread_allocs();
    for _ in 0..OPS {
        let mut buf = BytesMut::with_capacity(4096);
        buf.put_slice(b"test");
        black_box(&buf[..]);
    }
    assert_eq!(thread_allocs() - before, OPS);
}

#[test]
fn owned_guards_and_several_held_at_once_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Arc::new(Pool::new(|| Vec::<u8>::with_capacity(256)));
    let warm: Vec<_> = (0..8).map(|_| pool.get_owned()).collect();
    drop(warm);
    let before = thread_allocs();
    for i in 0..OPS {
        let mut a = pool.get_owned();
        let mut b = pool.get();
        let c = pool.try_get().expect("warm");
        a.push(i as u8);
        b.extend_from_slice(&a);
        black_box((&a, &b, &c));
    }
    assert_eq!(thread_allocs() - before, 0);
}

#[test]
fn pooled_cycles_on_runtime_workers_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let pool = Arc::new(Pool::new(|| BytesMut::with_capacity(4096)));
    let allocs = rt.block_on({
        let pool = Arc::clone(&pool);
        async move {
            tokio::spawn(async move {
                cycle(&pool);
                let before = thread_allocs();
                for _ in 0..OPS {
                    cycle(&pool);
                }
                thread_allocs() - before
            })
            .await
            .unwrap()
        }
    });
    assert_eq!(allocs, 0);
}

/// Four tasks on a 2-worker runtime each run `OPS` cycles of get, write,
/// read, drop (with 20 more held at once every 100th, so batches move to
/// and from the depot too), after a warm-up in which every task holds 21
/// at once (so the pool holds enough objects for any interleaving, and
/// every worker has its private slot); returns each task's allocations in
/// a second, measured pass.
fn allocs_per_task_on_workers<G>(get: impl Fn() -> G + Send + Sync + 'static) -> Vec<u64>
where
    G: std::ops::DerefMut<Target = BytesMut> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let get = Arc::new(get);
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    rt.block_on(async move {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (get, barrier) = (Arc::clone(&get), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let run = || {
                        for i in 0..OPS {
                            let mut a = get();
                            a.put_slice(b"test");
                            if i % 100 == 0 {
                                let held: [_; 20] = std::array::from_fn(|_| get());
                                black_box(&held);
                            }
                            black_box(&a[..]);
                        }
                    };
                    let peak: [_; 21] = std::array::from_fn(|_| get());
                    barrier.wait().await;
                    drop(peak);
                    run();
                    barrier.wait().await;
                    let before = thread_allocs();
                    run();
                    thread_allocs() - before
                })
            })
            .collect();
        let mut v = Vec::new();
        for t in tasks {
            v.push(t.await.unwrap());
        }
        v
    })
}

#[test]
fn worker_pool_cycles_on_runtime_workers_allocate_nothing() {
    use capacitor_pool::WorkerPool;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Arc::new(
        WorkerPool::builder(|| BytesMut::with_capacity(4096))
            .workers(64)
            .magazine_size(8)
            .build(),
    );
    let p = Arc::clone(&pool);
    assert_eq!(allocs_per_task_on_workers(move || p.get_owned()), [0; 4]);
    let s = pool.stats();
    assert!(s.miss_count <= 4 * 21, "{s}");
}

/// Named, with long-hold detection on: a get records its call site in
/// the hold table and the drop takes it out, allocating nothing once the
/// table has room for the objects out at the peak. (The other tests in
/// this file run with detection off, and with the `metrics` and `tracing`
/// features on under `--all-features`.)
#[test]
fn worker_pool_cycles_with_a_hold_warning_allocate_nothing() {
    use capacitor_pool::WorkerPool;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Arc::new(
        WorkerPool::builder(|| BytesMut::with_capacity(4096))
            .name("alloc-test")
            .hold_warning(std::time::Duration::from_secs(60))
            .workers(64)
            .magazine_size(8)
            .build(),
    );
    let p = Arc::clone(&pool);
    assert_eq!(allocs_per_task_on_workers(move || p.get_owned()), [0; 4]);
    let s = pool.stats();
    assert_eq!(
        (s.name, s.num_in_use, s.long_hold_count),
        (Some("alloc-test"), 0, 0)
    );
    assert!(pool.long_holds().is_empty());
}

#[test]
fn pool_cycles_with_a_hold_warning_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::builder(|| BytesMut::with_capacity(4096))
        .hold_warning(std::time::Duration::from_secs(60))
        .build();
    cycle(&pool);
    let before = thread_allocs();
    for _ in 0..OPS {
        cycle(&pool);
    }
    assert_eq!(thread_allocs() - before, 0);
}

capacitor_pool::worker_pool! {
    static STATIC_BUFFERS: WorkerPool<BytesMut> =
        WorkerPool::builder(|| BytesMut::with_capacity(4096)).workers(64).magazine_size(8);
}

#[test]
fn worker_pool_statics_cycle_on_runtime_workers_allocating_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(allocs_per_task_on_workers(|| STATIC_BUFFERS.get()), [0; 4]);
    let s = STATIC_BUFFERS.stats();
    assert!(s.miss_count <= 4 * 21, "{s}");
    assert!(s.hit_count >= 4 * 2 * OPS, "{s}");
}

#[test]
fn ring_cycles_allocate_nothing_waits_included() {
    ring_cycles(None);
}

#[test]
fn ring_cycles_with_a_hold_warning_allocate_nothing() {
    ring_cycles(Some(std::time::Duration::from_secs(60)));
}

fn ring_cycles(hold_warning: Option<std::time::Duration>) {
    use capacitor_pool::RingPool;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut builder = RingPool::builder(1, || BytesMut::with_capacity(4096));
    if let Some(threshold) = hold_warning {
        builder = builder.hold_warning(threshold);
    }
    let ring = builder.build().unwrap();
    let allocs = rt.block_on(async {
        let cycle = || async {
            // A slot taken without waiting...
            let mut held = ring.try_get().unwrap();
            held.put_slice(b"test");
            // ...a get that has to wait for it: registers as a waiter...
            let waiting = ring.get();
            tokio::pin!(waiting);
            assert!(futures_util::poll!(waiting.as_mut()).is_pending());
            // ...and is woken by the drop.
            drop(held);
            let mut next = waiting.await.unwrap();
            next.put_slice(b"test");
            black_box(&next[..]);
        };
        // Warm-up long enough that a one-time allocation seen around the
        // 100th cycle (inside the runtime, not the ring: it never repeats)
        // is behind us.
        for _ in 0..1000 {
            cycle().await;
        }
        let before = thread_allocs();
        for _ in 0..OPS {
            cycle().await;
        }
        thread_allocs() - before
    });
    assert_eq!(allocs, 0);
    let s = ring.stats();
    assert_eq!(s.wait_count, OPS + 1000);
    assert_eq!(s.created_count, 1);
    assert_eq!(s.long_hold_count, 0);
}

#[test]
fn dispatching_through_future_slots_allocates_nothing_once_warm() {
    use capacitor_pool::{FutureSlot, RingPool};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ring = RingPool::new(4, FutureSlot::<u64>::new).unwrap();
    async fn small(x: u64) -> u64 {
        tokio::task::yield_now().await;
        x + 1
    }
    async fn large(x: u64) -> u64 {
        let scratch = [x as u8; 512];
        tokio::task::yield_now().await;
        scratch.iter().map(|&b| u64::from(b)).sum()
    }
    let dispatch = |i: u64| {
        let ring = &ring;
        async move {
            let mut slot = ring.get().await.unwrap();
            // Handlers of different sizes share the slots.
            if i % 3 == 0 {
                slot.set(large(i));
            } else {
                slot.set(small(i));
            }
            (&mut *slot).await
        }
    };
    let allocs = rt.block_on(async {
        for i in 0..1000 {
            black_box(dispatch(i).await);
        }
        let before = thread_allocs();
        for i in 0..OPS {
            black_box(dispatch(i).await);
        }
        thread_allocs() - before
    });
    assert_eq!(allocs, 0, "allocations in {OPS} dispatched requests");

    // The same with `Box::pin` allocates once per request.
    let boxed = rt.block_on(async {
        let before = thread_allocs();
        for i in 0..OPS {
            let fut: std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> =
                if i % 3 == 0 {
                    Box::pin(large(i))
                } else {
                    Box::pin(small(i))
                };
            black_box(fut.await);
        }
        thread_allocs() - before
    });
    assert!(boxed >= OPS, "{boxed} allocations for {OPS} boxed requests");
}

#[test]
fn slab_frames_allocate_nothing_once_warm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let slab = capacitor_pool::Slab::new();
    let payload = [7u8; 20 * 1024];
    // Warm-up: carve the chunks the loop will need (1,000 kept frames).
    let warm: Vec<_> = (0..1001).map(|_| slab.alloc(100).unwrap()).collect();
    drop(warm);
    drop(slab.alloc(20 * 1024));
    let mut kept = Vec::with_capacity(1000);
    let before = thread_allocs();
    for i in 0..OPS as usize {
        // A frame dropped at once, a frame kept (1,000 at a time), and a
        // 20 KiB frame.
        black_box(slab.copy_from_slice(&payload[..100]));
        if kept.len() == 1000 {
            kept.clear();
        }
        kept.push(slab.copy_from_slice(&payload[..100 + i % 28]));
        black_box(slab.copy_from_slice(&payload));
    }
    let allocs = thread_allocs() - before;
    assert_eq!(allocs, 0, "{allocs} allocations in {OPS} slab cycles");
    assert_eq!(slab.stats().heap_count(), 0);
}

#[test]
fn slab_waits_allocate_nothing_once_warm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let slab = capacitor_pool::Slab::builder()
        .max_pages_per_class(1)
        .build()
        .unwrap();
    let waits = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let freer = tokio::spawn(async move {
            while let Some(buf) = rx.recv().await {
                tokio::task::yield_now().await;
                drop::<capacitor_pool::SlabBuf>(buf);
            }
        });
        let round = |n: u64| {
            let slab = &slab;
            let tx = tx.clone();
            async move {
                for _ in 0..n {
                    // The 64 KiB class has one chunk: every other alloc waits.
                    let buf = slab.alloc_wait(60_000).await;
                    tx.send(buf).await.unwrap();
                }
            }
        };
        round(100).await;
        let before = thread_allocs();
        round(OPS / 10).await;
        let allocs = thread_allocs() - before;
        drop(tx);
        freer.await.unwrap();
        allocs
    });
    assert_eq!(
        waits,
        0,
        "{waits} allocations in {} waiting allocs",
        OPS / 10
    );
    assert_eq!(slab.class_stats(10).unwrap().pool.created_count, 1);
}

/// Encodes `n` frames of `len` bytes the way `tokio_util` would.
#[cfg(feature = "codec")]
fn wire(n: usize, len: usize) -> BytesMut {
    use tokio_util::codec::Encoder;
    let mut wire = BytesMut::new();
    let mut codec = tokio_util::codec::LengthDelimitedCodec::new();
    for i in 0..n {
        codec
            .encode(bytes::Bytes::from(vec![i as u8; len]), &mut wire)
            .unwrap();
    }
    wire
}

/// Feeds `wire` to `codec` in reads of up to 8 KiB (as `FramedRead` does,
/// into a reused read buffer) and hands each frame to `sink`.
#[cfg(feature = "codec")]
fn decode_in_reads(
    codec: &mut capacitor_pool::codec::LengthDelimited,
    read_buf: &mut BytesMut,
    wire: &[u8],
    mut sink: impl FnMut(capacitor_pool::SlabBuf),
) {
    use tokio_util::codec::Decoder;
    for read in wire.chunks(8 * 1024) {
        read_buf.reserve(read.len());
        read_buf.extend_from_slice(read);
        while let Some(frame) = codec.decode(read_buf).unwrap() {
            sink(frame);
        }
    }
}

#[cfg(feature = "codec")]
#[test]
fn decoding_slab_frames_allocates_nothing_per_frame() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let slab = capacitor_pool::Slab::new();
    let mut codec = capacitor_pool::codec::LengthDelimited::new(&slab);
    let mut read_buf = BytesMut::with_capacity(8 * 1024);
    let small = wire(2000, 100);
    let large = wire(200, 20 * 1024);
    let mut kept = std::collections::VecDeque::with_capacity(1000);
    let mut run = |kept: &mut std::collections::VecDeque<_>| {
        let mut frames = 0u64;
        // (a) 100 B frames dropped at once.
        decode_in_reads(&mut codec, &mut read_buf, &small, |f| {
            assert_eq!(f.len(), 100);
            frames += 1;
        });
        // (b) 100 B frames kept 1,000 at a time.
        decode_in_reads(&mut codec, &mut read_buf, &small, |f| {
            if kept.len() == 1000 {
                kept.pop_front();
            }
            kept.push_back(f);
            frames += 1;
        });
        // (c) 20 KiB frames, over the read buffer's 8 KiB.
        decode_in_reads(&mut codec, &mut read_buf, &large, |f| {
            assert_eq!(f.len(), 20 * 1024);
            frames += 1;
        });
        frames
    };
    run(&mut kept); // warm-up: chunks carved, buffers grown
    let before = thread_allocs();
    let frames = run(&mut kept) + run(&mut kept);
    let allocs = thread_allocs() - before;
    assert_eq!(frames, 2 * 4200);
    assert_eq!(allocs, 0, "{allocs} allocations for {frames} frames");
    assert_eq!(slab.stats().heap_count(), 0);
}

#[cfg(feature = "codec")]
#[test]
fn framed_read_with_a_consumer_task_allocates_nothing_per_frame() {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let slab = capacitor_pool::Slab::new();
    let buffers = Arc::new(capacitor_pool::WorkerPool::new(|| {
        BytesMut::with_capacity(8 * 1024)
    }));
    let (allocs, frames) = rt.block_on(async {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<capacitor_pool::SlabBuf>(64);
        // Another task keeps the last 1,000 frames.
        let consumer = tokio::spawn(async move {
            let mut kept = std::collections::VecDeque::with_capacity(1000);
            while let Some(frame) = rx.recv().await {
                if kept.len() == 1000 {
                    kept.pop_front();
                }
                kept.push_back(frame);
            }
        });
        let mixed = {
            let mut w = wire(3000, 100);
            w.extend_from_slice(&wire(100, 20 * 1024));
            w
        };
        let mut round = async || {
            // A "connection" over the same pipe: pooled buffers each time.
            let mut rx_frames = capacitor_pool::codec::PooledFramed::framed_read(
                &mut server,
                capacitor_pool::codec::LengthDelimited::new(&slab),
                &buffers,
            );
            let writer = async {
                client.write_all(&mixed).await.unwrap();
                client.flush().await.unwrap();
            };
            let reader = async {
                let mut n = 0u64;
                while n < 3100 {
                    let frame = rx_frames.next().await.unwrap().unwrap();
                    tx.send(frame).await.unwrap();
                    n += 1;
                }
                n
            };
            tokio::join!(writer, reader).1
        };
        round().await; // warm-up
        round().await;
        let before = thread_allocs();
        let mut frames = 0;
        for _ in 0..3 {
            frames += round().await;
        }
        let allocs = thread_allocs() - before;
        drop(tx);
        consumer.await.unwrap();
        (allocs, frames)
    });
    assert_eq!(frames, 9300);
    assert_eq!(allocs, 0, "{allocs} allocations for {frames} frames");
    assert_eq!(slab.stats().heap_count(), 0);
    assert_eq!(buffers.stats().created_count, 1); // one read buffer, reused
}

/// `SlabFramedRead` over an in-memory reader (reads of up to 8 KiB):
/// small and large frames, the large payloads read straight into their
/// chunks, allocate nothing per frame once warm.
#[cfg(feature = "codec")]
#[test]
fn slab_framed_read_allocates_nothing_per_frame() {
    use futures_util::StreamExt;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Reads of at most 8 KiB from a byte slice.
    struct Capped<'a>(&'a [u8]);
    impl tokio::io::AsyncRead for Capped<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = buf.remaining().min(8 * 1024).min(self.0.len());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Poll::Ready(Ok(()))
        }
    }

    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let slab = capacitor_pool::Slab::new();
    let mut wire_bytes = wire(500, 100);
    wire_bytes.extend_from_slice(&wire(100, 20 * 1024));
    wire_bytes.extend_from_slice(&wire(500, 100));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut run = || {
        let codec = capacitor_pool::codec::LengthDelimited::new(&slab);
        let mut frames = capacitor_pool::codec::SlabFramedRead::new(Capped(&wire_bytes), codec);
        let mut n = 0u64;
        while let Poll::Ready(Some(frame)) = frames.poll_next_unpin(&mut cx) {
            black_box(frame.unwrap().len());
            n += 1;
        }
        n
    };
    run(); // warm-up: chunks carved
    // Each run makes a new reader, whose 8 KiB read buffer is its one
    // allocation: none per frame.
    let before = thread_allocs();
    let frames = run();
    let allocs = thread_allocs() - before;
    assert_eq!(frames, 1100);
    assert_eq!(allocs, 1, "{allocs} allocations for {frames} frames");
    assert_eq!(slab.stats().heap_count(), 0);
}

/// A header of a pooled request: two strings that keep their capacity.
#[derive(Default)]
struct Header {
    name: String,
    value: String,
}

impl capacitor_pool::Reset for Header {
    fn reset(&mut self) {
        self.name.reset();
        self.value.reset();
    }
    fn retained_bytes(&self) -> usize {
        self.name.retained_bytes() + self.value.retained_bytes()
    }
}

/// A pooled request made of strings and vectors, with its headers in a
/// `ReusableVec` (`H = ReusableVec<Header>`) or a plain `Vec`
/// (`H = Vec<Header>`), to compare.
#[derive(Default)]
struct Request<H> {
    method: String,
    path: String,
    headers: H,
    body: Vec<u8>,
}

impl<H: capacitor_pool::Reset> capacitor_pool::Reset for Request<H> {
    fn reset(&mut self) {
        self.method.reset();
        self.path.reset();
        self.headers.reset();
        self.body.reset();
    }
    fn retained_bytes(&self) -> usize {
        self.method.retained_bytes()
            + self.path.retained_bytes()
            + self.headers.retained_bytes()
            + self.body.retained_bytes()
    }
}

const HEADERS: [(&str, &str); 8] = [
    ("host", "api.example.com"),
    ("user-agent", "capacitor-test/1.0"),
    ("accept", "application/json"),
    ("accept-encoding", "gzip, deflate, br"),
    ("content-type", "application/json; charset=utf-8"),
    ("content-length", "64"),
    ("x-request-id", "7f3c2a9e-4b1d-4e8a-9c6f-2d5e8b1a0f47"),
    ("connection", "keep-alive"),
];

/// Fills a request as a parser would: method, path, 8 headers, a body.
fn parse_into(req: &mut Request<capacitor_pool::ReusableVec<Header>>, i: u64) {
    req.method.push_str("POST");
    req.path.push_str("/v1/items/");
    req.path.push_str(["42", "1337", "7"][i as usize % 3]);
    for (name, value) in HEADERS {
        req.headers.push_with(|h| {
            h.name.push_str(name);
            h.value.push_str(value);
        });
    }
    req.body.extend_from_slice(&[b'x'; 64]);
    black_box(&*req);
}

/// Requests per measured run of the request tests.
const REQUESTS: u64 = 1_000;

#[test]
fn pooled_requests_with_reusable_headers_allocate_nothing_once_warm() {
    use capacitor_pool::ReusableVec;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::new(Request::<ReusableVec<Header>>::default);
    let serve = |i| parse_into(&mut pool.get(), i);
    // Warm-up: the request, its headers and their strings made, each path
    // once.
    (0..3).for_each(serve);
    let before = thread_allocs();
    for i in 0..REQUESTS {
        serve(i);
    }
    let allocs = thread_allocs() - before;
    assert_eq!(allocs, 0, "{allocs} allocations in {REQUESTS} requests");
    let s = pool.stats();
    assert_eq!((s.created_count, s.hit_count), (1, REQUESTS + 2), "{s}");
    assert_eq!(pool.get().headers.spares(), HEADERS.len());
}

#[test]
fn worker_pooled_requests_with_reusable_headers_allocate_nothing_once_warm() {
    use capacitor_pool::{ReusableVec, WorkerPool};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let pool = Arc::new(WorkerPool::new(Request::<ReusableVec<Header>>::default));
    let allocs = rt.block_on({
        let pool = Arc::clone(&pool);
        async move {
            tokio::spawn(async move {
                let serve = |i| parse_into(&mut pool.get(), i);
                (0..3).for_each(serve);
                let before = thread_allocs();
                for i in 0..REQUESTS {
                    serve(i);
                }
                thread_allocs() - before
            })
            .await
            .unwrap()
        }
    });
    assert_eq!(allocs, 0, "{allocs} allocations in {REQUESTS} requests");
    assert_eq!(pool.stats().created_count, 1);
}

/// The same requests with a plain `Vec<Header>`: its reset drops the
/// headers, so every request allocates their 16 strings again.
#[test]
fn pooled_requests_with_a_vec_of_headers_allocate_two_strings_per_header() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Pool::new(Request::<Vec<Header>>::default);
    let serve = |i: u64| {
        let mut req = pool.get();
        req.method.push_str("POST");
        req.path.push_str("/v1/items/");
        req.path.push_str(["42", "1337", "7"][i as usize % 3]);
        for (name, value) in HEADERS {
            req.headers.push(Header {
                name: name.to_owned(),
                value: value.to_owned(),
            });
        }
        req.body.extend_from_slice(&[b'x'; 64]);
        black_box(&*req);
    };
    (0..3).for_each(serve);
    let before = thread_allocs();
    for i in 0..REQUESTS {
        serve(i);
    }
    let allocs = thread_allocs() - before;
    assert_eq!(allocs, 2 * HEADERS.len() as u64 * REQUESTS);
}
