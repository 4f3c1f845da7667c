//! The end-to-end load test: one TCP server, written the plain way and on
//! the crate's pools, run in a process of its own under the same client,
//! in alternating runs (plain, pooled, plain, pooled, ...), with the numbers
//! an operator's dashboard shows: requests per second, latency percentiles,
//! server CPU time per request, resident memory and server allocations per
//! request. It ends with a side-by-side table of medians and ranges.
//!
//! ```sh
//! cargo run --release --example demo                    # echo and typical, 2 pairs each (under a minute)
//! cargo run --release --example demo -- --full          # echo, typical and large, 5 pairs each, longer windows
//! cargo run --release --example demo -- --small         # a few seconds (what CI runs)
//! cargo run --release --example demo -- --small --hold-warning 50  # one handler sits on a buffer: where?
//! cargo run --release --example demo --features mimalloc  # adds "plain on mimalloc"
//! cargo run --release --example demo -- --help          # the flags
//! ```
//!
//! # Profiles
//!
//! Each profile is one handler, written twice with the same logic:
//!
//! | profile | request | plain server | pooled server |
//! |---|---|---|---|
//! | `echo` | a frame of `--size` bytes (512), sent back | `Framed<_, LengthDelimitedCodec>`, the frame's `BytesMut` sent back | `PooledFramed` over `LengthDelimited`: connection buffers from a `WorkerPool`, the frame in a `Slab` chunk |
//! | `typical` | a method, a path, 8 `name: value` headers and a 1 KiB body | parsed into a `Request` of `String`s and a `Vec` of header pairs, a key looked up in a shared map, a response of 4 headers and the value formatted with `write!` into a new `String` | the same parse into a `PooledRequest` taken from a `worker_pool!` (its strings and body keep their capacity, its `ReusableVec` of header pairs keeps the cleared pairs), the response written into a pooled `String` |
//! | `large` | a frame of 256 KiB to 1 MiB, sent back | as `echo` | `SlabFramedRead` reads each payload from the socket straight into a slab chunk (classes up to 1 MiB); the reply goes out from the chunk in one vectored write, without a copy into a write buffer |
//!
//! With the `mimalloc` feature, a third server runs the plain code on
//! `mimalloc` as the global allocator: swapping the allocator is the first
//! thing a Rust user tries, and the pools must beat that too.
//!
//! # How it measures
//!
//! The server is this binary again (`--serve`), a child process with its
//! own tokio runtime (`--workers` threads, 2 by default), so that its CPU
//! time and resident memory are its own. The client runs in this process on
//! a current-thread runtime: `--connections` connections (16), each sending
//! one request, awaiting the reply and checking it, in a loop. The client
//! is kept light: a request goes out in one vectored write (no copy), a
//! reply is read into a buffer reused for every reply, and a `large` reply
//! is checked by its length, its ends and one byte in 1024. After a
//! warm-up, the server's counters are read (over a pipe), the timed window
//! runs, and they are read again.
//!
//! - **req/s**: replies in the window over its wall time.
//! - **p50 / p99 / p99.9**: request-to-reply latency as the client sees it,
//!   in an HDR histogram (microsecond precision).
//! - **CPU/req**: the server's user + system CPU time (`getrusage`) in the
//!   window, per request.
//! - **RSS steady / peak**: the server's resident memory at the end of the
//!   window (`VmRSS`) and its high-water mark over the whole run (`VmHWM`):
//!   what the operator sees, the allocator's free lists included.
//! - **allocs/req**: heap allocations (and reallocations) on the server's
//!   threads in the window, per request; each thread counts its own in a
//!   counter no other thread writes.
//! - **client CPU**: the client's CPU time over the window's wall time. On a
//!   2-core machine the client and the server share the cores; a client
//!   near 100% of a core would be the bottleneck, and the table says so.
//!
//! # Long holds
//!
//! `--hold-warning MS` sets a hold warning of `MS` milliseconds on the
//! pooled `typical` server's response buffers (the `responses` pool, see
//! [`capacitor_pool::observe`]), and the first request that server handles
//! takes its response buffer and sits on it for 3x `MS` before using it
//! (`sit_on_a_response_buffer`, a handler awaiting a slow backend with the
//! buffer in hand). A [`Reporter`] round on the server prints the hold while
//! it is on (the file, line and column of the `get`, and its age), and the
//! server prints the pool's `hold_sites()` and `long_hold_count` when it
//! stops, all on lines that start with `hold warning:`. The pooled
//! `typical` runs' numbers then include that one slow request. Without the
//! flag no pool has a hold warning.
//!
//! The demo exits with status 1 if any reply is wrong, 2 for a bad flag.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use capacitor_pool::codec::{LengthDelimited, PooledFramed, SlabFramedRead};
use capacitor_pool::observe::Reporter;
use capacitor_pool::worker::WorkerPoolBuilder;
use capacitor_pool::{Reset, ReusableVec, Slab, StaticPooled, WorkerPool, worker_pool};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

