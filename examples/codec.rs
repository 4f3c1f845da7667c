//! A TCP echo server whose frames live in slab chunks and whose connection
//! buffers come from a pool, talked to by clients that use nothing but
//! plain `tokio_util` (`LengthDelimitedCodec`): the two are
//! wire-compatible. It prints frames/s, allocations per frame in the steady
//! state (the server's alone, and the whole process's), and the slab's and
//! the buffer pool's statistics.
//!
//! Run it with
//!
//! ```text
//! cargo run --release --example codec
//! cargo run --release --example codec -- --small
//! cargo run --release --example codec -- --frames 50000 --size 20480 --connections 8
//! ```
//!
//! The example needs the `codec` feature, which is on by default (with
//! `--no-default-features`, add `--features codec`).
//!
//! The server runs on a current-thread runtime on a thread of its own, so
//! its allocations can be read from that thread's counter; the clients run
//! on the main thread, and their count is the process's less the server's.
//! (With frames much over 8 KiB, the clients' `LengthDelimitedCodec`
//! reallocates its read buffer for every frame; the server's does not.) Each connection first echoes a tenth of its frames
//! (at most 1,000) as a warm-up (slab pages carved, buffers made and
//! grown); only the frames after it are timed and counted.

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use capacitor_pool::codec::{LengthDelimited, PooledFramed};
use capacitor_pool::{Slab, SlabBuf, WorkerPool};
use futures_util::{SinkExt, StreamExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// The largest frame both codecs accept by default (8 MiB).
const MAX_SIZE: usize = 8 * 1024 * 1024;

const USAGE: &str = "usage: codec [--small] [--frames N] [--size BYTES] [--connections N]

  --small          a quick run: 2000 frames on each of 2 connections
  --frames N       frames each connection echoes (default 100000)
  --size BYTES     payload bytes per frame, at most 8388608 (default 100)
  --connections N  client connections (default 4)";

struct Args {
    frames: u64,
    size: usize,
    connections: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        frames: 100_000,
        size: 100,
        connections: 4,
    };
    let (mut frames, mut connections) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--help" | "-h" => return Err(String::new()),
            "--small" => {
                args.frames = 2000;
                args.connections = 2;
                continue;
            }
            "--frames" | "--size" | "--connections" => {}
            _ => return Err(format!("unknown flag {flag:?}")),
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag} takes a whole number, not {value:?}"))?;
        match flag.as_str() {
            "--frames" => frames = Some(number),
            "--size" => {
                args.size = usize::try_from(number)
                    .ok()
                    .filter(|&n| n <= MAX_SIZE)
                    .ok_or_else(|| format!("--size must be at most {MAX_SIZE}"))?;
            }
            _ => connections = Some(number),
        }
    }
    // Explicit values win over --small, whatever their order.
    args.frames = frames.unwrap_or(args.frames);
    if let Some(n) = connections {
        args.connections = usize::try_from(n)
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or("--connections must be 1 to 1024")?;
    }
    if args.frames == 0 {
        return Err("--frames must be at least 1".into());
    }
    Ok(args)
}

/// What the server shares with `main`: its runtime, slab, buffer pool and
/// counters.
struct Server {
    addr: SocketAddr,
    handle: Handle,
    slab: Slab,
    buffers: Arc<WorkerPool<BytesMut>>,
    closed: Arc<AtomicUsize>,
    errors: Arc<AtomicU64>,
}

impl Server {
    /// Starts the server on a thread of its own.
    fn start() -> io::Result<Server> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(tx.send(Err(e))),
                };
                rt.block_on(async {
                    let listener = match TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => return drop(tx.send(Err(e))),
                    };
                    let addr = listener.local_addr();
                    let server = addr.map(|addr| Server {
                        addr,
                        handle: Handle::current(),
                        // The default slab: size classes of 64 B to 64 KiB,
                        // up to 256 pages of 64 KiB each.
                        slab: Slab::new(),
                        // Read and write buffers of 8 KiB; one grown past
                        // 64 KiB by a huge frame is dropped, not kept.
                        buffers: Arc::new(
                            WorkerPool::builder(|| BytesMut::with_capacity(8 * 1024))
                                .retention_limit(64 * 1024)
                                .build(),
                        ),
                        closed: Arc::new(AtomicUsize::new(0)),
                        errors: Arc::new(AtomicU64::new(0)),
                    });
                    let (slab, buffers, closed, errors) = match &server {
                        Ok(s) => (
                            s.slab.clone(),
                            Arc::clone(&s.buffers),
                            Arc::clone(&s.closed),
                            Arc::clone(&s.errors),
                        ),
                        Err(_) => return drop(tx.send(server)),
                    };
                    drop(tx.send(server));
                    accept(listener, slab, buffers, closed, errors).await;
                });
            })?;
        rx.recv()
            .unwrap_or_else(|_| Err(io::Error::other("server thread died")))
    }

    /// Allocations made so far on the server's thread.
    async fn allocs(&self) -> u64 {
        // The task is allocated here, on the caller's thread; on the
        // server's thread it only reads the counter.
        self.handle
            .spawn(async { counting_alloc::thread_allocs() })
            .await
            .expect("server runtime alive")
    }
}

