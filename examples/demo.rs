//! The tour: one process, a TCP echo-style server and a load client, run
//! twice on the same load: once the plain way (`tokio_util`'s
//! `LengthDelimitedCodec` and an allocation per buffer) and once with the
//! crate's pools. It ends with a side-by-side table.
//!
//! ```sh
//! cargo run --release --example demo              # the default run (5 to 20 s on 2 busy cores)
//! cargo run --release --example demo -- --small   # a few seconds (what CI runs)
//! cargo run --release --example demo -- --help    # the flags
//! ```
//!
//! # What runs
//!
//! The server listens on 127.0.0.1 (an ephemeral port) on its own
//! multi-thread runtime (`--workers` threads). One task per connection
//! reads length-delimited request frames `[id: u64][body]` and, for each,
//! in order:
//!
//! 1. takes an in-flight slot, which bounds the requests the server works on
//!    at once (`--inflight`);
//! 2. takes a scratch buffer and decodes the body into it (XOR with a key);
//! 3. every 8th request, crosses an `.await` (a stand-in for a backend call)
//!    while holding both;
//! 4. writes the response `[id][checksum of the decoded body][decoded body
//!    reversed]` and sends it as a frame.
//!
//! | | plain | pooled |
//! |---|---|---|
//! | framing | `Framed<TcpStream, LengthDelimitedCodec>` | `PooledFramed::framed(socket, LengthDelimited::new(&slab), &buffers)` |
//! | connection buffers | allocated per connection | `WorkerPool<BytesMut>` |
//! | request frames | `BytesMut` split off the read buffer | `SlabBuf` chunks of a `Slab` |
//! | in-flight bound, response buffer | `Semaphore` + `Vec::with_capacity` | `RingPool<Vec<u8>>` slot (the slot is the response buffer) |
//! | scratch buffer | `Vec::with_capacity` | `WorkerPool<Vec<u8>>`, prefilled for the load |
//!
//! No task is spawned per request (a spawn allocates): each connection's
//! requests run in its own task, one after another.
//!
//! The client is the same in both runs: `--connections` plain `tokio_util`
//! `Framed` connections (so it also shows that the slab codec is
//! wire-compatible), each keeping `--pipeline` requests in flight and
//! checking every reply byte for byte. A first set of connections warms the
//! server up and closes; a second set connects (in the pooled run, its
//! buffers come back from the pool), sends a few more warm-up frames, and
//! then all of them start the timed window together.
//!
//! # What the numbers mean
//!
//! - **frames/s**: request/reply pairs completed in the timed window, per
//!   second of its wall time.
//! - **server allocations / frame**: heap allocations (and reallocations)
//!   made *on the server runtime's threads* during the timed window, per
//!   frame. The demo's global allocator wraps the tests' counting allocator
//!   and also counts, in a separate counter, the allocations of threads
//!   tagged as server threads (tagged by the server runtime's
//!   `on_thread_start` hook). The client runs on another runtime, on the main
//!   thread, so none of its allocations land in this counter. Warm-up is
//!   excluded: the window opens once every timed connection is connected
//!   and warm, and closes when the last reply is in.
//! - **process allocations / frame**: the same window, every thread (the
//!   client's own allocations included: it allocates each request).
//! - **peak heap**: the most heap bytes live at once during the whole run
//!   (warm-up included, client included), above what was live before it.
//!   The pooled run's pools, slab pages and ring are made inside the run, so
//!   they count.
//! - **latency p50 / p99**: from writing a request to reading its reply, as
//!   the client sees it, over the timed window (with pipelining, a request
//!   also waits for the ones before it on its connection).
//! - **hit rates**, over the timed window: request frames served by a reused
//!   slab chunk (heap fallbacks count as misses), scratch buffers taken from
//!   the pool without making one, requests admitted at once by the in-flight
//!   bound (ring or semaphore) without waiting; and the timed connections'
//!   read and write buffers that came back from the pool (the warm-up
//!   connections returned theirs when they closed, each to the magazine of
//!   the worker it closed on: a connection accepted on the other worker
//!   misses unless the depot has one).
//!
//! The demo exits with status 1 if any reply is wrong, 2 for a bad flag.

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use capacitor_pool::{LengthDelimited, PooledFramed, RingPool, Slab, WorkerPool};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Barrier, Semaphore};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

