//! Behaviour of `FutureSlot`, alone and served by a `RingPool`. These tests
//! exercise every `unsafe` block of `src/future.rs` (write, poll in place,
//! drop in place, grow, free); run them under valgrind or Miri as well.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use capacitor_pool::{FutureSlot, RingPool};
use futures_util::FutureExt;

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pending once, then ready with the given value.
struct PendingOnce<T> {
    value: Option<T>,
    polled: bool,
}

impl<T: Unpin> Future for PendingOnce<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if !self.polled {
            self.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(self.value.take().expect("polled after ready"))
    }
}

#[tokio::test]
async fn smoke() {
    let mut slot = FutureSlot::new();
    assert!(!slot.is_set());
    assert_eq!(slot.capacity(), 0);
    slot.set(async { 7u32 });
    assert!(slot.is_set());
    assert_eq!((&mut slot).await, 7);
    assert!(!slot.is_set(), "dropped as soon as it completed");
}

#[tokio::test]
async fn allocation_is_reused_when_the_next_future_fits() {
    let mut slot = FutureSlot::<usize>::new();
    let big = [1u8; 256];
    slot.set(async move { big.iter().map(|&b| b as usize).sum() });
    assert_eq!((&mut slot).await, 256);
    let grows = slot.grow_count();
    let cap = slot.capacity();
    assert!(cap >= 256);
    for i in 0..100usize {
        let small = [i as u8; 16];
        slot.set(async move { small.len() + i });
        assert_eq!((&mut slot).await, 16 + i);
    }
    assert_eq!(
        slot.grow_count(),
        grows,
        "smaller futures reuse the allocation"
    );
    let bigger = [2u8; 1024];
    slot.set(async move { bigger.len() });
    assert_eq!(slot.grow_count(), grows + 1);
    assert!(slot.capacity() >= 1024);
    assert_eq!((&mut slot).await, 1024);
}

#[tokio::test]
async fn futures_are_polled_in_place_across_pending() {
    let mut slot = FutureSlot::new();
    slot.set(PendingOnce {
        value: Some(String::from("done")),
        polled: false,
    });
    assert_eq!((&mut slot).await, "done");
    // A self-referential async block: holds a borrow of its own local
    // across an await, which only works if it is never moved.
    slot.set(async {
        let data = vec![1, 2, 3];
        let r = &data;
        tokio::task::yield_now().await;
        r.iter().sum::<i32>().to_string()
    });
    assert_eq!((&mut slot).await, "6");
}

#[test]
fn clear_set_and_drop_drop_the_future_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut slot = FutureSlot::<()>::new();
    let guard = DropCount(Arc::clone(&drops));
    slot.set(async move {
        let _g = guard;
        std::future::pending::<()>().await
    });
    slot.clear();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    slot.clear();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let guard = DropCount(Arc::clone(&drops));
    slot.set(async move {
        let _g = guard;
    });
    let guard = DropCount(Arc::clone(&drops));
    slot.set(async move {
        let _g = guard;
    }); // replaces (drops) the previous one
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    drop(slot);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn completed_futures_are_dropped_at_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut slot = FutureSlot::new();
    let guard = DropCount(Arc::clone(&drops));
    slot.set(async move {
        let _g = guard;
        5
    });
    assert_eq!((&mut slot).now_or_never(), Some(5));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn zero_sized_and_over_aligned_futures() {
    #[repr(align(64))]
    struct Aligned([u8; 64]);
    let mut slot = FutureSlot::new();
    slot.set(std::future::ready(3u8)); // small
    assert_eq!((&mut slot).now_or_never(), Some(3));
    slot.set(async { 4u8 }); // zero captures
    assert_eq!((&mut slot).now_or_never(), Some(4));
    let a = Aligned([9; 64]);
    slot.set(async move {
        let a = a;
        assert_eq!(&a as *const Aligned as usize % 64, 0, "aligned in place");
        a.0[0]
    });
    assert_eq!((&mut slot).now_or_never(), Some(9));
}

#[test]
#[should_panic(expected = "polled while empty")]
fn polling_an_empty_slot_panics() {
    let mut slot = FutureSlot::<u8>::new();
    let _ = (&mut slot).now_or_never();
}

#[test]
fn a_panicking_future_leaves_the_slot_usable() {
    let mut slot = FutureSlot::<u8>::new();
    slot.set(async { panic!("handler bug") });
    let r = catch_unwind(AssertUnwindSafe(|| (&mut slot).now_or_never()));
    assert!(r.is_err());
    slot.clear(); // drops the panicked future
    slot.set(async { 1 });
    assert_eq!((&mut slot).now_or_never(), Some(1));
}