async fn accept(
    listener: TcpListener,
    slab: Slab,
    buffers: Arc<WorkerPool<BytesMut>>,
    closed: Arc<AtomicUsize>,
    errors: Arc<AtomicU64>,
) {
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(e) => {
                eprintln!("codec: accept: {e}");
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let (slab, buffers, closed, errors) = (
            slab.clone(),
            Arc::clone(&buffers),
            Arc::clone(&closed),
            Arc::clone(&errors),
        );
        tokio::spawn(async move {
            if let Err(e) = echo(socket, &slab, &buffers).await {
                eprintln!("codec: server connection: {e}");
                errors.fetch_add(1, Ordering::Relaxed);
            }
            closed.fetch_add(1, Ordering::Release);
        });
    }
}

/// Echoes every frame back until the client closes the connection.
async fn echo(
    socket: TcpStream,
    slab: &Slab,
    buffers: &Arc<WorkerPool<BytesMut>>,
) -> io::Result<()> {
    socket.set_nodelay(true)?;
    // `LengthDelimited` decodes each frame straight into a slab chunk of
    // its size class (`SlabBuf`); `Framed`'s read and write buffers are
    // lent by `buffers` and go back to it when `framed` drops. To get slab
    // frames out of another codec, wrap it instead:
    // `SlabDecoder::new(LengthDelimitedCodec::new(), slab)` (the frame is
    // then split off the read buffer first, which must hold it whole).
    let mut framed = PooledFramed::framed(socket, LengthDelimited::new(slab), buffers);
    loop {
        // Take the next frame if one is ready; if none is, flush the echoes
        // queued so far before waiting for it.
        let next = match poll_fn(|cx| Poll::Ready(framed.poll_next_unpin(cx))).await {
            Poll::Ready(next) => next,
            Poll::Pending => {
                SinkExt::<SlabBuf>::flush(&mut framed).await?;
                framed.next().await
            }
        };
        let Some(frame) = next else { break };
        // `Encoder<SlabBuf>`: the header and payload are written into the
        // write buffer, and the chunk goes back to the slab.
        framed.feed(frame?).await?;
    }
    SinkExt::<SlabBuf>::close(&mut framed).await
}

/// A client connection: plain `tokio_util` framing, both halves.
struct Client {
    id: usize,
    reader: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    writer: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    out: Vec<u8>,
    expected: Vec<u8>,
}

/// The payload of frame `seq` of connection `id`: `size` bytes that differ
/// from frame to frame and from connection to connection.
fn fill(buf: &mut Vec<u8>, id: usize, seq: u64, size: usize) {
    buf.clear();
    let start = (seq as usize).wrapping_mul(7).wrapping_add(id * 13);
    buf.extend((0..size).map(|j| start.wrapping_add(j) as u8));
}

impl Client {
    async fn connect(addr: SocketAddr, id: usize) -> io::Result<Client> {
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let (r, w) = socket.into_split();
        Ok(Client {
            id,
            reader: FramedRead::new(r, LengthDelimitedCodec::new()),
            writer: FramedWrite::new(w, LengthDelimitedCodec::new()),
            out: Vec::new(),
            expected: Vec::new(),
        })
    }