// ---- allocation counting: the whole process, and the server's threads.

/// The tests' counting allocator, plus a count of the allocations made on
/// threads tagged as server threads.
struct Demo;

#[global_allocator]
static ALLOC: Demo = Demo;

static SERVER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ON_SERVER: Cell<bool> = const { Cell::new(false) };
}

fn count_server() {
    let _ = ON_SERVER.try_with(|on| {
        if on.get() {
            SERVER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
    });
}

// SAFETY: every call forwards to `Counting` (which forwards to `System`)
// with the same arguments; the extra counting touches only an atomic and a
// const-initialised thread-local `Cell` (no allocation, no destructor).
unsafe impl GlobalAlloc for Demo {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_server();
        // SAFETY: forwarded contract.
        unsafe { counting_alloc::Counting.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_server();
        // SAFETY: forwarded contract.
        unsafe { counting_alloc::Counting.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { counting_alloc::Counting.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_server();
        // SAFETY: forwarded contract.
        unsafe { counting_alloc::Counting.realloc(ptr, layout, new_size) }
    }
}

// ---- flags.

const MAX_SIZE: u64 = 1 << 20;

/// Latency samples kept per run, over all connections (8 bytes each); past
/// it, the percentiles come from the first ones.
const MAX_LATENCIES: u64 = 1 << 23;

/// A TCP server framed with the slab codec and pooled buffers, against the
/// plain `tokio_util` way, under the same load.
#[derive(Parser, Debug)]
#[command(
    name = "demo",
    about = "capacitor-pool's tour: a TCP server run plain and pooled under the same load, side by side",
    after_help = "Each run sends a warm-up of 10% of --frames (at least 100 per connection) on \
                  connections that then close, then times --frames on fresh connections. \
                  The progress bar is hidden when stderr is not a terminal."
)]
struct Args {
    /// Client connections, 1 to 256 [default: 8; 4 with --small]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    connections: Option<u64>,

    /// Frames to time per run, in total over all connections (split evenly)
    /// [default: 200000; 20000 with --small]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    frames: Option<u64>,

    /// Request payload bytes per frame, 16 to 1048576 (the reply is 8 more)
    #[arg(long, value_name = "BYTES", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(16..=MAX_SIZE))]
    size: u64,

    /// Stop each run's warm-up and timed phases after this long, even with
    /// frames left (e.g. 5, 2.5s, 800ms) [default: 10s; 3s with --small]
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Server runtime worker threads
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    workers: u64,

    /// Requests the server works on at once, over all connections (the
    /// RingPool's slots, the Semaphore's permits)
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    inflight: u64,

    /// Requests each client connection keeps in flight
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pipeline: u64,

    /// A small, quick run (for CI): 4 connections, 20000 frames, 3 s at most
    /// per phase
    #[arg(long)]
    small: bool,

    /// No progress bar
    #[arg(long)]
    no_progress: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(secs) = s.strip_suffix('s') {
        (secs, 1.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale <= 86_400.0 => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        Ok(_) => Err("must be above 0 and at most a day".into()),
        Err(_) => Err("expected seconds (5, 2.5s) or milliseconds (800ms)".into()),
    }
}

/// The flags, with `--small` and the defaults applied.
#[derive(Debug, Clone, Copy)]
struct Config {
    connections: usize,
    frames: u64,
    size: usize,
    duration: Duration,
    workers: usize,
    inflight: usize,
    pipeline: usize,
    progress: bool,
}

impl Config {
    fn from_args(a: Args) -> Config {
        Config {
            connections: a.connections.unwrap_or(if a.small { 4 } else { 8 }) as usize,
            frames: a.frames.unwrap_or(if a.small { 20_000 } else { 200_000 }),
            size: a.size as usize,
            duration: a
                .duration
                .unwrap_or(Duration::from_secs(if a.small { 3 } else { 10 })),
            workers: a.workers as usize,
            inflight: a.inflight as usize,
            pipeline: a.pipeline as usize,
            progress: !a.no_progress,
        }
    }

    /// Timed frames for connection `i`.
    fn frames_for(&self, i: usize) -> u64 {
        let c = self.connections as u64;
        self.frames / c + u64::from((i as u64) < self.frames % c)
    }

    /// Warm-up frames per connection, first set.
    fn warmup_frames(&self) -> u64 {
        (self.frames / 10 / self.connections as u64).max(100)
    }

    /// Latencies kept for connection `i`: its timed frames, up to a bound
    /// (a long `--frames` with a `--duration` cap would reserve gigabytes).
    fn latency_capacity(&self, i: usize) -> usize {
        self.frames_for(i)
            .min(MAX_LATENCIES / self.connections as u64) as usize
    }

    /// Warm-up frames per connection, timed set (before the window).
    fn prime_frames(&self) -> u64 {
        (4 * self.pipeline as u64).max(8)
    }
}

// ---- the handler's work, the same in both modes.

const KEY: u8 = 0xa5;

/// Decodes a request `[id][body]` into `scratch`; returns the id.
fn decode(request: &[u8], scratch: &mut Vec<u8>) -> u64 {
    let id = u64::from_be_bytes(request[..8].try_into().expect("8 bytes"));
    scratch.extend(request[8..].iter().map(|b| b ^ KEY));
    id
}

/// Writes the response `[id][checksum][decoded body reversed]` into `out`.
fn respond(id: u64, decoded: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&checksum(decoded).to_be_bytes());
    out.extend(decoded.iter().rev());
}

fn checksum(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for chunk in data.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word))
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(29);
    }
    h
}