// ---- the allocator: counts per thread; plain System, or mimalloc.

/// Counts allocations on the threads that registered a counter (the
/// server's runtime threads), then forwards to the system allocator, or to
/// `mimalloc` when the process was started with `DEMO_MIMALLOC` set (read
/// once, at the first allocation, before any other thread exists).
struct DemoAlloc;

#[global_allocator]
static ALLOC: DemoAlloc = DemoAlloc;

/// Every registered thread's counter (leaked: a few per process).
static COUNTERS: Mutex<Vec<&'static AtomicU64>> = Mutex::new(Vec::new());

thread_local! {
    static MY_COUNTER: Cell<Option<&'static AtomicU64>> = const { Cell::new(None) };
}

/// Gives the calling thread a counter of its own (the server runtime's
/// `on_thread_start`).
fn count_this_thread() {
    let counter: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    COUNTERS.lock().unwrap().push(counter);
    MY_COUNTER.with(|c| c.set(Some(counter)));
}

/// Allocations counted on every registered thread so far.
fn counted_allocs() -> u64 {
    let counters = COUNTERS.lock().unwrap();
    counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

#[inline(always)]
fn count_one() {
    let _ = MY_COUNTER.try_with(|c| {
        if let Some(counter) = c.get() {
            // Only this thread writes its counter: a load and a store.
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    });
}

#[cfg(feature = "mimalloc")]
mod chosen {
    use std::sync::atomic::{AtomicU8, Ordering};

    pub(crate) static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
    static CHOICE: AtomicU8 = AtomicU8::new(0);

    /// Whether this process allocates with mimalloc: decided at the first
    /// allocation from the environment (`getenv` does not allocate), while
    /// the process has one thread, and never changed, so every block is
    /// freed by the allocator that made it.
    #[inline(always)]
    pub(crate) fn mimalloc() -> bool {
        match CHOICE.load(Ordering::Relaxed) {
            0 => {
                // SAFETY: a NUL-terminated name; the result is only tested
                // for null.
                let set = unsafe { !libc::getenv(c"DEMO_MIMALLOC".as_ptr()).is_null() };
                CHOICE.store(if set { 2 } else { 1 }, Ordering::Relaxed);
                set
            }
            c => c == 2,
        }
    }
}

macro_rules! forward {
    ($method:ident($($arg:expr),*)) => {{
        #[cfg(feature = "mimalloc")]
        if chosen::mimalloc() {
            // SAFETY: forwarded contract; this process only ever uses
            // mimalloc once it chose it (see `chosen::mimalloc`).
            return unsafe { chosen::MIMALLOC.$method($($arg),*) };
        }
        // SAFETY: forwarded contract.
        unsafe { System.$method($($arg),*) }
    }};
}

// SAFETY: every call forwards to one allocator, the same for the whole
// process, with the same arguments; the counting touches only a
// const-initialised thread-local `Cell` and an atomic (no allocation).
unsafe impl GlobalAlloc for DemoAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        forward!(alloc(layout))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        forward!(alloc_zeroed(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        forward!(dealloc(ptr, layout))
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        forward!(realloc(ptr, layout, new_size))
    }
}

// ---- flags.

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Profile {
    /// A frame in, the same frame out
    Echo,
    /// Parse a request of 8 headers and a 1 KiB body, look a key up, format
    /// a response
    Typical,
    /// Echo of 256 KiB to 1 MiB frames
    Large,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Server {
    /// Allocate and drop, on the system allocator
    Plain,
    /// Allocate and drop, on mimalloc (built with `--features mimalloc`)
    Mimalloc,
    /// The crate's pools
    Pooled,
}

/// A TCP server written plainly and on the crate's pools, run in
/// alternating rounds under the same client; medians and ranges side by
/// side.
#[derive(Parser, Debug)]
#[command(
    name = "demo",
    about = "capacitor-pool's end-to-end load test: plain against pooled"
)]
struct Args {
    /// Profiles to run (comma-separated) [default: echo,typical; with
    /// --full: echo,typical,large]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    profile: Vec<Profile>,

    /// Rounds per profile; each round runs every server once [default: 2; 5
    /// with --full; 1 with --small]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100))]
    pairs: Option<u64>,

    /// The full mode: all profiles, 5 rounds, 5 s windows
    #[arg(long, conflicts_with = "small")]
    full: bool,

    /// A few seconds in all (for CI): 1 round, short windows, 4 connections
    #[arg(long)]
    small: bool,

    /// Servers to run (comma-separated) [default: plain, mimalloc where
    /// built, pooled]
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    servers: Vec<Server>,

    /// Client connections, each with one request in flight [default: 16; 4
    /// with --small]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: Option<u64>,

    /// The timed window of each run, in seconds [default: 2; 5 with --full;
    /// 0.3 with --small]
    #[arg(long, value_name = "SECS")]
    window: Option<f64>,

    /// Warm-up before each window, in seconds [default: 0.5; 0.1 with
    /// --small]
    #[arg(long, value_name = "SECS")]
    warmup: Option<f64>,

    /// Server runtime worker threads
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: u64,

    /// Payload bytes of an `echo` request
    #[arg(long, value_name = "BYTES", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    size: u64,

    /// Long holds: a hold warning of MS milliseconds on the pooled `typical`
    /// server's response buffers; its first request sits on its buffer for
    /// 3x MS, and the demo prints the file and line that took it
    #[arg(long, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(10..=10_000))]
    hold_warning: Option<u64>,

    /// Run as the server (used by the demo itself)
    #[arg(long, hide = true, value_name = "SERVER")]
    serve: Option<Server>,
}

/// The settings one run needs, resolved from the flags.
struct Plan {
    profiles: Vec<Profile>,
    rounds: usize,
    servers: Vec<Server>,
    connections: usize,
    window: Duration,
    warmup: Duration,
    workers: usize,
    size: usize,
    /// `--hold-warning`, in milliseconds.
    hold_warning: Option<u64>,
}

impl Plan {
    fn new(args: &Args) -> Result<Plan, String> {
        let (rounds, window, warmup, connections) = if args.small {
            (1, 0.3, 0.1, 4)
        } else if args.full {
            (5, 5.0, 0.5, 16)
        } else {
            (2, 2.0, 0.5, 16)
        };
        let seconds = |v: Option<f64>, default: f64, what: &str| {
            let s = v.unwrap_or(default);
            if s.is_finite() && (0.0..=3600.0).contains(&s) && (s > 0.0 || what == "warmup") {
                Ok(Duration::from_secs_f64(s))
            } else {
                Err(format!(
                    "--{what} takes seconds, over 0 and at most 3600, got {s}"
                ))
            }
        };
        let profiles = if !args.profile.is_empty() {
            args.profile.clone()
        } else if args.full {
            vec![Profile::Echo, Profile::Typical, Profile::Large]
        } else {
            vec![Profile::Echo, Profile::Typical]
        };
        let mut servers = vec![Server::Plain];
        if cfg!(feature = "mimalloc") {
            servers.push(Server::Mimalloc);
        }
        servers.push(Server::Pooled);
        if !args.servers.is_empty() {
            if args.servers.contains(&Server::Mimalloc) && !cfg!(feature = "mimalloc") {
                return Err("the mimalloc server needs `--features mimalloc`".into());
            }
            servers.retain(|s| args.servers.contains(s));
        }
        if args.hold_warning.is_some()
            && !(profiles.contains(&Profile::Typical) && servers.contains(&Server::Pooled))
        {
            return Err("--hold-warning shows on the pooled `typical` server: \
                 run the `typical` profile and the `pooled` server"
                .into());
        }
        Ok(Plan {
            profiles,
            rounds: args.pairs.map_or(rounds, |n| n as usize),
            servers,
            connections: args.connections.map_or(connections, |n| n as usize),
            window: seconds(args.window, window, "window")?,
            warmup: seconds(args.warmup, warmup, "warmup")?,
            workers: args.workers as usize,
            size: args.size as usize,
            hold_warning: args.hold_warning,
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(server) = args.serve {
        let profile = args.profile.first().copied().unwrap_or(Profile::Echo);
        let hold_warning = args.hold_warning.map(Duration::from_millis);
        return serve(server, profile, args.workers as usize, hold_warning);
    }
    let plan = match Plan::new(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match drive(&plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

// ---- the handlers, plain and pooled.

/// Keys in the shared map of the `typical` profile.
const KEYS: usize = 10_000;
/// Headers in a `typical` request.
const HEADERS: usize = 8;
/// Body bytes of a `typical` request.
const BODY: usize = 1024;

/// The map the `typical` handler looks keys up in: values of 32 to 287
/// bytes.
fn shared_map() -> &'static HashMap<String, String> {
    static MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
    MAP.get_or_init(|| {
        (0..KEYS)
            .map(|i| (format!("k{i}"), "v".repeat(32 + (i * 7919) % 256)))
            .collect()
    })
}

/// A parsed `typical` request, the plain way: new strings, a new vector of
/// header pairs and a new body for every request.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The same request for the pooled handler, taken from `REQUESTS`: its
/// `Reset` keeps every string's capacity, and `ReusableVec` keeps the
/// cleared header pairs themselves for the next request.
#[derive(Default, Debug)]
struct PooledRequest {
    method: String,
    path: String,
    headers: ReusableVec<Header>,
    body: Vec<u8>,
}

#[derive(Default, Debug)]
struct Header {
    name: String,
    value: String,
}

impl Reset for Header {
    fn reset(&mut self) {
        self.name.clear();
        self.value.clear();
    }

    fn retained_bytes(&self) -> usize {
        self.name.capacity() + self.value.capacity()
    }
}

impl Reset for PooledRequest {
    fn reset(&mut self) {
        self.method.clear();
        self.path.clear();
        self.headers.reset();
        self.body.clear();
    }

    fn retained_bytes(&self) -> usize {
        self.method.capacity()
            + self.path.capacity()
            + self.headers.retained_bytes()
            + self.body.capacity()
    }
}

/// Splits a `typical` request into its first line, header lines and body.
fn split_request(frame: &[u8]) -> Option<(&str, std::str::Split<'_, char>, &[u8])> {
    let end = frame.windows(2).position(|w| w == b"\n\n")?;
    let head = std::str::from_utf8(&frame[..end]).ok()?;
    let mut lines = head.split('\n');
    let first = lines.next()?;
    Some((first, lines, &frame[end + 2..]))
}

/// The plain parse.
fn parse_plain(frame: &[u8]) -> Option<Request> {
    let (first, lines, body) = split_request(frame)?;
    let (method, path) = first.split_once(' ')?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        headers.push((name.to_string(), value.to_string()));
    }
    Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body: body.to_vec(),
    })
}

/// The pooled parse: the same, into a reused request.
fn parse_into(frame: &[u8], req: &mut PooledRequest) -> Option<()> {
    let (first, lines, body) = split_request(frame)?;
    let (method, path) = first.split_once(' ')?;
    req.method.push_str(method);
    req.path.push_str(path);
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        req.headers.push_with(|h| {
            h.name.push_str(name);
            h.value.push_str(value);
        });
    }
    req.body.extend_from_slice(body);
    Some(())
}

/// The handler's work once parsed, the same for both: look the key up and
/// write the response.
fn respond(method: &str, path: &str, request_id: &str, body: &[u8], out: &mut String) {
    let key = path.strip_prefix("/items/").unwrap_or("");
    let value = shared_map().get(key).map_or("", String::as_str);
    let sum: u32 = body.iter().map(|&b| u32::from(b)).sum();
    let _ = write!(
        out,
        "200 OK\ncontent-length: {}\nx-request-id: {request_id}\nx-method: {method}\nx-body-sum: {sum}\n\n{value}",
        value.len(),
    );
}

worker_pool! {
    /// The pooled `typical` handler's requests.
    static REQUESTS: WorkerPool<PooledRequest> =
        WorkerPool::builder(PooledRequest::default).workers(64).name("requests");
}

worker_pool! {
    /// The pooled `typical` handler's response buffers; with
    /// `--hold-warning`, the one pool with a hold warning.
    static RESPONSES: WorkerPool<String> = with_hold_warning(
        WorkerPool::builder(|| String::with_capacity(512)).workers(64).name("responses"),
    );
}

/// `--hold-warning`, set by the server process before the pools are first
/// used (a `worker_pool!` static is built at its first use).
static HOLD_WARNING: OnceLock<Duration> = OnceLock::new();

/// `builder` with the hold warning of `--hold-warning`, if given.
fn with_hold_warning<T: 'static>(builder: WorkerPoolBuilder<T>) -> WorkerPoolBuilder<T> {
    match HOLD_WARNING.get() {
        Some(&threshold) => builder.hold_warning(threshold),
        None => builder,
    }
}

/// Whether a handler sat on its response buffer already: one does, once.
static SAT_ON_ONE: AtomicBool = AtomicBool::new(false);

/// The `--hold-warning` handler's mistake: it takes its response buffer
/// first, then awaits a slow backend (`hold`) with the buffer in hand. The
/// hold warning reports the `get` below, with its file, line and column.
async fn sit_on_a_response_buffer(hold: Duration) -> StaticPooled<String, RESPONSES> {
    let out = RESPONSES.get(); // the call site the hold warning reports
    tokio::time::sleep(hold).await; // the slow backend, buffer in hand
    out
}

/// With `--hold-warning`: prints each long hold of `RESPONSES` once, as a
/// reporter round (every half threshold) finds it.
fn report_long_holds(threshold: Duration) {
    let reporter = Reporter::new()
        .watch(&*RESPONSES)
        .on_long_hold(|_, hold| eprintln!("hold warning: {hold}"));
    // Runs until the process exits (it watches a static).
    let _ = reporter.spawn(threshold / 2);
}

/// When the server stops, with `--hold-warning`: the call sites that held
/// a response buffer past the threshold.
fn print_hold_sites() {
    let stats = RESPONSES.stats();
    let sites = RESPONSES.hold_sites();
    let sites: Vec<String> = sites.iter().map(ToString::to_string).collect();
    eprintln!(
        "hold warning: {}: long_hold_count {}; hold_sites: {}",
        stats.name.unwrap_or("responses"),
        stats.long_hold_count,
        if sites.is_empty() {
            "none".to_string()
        } else {
            sites.join("; ")
        }
    );
}

/// The largest `large` frame.
const LARGE_MAX: usize = 1 << 20;

/// A plain connection: `tokio_util`'s codec, a buffer per frame.
async fn plain_connection(socket: TcpStream, profile: Profile) -> std::io::Result<()> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(2 * LARGE_MAX)
        .new_codec();
    let mut framed = Framed::new(socket, codec);
    while let Some(frame) = framed.next().await {
        let frame = frame?;
        match profile {
            Profile::Echo | Profile::Large => framed.send(frame.freeze()).await?,
            Profile::Typical => {
                let req = parse_plain(&frame).ok_or(std::io::ErrorKind::InvalidData)?;
                let id = req.headers.iter().find(|(n, _)| n == "x-request-id");
                let id = id.map_or("", |(_, v)| v.as_str());
                let mut out = String::new();
                respond(&req.method, &req.path, id, &req.body, &mut out);
                framed.send(Bytes::from(out)).await?;
            }
        }
    }
    Ok(())
}

