//! A service in one page: a key-value server over TCP built on the crate's
//! pieces, followed by a client that checks every reply.
//!
//! A request's life, in the order the code below meets it:
//!
//! 1. its frame arrives on a [`SlabFramed`], into a chunk of a [`Slab`];
//! 2. it takes a permit from a `RingPool<()>`, which bounds the requests
//!    the server works on at once (a full ring makes the next one wait);
//! 3. the reply is formatted in a scratch buffer from a `worker_pool!`
//!    static;
//! 4. the request reads or writes a [`PooledCache`];
//! 5. the reply goes out through the same `SlabFramed`.
//!
//! The protocol: each frame is a 4-byte big-endian length and a payload,
//! as `tokio_util`'s `LengthDelimitedCodec` writes them (the client uses
//! nothing else). A request is `SET <key> <value>` (the value is the rest
//! of the frame) or `GET <key>`; the reply is `OK`, `VALUE <value>`,
//! `NOT_FOUND`, or `ERR <why>` for a request it cannot read. A frame over
//! 64 KiB gets an `ERR` and the server hangs up.
//!
//! Run it with `cargo run --release --example service` (add `-- --small`
//! for a quick run, or `-- --requests N --connections N --in-flight N`).
//! The handlers here wait on nothing but the socket, so the ring fills only
//! when it has fewer permits than the runtime has worker threads: try
//! `--in-flight 1` to see it make requests wait.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use capacitor_pool::codec::{LengthDelimited, SlabFramed};
use capacitor_pool::{PooledCache, RingPool, Slab, worker_pool};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The longest request frame the server reads.
const MAX_FRAME: usize = 64 * 1024;
/// Keys per client connection (each connection has keys of its own).
const KEYS: usize = 256;

worker_pool! {
    /// Scratch buffers for the replies, one per request being answered.
    static SCRATCH: WorkerPool<BytesMut> = WorkerPool::builder(|| BytesMut::with_capacity(256));
}

/// What every connection shares.
struct Service {
    slab: Slab,
    /// The frame codec, checked once at start; each connection clones it.
    codec: LengthDelimited,
    in_flight: RingPool<()>,
    cache: PooledCache<String, BytesMut>,
}

/// Serves one connection, a request at a time, until it closes.
async fn serve(conn: TcpStream, svc: Arc<Service>) {
    let _ = conn.set_nodelay(true); // small replies: send each at once
    let mut frames = SlabFramed::new(conn, svc.codec.clone());
    // 1. A frame in, as a `SlabBuf`.
    while let Some(frame) = frames.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // Bad framing (or a broken socket): say why, then hang up.
                let mut reply = SCRATCH.get();
                let _ = write!(reply, "ERR {e}");
                let _ = frames.send(reply).await;
                return;
            }
        };
        // 2. A permit: held until the reply is written.
        let Ok(_permit) = svc.in_flight.get().await else {
            return; // the ring was closed: the server is stopping
        };
        // 3. A scratch buffer for the reply.
        let mut reply = SCRATCH.get();
        // 4. The cache.
        svc.handle(&frame, &mut reply);
        drop(frame); // its chunk goes back to the slab
        // 5. The reply out; the guard drops (the buffer goes back to
        // `SCRATCH`) once its bytes are copied into the write buffer.
        if frames.send(reply).await.is_err() {
            return;
        }
    }
}

impl Service {
    /// Runs one request, writing its reply into `reply`.
    fn handle(&self, request: &[u8], reply: &mut BytesMut) {
        let mut words = request.splitn(3, |&b| b == b' ');
        let (command, key, value) = (words.next(), words.next(), words.next());
        let key = key.and_then(|k| std::str::from_utf8(k).ok());
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return reply.put_slice(b"ERR expected a command and a UTF-8 key");
        };
        match (command, value) {
            (Some(b"SET"), Some(value)) => {
                // Overwriting a key reuses both its `String` and its value.
                self.cache
                    .insert_with_ref(key, |v| v.extend_from_slice(value));
                reply.put_slice(b"OK");
            }
            (Some(b"GET"), None) => {
                // Copied out under the shard's read lock: no clone.
                let hit = self.cache.view(key, |v| {
                    reply.put_slice(b"VALUE ");
                    reply.put_slice(v);
                });
                if hit.is_none() {
                    reply.put_slice(b"NOT_FOUND");
                }
            }
            _ => reply.put_slice(b"ERR unknown request"),
        }
    }
}