/// Whether request `id` crosses an `.await` (a backend call) in the handler.
fn calls_backend(id: u64) -> bool {
    id % 8 == 0
}

// ---- the servers.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Plain,
    Pooled,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Pooled => "pooled",
        }
    }
}

/// What the plain server shares between connections.
struct Plain {
    inflight: Semaphore,
    /// Requests that had to wait for a permit.
    waits: AtomicU64,
}

/// What the pooled server shares between connections.
struct Pools {
    slab: Slab,
    buffers: Arc<WorkerPool<BytesMut>>,
    scratch: WorkerPool<Vec<u8>>,
    ring: RingPool<Vec<u8>>,
}

/// Scratch buffers per worker magazine.
const SCRATCH_MAGAZINE: usize = 8;

impl Pools {
    fn new(cfg: &Config) -> Pools {
        let size = cfg.size;
        // Objects grown to hold the largest frame stay pooled.
        let retain = (4 * (size + 64)).max(capacitor_pool::DEFAULT_RETENTION_LIMIT);
        let slab = Slab::builder()
            .max_chunk(
                size.next_power_of_two()
                    .max(capacitor_pool::DEFAULT_MAX_CHUNK),
            )
            .build()
            .expect("valid slab bounds");
        // Carve the request frames' chunks up front, as many as can be
        // live at once (a frame per connection, two sets of connections),
        // the way `prefill` sizes the scratch pool below. (Without it the
        // slab carves them during the run, one miss at a time.)
        let carved: Vec<_> = (0..2 * cfg.connections)
            .map(|_| slab.alloc_or_heap(size))
            .collect();
        drop(carved);
        let buffers = Arc::new(
            WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024))
                .workers(cfg.workers)
                .retention_limit(retain)
                .build(),
        );
        // Sized for the load: with every other worker's magazine full and
        // every in-flight request holding one, a worker still finds one in
        // the depot.
        // (Without `prefill` the pool grows to this size by itself, one
        // miss at a time.)
        let scratch = WorkerPool::builder(move || Vec::with_capacity(size))
            .workers(cfg.workers)
            .magazine_size(SCRATCH_MAGAZINE)
            .prefill(cfg.workers * SCRATCH_MAGAZINE + cfg.inflight)
            .retention_limit(retain)
            .build();
        let ring = RingPool::builder(cfg.inflight, move || Vec::with_capacity(size + 16))
            .retention_limit(retain)
            .build()
            .expect("inflight is 1 to 4096");
        Pools {
            slab,
            buffers,
            scratch,
            ring,
        }
    }
}

#[derive(Clone)]
enum Server {
    Plain(Arc<Plain>),
    Pooled(Arc<Pools>),
}