/// A pooled connection: connection buffers from `buffers`, frames in slab
/// chunks, and for `typical` a pooled request and response.
async fn pooled_connection(
    socket: TcpStream,
    profile: Profile,
    slab: &Slab,
    buffers: &Arc<WorkerPool<BytesMut>>,
    slow: Option<Duration>,
) -> std::io::Result<()> {
    let codec = LengthDelimited::builder()
        .max_frame_length(2 * LARGE_MAX)
        .new_codec(slab)?;
    if profile == Profile::Large {
        return pooled_large_connection(socket, codec).await;
    }
    let mut framed = PooledFramed::framed(socket, codec, buffers);
    while let Some(frame) = framed.next().await {
        let frame = frame?;
        match profile {
            Profile::Echo | Profile::Large => framed.send(frame).await?,
            Profile::Typical => {
                let mut req = REQUESTS.get();
                parse_into(&frame, &mut req).ok_or(std::io::ErrorKind::InvalidData)?;
                drop(frame);
                let id = req.headers.iter().find(|h| h.name == "x-request-id");
                let id = id.map_or("", |h| h.value.as_str());
                let mut out = match slow {
                    // `--hold-warning`: one handler, once, sits on it.
                    Some(hold) if !SAT_ON_ONE.swap(true, Ordering::Relaxed) => {
                        sit_on_a_response_buffer(hold).await
                    }
                    _ => RESPONSES.get(),
                };
                respond(&req.method, &req.path, id, &req.body, &mut out);
                drop(req);
                framed.send(out.as_bytes()).await?;
            }
        }
    }
    Ok(())
}

