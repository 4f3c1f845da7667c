//! Pooled buffers in request handlers, on a multi-thread tokio runtime.
//!
//! A server-style loop accepts "requests" from a channel and spawns a
//! handler task for each. Every handler takes a 4 KiB buffer from a
//! `static` `WorkerPool` (declared with `worker_pool!`, so its private slot
//! on each worker is a thread-local of its own), holds it across `.await`
//! points (where the task may move to another worker), and drops it
//! wherever it finishes: the buffer goes back to the private slot (or the
//! magazine) of *that* worker. At the end the example prints the pool's
//! totals and each worker's counters.
//!
//! Run it with `cargo run --release --example handlers` (add `-- --small`
//! for a quick run, or `-- --requests N`).

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use capacitor_pool::{WorkerPool, worker_pool};
use tokio::sync::{mpsc, oneshot};

worker_pool! {
    /// The handlers' buffers, built at first use. `workers(64)` leaves a
    /// magazine for every worker thread this process may number.
    static BUFFERS: WorkerPool<BytesMut> =
        WorkerPool::builder(|| BytesMut::with_capacity(4096)).workers(64);
}

/// Clients sending requests at once (each waits for its reply).
const CLIENTS: u64 = 32;

struct Request {
    id: u64,
    body: [u8; 64],
    reply: oneshot::Sender<u64>,
}

/// A handler: read the request into a pooled buffer, "call a backend"
/// (an await), build the response in the same buffer, reply.
async fn handle(req: Request) {
    let mut buf = BUFFERS.get(); // a 'static guard
    buf.put_slice(&req.body);
    let started_on = WorkerPool::<BytesMut>::current_worker();
    // The backend call: the task yields and may resume on another worker.
    tokio::task::yield_now().await;
    if req.id % 1024 == 0 {
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    buf.put_u64(req.id);
    let checksum = buf.iter().map(|&b| u64::from(b)).sum::<u64>();
    let moved = started_on != WorkerPool::<BytesMut>::current_worker();
    let _ = req.reply.send(checksum | (u64::from(moved) << 63));
    // `buf` drops here: back into this worker's private slot or magazine.
}

/// Pooled buffers in request handlers on a 2-worker tokio runtime.
#[derive(clap::Parser, Debug)]
#[command(name = "handlers")]
struct Args {
    /// A quick run (5,000 requests)
    #[arg(long)]
    small: bool,

    /// Requests to run [default: 200000; 5000 with --small]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let requests = args
        .requests
        .unwrap_or(if args.small { 5_000 } else { 200_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let start = Instant::now();
    let moved = rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel::<Request>(1024);
        // The "listener": accepts requests and spawns a handler for each.
        let server = tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                tokio::spawn(handle(req));
            }
        });
        // The clients: send requests, await replies.
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut moved = 0u64;
                    for i in (c..requests).step_by(CLIENTS as usize) {
                        let (reply, rx) = oneshot::channel();
                        let req = Request {
                            id: i,
                            body: [i as u8; 64],
                            reply,
                        };
                        tx.send(req).await.expect("server running");
                        moved += rx.await.expect("a reply") >> 63;
                    }
                    moved
                })
            })
            .collect();
        drop(tx);
        let mut moved = 0;
        for c in clients {
            moved += c.await.expect("client task");
        }
        server.await.expect("server task");
        moved
    });
    let elapsed = start.elapsed();

    let s = BUFFERS.stats();
    println!(
        "{requests} requests in {:.2?} ({:.0} req/s); {moved} handlers resumed on another worker",
        elapsed,
        requests as f64 / elapsed.as_secs_f64()
    );
    println!("pool: {s}");
    println!("\nworker  local hits  local returns  refills  spills  misses  idle");
    for w in 0..BUFFERS.num_workers() {
        let ws = BUFFERS.worker_stats(w).expect("w < num_workers");
        if ws.local_hit_count + ws.local_return_count + ws.miss_count == 0 {
            continue;
        }
        println!(
            "{w:>6}  {:>10}  {:>13}  {:>7}  {:>6}  {:>6}  {:>4}",
            ws.local_hit_count,
            ws.local_return_count,
            ws.refill_count,
            ws.spill_count,
            ws.miss_count,
            ws.num_idle
        );
    }
    assert_eq!(s.num_in_use, 0, "every buffer came back");
    assert_eq!(s.get_count, requests);
}