impl Server {
    fn new(mode: Mode, cfg: &Config) -> Server {
        match mode {
            Mode::Plain => Server::Plain(Arc::new(Plain {
                inflight: Semaphore::new(cfg.inflight),
                waits: AtomicU64::new(0),
            })),
            Mode::Pooled => Server::Pooled(Arc::new(Pools::new(cfg))),
        }
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((socket, _)) => {
                    let server = self.clone();
                    tokio::spawn(async move {
                        let served = match server {
                            Server::Plain(plain) => serve_plain(socket, &plain).await,
                            Server::Pooled(pools) => serve_pooled(socket, &pools).await,
                        };
                        match served {
                            // The client hung up first (it does so when a
                            // reply is wrong): its error says why.
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                                ) => {}
                            Err(e) => eprintln!("demo: server connection: {e}"),
                            Ok(()) => {}
                        }
                    });
                }
                Err(e) => eprintln!("demo: accept: {e}"),
            }
        }
    }
}

/// One connection, the plain way.
async fn serve_plain(socket: TcpStream, plain: &Plain) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let mut framed = Framed::new(socket, LengthDelimitedCodec::new());
    while let Some(frame) = framed.next().await {
        let frame = frame?;
        let _permit = match plain.inflight.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                plain.waits.fetch_add(1, Ordering::Relaxed);
                plain.inflight.acquire().await.map_err(io::Error::other)?
            }
        };
        let mut scratch = Vec::with_capacity(frame.len());
        let id = decode(&frame, &mut scratch);
        drop(frame);
        if calls_backend(id) {
            tokio::task::yield_now().await;
        }
        let mut response = Vec::with_capacity(scratch.len() + 16);
        respond(id, &scratch, &mut response);
        drop(scratch);
        framed.send(Bytes::from(response)).await?;
    }
    Ok(())
}

/// One connection, pooled: buffers, frames, slots and scratch all reused.
async fn serve_pooled(socket: TcpStream, pools: &Pools) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let mut framed =
        PooledFramed::framed(socket, LengthDelimited::new(&pools.slab), &pools.buffers);
    while let Some(frame) = framed.next().await {
        let frame = frame?; // a SlabBuf
        // The slot bounds the requests in flight; its Vec is the response.
        let mut slot = pools.ring.get().await.map_err(io::Error::other)?;
        let mut scratch = pools.scratch.get();
        let id = decode(&frame, &mut scratch);
        drop(frame);
        if calls_backend(id) {
            tokio::task::yield_now().await;
        }
        respond(id, &scratch, &mut slot);
        drop(scratch);
        framed.send(&slot[..]).await?;
    }
    Ok(())
}

// ---- the client.

/// One client connection: plain `tokio_util` framing, pipelined requests,
/// every reply checked.
struct Conn {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    pipeline: usize,
    body: Vec<u8>,
    expect_sum: u64,
    expect_rev: Vec<u8>,
    next_id: u64,
    next_reply: u64,
    sent_at: VecDeque<Instant>,
}

impl Conn {
    async fn connect(addr: SocketAddr, n: usize, cfg: &Config) -> io::Result<Conn> {
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let body: Vec<u8> = (0..cfg.size - 8)
            .map(|i| (i * 31 + n * 7 + 1) as u8)
            .collect();
        let decoded: Vec<u8> = body.iter().map(|b| b ^ KEY).collect();
        Ok(Conn {
            framed: Framed::new(socket, LengthDelimitedCodec::new()),
            pipeline: cfg.pipeline,
            expect_sum: checksum(&decoded),
            expect_rev: decoded.into_iter().rev().collect(),
            body,
            next_id: (n as u64) << 40,
            next_reply: (n as u64) << 40,
            sent_at: VecDeque::with_capacity(cfg.pipeline),
        })
    }

    async fn feed(&mut self) -> io::Result<()> {
        let mut request = BytesMut::with_capacity(8 + self.body.len());
        request.put_u64(self.next_id);
        request.put_slice(&self.body);
        self.next_id += 1;
        self.sent_at.push_back(Instant::now());
        self.framed.feed(request.freeze()).await
    }

