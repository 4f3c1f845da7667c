//! Behaviour of `Slab` and `SlabBuf`: classes, bounds, reuse, zeroing,
//! `Bytes` conversion, waiting for capacity, trimming, and many threads.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use capacitor_pool::slab::BuildError;
use capacitor_pool::{Slab, SlabBuf};

#[test]
fn smoke() {
    let slab = Slab::new();
    let mut buf = slab.alloc(10).unwrap();
    buf.put_slice(b"0123456789");
    assert_eq!(&buf[..], b"0123456789");
    assert_eq!(buf.capacity(), 64);
    drop(buf);
    let stats = slab.stats();
    assert_eq!(stats.alloc_count(), 1);
    assert_eq!(stats.num_in_use(), 0);
    assert_eq!(stats.num_pages(), 1);
}

#[test]
fn a_slab_buf_converts_into_bytes_without_a_copy() {
    let slab = Slab::new();
    let buf = slab.copy_from_slice(b"hello world");
    let ptr = buf.as_ptr();
    let bytes: Bytes = buf.into();
    assert_eq!(bytes.as_ptr(), ptr, "the chunk itself, not a copy");
    let world = bytes.slice(6..);
    drop(bytes);
    assert_eq!(slab.stats().num_in_use(), 1, "held by the slice");
    assert_eq!(&world[..], b"world");
    drop(world);
    assert_eq!(slab.stats().num_in_use(), 0);
    // An API that takes `impl Into<Bytes>` takes a `SlabBuf`.
    fn send(frame: impl Into<Bytes>) -> usize {
        frame.into().len()
    }
    assert_eq!(send(slab.copy_from_slice(b"abc")), 3);
}

#[test]
fn guards_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<SlabBuf>();
    check::<Slab>();
}

#[test]
fn lengths_map_to_power_of_two_classes() {
    let slab = Slab::new();
    assert_eq!(slab.num_classes(), 11); // 64 B ..= 64 KiB
    for (len, size) in [
        (0, 64),
        (1, 64),
        (64, 64),
        (65, 128),
        (100, 128),
        (4096, 4096),
        (4097, 8192),
        (65536, 65536),
    ] {
        assert_eq!(slab.chunk_size_for(len), Some(size), "len {len}");
        assert_eq!(slab.alloc(len).unwrap().capacity(), size, "len {len}");
    }
    assert_eq!(slab.chunk_size_for(65537), None);
    assert!(slab.alloc(65537).is_none());
}

#[test]
fn builder_rounds_sizes_and_rejects_bad_ones() {
    let slab = Slab::builder()
        .min_chunk(100)
        .max_chunk(3000)
        .build()
        .unwrap();
    assert_eq!(slab.chunk_size_for(1), Some(128));
    assert_eq!(slab.max_chunk(), 4096);
    assert_eq!(
        Slab::builder().min_chunk(0).build().unwrap_err(),
        BuildError::ZeroSize("min_chunk")
    );
    assert_eq!(
        Slab::builder().page_size(0).build().unwrap_err(),
        BuildError::ZeroSize("page_size")
    );
    assert_eq!(
        Slab::builder().max_pages_per_class(0).build().unwrap_err(),
        BuildError::ZeroPages
    );
    assert!(matches!(
        Slab::builder().min_chunk(4096).max_chunk(64).build(),
        Err(BuildError::MinOverMax { .. })
    ));
    let err = Slab::builder().max_chunk(usize::MAX).build().unwrap_err();
    assert!(matches!(err, BuildError::TooLarge { .. }));
    assert!(err.to_string().contains("max_chunk"), "{err}");
}

#[test]
fn a_class_stops_at_its_page_bound() {
    let slab = Slab::builder()
        .max_pages_per_class(2)
        .page_size(1024)
        .max_chunk(1024)
        .build()
        .unwrap();
    // 1024-byte pages of 256-byte chunks: 8 chunks in two pages.
    let held: Vec<_> = (0..8).map(|_| slab.alloc(200).unwrap()).collect();
    assert!(slab.alloc(200).is_none());
    let stats = slab.class_stats(2).unwrap();
    assert_eq!(stats.chunk_size, 256);
    assert_eq!(stats.num_pages, 2);
    assert_eq!(stats.exhausted_count, 1);
    // The fallback still serves, from the heap, and says so.
    let heap = slab.alloc_or_heap(200);
    assert!(!heap.is_pooled());
    assert_eq!(heap.capacity(), 200);
    assert_eq!(slab.class_stats(2).unwrap().heap_fallback_count, 1);
    // Other classes are not affected.
    assert!(slab.alloc(50).is_some());
    drop(held);
    assert!(slab.alloc(200).unwrap().is_pooled());
}