/// A pooled `large` connection: `SlabFramedRead` reads each payload from
/// the socket straight into its slab chunk (no read buffer growing to the
/// frame's size, no copy out of it), and the reply is written from the
/// chunk with one vectored write of the header and the payload (no copy
/// into a write buffer either).
async fn pooled_large_connection(
    mut socket: TcpStream,
    codec: LengthDelimited,
) -> std::io::Result<()> {
    let (reader, mut writer) = socket.split();
    let mut frames = SlabFramedRead::new(reader, codec);
    while let Some(frame) = frames.next().await {
        let frame = frame?;
        let len = u32::try_from(frame.len()).map_err(|_| std::io::ErrorKind::InvalidData)?;
        let head = len.to_be_bytes();
        writer
            .write_all_buf(&mut Buf::chain(&head[..], &frame[..]))
            .await?;
    }
    Ok(())
}

// ---- the server process.

/// Runs the server on an ephemeral port of 127.0.0.1, prints `port N`, then
/// answers `stats` lines on standard input with one line of counters, and
/// exits at the end of its input.
fn serve(
    server: Server,
    profile: Profile,
    workers: usize,
    hold_warning: Option<Duration>,
) -> ExitCode {
    if let Some(threshold) = hold_warning {
        HOLD_WARNING
            .set(threshold)
            .expect("set once, before the pools");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .on_thread_start(count_this_thread)
        .enable_all()
        .build()
        .expect("a runtime");
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("a loopback port");
    let port = listener.local_addr().expect("bound").port();
    let pooled = server == Server::Pooled;
    if let Some(threshold) = hold_warning {
        let _entered = runtime.enter();
        report_long_holds(threshold);
    }
    // The slow handler sits on its buffer for 3x the threshold.
    let slow = hold_warning.map(|threshold| 3 * threshold);
    runtime.spawn(async move {
        let max_chunk = if profile == Profile::Large {
            LARGE_MAX
        } else {
            64 * 1024
        };
        let slab = Slab::builder()
            .name("frames")
            .max_chunk(max_chunk)
            .build()
            .expect("valid slab settings");
        // No hold warning here even with `--hold-warning`: a connection
        // holds its two buffers for its whole life.
        let buffers = Arc::new(
            WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024))
                .name("connection-buffers")
                .build(),
        );
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let (slab, buffers) = (slab.clone(), Arc::clone(&buffers));
            tokio::spawn(async move {
                let _ = if pooled {
                    pooled_connection(socket, profile, &slab, &buffers, slow).await
                } else {
                    plain_connection(socket, profile).await
                };
            });
        }
    });
    println!("port {port}");
    let _ = std::io::stdout().flush();
    let stdin = std::io::stdin();
    let mut line = String::new();
    while stdin.lock().read_line(&mut line).is_ok_and(|n| n > 0) {
        let stats = ServerStats::now();
        println!(
            "{} {} {} {}",
            stats.cpu.as_micros(),
            stats.allocs,
            stats.rss_kib,
            stats.hwm_kib
        );
        let _ = std::io::stdout().flush();
        line.clear();
    }
    if hold_warning.is_some() {
        print_hold_sites();
    }
    runtime.shutdown_background();
    ExitCode::SUCCESS
}