    fn check(&self, reply: &[u8]) -> Result<(), String> {
        let id = self.next_reply;
        if reply.len() != 16 + self.body.len() {
            return Err(format!(
                "reply to request {id:#x} has {} bytes, expected {}",
                reply.len(),
                16 + self.body.len()
            ));
        }
        let got_id = u64::from_be_bytes(reply[..8].try_into().expect("8 bytes"));
        if got_id != id {
            return Err(format!(
                "expected the reply to request {id:#x}, got {got_id:#x}"
            ));
        }
        let sum = u64::from_be_bytes(reply[8..16].try_into().expect("8 bytes"));
        if sum != self.expect_sum || reply[16..] != self.expect_rev[..] {
            return Err(format!(
                "reply to request {id:#x} has a wrong checksum or body"
            ));
        }
        Ok(())
    }

    /// Sends `n` requests (fewer if `deadline` passes), keeping `pipeline`
    /// in flight; records each latency in `latencies` if given.
    async fn run(
        &mut self,
        n: u64,
        deadline: Option<Instant>,
        mut latencies: Option<&mut Vec<u64>>,
        bar: &ProgressBar,
    ) -> Result<u64, String> {
        let io_err = |e: io::Error| format!("client: {e}");
        let (mut sent, mut done, mut unreported) = (0u64, 0u64, 0u64);
        while sent < n && sent < self.pipeline as u64 {
            self.feed().await.map_err(io_err)?;
            sent += 1;
        }
        SinkExt::<Bytes>::flush(&mut self.framed)
            .await
            .map_err(io_err)?;
        while done < sent {
            let reply = match self.framed.next().await {
                Some(reply) => reply.map_err(io_err)?,
                None => return Err("client: the server closed the connection".into()),
            };
            let sent_at = self.sent_at.pop_front().expect("a request in flight");
            self.check(&reply)?;
            if let Some(latencies) = latencies.as_deref_mut() {
                // Never grows: the vector was sized before the run.
                if latencies.len() < latencies.capacity() {
                    latencies.push(sent_at.elapsed().as_nanos() as u64);
                }
            }
            self.next_reply += 1;
            done += 1;
            unreported += 1;
            if unreported == 256 {
                bar.inc(unreported);
                unreported = 0;
            }
            if sent < n && deadline.is_none_or(|d| Instant::now() < d) {
                self.feed().await.map_err(io_err)?;
                SinkExt::<Bytes>::flush(&mut self.framed)
                    .await
                    .map_err(io_err)?;
                sent += 1;
            }
        }
        bar.inc(unreported);
        Ok(done)
    }
}

// ---- one run.

/// Counters read at the edges of the timed window.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    server_allocs: u64,
    allocs: u64,
    slab_gets: u64,
    slab_hits: u64,
    scratch_gets: u64,
    scratch_hits: u64,
    bound_gets: u64,
    bound_waits: u64,
    buffer_gets: u64,
    buffer_hits: u64,
}

impl Snapshot {
    fn take(server: &Server) -> Snapshot {
        let mut s = Snapshot {
            server_allocs: SERVER_ALLOCS.load(Ordering::Relaxed),
            allocs: counting_alloc::allocs(),
            ..Snapshot::default()
        };
        match server {
            Server::Plain(plain) => s.bound_waits = plain.waits.load(Ordering::Relaxed),
            Server::Pooled(pools) => {
                let slab = pools.slab.stats();
                s.slab_gets = slab.alloc_count() + slab.heap_count();
                s.slab_hits = slab.classes.iter().map(|c| c.pool.hit_count).sum();
                let scratch = pools.scratch.stats();
                s.scratch_gets = scratch.get_count;
                s.scratch_hits = scratch.hit_count;
                let ring = pools.ring.stats();
                s.bound_gets = ring.get_count;
                s.bound_waits = ring.wait_count;
                let buffers = pools.buffers.stats();
                s.buffer_gets = buffers.get_count;
                s.buffer_hits = buffers.hit_count;
            }
        }
        s
    }
}

/// What a run measured.
struct Report {
    frames: u64,
    elapsed: Duration,
    server_allocs: u64,
    allocs: u64,
    peak_heap: usize,
    p50: Duration,
    p99: Duration,
    slab_hit: Option<f64>,
    slab_misses: u64,
    scratch_hit: Option<f64>,
    scratch_misses: u64,
    admitted_at_once: f64,
    buffers_hit: Option<f64>,
    buffer_gets: u64,
}