#[test]
fn a_freed_chunk_is_reused() {
    let slab = Slab::new();
    let first = slab.alloc(100).unwrap();
    let addr = first.as_ptr();
    drop(first);
    let again = slab.alloc(120).unwrap();
    assert_eq!(again.as_ptr(), addr);
    let stats = slab.class_stats(1).unwrap();
    assert_eq!(stats.pool.hit_count, 1);
    assert_eq!(stats.pool.miss_count, 1);
    assert_eq!(stats.pool.created_count, 1);
}

#[test]
fn live_chunks_never_share_bytes() {
    let slab = Slab::builder().max_pages_per_class(4).build().unwrap();
    let mut held = Vec::new();
    let mut starts = HashSet::new();
    for i in 0..4096usize {
        let len = 1 + i % 300;
        let Some(mut buf) = slab.alloc(len) else {
            break;
        };
        buf.resize(len, (i % 251) as u8);
        assert!(starts.insert(buf.as_ptr() as usize));
        held.push((i, buf));
        if i % 3 == 0 {
            let (j, old) = held.swap_remove(held.len() / 2);
            assert!(old.iter().all(|&b| b == (j % 251) as u8));
            starts.remove(&(old.as_ptr() as usize));
        }
    }
    for (j, buf) in &held {
        assert!(
            buf.iter().all(|&b| b == (*j % 251) as u8),
            "chunk {j} was overwritten"
        );
    }
}

#[test]
fn a_reused_chunk_reads_as_empty() {
    let slab = Slab::new();
    let mut buf = slab.alloc(64).unwrap();
    buf.put_slice(b"secret");
    drop(buf);
    let buf = slab.alloc(64).unwrap();
    assert!(buf.is_empty());
    assert_eq!(&buf[..], b"");
}

/// Reads the first `n` bytes of a buffer's spare room, which the slab keeps
/// initialized (pages are zeroed when made).
fn peek_spare(buf: &mut SlabBuf, n: usize) -> Vec<u8> {
    // SAFETY: a `SlabBuf`'s bytes are always initialized (zeroed pages);
    // the test relies on that to look at what a previous user left.
    unsafe { buf.advance_mut(n) };
    let bytes = buf[..n].to_vec();
    buf.clear();
    bytes
}

#[test]
fn zero_on_return_wipes_written_bytes() {
    for zero in [false, true] {
        let slab = Slab::builder().zero_on_return(zero).build().unwrap();
        let mut buf = slab.alloc(64).unwrap();
        buf.put_slice(b"secret");
        drop(buf);
        let mut buf = slab.alloc(64).unwrap();
        let seen = peek_spare(&mut buf, 6);
        if zero {
            assert_eq!(seen, [0; 6]);
        } else {
            assert_eq!(seen, b"secret");
        }
    }
}

#[test]
fn into_bytes_returns_the_chunk_when_the_last_clone_drops() {
    let slab = Slab::new();
    let buf = slab.copy_from_slice(b"hello world");
    let addr = buf.as_ptr();
    let bytes: Bytes = buf.into_bytes();
    assert_eq!(bytes.as_ptr(), addr); // no copy
    let tail = bytes.slice(6..);
    drop(bytes);
    assert_eq!(slab.stats().num_in_use(), 1);
    let handle = std::thread::spawn(move || tail.to_vec());
    assert_eq!(handle.join().unwrap(), b"world");
    assert_eq!(slab.stats().num_in_use(), 0);
    assert_eq!(slab.alloc(11).unwrap().as_ptr(), addr);
}

#[test]
fn empty_into_bytes_returns_the_chunk_at_once() {
    let slab = Slab::new();
    let bytes = slab.alloc(10).unwrap().into_bytes();
    assert!(bytes.is_empty());
    assert_eq!(slab.stats().num_in_use(), 0);
}

#[test]
fn buffers_outlive_their_slab() {
    let slab = Slab::new();
    let mut buf = slab.alloc(100).unwrap();
    let bytes = slab.copy_from_slice(b"still here").into_bytes();
    drop(slab);
    buf.put_slice(b"fine");
    assert_eq!(&buf[..], b"fine");
    assert_eq!(&bytes[..], b"still here");
    drop(buf);
    drop(bytes); // the last chunk frees the page and the class
}

