//! Object pools for tokio services: zero allocations in the steady state,
//! no contended lock on the hot path, and guards that make misuse hard.
//!
//! - [`Pool<T>`]: the general pool (Go's `sync.Pool`, done the Rust way):
//!   sharded, bounded, usable from any thread, in or out of a runtime.
//! - [`WorkerPool<T>`]: a private slot per worker thread and per-worker
//!   magazines, tied to tokio worker threads (no lock, no atomic
//!   read-modify-write, no shared cache line on the hot path) over a
//!   `Pool` depot. Declared in a `static` with [`worker_pool!`], its
//!   private slot is a thread-local of its own: the fastest hot path.
//! - [`RingPool<T>`]: a fixed ring of objects made up front, one holder per
//!   slot, with a FIFO, cancel-safe `get().await`: bounds in-flight work.
//! - [`FutureSlot`]: reusable heap storage for boxed futures; a
//!   `RingPool<FutureSlot<O>>` dispatches handlers with no allocation per
//!   request.
//! - [`Slab`]: byte chunks in power-of-two size classes carved from 64 KiB
//!   pages, bounded per class; a [`SlabBuf`] is writable (`BufMut`), goes
//!   back on drop from any thread, and becomes a `bytes::Bytes` without a
//!   copy.
//! - Codecs (feature `codec`): [`LengthDelimited`] decodes
//!   `tokio_util`-compatible length-delimited frames straight into slab
//!   chunks, [`SlabFramed`] reads and writes them on one connection,
//!   [`SlabDecoder`] wraps any other decoder, [`PooledFramed`] gives
//!   `Framed` read and write buffers from a pool (an `Arc` or a
//!   [`worker_pool!`] static), and [`Backpressure`] slows the socket when
//!   the slab is full.
//! - [`PooledCache<K, V>`]: a sharded, bounded concurrent cache (CLOCK
//!   eviction, per-entry TTL) whose overwritten, removed, evicted and
//!   expired values are reset and reused: overwriting allocates nothing.
//! - [`Pooled`] / [`OwnedPooled`]: guards that reset the object and return
//!   it on drop, move across `.await` and between workers, and never hand
//!   one object to two holders.
//! - [`Reset`] / [`Recycle`]: how objects are cleared for reuse, and how much
//!   memory they may keep (objects over the retention limit are dropped).
//!   `#[derive(Reset)]` (feature `derive`) writes `Reset` for a struct.
//! - [`ReusableVec<T>`]: a vector whose cleared elements are reset and kept,
//!   to be filled again in place: nested strings and vectors in pooled
//!   objects keep their allocations.
//! - [`PoolStats`]: gets, hits, misses, returns, drops, idle and in-use
//!   objects, hit rate; counted per shard, summed on read.
//! - [`observe`]: names for pools, opt-in long-hold detection (which line
//!   holds an object too long, and for a ring, who waited for it), and a
//!   [`Reporter`](observe::Reporter) that exports every pool's counters to
//!   `metrics` (feature `metrics`) and warns through `tracing` (feature
//!   `tracing`), off the hot path.
//!
//! # Example
//!
//! ```
//! use bytes::{BufMut, BytesMut};
//! use capacitor_pool::Pool;
//! use std::sync::LazyLock;
//!
//! static BUFFERS: LazyLock<Pool<BytesMut>> =
//!     LazyLock::new(|| Pool::new(|| BytesMut::with_capacity(4096)));
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let handler = tokio::spawn(async {
//!     let mut buf = BUFFERS.get(); // no allocation once warm
//!     buf.put_slice(b"response");
//!     tokio::task::yield_now().await; // the guard crosses .await
//!     buf.len()
//! }); // buffer cleared and returned when `buf` drops
//! assert_eq!(handler.await.unwrap(), 8);
//! assert_eq!(BUFFERS.stats().num_idle, 1);
//! # }
//! ```
//!
//! # Which pool do I need?
//!
//! The Go guide's decision tree, with each leaf naming the type to use:
//!
//! | your situation | use |
//! |---|---|
//! | allocated rarely | no pool: allocate |
//! | objects over 1 MiB | no pool, or a pool with a higher [`retention_limit`](pool::PoolBuilder::retention_limit) and a small `max_idle` |
//! | frequent, modest rate, any thread (blocking pool, plain threads) | [`Pool<T>`] |
//! | hot path (>10k ops/s) on tokio workers | [`WorkerPool<T>`], in a `static` declared with [`worker_pool!`] |
//! | predictable, bounded concurrency; wait for a free object | [`RingPool<T>`] |
//! | a boxed future per request (`Box::pin(handler(req))`) | `WorkerPool<`[`FutureSlot<O>`]`>`, or a `RingPool` of them to bound requests in flight |
//! | byte frames of many sizes, kept past the read (codecs, messages) | [`Slab`] + [`LengthDelimited`] or [`SlabDecoder`] |
//! | a `Framed` per connection, many short connections | [`PooledFramed`] over a `WorkerPool<BytesMut>` |
//! | a concurrent cache whose values are recycled | [`PooledCache<K, V>`] |
//!
//! # Modules, builders and errors
//!
//! The root holds what most code names: the pools, their guards, `Reset`
//! and [`worker_pool!`]. Each pool's builder, statistics, constants and
//! errors are in the module named after it ([`pool`], [`worker`],
//! [`ring`], [`slab`], [`cache`], and `codec` for the codec types), as
//! `tokio::sync` and `tokio_util::codec` keep theirs. [`implementation`]
//! holds no code: it is the design notes, and maps each strategy to its
//! folder.
//!
//! Every builder's setters take it by value. `new` and `build` return a
//! `Result` only where a value can be wrong, and the same wrong value gets
//! the same answer everywhere: a ring of 0 slots, a cache of 0 entries, a
//! slab size of 0 and a length field of 0 or over 8 bytes are each their
//! module's `BuildError`, from `new` and from the builder alike. Counts that
//! only tune (shards, workers, magazine sizes) are taken as the nearest
//! allowed value, so `Pool::builder(..).build()` and
//! `WorkerPool::builder(..).build()` cannot fail.
//!
//! # Zero allocations, proved
//!
//! Objects live in heap slots that never move; the pool moves only slot
//! pointers, in stacks it allocates once. After warm-up, `get` + use + drop
//! allocates nothing: the crate's tests assert it with a counting global
//! allocator (`tests/alloc.rs`).
//!
//! # Compared with similar crates
//!
//! Nanoseconds per get + write + read + return of a 4 KiB `BytesMut`, every
//! contestant in tasks on tokio workers (one run of `cargo bench --bench
//! worker` on a 2-vCPU VM; the method, the other benches and a 16-core
//! machine's numbers are in `docs/BENCHMARKS.md`):
//!
//! | | 1 worker | 2 busy at once |
//! |---|---:|---:|
//! | owned buffer, no pool (floor) | 1.64 | 1.64 |
//! | [`WorkerPool`] declared with [`worker_pool!`] | 2.35 | 2.37 |
//! | [`WorkerPool`] in an `Arc` | 2.48 | 2.47 |
//! | [`Pool`] | 6.70 | 6.76 |
//! | best peer (`lockfree-object-pool` at 1, `sharded-slab` at 2) | 8.03 | 29.5 |
//! | `Mutex<Vec<T>>` | 24.5 | 184.3 |
//! | allocate and drop | 19.5 | 19.5 |
//!
//! What only this crate has among them: per-worker magazines keyed to tokio
//! worker threads, a bounded ring with FIFO async waiting and pooled
//! boxed-future storage, retention limits, victim-cache aging, per-shard
//! statistics, a byte-frame slab with `tokio_util` codecs, and a cache whose
//! values are recycled.
//!
//! # Feature flags
//!
//! - `codec` (on by default): the `tokio_util::codec` integration
//!   ([`LengthDelimited`], [`SlabFramedRead`], [`SlabFramed`],
//!   [`SlabDecoder`], [`PooledFramed`], [`Backpressure`]); adds `tokio-util`, `futures-core` and
//!   `futures-sink`. Without it the crate depends on `tokio` (`rt`, `sync`,
//!   `time`), `bytes`, `crossbeam-utils`, `foldhash`, `hashbrown`
//!   and `pin-project-lite` only.
//! - `derive`: `#[derive(Reset)]` for structs, re-exported beside the
//!   [`Reset`] trait (from the `capacitor-pool-derive` crate).
//! - `metrics`: [`Reporter`](observe::Reporter) rounds send each watched
//!   pool's counters and gauges to the [`metrics`](https://docs.rs/metrics)
//!   facade, for Prometheus and the other exporters that plug into it.
//! - `tracing`: [`tracing`](https://docs.rs/tracing) events: a `warn` per
//!   guard held past its pool's hold warning, with the call site; `debug`
//!   for objects dropped for their size and for trims. None on a hot path.

// The crate docs' links to the codec types: to the `codec` module, or
// without the feature to docs.rs (where the docs are built with every
// feature).
#![cfg_attr(
    feature = "codec",
    doc = "",
    doc = "[`LengthDelimited`]: codec::LengthDelimited",
    doc = "[`SlabDecoder`]: codec::SlabDecoder",
    doc = "[`SlabFramedRead`]: codec::SlabFramedRead",
    doc = "[`SlabFramed`]: codec::SlabFramed",
    doc = "[`PooledFramed`]: codec::PooledFramed",
    doc = "[`Backpressure`]: codec::Backpressure"
)]
#![cfg_attr(
    not(feature = "codec"),
    doc = "",
    doc = "[`LengthDelimited`]: https://docs.rs/capacitor-pool/latest/capacitor_pool/codec/struct.LengthDelimited.html",
    doc = "[`SlabDecoder`]: https://docs.rs/capacitor-pool/latest/capacitor_pool/codec/struct.SlabDecoder.html",
    doc = "[`SlabFramedRead`]: https://docs.rs/capacitor-pool/latest/capacitor_pool/codec/struct.SlabFramedRead.html",
    doc = "[`SlabFramed`]: https://docs.rs/capacitor-pool/latest/capacitor_pool/codec/struct.SlabFramed.html",
    doc = "[`PooledFramed`]: https://docs.rs/capacitor-pool/latest/capacitor_pool/codec/struct.PooledFramed.html",
    doc = "[`Backpressure`]: https://docs.rs/capacitor-pool/latest/capacitor_pool/codec/struct.Backpressure.html"
)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cache;
#[cfg(feature = "codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
pub mod codec;
mod future;
mod guard;
pub mod implementation;
mod loom;
pub mod observe;
pub mod pool;
mod reset;
mod reuse;
pub mod ring;
mod shard;
pub mod slab;
mod slot;
mod stats;
mod thread;
pub mod worker;

pub use crate::cache::PooledCache;
pub use crate::future::FutureSlot;
pub use crate::guard::{OwnedPooled, PoolKind, Pooled};
pub use crate::pool::Pool;
pub use crate::reset::{Recycle, Reset, ResetWith, UseReset};
pub use crate::reuse::ReusableVec;
pub use crate::ring::{OwnedRingGuard, RingGuard, RingPool};
pub use crate::slab::{Slab, SlabBuf};
pub use crate::stats::PoolStats;
pub use crate::worker::{OwnedWorkerPooled, StaticPooled, WorkerPool, WorkerPooled};
#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use capacitor_pool_derive::Reset;

/// What `worker_pool!` expands to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::worker::registry::PrivateEntry;
    pub use crate::worker::statics::{PrivateKey, build_static};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