/// The server's counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct ServerStats {
    cpu: Duration,
    allocs: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

impl ServerStats {
    fn now() -> ServerStats {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        ServerStats {
            cpu: cpu_time(),
            allocs: counted_allocs(),
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    fn parse(line: &str) -> Option<ServerStats> {
        let mut it = line.split_whitespace().map(|f| f.parse::<u64>().ok());
        Some(ServerStats {
            cpu: Duration::from_micros(it.next()??),
            allocs: it.next()??,
            rss_kib: it.next()??,
            hwm_kib: it.next()??,
        })
    }
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` fills the zeroed struct we pass it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The parent's handle on a server process.
struct ServerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl ServerProcess {
    fn start(server: Server, plan: &Plan, profile: Profile) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let mut cmd = Command::new(exe);
        if let (Some(ms), Server::Pooled, Profile::Typical) = (plan.hold_warning, server, profile) {
            cmd.arg("--hold-warning").arg(ms.to_string());
        }
        // The server's standard error is the demo's: `hold warning:` lines.
        cmd.arg("--serve")
            .arg(server.to_possible_value().expect("named").get_name())
            .arg("--profile")
            .arg(profile.to_possible_value().expect("named").get_name())
            .arg("--workers")
            .arg(plan.workers.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if server == Server::Mimalloc {
            cmd.env("DEMO_MIMALLOC", "1");
        } else {
            cmd.env_remove("DEMO_MIMALLOC");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting the server: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("server: {e}"))?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("server said {line:?}"))?;
        Ok(ServerProcess {
            child,
            stdin,
            stdout,
            port,
        })
    }

    fn stats(&mut self) -> Result<ServerStats, String> {
        writeln!(self.stdin, "stats").map_err(|e| format!("server: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("server: {e}"))?;
        ServerStats::parse(&line).ok_or_else(|| format!("server said {line:?}"))
    }

    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

// ---- the client.

/// The requests a client cycles through, and what a reply must be.
struct Load {
    requests: Vec<Bytes>,
    profile: Profile,
}

impl Load {
    fn new(profile: Profile, size: usize, connection: usize) -> Load {
        let requests = match profile {
            Profile::Echo => (0..8)
                .map(|i| Bytes::from(vec![(connection + i) as u8; size]))
                .collect(),
            Profile::Large => (0..4)
                .map(|i| {
                    let len = 256 * 1024
                        + (i * 263 * 1024 + connection * 4099) % (LARGE_MAX - 256 * 1024);
                    Bytes::from(vec![(connection + i) as u8; len])
                })
                .collect(),
            Profile::Typical => (0..64)
                .map(|i| {
                    let key = (connection * 7919 + i * 104_729) % KEYS;
                    let mut text = format!("GET /items/k{key}\n");
                    let names = ["host", "user-agent", "accept", "accept-encoding", "x-trace"];
                    for (h, name) in names.iter().enumerate() {
                        let _ = writeln!(text, "{name}: value-{h}-{}", "x".repeat(8 + h * 4));
                    }
                    let _ = writeln!(text, "content-type: application/octet-stream");
                    let _ = writeln!(text, "content-length: {BODY}");
                    let _ = writeln!(text, "x-request-id: {connection}-{i}");
                    debug_assert_eq!(text.lines().count(), 1 + HEADERS);
                    text.push('\n');
                    let mut bytes = text.into_bytes();
                    bytes.extend((0..BODY).map(|b| (b + i) as u8));
                    Bytes::from(bytes)
                })
                .collect(),
        };
        Load { requests, profile }
    }

    /// Whether `reply` answers request `i`.
    fn check(&self, i: usize, reply: &[u8]) -> bool {
        let request = &self.requests[i];
        match self.profile {
            Profile::Echo => reply == &request[..],
            // A megabyte compared in full would cost the client as much as
            // reading it: the length, both ends and one byte in 1024 (every
            // request is filled with one value, each differs from the last).
            Profile::Large => {
                reply.len() == request.len()
                    && reply[..64] == request[..64]
                    && reply[reply.len() - 64..] == request[request.len() - 64..]
                    && reply.iter().step_by(1024).eq(request.iter().step_by(1024))
            }
            Profile::Typical => {
                let Some((_, lines, _)) = split_request(request) else {
                    return false;
                };
                let id = lines
                    .filter_map(|l| l.strip_prefix("x-request-id: "))
                    .next()
                    .unwrap_or("?");
                let text = String::from_utf8_lossy(reply);
                text.starts_with("200 OK\n")
                    && text.contains(&format!("\nx-request-id: {id}\n"))
                    && text.contains("\nx-method: GET\n")
            }
        }
    }
}

/// What the client saw in one run's window.
struct ClientResult {
    requests: u64,
    wall: Duration,
    latency: Histogram<u64>,
    client_cpu: Duration,
}

/// Phases the controller moves the connections through.
struct Phase {
    timing: AtomicBool,
    stop: AtomicBool,
    wrong: AtomicU64,
}

async fn client_connection(
    port: u16,
    load: Load,
    phase: Arc<Phase>,
) -> Result<(u64, Histogram<u64>), String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = socket.set_nodelay(true);
    // The client stays light, so that the server is what is measured: a
    // request goes out in one vectored write of its header and payload (no
    // copy), and a reply is read into one buffer reused for every reply (no
    // allocation); a payload of 64 KiB or more skips the `BufReader`.
    let (reader, mut writer) = socket.split();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    let mut reply = Vec::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut done = 0;
    let mut i = 0;
    while !phase.stop.load(Ordering::Relaxed) {
        let request = &load.requests[i];
        let head = (request.len() as u32).to_be_bytes();
        let start = Instant::now();
        writer
            .write_all_buf(&mut Buf::chain(&head[..], &request[..]))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut head = [0; 4];
        reader
            .read_exact(&mut head)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let len = u32::from_be_bytes(head) as usize;
        if len > 2 * LARGE_MAX {
            return Err(format!("a reply of {len} bytes"));
        }
        reply.resize(len, 0);
        reader
            .read_exact(&mut reply)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if phase.timing.load(Ordering::Relaxed) {
            latency.saturating_record(start.elapsed().as_micros() as u64);
            done += 1;
        }
        if !load.check(i, &reply) {
            phase.wrong.fetch_add(1, Ordering::Relaxed);
        }
        i = (i + 1) % load.requests.len();
    }
    Ok((done, latency))
}

/// One run: the client against `server`, warm-up then window.
fn run_once(
    plan: &Plan,
    profile: Profile,
    server: &mut ServerProcess,
) -> Result<(ClientResult, ServerStats, ServerStats), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("client runtime: {e}"))?;
    let phase = Arc::new(Phase {
        timing: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        wrong: AtomicU64::new(0),
    });
    let port = server.port;
    let tasks: Vec<_> = (0..plan.connections)
        .map(|c| {
            let load = Load::new(profile, plan.size, c);
            runtime.spawn(client_connection(port, load, Arc::clone(&phase)))
        })
        .collect();
    let (warmup, window) = (plan.warmup, plan.window);
    let (before, after, wall, client_cpu) = runtime.block_on(async {
        tokio::time::sleep(warmup).await;
        let before = server.stats()?;
        let (cpu0, t0) = (cpu_time(), Instant::now());
        phase.timing.store(true, Ordering::Relaxed);
        tokio::time::sleep(window).await;
        phase.timing.store(false, Ordering::Relaxed);
        let (wall, client_cpu) = (t0.elapsed(), cpu_time() - cpu0);
        let after = server.stats()?;
        Ok::<_, String>((before, after, wall, client_cpu))
    })?;
    phase.stop.store(true, Ordering::Relaxed);
    let mut requests = 0;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for task in tasks {
        let (n, h) = runtime
            .block_on(task)
            .map_err(|e| format!("client task: {e}"))??;
        requests += n;
        latency.add(&h).map_err(|e| format!("histogram: {e}"))?;
    }
    let wrong = phase.wrong.load(Ordering::Relaxed);
    if wrong > 0 {
        return Err(format!("{wrong} wrong replies ({profile:?})"));
    }
    if requests == 0 {
        return Err(format!("no request completed in the window ({profile:?})"));
    }
    Ok((
        ClientResult {
            requests,
            wall,
            latency,
            client_cpu,
        },
        before,
        after,
    ))
}

// ---- the rounds and the table.

/// One run's numbers.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu_us: f64,
    allocs: f64,
    rss_mib: f64,
    hwm_mib: f64,
    client_cpu: f64,
}

fn sample(client: &ClientResult, before: &ServerStats, after: &ServerStats) -> Sample {
    let n = client.requests as f64;
    Sample {
        rps: n / client.wall.as_secs_f64(),
        p50: client.latency.value_at_quantile(0.5) as f64,
        p99: client.latency.value_at_quantile(0.99) as f64,
        p999: client.latency.value_at_quantile(0.999) as f64,
        cpu_us: (after.cpu.saturating_sub(before.cpu)).as_secs_f64() * 1e6 / n,
        allocs: (after.allocs - before.allocs) as f64 / n,
        rss_mib: after.rss_kib as f64 / 1024.0,
        hwm_mib: after.hwm_kib as f64 / 1024.0,
        client_cpu: client.client_cpu.as_secs_f64() / client.wall.as_secs_f64(),
    }
}

fn drive(plan: &Plan) -> Result<(), String> {
    println!(
        "capacitor-pool end-to-end: {} connection(s), {} server worker(s), {} round(s), {:.1} s windows after {:.1} s of warm-up",
        plan.connections,
        plan.workers,
        plan.rounds,
        plan.window.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    if !cfg!(feature = "mimalloc") {
        println!("(build with `--features mimalloc` to add plain on mimalloc)");
    }
    if let Some(ms) = plan.hold_warning {
        println!(
            "hold warning: {ms} ms on the pooled typical server's `responses` pool; its first request sits on its buffer for {} ms",
            3 * ms
        );
    }
    for &profile in &plan.profiles {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); plan.servers.len()];
        for round in 0..plan.rounds {
            for (k, &server) in plan.servers.iter().enumerate() {
                let mut process = ServerProcess::start(server, plan, profile)?;
                let result = run_once(plan, profile, &mut process);
                process.stop();
                let (client, before, after) = result?;
                let s = sample(&client, &before, &after);
                eprintln!(
                    "  {profile:?} round {}/{} {server:?}: {:.0} req/s, p99 {:.0} us, {:.1} us CPU/req",
                    round + 1,
                    plan.rounds,
                    s.rps,
                    s.p99,
                    s.cpu_us
                );
                samples[k].push(s);
            }
        }
        print_table(plan, profile, &samples);
    }
    Ok(())
}

fn median_range(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

fn print_table(plan: &Plan, profile: Profile, samples: &[Vec<Sample>]) {
    type Metric = (&'static str, fn(&Sample) -> f64, usize);
    let metrics: [Metric; 9] = [
        ("req/s", |s| s.rps, 0),
        ("p50 (us)", |s| s.p50, 0),
        ("p99 (us)", |s| s.p99, 0),
        ("p99.9 (us)", |s| s.p999, 0),
        ("CPU/req (us)", |s| s.cpu_us, 2),
        ("allocs/req", |s| s.allocs, 2),
        ("RSS steady (MiB)", |s| s.rss_mib, 1),
        ("RSS peak (MiB)", |s| s.hwm_mib, 1),
        ("client CPU (cores)", |s| s.client_cpu, 2),
    ];
    println!();
    println!(
        "{profile:?} ({}): medians over {} round(s), [min-max]",
        match profile {
            Profile::Echo => format!("{} B frames echoed", plan.size),
            Profile::Typical => "parse, look up, format".to_string(),
            Profile::Large => "256 KiB-1 MiB frames echoed".to_string(),
        },
        plan.rounds
    );
    print!("  {:<20}", "");
    for server in &plan.servers {
        print!(" {:>24}", format!("{server:?}").to_lowercase());
    }
    // Ratio columns: pooled (always last) against each other server.
    let bases = match plan.servers.split_last() {
        Some((Server::Pooled, others)) => others.len(),
        _ => 0,
    };
    for server in &plan.servers[..bases] {
        print!(
            " {:>14}",
            format!("pooled/{}", format!("{server:?}").to_lowercase())
        );
    }
    println!();
    for (name, get, digits) in metrics {
        print!("  {name:<20}");
        let mut medians = Vec::new();
        for runs in samples {
            let mut values: Vec<f64> = runs.iter().map(get).collect();
            let (median, lo, hi) = median_range(&mut values);
            medians.push(median);
            let cell = if plan.rounds > 1 {
                format!("{median:.digits$} [{lo:.digits$}-{hi:.digits$}]")
            } else {
                format!("{median:.digits$}")
            };
            print!(" {cell:>24}");
        }
        let pooled = medians[medians.len() - 1];
        for &base in &medians[..bases] {
            let ratio = if base > 0.0 {
                format!("{:.2}x", pooled / base)
            } else {
                "-".to_string()
            };
            print!(" {ratio:>14}");
        }
        println!();
    }
}
