//! Notes on the crate's implementation and design. This module holds no
//! code: it is where the design lives, beside the code it describes.
//!
//! # Where each strategy lives
//!
//! The crate carries the pooling strategies of a Go guide to tokio. Each has
//! a folder of its own under `src/`:
//!
//! | Go strategy | here | folder | what changes in Rust and tokio |
//! |---|---|---|---|
//! | `sync.Pool` | [`Pool<T>`](crate::Pool) | `pool/` | bounded; reset on return is automatic; any thread |
//! | per-CPU pool (`procPin`) | [`WorkerPool<T>`](crate::WorkerPool) | `worker/` | keyed by tokio worker thread, not by CPU |
//! | ring buffer pool | [`RingPool<T>`](crate::RingPool) | `ring/` | one holder per slot; `get().await` waits, FIFO and cancel-safe |
//! | slab allocator | [`Slab`](crate::Slab) | `slab/` | size classes of chunks, returned from any thread, `Bytes` without a copy |
//! | codec buffers | `codec` (feature `codec`) | `codec/` | frames decoded straight into slab chunks; pooled `Framed` buffers |
//! | `MeteredPool` | [`PoolStats`](crate::PoolStats) | `stats.rs` | counted per shard or worker, summed on read |
//! | `PooledCache[K,V]` | [`PooledCache`](crate::PooledCache) | `cache/` | sharded, CLOCK eviction; values recycled |
//! | "always reset", "don't pool > 1 MB" | [`Reset`](crate::Reset), retention limits | `reset.rs` | reset on every return; oversized objects dropped |
//! | "don't hold pooled objects too long" | hold warnings, [`Reporter`](crate::observe::Reporter) | `observe/` | the holder's file and line, found while it still holds; exported to `metrics` and `tracing` |
//!
//! The shared internals: `slot.rs` (an object's heap slot and who owns it),
//! `shard.rs` (a try-locked stack of slots), `pool/depot.rs` (a `Depot`:
//! sharded stacks of idle slots that make and reset nothing, the storage
//! [`Pool`](crate::Pool) and the slab's size classes share; a `Pool` adds
//! its constructor, reset and retention limit, and a `WorkerPool`'s depot
//! is a `Pool`), `thread.rs` (the shard hint and default parallelism),
//! `guard.rs`
//! (the guards and what they need from a pool), `loom.rs` (the facade the
//! loom models swap).
//!
//! # Objects stay where they are made
//!
//! Every pooled object lives in a heap slot of its own (a `Slot<T>`, made
//! once when the pool creates the object), and every tier (stacks,
//! magazines, private slots, guards) moves the slot's address, never the
//! object. Moving a 32-byte `BytesMut` by value out of a `Vec` and back in
//! a tight loop costs about 10–14 ns (a store-forwarding stall), against
//! about 1.5 ns to use it in place (2-vCPU VM, a criterion loop of the
//! worker bench's shape).
//!
//! Ownership is in the types, so that the code that moves objects needs no
//! safety contracts:
//!
//! - a `Slot<T>` owns its object, as a `Box<T>` does, but has no `Drop`:
//!   an object's destructor is user code, and the pools choose where it runs
//!   (never under a shard lock or the registry's lock). Only turning a
//!   stored address back into a `Slot` is `unsafe`, in the few places that
//!   store them (a stack, a magazine, a private slot).
//! - a guard holds a `Lent<T, P>`: an object a pool of type `P` lent out,
//!   handed back by value to that pool's `Home` methods (recycle, discard,
//!   detach), which are safe. Slot-backed pools turn it back into its `Slot`
//!   without `unsafe`; the ring maps it back to its slot index.
//!
//! # `WorkerPool`: the tiers
//!
//! A `get` walks four tiers, as Go's `sync.Pool` has (per-P private, per-P
//! shared, the victim cache, `New`), and a guard's drop walks them back:
//!
//! 0. **Private slot** (`worker/private.rs`, `worker/registry.rs`): one
//!    idle object per
//!    (worker thread, pool), in a thread-local array at an index the pool
//!    got when it was built. A get and a drop in a row touch one fixed
//!    place. A pool declared with [`worker_pool!`](crate::worker_pool)
//!    (`worker/statics.rs`) has a thread-local of its own instead of an
//!    index, at an address fixed at compile time: on the 2-vCPU VM its get +
//!    use + drop of a 4 KiB buffer takes about 2.4 ns against 2.5 ns for a
//!    pool built at run time, and 1.7 ns for using a buffer the task owns
//!    (`cargo bench --bench worker -- worker_4k_1_worker`).
//! 1. **Magazine** (`worker/magazine.rs`): a bounded LIFO stack of slots per
//!    worker thread, in a 128-byte block of its own. Its length is two
//!    counts (pushed, popped) that only the owner writes, which double as
//!    the statistics, so the hot path bumps no counter of its own. Its
//!    most recent object sits in a fixed place of its own (a second
//!    one-object cache behind the private slot), which serves a task that
//!    holds two objects at once: the bench's `worker_pool_pair` (two
//!    buffers per op) takes 7.0–7.3 ns per pair with it and 7.9–8.4 ns
//!    without it (2-vCPU VM, three alternating runs of
//!    `cargo bench --bench worker -- worker_pool_pair`), while one object
//!    at a time costs the same either way (the private slot serves it).
//! 2. **Depot** (`pool/`): a sharded, bounded `Pool`. A full magazine
//!    spills its colder half in one batch, an empty one refills half of
//!    itself (Bonwick's magazine layer over a depot).
//! 3. **New**: the constructor, counted as a miss.
//!
//! `worker/tiers.rs` holds both walks, written once for both ways to reach
//! the private slot (the `Private` trait: `ByIndex` for a pool built at
//! run time, `ByEntry` for a static). Threads that are not tokio workers
//! go straight to the depot.
//!
//! ## Why magazines are keyed by OS thread
//!
//! `tokio::runtime::worker_index()` is only a hint for exclusive access:
//! after `block_in_place` the old worker thread keeps running the blocked
//! task while a new thread takes over its index, and two runtimes number
//! their workers from 0 alike. Two sound designs exist: key by
//! `worker_index()` and take the magazine with an uncontended atomic swap,
//! or key by OS thread. The crate gives each tokio worker thread, at its
//! first use of any `WorkerPool`, a dense number of its own (recycled when
//! the thread exits); the thread owns magazine *n* of every pool, and
//! exclusivity holds by construction, with no atomic at all. A sketch of
//! both on the 2-vCPU VM ran a thread-keyed get + use + put at about 6–8 ns
//! and the `worker_index()` + atomic variant at about 24 ns.
//!
//! A magazine whose thread exits keeps its objects for the next thread
//! that gets the number, or until the next `trim` moves them to the depot;
//! the private slots of an exited thread wait in the registry as orphans,
//! under the same rule. No object is dropped at thread exit (no user code
//! runs there) and none is lost with a thread.
//!
//! # The depot: sharded try-lock stacks
//!
//! A shard (`shard.rs`) is a test-and-set try-lock over a bounded stack of
//! slots, and the shard's counters, in one 128-byte-aligned block: the lock
//! holder owns the line, so the counters it bumps are plain loads and
//! stores. A get tries its home shard (the thread's shard hint), then the
//! others with `try_lock`, then waits for each lock before it calls the
//! constructor: a miss means no object was idle. A push does the same, and
//! drops the object only when every shard is full.
//!
//! # `RingPool`
//!
//! A fixed array of objects, made up front, and an occupancy bitmap
//! (`ring/`): a get claims a free bit with one `fetch_and` and a drop
//! frees it with one `fetch_or`, starting at a word per CPU so that
//! workers claim in cache lines of their own. Tasks
//! that find no free slot wait in the ring's own intrusive FIFO list: a
//! freed slot goes straight to the first waiter, a dropped `get` future
//! leaves the list (or passes on a slot it was handed), and waiting
//! allocates nothing.
//!
//! # `Slab`
//!
//! Chunks in power-of-two size classes are carved from pages (`slab/`);
//! each class keeps its free chunks in a depot of its own. A chunk goes
//! back to its class from any thread (a lent chunk's drop); the push of the
//! last chunk may free the class, so it reaches the class through raw
//! pointers only until its shard is unlocked. Waiting for a full class
//! (`alloc_wait`, `Backpressure`) uses one protocol (`slab/wait.rs`): the
//! waiter count and the closed flag are read under the same shard lock as
//! the push, so a wake-up is never lost.
//!
//! # `PooledCache`
//!
//! Shards of a hash map behind locks (`cache/`), a CLOCK hand for eviction
//! and an optional TTL per entry; overwritten, removed, evicted and expired
//! values are reset and kept in a pool of values, so an overwrite allocates
//! nothing, and values over the retention limit are dropped rather than
//! kept.
//!
//! # Observing pools
//!
//! `observe/` holds what an operator sees. Names are `&'static str` so that
//! every stats struct stays `Copy` and a label costs no allocation.
//!
//! A hold warning keeps a table of the guards out (`observe/holds.rs`)
//! beside the pool, not in the guard: a guard stays one pointer plus its
//! pool. The getters are `#[track_caller]` and inlined, so the location is
//! a constant at each call site, passed down only to the tier that
//! records. A `WorkerPool` with a warning is built without private slots
//! and magazines, so every get and return reaches its depot tier
//! (`take_from_depot`, `place_in_depot`, and the depot's `drop_slot` for
//! objects its reset drops), which records and ends holds; the private
//! slot and magazine paths, all a pool without a warning runs, have no
//! check for it. A `Pool` or `RingPool` checks its `holds` field in the
//! get and the return. With a warning, a get inserts (object address,
//! call site, `Instant`) into one of 64 mutex-guarded hash maps, picked by
//! a multiplicative hash of the address, and the return removes it before
//! the object can reach its next holder; the maps keep their capacity, so
//! a warm pool allocates nothing for it. A ring's hold also saves the
//! ring's wait counters at the take, so that a long hold can say how many
//! gets waited while it was out.
//!
//! A hold is counted (and warned about) once, by whichever first sees it
//! past the threshold: a `long_holds()` call, a reporter round, or its own
//! return. Reporter rounds read the same per-shard counters as `stats()`;
//! the exports and events run on the reporter's task or on cold paths
//! (oversized drops, trims), never on a get or a return.
//!
//! # Checking it
//!
//! - Loom models of each lock-free structure sit in a `loom_tests.rs`
//!   beside the module; under `RUSTFLAGS="--cfg loom"` the facade in
//!   `loom.rs` swaps every atomic, cell and lock they use. One cfg
//!   spelling: `#[cfg(all(test, loom))]` (the loom dependency exists only
//!   for tests). `docs/LOOM.md` lists the models.
//! - Every `unsafe` block has a `// SAFETY:` note; `scripts/miri.sh` runs
//!   the tests that reach them under Miri, and `scripts/sanitize.sh` under
//!   the thread sanitizer.
//! - `tests/alloc.rs` counts allocations with a global allocator: zero per
//!   operation in the steady state.
//! - `docs/BENCHMARKS.md` gives the method and the numbers of each bench.