fn ratio(hits: u64, gets: u64) -> f64 {
    if gets == 0 {
        f64::NAN
    } else {
        hits as f64 / gets as f64
    }
}

fn run(mode: Mode, cfg: &Config) -> Result<Report, String> {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.workers)
        .thread_name(match mode {
            Mode::Plain => "plain-server",
            Mode::Pooled => "pooled-server",
        })
        .on_thread_start(|| ON_SERVER.with(|on| on.set(true)))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server runtime: {e}"))?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;
    let mut latencies: Vec<Vec<u64>> = (0..cfg.connections)
        .map(|i| Vec::with_capacity(cfg.latency_capacity(i)))
        .collect();

    let total = cfg.connections as u64 * (cfg.warmup_frames() + cfg.prime_frames()) + cfg.frames;
    let bar = if cfg.progress {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>6} {msg:7} [{wide_bar}] {pos}/{len} frames {rate}")
            .expect("a valid template")
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                },
            )
            .progress_chars("=> "),
    );
    bar.set_prefix(mode.name());

    // Everything from here on counts in the run's peak heap.
    let baseline = counting_alloc::live_bytes();
    counting_alloc::reset_peak();
    let server = Server::new(mode, cfg);
    let listener = server_rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    server_rt.spawn(server.clone().accept_loop(listener));

    let cfg = *cfg;
    let window = client_rt.block_on({
        let server = server.clone();
        let bar = bar.clone();
        let latencies = &mut latencies;
        async move { drive(addr, &cfg, &server, &bar, latencies).await }
    });
    let peak_heap = counting_alloc::peak_bytes().saturating_sub(baseline);
    bar.finish_and_clear();
    let (elapsed, frames, connecting, before, after) = window?;
    // Close the server: its tasks end, its buffers go back.
    server_rt.shutdown_timeout(Duration::from_secs(1));

    let mut all: Vec<u64> = latencies.into_iter().flatten().collect();
    all.sort_unstable();
    let pct = |p: usize| {
        all.get((all.len().saturating_sub(1)) * p / 100)
            .map_or(Duration::ZERO, |&ns| Duration::from_nanos(ns))
    };
    let gets = |a: u64, b: u64| b - a;
    let pooled = matches!(server, Server::Pooled(_));
    let bound_gets = if pooled {
        gets(before.bound_gets, after.bound_gets)
    } else {
        frames
    };
    Ok(Report {
        frames,
        elapsed,
        server_allocs: after.server_allocs - before.server_allocs,
        allocs: after.allocs - before.allocs,
        peak_heap,
        p50: pct(50),
        p99: pct(99),
        slab_hit: pooled.then(|| {
            ratio(
                gets(before.slab_hits, after.slab_hits),
                gets(before.slab_gets, after.slab_gets),
            )
        }),
        slab_misses: gets(before.slab_gets, after.slab_gets)
            - gets(before.slab_hits, after.slab_hits),
        scratch_misses: gets(before.scratch_gets, after.scratch_gets)
            - gets(before.scratch_hits, after.scratch_hits),
        scratch_hit: pooled.then(|| {
            ratio(
                gets(before.scratch_hits, after.scratch_hits),
                gets(before.scratch_gets, after.scratch_gets),
            )
        }),
        admitted_at_once: 1.0 - ratio(gets(before.bound_waits, after.bound_waits), bound_gets),
        buffer_gets: gets(connecting.buffer_gets, before.buffer_gets),
        buffers_hit: pooled.then(|| {
            ratio(
                gets(connecting.buffer_hits, before.buffer_hits),
                gets(connecting.buffer_gets, before.buffer_gets),
            )
        }),
    })
}

/// The timed window's length and frames, and the counters when the timed
/// connections started to connect, when the window opened and when it
/// closed.
type Window = (Duration, u64, Snapshot, Snapshot, Snapshot);