    /// Sends frames `first..first + n` while reading their echoes; returns
    /// how many echoes differed from what was sent.
    async fn exchange(&mut self, first: u64, n: u64, size: usize) -> io::Result<u64> {
        let (id, out, expected) = (self.id, &mut self.out, &mut self.expected);
        let (writer, reader) = (&mut self.writer, &mut self.reader);
        let send = async {
            for seq in first..first + n {
                fill(out, id, seq, size);
                writer.feed(&out[..]).await?;
            }
            SinkExt::<&[u8]>::flush(writer).await
        };
        let receive = async {
            let mut mismatches = 0;
            for seq in first..first + n {
                let echo = reader.next().await.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection {id}: server closed before echo {seq}"),
                    )
                })??;
                fill(expected, id, seq, size);
                if echo[..] != expected[..] {
                    if mismatches == 0 {
                        eprintln!(
                            "codec: connection {id}: echo {seq} differs ({} bytes, {} expected)",
                            echo.len(),
                            expected.len()
                        );
                    }
                    mismatches += 1;
                }
            }
            Ok::<_, io::Error>(mismatches)
        };
        let (sent, received) = tokio::join!(send, receive);
        sent?;
        received
    }
}

/// Runs `n` frames (from `first`) on every connection at once; returns the
/// mismatches.
async fn round(clients: &mut [Client], first: u64, n: u64, size: usize) -> io::Result<u64> {
    let results =
        futures_util::future::join_all(clients.iter_mut().map(|c| c.exchange(first, n, size)))
            .await;
    results.into_iter().sum()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("codec: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("codec: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the echo; `Ok(false)` if an echo differed or the server failed.
fn run(args: &Args) -> io::Result<bool> {
    let server = Server::start()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let Args {
        frames,
        size,
        connections,
    } = *args;
    let warm = (frames / 10).clamp(1, 1000);
    println!(
        "capacitor-pool codec example: {connections} connection(s) x {frames} frames of {size} B, \
         echoed by a slab-framed server on {}",
        server.addr
    );

    let (mismatches, server_allocs, total_allocs, elapsed) = rt.block_on(async {
        let mut clients = Vec::with_capacity(connections);
        for id in 0..connections {
            clients.push(Client::connect(server.addr, id).await?);
        }
        let mut mismatches = round(&mut clients, 0, warm, size).await?;

        let server_before = server.allocs().await;
        let total_before = counting_alloc::allocs();
        let start = Instant::now();
        mismatches += round(&mut clients, warm, frames, size).await?;
        let elapsed = start.elapsed();
        let total = counting_alloc::allocs() - total_before;
        let server_allocs = server.allocs().await - server_before;

        drop(clients);
        // Wait for the server to see every connection close (and give its
        // buffers back).
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.closed.load(Ordering::Acquire) < connections && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok::<_, io::Error>((mismatches, server_allocs, total, elapsed))
    })?;

    let echoed = frames * connections as u64;
    let secs = elapsed.as_secs_f64();
    println!(
        "echoed {echoed} frames (after {warm} warm-up frames per connection) in {:.3} s: \
         {:.0} frames/s, {:.0} MiB/s each way",
        secs,
        echoed as f64 / secs,
        (echoed as f64 * size as f64) / secs / (1024.0 * 1024.0)
    );
    let per_frame = |n: u64| n as f64 / echoed as f64;
    let client_allocs = total_allocs.saturating_sub(server_allocs);
    println!("allocations per frame, steady state:");
    println!(
        "  server (slab frames, pooled buffers)    {:.4}  ({server_allocs} in all)",
        per_frame(server_allocs)
    );
    println!(
        "  clients (plain tokio_util) and harness  {:.4}  ({client_allocs} in all)",
        per_frame(client_allocs)
    );
    println!(
        "  whole process                           {:.4}  ({total_allocs} in all)",
        per_frame(total_allocs)
    );
    let s = server.slab.stats();
    println!(
        "slab: {} frames, hit rate {:.2}%, {} heap fallbacks, {} pages ({} KiB), {} chunks in use",
        s.alloc_count(),
        s.hit_rate() * 100.0,
        s.heap_count(),
        s.num_pages(),
        s.page_bytes() / 1024,
        s.num_in_use()
    );
    println!("connection buffers: {}", server.buffers.stats());

    let errors = server.errors.load(Ordering::Relaxed);
    let closed = server.closed.load(Ordering::Acquire);
    if mismatches > 0 {
        eprintln!("codec: {mismatches} echoes differed from what was sent");
    }
    if errors > 0 {
        eprintln!("codec: {errors} server errors");
    }
    if closed < connections {
        eprintln!("codec: only {closed} of {connections} server connections ended");
    }
    Ok(mismatches == 0 && errors == 0 && closed == connections)
}