#[test]
fn a_panicking_destructor_during_set_is_not_dropped_twice() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("destructor failed");
        }
    }
    let mut slot = FutureSlot::<()>::new();
    let bomb = Bomb;
    slot.set(async move {
        let _b = bomb;
        std::future::pending::<()>().await
    });
    let r = catch_unwind(AssertUnwindSafe(|| slot.set(async {})));
    assert!(r.is_err());
    assert!(
        !slot.is_set(),
        "the failed future is gone, not dropped again"
    );
    slot.set(async {});
    assert_eq!((&mut slot).now_or_never(), Some(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_of_slots_dispatches_and_cancels_handlers() {
    let ring = Arc::new(RingPool::new(2, FutureSlot::<u64>::new).unwrap());
    let tasks: Vec<_> = (0..32u64)
        .map(|i| {
            let ring = Arc::clone(&ring);
            tokio::spawn(async move {
                let mut slot = ring.get_owned().await.unwrap();
                slot.set(async move {
                    tokio::task::yield_now().await;
                    i * 3
                });
                (&mut *slot).await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), i as u64 * 3);
    }
    // A handler dropped mid-flight: the ring's reset drops its future.
    let drops = Arc::new(AtomicUsize::new(0));
    let mut slot = ring.try_get().unwrap();
    let guard = DropCount(Arc::clone(&drops));
    slot.set(async move {
        let _g = guard;
        std::future::pending::<u64>().await
    });
    assert!((&mut *slot).now_or_never().is_none());
    drop(slot);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let s = ring.stats();
    assert_eq!((s.created_count, s.num_idle), (2, 2));
}

#[test]
fn slots_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FutureSlot<String>>();
}

#[test]
fn a_destructor_panicking_in_the_slots_drop_frees_the_allocation() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("destructor failed");
        }
    }
    let mut slot = FutureSlot::<()>::new();
    let bomb = Bomb;
    slot.set(async move {
        let _b = bomb;
        std::future::pending::<()>().await
    });
    // The panic propagates; the allocation is freed on the way (Miri's
    // leak check, see scripts/miri.sh, catches it if not).
    let r = catch_unwind(AssertUnwindSafe(move || drop(slot)));
    assert!(r.is_err());
}

capacitor_pool::worker_pool! {
    static HANDLER_BUFS: WorkerPool<bytes::BytesMut> =
        WorkerPool::builder(|| bytes::BytesMut::with_capacity(64));
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed handler as a user writes it: a ring slot held across `.await` in
/// a spawned task, its future holding a `worker_pool!` guard across
/// `.await`, and an output with a lifetime in its type (`dyn Error`'s
/// `'static`, the guard's `'static`). Compiling is the first check: the
/// guards' `Send` must not tie the lifetimes in `T` to those in the pool
/// type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_handlers_hold_static_guards_across_await() {
    use bytes::BufMut;
    use capacitor_pool::StaticPooled;

    let ring = Arc::new(RingPool::new(2, FutureSlot::<Result<usize, BoxError>>::new).unwrap());
    let r = Arc::clone(&ring);
    let h = tokio::spawn(async move {
        let mut slot = r.get().await?;
        slot.set(async move {
            let mut buf = HANDLER_BUFS.get();
            buf.put_slice(b"abc");
            tokio::task::yield_now().await;
            Ok(buf.len())
        });
        (&mut *slot).await
    });
    assert_eq!(h.await.unwrap().unwrap(), 3);

    let guards = Arc::new(
        RingPool::new(
            1,
            FutureSlot::<StaticPooled<bytes::BytesMut, HANDLER_BUFS>>::new,
        )
        .unwrap(),
    );
    let r = Arc::clone(&guards);
    let h = tokio::spawn(async move {
        let mut slot = r.get().await.unwrap();
        slot.set(async move {
            let mut buf = HANDLER_BUFS.get();
            buf.put_slice(b"hello");
            tokio::task::yield_now().await;
            buf
        });
        let buf = (&mut *slot).await;
        tokio::task::yield_now().await;
        buf.len()
    });
    assert_eq!(h.await.unwrap(), 5);
    assert_eq!(HANDLER_BUFS.stats().num_in_use, 0);
    assert_eq!(ring.stats().num_idle, 2);
    assert_eq!(guards.stats().num_idle, 1);
}
