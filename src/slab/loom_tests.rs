//! Loom models of chunk free and reuse across threads, and of the
//! return/waiter handshake that `alloc_wait` relies on. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib`.

use loom::sync::Arc as LoomArc;
use loom::thread;

use super::Slab;
use super::wait::SlabWait;
use crate::loom::model::{Obj, hold, release};
use crate::loom::{AtomicUsize, Ordering};
use crate::pool::{Arrival, Depot, Pool};

/// A slab of one class with a single chunk and one shard.
fn one_chunk_slab() -> Slab {
    Slab::builder()
        .min_chunk(64)
        .max_chunk(64)
        .page_size(64)
        .max_pages_per_class(1)
        .shards(1)
        .build()
        .unwrap()
}

/// A chunk written on one thread and freed on another comes back with
/// its page, and is reused (not carved again) by the first thread; it
/// is never visible to two holders.
#[test]
fn chunk_freed_on_another_thread_is_reused() {
    loom::model(|| {
        let slab = one_chunk_slab();
        let mut buf = slab.alloc(10).unwrap();
        buf.extend_from_slice(b"hello");
        let freer = thread::spawn(move || {
            assert_eq!(&buf[..], b"hello");
            drop(buf);
        });
        let again = loop {
            if let Some(buf) = slab.alloc(10) {
                break buf;
            }
            thread::yield_now();
        };
        assert!(again.is_empty());
        freer.join().unwrap();
        let stats = slab.class_stats(0).unwrap();
        assert_eq!(stats.pool.created_count, 1);
        assert_eq!(stats.num_pages, 1);
    });
}

/// Two threads freeing and allocating the one chunk: each sees its own
/// writes only.
#[test]
fn two_threads_share_one_chunk_in_turn() {
    loom::model(|| {
        let slab = one_chunk_slab();
        let threads: Vec<_> = (0..2u8)
            .map(|t| {
                let slab = slab.clone();
                thread::spawn(move || {
                    if let Some(mut buf) = slab.alloc(1) {
                        buf.extend_from_slice(&[t]);
                        thread::yield_now();
                        assert_eq!(&buf[..], &[t]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(slab.stats().num_in_use(), 0, "{:?}", slab.stats());
    });
}

/// `alloc_wait` on a full class while another thread returns the
/// chunk: the return (`LentChunk::drop`, which reads the waiter count
/// under the shard's lock) wakes the waiter, or the waiter (counted,
/// then looking at every shard under its lock) sees the chunk. A lost
/// wake-up leaves the waiter parked, which loom reports as a deadlock.
#[test]
fn a_returned_chunk_reaches_a_waiting_alloc() {
    loom::model(|| {
        let slab = one_chunk_slab();
        let held = slab.alloc(1).unwrap();
        let returner = thread::spawn(move || drop(held));
        let buf = loom::future::block_on(slab.alloc_wait(1));
        assert!(buf.is_pooled());
        returner.join().unwrap();
        drop(buf);
        let stats = slab.class_stats(0).unwrap();
        assert_eq!((stats.pool.created_count, stats.num_waiters), (1, 0));
    });
}

/// The codec's backpressure wait (`SlabWait`, which reads lock-free
/// hints before it counts itself) on a full class while another thread
/// returns the chunk: as for `alloc_wait`, the wait ends.
#[test]
fn a_returned_chunk_ends_a_slab_wait() {
    loom::model(|| {
        let slab = one_chunk_slab();
        let held = slab.alloc(1).unwrap();
        let returner = thread::spawn(move || drop(held));
        let mut wait = SlabWait::new(&slab, 1);
        loom::future::block_on(std::future::poll_fn(|cx| wait.poll_ready(cx)));
        returner.join().unwrap();
        drop(wait);
        assert!(slab.alloc(1).is_some());
        assert_eq!(slab.class_stats(0).unwrap().num_waiters, 0);
    });
}

/// `alloc_wait` on a full class while `trim` ages out its last chunk
/// and with it the page: the page's release (page count down, then the
/// waiter count read) wakes the waiter, or the waiter (counted, then
/// reading the page count) sees room for a new page: Dekker's pattern,
/// with `dekker_fence` on both sides.
#[test]
fn a_page_freed_by_trim_reaches_a_waiting_alloc() {
    loom::model(|| {
        let slab = one_chunk_slab();
        drop(slab.alloc(1).unwrap());
        // Starts the aging period: the next trim drops the idle chunk,
        // the last one of its page.
        slab.trim();
        let trimmer = {
            let slab = slab.clone();
            thread::spawn(move || slab.trim())
        };
        let buf = loom::future::block_on(slab.alloc_wait(1));
        assert!(buf.is_pooled());
        let trimmed = trimmer.join().unwrap();
        drop(buf);
        let stats = slab.class_stats(0).unwrap();
        // The idle chunk was reused, or trimmed and a new page carved.
        assert_eq!(stats.page_alloc_count, 1 + trimmed as u64, "{stats:?}");
        assert_eq!(stats.num_waiters, 0);
    });
}

/// The handshake of `alloc_wait`: a waiter counts itself, then looks at
/// every shard under its lock; a return reads the count under the lock
/// of the shard it pushes to. Whatever the interleaving, the waiter sees
/// the returned object or the return sees the waiter.
#[test]
fn a_waiter_sees_the_return_or_the_return_sees_the_waiter() {
    loom::model(|| {
        let pool = LoomArc::new(Pool::builder(Obj::new).shards(2).max_idle(2).build());
        let waiters = LoomArc::new(AtomicUsize::new(0));
        let slot = pool.take_or_make(0);
        hold(slot.as_ptr());
        let returner = {
            let (pool, waiters) = (LoomArc::clone(&pool), LoomArc::clone(&waiters));
            thread::spawn(move || {
                release(slot.as_ptr());
                let mut saw_waiter = false;
                let gate = || {
                    saw_waiter = waiters.load(Ordering::Relaxed) > 0;
                    true
                };
                // SAFETY: `pool` is held by this thread's `Arc`.
                let pushed =
                    unsafe { Depot::push_slot_gated(&pool.idle, 1, slot, Arrival::Returned, gate) };
                assert!(pushed.is_ok());
                saw_waiter
            })
        };
        waiters.fetch_add(1, Ordering::Relaxed);
        let saw_object = pool.idle.has_idle_locked();
        let saw_waiter = returner.join().unwrap();
        assert!(saw_object || saw_waiter, "a lost wake-up");
    });
}