#[test]
fn writes_past_capacity_are_refused() {
    let slab = Slab::new();
    let mut buf = slab.alloc(64).unwrap();
    buf.try_extend_from_slice(&[7; 60]).unwrap();
    let err = buf.try_extend_from_slice(&[7; 5]).unwrap_err();
    assert_eq!((err.requested, err.remaining), (5, 4));
    assert_eq!(buf.len(), 60);
    use std::io::Write;
    assert_eq!(buf.write(&[1; 10]).unwrap(), 4);
    assert_eq!(
        buf.write(&[1]).unwrap_err().kind(),
        std::io::ErrorKind::WriteZero
    );
    buf.truncate(10);
    assert_eq!(buf.len(), 10);
    let panicked = std::panic::catch_unwind(move || {
        let mut buf = buf;
        buf.extend_from_slice(&[0; 100]);
    });
    assert!(panicked.is_err());
    assert_eq!(slab.stats().num_in_use(), 0); // unwinding gave it back
}

#[test]
fn oversized_lengths_go_to_the_heap() {
    let slab = Slab::new();
    let mut huge = slab.alloc_or_heap(1 << 20);
    huge.resize(1 << 20, 1);
    assert_eq!(huge.len(), 1 << 20);
    assert!(!huge.is_pooled());
    assert_eq!(slab.stats().oversized_count, 1);
    assert_eq!(slab.stats().heap_count(), 1);
    let bytes = huge.into_bytes();
    assert_eq!(bytes.len(), 1 << 20);
}

#[test]
fn trim_gives_idle_pages_back() {
    let slab = Slab::builder().page_size(4096).build().unwrap();
    let held: Vec<_> = (0..64).map(|_| slab.alloc(128).unwrap()).collect();
    assert_eq!(slab.class_stats(1).unwrap().num_pages, 2);
    drop(held);
    assert_eq!(slab.trim(), 0); // starts the aging period
    assert_eq!(slab.trim(), 64);
    let stats = slab.class_stats(1).unwrap();
    assert_eq!(stats.num_pages, 0);
    assert_eq!(stats.page_free_count, 2);
    // And the class starts again from nothing.
    assert!(slab.alloc(128).is_some());
    assert_eq!(slab.class_stats(1).unwrap().page_alloc_count, 3);
}

#[test]
fn trim_keeps_pages_with_live_chunks() {
    let slab = Slab::builder().page_size(4096).build().unwrap();
    let mut held: Vec<_> = (0..64).map(|_| slab.alloc(128).unwrap()).collect();
    let keep = held.pop().unwrap();
    drop(held);
    slab.trim();
    slab.trim();
    assert_eq!(slab.class_stats(1).unwrap().num_pages, 1);
    drop(keep);
    slab.trim();
    slab.trim();
    assert_eq!(slab.class_stats(1).unwrap().num_pages, 0);
}

#[tokio::test]
async fn alloc_wait_is_woken_by_a_free() {
    let slab = Slab::builder()
        .max_pages_per_class(1)
        .page_size(1024)
        .max_chunk(1024)
        .build()
        .unwrap();
    let held = slab.alloc(1000).unwrap(); // the class's one chunk
    let waiter = tokio::spawn({
        let slab = slab.clone();
        async move { slab.alloc_wait(1000).await.capacity() }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished());
    assert_eq!(slab.class_stats(4).unwrap().num_waiters, 1);
    drop(held);
    assert_eq!(waiter.await.unwrap(), 1024);
    assert_eq!(slab.class_stats(4).unwrap().num_waiters, 0);
}

#[tokio::test]
async fn a_cancelled_wait_leaves_no_waiter() {
    let slab = Slab::builder().max_pages_per_class(1).build().unwrap();
    let held = slab.alloc(60_000).unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(10), slab.alloc_wait(60_000)).await;
    assert!(timed_out.is_err());
    assert_eq!(slab.class_stats(10).unwrap().num_waiters, 0);
    drop(held);
    assert!(slab.alloc(60_000).is_some());
}