/// The client's connections: plain `tokio_util`.
type Client = Framed<TcpStream, LengthDelimitedCodec>;
/// A client's error: an I/O error, or a wrong reply.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// One client connection: a request that must be refused, then `requests`
/// SETs and GETs of its own keys, every reply checked against what it set.
async fn client(addr: SocketAddr, id: u64, requests: u64) -> Result<(), Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
    call(&mut conn, "HELLO there".into(), "ERR").await?;
    let mut set: Vec<Option<u64>> = vec![None; KEYS];
    for i in 0..requests {
        // Keys in no particular order (a Fibonacci hash of `i`), a SET in 4.
        let k = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % KEYS;
        if i % 4 == 0 {
            set[k] = Some(i);
            call(&mut conn, format!("SET c{id}:k{k} v{i}"), "OK").await?;
        } else {
            let want = set[k].map_or("NOT_FOUND".into(), |v| format!("VALUE v{v}"));
            call(&mut conn, format!("GET c{id}:k{k}"), &want).await?;
        }
    }
    Ok(())
}

/// Sends `request` and checks that the reply is `want` (for a `want` of
/// `ERR`: that it starts with `ERR `).
async fn call(conn: &mut Client, request: String, want: &str) -> Result<(), Error> {
    conn.send(Bytes::from(request.clone())).await?;
    let got = conn.next().await.ok_or("the server hung up")??;
    if got != want && !(want == "ERR" && got.starts_with(b"ERR ")) {
        let got = String::from_utf8_lossy(&got);
        return Err(format!("{request:?}: expected {want:?}, got {got:?}").into());
    }
    Ok(())
}

/// A frame whose header claims 4 GiB, from a raw socket: the server must
/// answer `ERR` and hang up, not panic nor wait for the bytes.
async fn oversized_frame(addr: SocketAddr) -> Result<(), Error> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(&u32::MAX.to_be_bytes()).await?;
    let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
    match (conn.next().await, conn.next().await) {
        (Some(Ok(reply)), None) if reply.starts_with(b"ERR ") => Ok(()),
        other => Err(format!("oversized frame: expected ERR, then a hang-up: {other:?}").into()),
    }
}

/// A key-value service on the crate's pools, checked by a plain
/// `tokio_util` client.
#[derive(clap::Parser, Debug)]
#[command(name = "service")]
struct Args {
    /// A quick run (5,000 requests on 4 connections)
    #[arg(long)]
    small: bool,

    /// Requests to send [default: 200000; 5000 with --small]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,

    /// Client connections [default: 32; 4 with --small]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: Option<u64>,

    /// Requests the server works on at once
    #[arg(long, value_name = "N", default_value_t = 16)]
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    in_flight: u64,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let requests = args
        .requests
        .unwrap_or(if args.small { 5_000 } else { 200_000 });
    let connections = args.connections.unwrap_or(if args.small { 4 } else { 32 });
    let slab = Slab::new();
    let codec = LengthDelimited::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec(&slab)
        .expect("a 4-byte length field");
    let svc = Arc::new(Service {
        slab,
        codec,
        in_flight: RingPool::new(args.in_flight as usize, || ()).expect("--in-flight >= 1"),
        // Room for every client key four times over: nothing is evicted,
        // so the client can check each GET exactly.
        cache: PooledCache::new(4 * KEYS * connections as usize).expect("at least 1 entry"),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let start = Instant::now();
    let checked = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = Arc::clone(&svc);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&server)));
            }
        });
        // The requests, shared out over the connections.
        let share = |c| requests / connections + u64::from(c < requests % connections);
        let clients: Vec<_> = (0..connections)
            .map(|c| tokio::spawn(client(addr, c, share(c))))
            .collect();
        for c in clients {
            c.await??;
        }
        oversized_frame(addr).await
    });
    let elapsed = start.elapsed();
    if let Err(e) = checked {
        eprintln!("service: {e}");
        return ExitCode::FAILURE;
    }

    let rate = requests as f64 / elapsed.as_secs_f64();
    println!("{requests} requests on {connections} connections in {elapsed:.2?}: {rate:.0} req/s");
    println!("every reply was checked, and was right");
    let (cache, scratch) = (svc.cache.stats(), SCRATCH.stats());
    let (ring, slab) = (svc.in_flight.stats(), svc.slab.stats());
    let (hit, entries) = (cache.hit_rate() * 100.0, cache.num_entries);
    println!("cache:   hit rate {hit:.1}%, {entries} entries");
    let (hit, made) = (scratch.hit_rate() * 100.0, scratch.created_count);
    println!("scratch: hit rate {hit:.2}%, {made} buffers made");
    let (waits, waited) = (ring.wait_count, ring.wait_time);
    println!("ring:    {waits} requests waited for a permit ({waited:.2?} in all)");
    let (hit, kib) = (slab.hit_rate() * 100.0, slab.page_bytes() / 1024);
    println!("slab:    hit rate {hit:.2}%, {kib} KiB of pages");
    ExitCode::SUCCESS
}