/// The client side of a run: the warm-up set, then the timed set.
async fn drive(
    addr: SocketAddr,
    cfg: &Config,
    server: &Server,
    bar: &ProgressBar,
    latencies: &mut [Vec<u64>],
) -> Result<Window, String> {
    let cfg = *cfg;
    let started = Instant::now();
    let deadline = Some(started + cfg.duration);

    // Warm-up: a first set of connections, closed when done.
    bar.set_message("warm-up");
    let warm: Vec<_> = (0..cfg.connections)
        .map(|i| {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut conn = Conn::connect(addr, i, &cfg)
                    .await
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                conn.run(cfg.warmup_frames(), deadline, None, &bar).await
            })
        })
        .collect();
    for task in warm {
        task.await.map_err(|e| format!("client task: {e}"))??;
    }
    // Let the server see those connections close (and, pooled, return
    // their buffers) before the next set connects.
    for _ in 0..1000 {
        let open = match server {
            Server::Pooled(pools) => pools.buffers.stats().num_in_use,
            Server::Plain(_) => 0,
        };
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let connecting = Snapshot::take(server);

    // The timed set: connect, warm up a little, then all start together.
    let ready = Arc::new(Barrier::new(cfg.connections + 1));
    let go = Arc::new(Barrier::new(cfg.connections + 1));
    let start = Arc::new(OnceLock::<Instant>::new());
    let timed: Vec<_> = latencies
        .iter_mut()
        .enumerate()
        .map(|(i, lat)| {
            let mut lat = std::mem::take(lat);
            let (bar, ready, go, start) = (bar.clone(), ready.clone(), go.clone(), start.clone());
            tokio::spawn(async move {
                let result = async {
                    let mut conn = Conn::connect(addr, cfg.connections + i, &cfg)
                        .await
                        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                    conn.run(cfg.prime_frames(), None, None, &bar).await?;
                    Ok::<_, String>(conn)
                }
                .await;
                ready.wait().await;
                go.wait().await;
                let mut conn = result?;
                let deadline = Some(*start.get().expect("set before go") + cfg.duration);
                let frames = conn
                    .run(cfg.frames_for(i), deadline, Some(&mut lat), &bar)
                    .await?;
                // The connection stays open until the window is closed.
                Ok::<_, String>((frames, lat, conn))
            })
        })
        .collect();
    ready.wait().await;
    bar.set_message("timed");
    let before = Snapshot::take(server);
    let t0 = Instant::now();
    start.set(t0).expect("set once");
    go.wait().await;
    let mut frames = 0;
    let mut first_err = None;
    let mut open = Vec::with_capacity(cfg.connections);
    for (task, slot) in timed.into_iter().zip(latencies.iter_mut()) {
        match task.await.map_err(|e| format!("client task: {e}"))? {
            Ok((n, lat, conn)) => {
                frames += n;
                *slot = lat;
                open.push(conn);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let elapsed = t0.elapsed();
    let after = Snapshot::take(server);
    // Closing connections allocates in the server (tokio's I/O driver
    // queues their registrations for release): after the window.
    drop(open);
    match first_err {
        Some(e) => Err(e),
        None => Ok((elapsed, frames, connecting, before, after)),
    }
}

// ---- the table.

fn fmt_bytes(b: usize) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

fn fmt_us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn fmt_pct(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_nan() => "no gets".into(),
        Some(r) => format!("{:.2}%", r * 100.0),
        None => "-".into(),
    }
}

fn print_table(cfg: &Config, plain: &Report, pooled: &Report) {
    let per_frame = |r: &Report, n: u64| n as f64 / r.frames.max(1) as f64;
    let fps = |r: &Report| r.frames as f64 / r.elapsed.as_secs_f64();
    let x = |a: f64, b: f64| {
        if a > 0.0 && b.is_finite() {
            format!("{:.2}x", b / a)
        } else {
            "-".into()
        }
    };
    let rows: Vec<[String; 4]> = vec![
        [
            "frames timed".into(),
            plain.frames.to_string(),
            pooled.frames.to_string(),
            String::new(),
        ],
        [
            "frames/s".into(),
            format!("{:.0}", fps(plain)),
            format!("{:.0}", fps(pooled)),
            x(fps(plain), fps(pooled)),
        ],
        [
            "server allocations / frame".into(),
            format!("{:.2}", per_frame(plain, plain.server_allocs)),
            format!("{:.2}", per_frame(pooled, pooled.server_allocs)),
            format!(
                "({} vs {} in all)",
                plain.server_allocs, pooled.server_allocs
            ),
        ],
        [
            "process allocations / frame".into(),
            format!("{:.2}", per_frame(plain, plain.allocs)),
            format!("{:.2}", per_frame(pooled, pooled.allocs)),
            "(client included)".into(),
        ],
        [
            "peak heap".into(),
            fmt_bytes(plain.peak_heap),
            fmt_bytes(pooled.peak_heap),
            format!(
                "{} (pools, slab pages, ring included)",
                x(plain.peak_heap as f64, pooled.peak_heap as f64)
            ),
        ],
        [
            "latency p50".into(),
            fmt_us(plain.p50),
            fmt_us(pooled.p50),
            x(plain.p50.as_secs_f64(), pooled.p50.as_secs_f64()),
        ],
        [
            "latency p99".into(),
            fmt_us(plain.p99),
            fmt_us(pooled.p99),
            x(plain.p99.as_secs_f64(), pooled.p99.as_secs_f64()),
        ],
        [
            "hit rate: slab (request frames)".into(),
            fmt_pct(plain.slab_hit),
            fmt_pct(pooled.slab_hit),
            format!("({} misses)", pooled.slab_misses),
        ],
        [
            "hit rate: scratch WorkerPool".into(),
            fmt_pct(plain.scratch_hit),
            fmt_pct(pooled.scratch_hit),
            format!("({} misses)", pooled.scratch_misses),
        ],
        [
            "admitted without waiting".into(),
            fmt_pct(Some(plain.admitted_at_once)),
            fmt_pct(Some(pooled.admitted_at_once)),
            "(Semaphore | RingPool)".into(),
        ],
        [
            "hit rate: connection buffers".into(),
            fmt_pct(plain.buffers_hit),
            fmt_pct(pooled.buffers_hit),
            format!("(of {} taken by the timed connections)", pooled.buffer_gets),
        ],
    ];
    let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    println!(
        "\n{:<w0$}  {:>14}  {:>14}  pooled/plain",
        "", "plain", "pooled"
    );
    for r in &rows {
        println!("{:<w0$}  {:>14}  {:>14}  {}", r[0], r[1], r[2], r[3]);
    }
    let zero = pooled.server_allocs as f64 / pooled.frames.max(1) as f64 <= 0.005;
    println!(
        "\n{}: the pooled server made {} allocations in {} frames ({:.2} per frame; plain: {:.2}), \
         at {} the frames/s, {} the p99 latency and {} the peak heap{}.",
        if zero {
            "verdict"
        } else {
            "verdict (NOT allocation-free)"
        },
        pooled.server_allocs,
        pooled.frames,
        per_frame(pooled, pooled.server_allocs),
        per_frame(plain, plain.server_allocs),
        x(fps(plain), fps(pooled)),
        x(plain.p99.as_secs_f64(), pooled.p99.as_secs_f64()),
        x(plain.peak_heap as f64, pooled.peak_heap as f64),
        if plain.frames.min(pooled.frames) < cfg.frames {
            " (the --duration cap cut a run short: compare rates, not totals)"
        } else {
            ""
        }
    );
}

fn main() -> ExitCode {
    let cfg = Config::from_args(Args::parse());
    println!(
        "capacitor-pool demo: {} connections x {} pipelined, {} timed frames of {} B per run, \
         server on {} workers with {} requests in flight at most, {:.1?} at most per phase",
        cfg.connections,
        cfg.pipeline,
        cfg.frames,
        cfg.size,
        cfg.workers,
        cfg.inflight,
        cfg.duration
    );
    let mut reports = Vec::new();
    for mode in [Mode::Plain, Mode::Pooled] {
        let started = Instant::now();
        match run(mode, &cfg) {
            Ok(report) => {
                println!(
                    "{:>6}: {} frames in {:.2?} (run: {:.2?})",
                    mode.name(),
                    report.frames,
                    report.elapsed,
                    started.elapsed()
                );
                reports.push(report);
            }
            Err(e) => {
                eprintln!("demo: the {} run failed: {e}", mode.name());
                return ExitCode::FAILURE;
            }
        }
    }
    print_table(&cfg, &reports[0], &reports[1]);
    ExitCode::SUCCESS
}