#[tokio::test]
async fn ready_returns_at_once_with_capacity() {
    let slab = Slab::new();
    slab.ready(100).await;
    slab.ready(10 << 20).await; // over the largest class: nothing to wait for
    assert_eq!(slab.alloc_wait(10 << 20).await.capacity(), 10 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_are_all_served() {
    let slab = Slab::builder()
        .max_pages_per_class(1)
        .page_size(512)
        .max_chunk(512)
        .build()
        .unwrap();
    // Two 256-byte chunks shared by 40 tasks that each hold one a while.
    let tasks: Vec<_> = (0..40u8)
        .map(|i| {
            let slab = slab.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let mut buf = slab.alloc_wait(200).await;
                    buf.resize(200, i);
                    tokio::task::yield_now().await;
                    assert!(buf.iter().all(|&b| b == i), "chunk shared by two tasks");
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a waiter was never woken")
            .unwrap();
    }
    let stats = slab.class_stats(2).unwrap();
    assert_eq!(stats.num_waiters, 0);
    assert_eq!(stats.pool.num_in_use, 0);
    assert_eq!(stats.pool.created_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_dropped_on_other_workers_come_back() {
    let slab = Slab::builder().max_pages_per_class(8).build().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SlabBuf>(64);
    let consumer = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(frame) = rx.recv().await {
            assert_eq!(frame.len(), 100);
            assert!(frame.iter().all(|&b| b == frame[0]));
            n += 1;
            if n % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        n
    });
    for i in 0..20_000u32 {
        let mut frame = slab.alloc_wait(100).await;
        frame.resize(100, i as u8);
        tx.send(frame).await.unwrap();
    }
    drop(tx);
    assert_eq!(consumer.await.unwrap(), 20_000);
    let stats = slab.class_stats(1).unwrap();
    assert_eq!(stats.pool.num_in_use, 0);
    assert_eq!(stats.pool.get_count, 20_000);
    assert!(stats.pool.created_count <= 65 + 64, "{stats:?}");
}

#[test]
fn threads_hammering_one_class_never_share_a_chunk() {
    let slab = Arc::new(
        Slab::builder()
            .max_pages_per_class(1)
            .page_size(1024)
            .build()
            .unwrap(),
    );
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let slab = &slab;
            s.spawn(move || {
                let mut held = Vec::new();
                for i in 0..20_000usize {
                    if let Some(mut buf) = slab.alloc(64) {
                        buf.resize(64, t);
                        held.push(buf);
                    }
                    if held.len() > 3 || i % 5 == 0 {
                        for buf in held.drain(..) {
                            assert!(buf.iter().all(|&b| b == t), "chunk shared by two threads");
                        }
                    }
                }
            });
        }
    });
    let stats = slab.class_stats(0).unwrap();
    assert_eq!(stats.pool.num_in_use, 0);
    assert!(stats.pool.created_count <= 16, "{stats:?}"); // one 1 KiB page
    assert_eq!(stats.pool.num_idle, stats.pool.created_count);
}

/// The last `Slab` handle drops while other threads hand back chunks and
/// `Bytes` clones: a return that already pushed its chunk may still be
/// inside the push when another thread's return (refused, the slab being
/// closed) frees the last page and the class with it. Nothing may touch the
/// class after that. `scripts/miri.sh` runs this under Miri with
/// `--cfg capacitor_race_window`, which yields right after each push's
/// unlock so that the interleaving is reached.
#[test]
fn the_last_handle_drops_while_threads_return_chunks() {
    use std::sync::Barrier;

    let rounds = if cfg!(miri) { 6 } else { 500 };
    for round in 0..rounds {
        // One shard and one class: every return meets the close on the same
        // lock, and the last chunk back frees the page and the class.
        let slab = Slab::builder().shards(1).max_chunk(128).build().unwrap();
        let bytes = slab.copy_from_slice(&[1; 100]).into_bytes();
        let held: Vec<Box<dyn FnOnce() + Send>> = vec![
            {
                let buf = slab.copy_from_slice(&[0; 100]);
                Box::new(move || {
                    assert!(buf.iter().all(|&b| b == 0), "round {round}");
                    drop(buf);
                })
            },
            {
                let clone = bytes.slice(10..);
                Box::new(move || {
                    assert!(clone.iter().all(|&b| b == 1), "round {round}");
                    drop(clone);
                })
            },
            Box::new(move || drop(bytes)),
            {
                let buf = slab.copy_from_slice(&[2; 100]);
                Box::new(move || drop(buf))
            },
        ];
        let barrier = Arc::new(Barrier::new(held.len() + 1));
        let threads: Vec<_> = held
            .into_iter()
            .map(|release| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    release();
                })
            })
            .collect();
        barrier.wait();
        drop(slab);
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
