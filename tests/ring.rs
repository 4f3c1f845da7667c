//! Behaviour of `RingPool<T>`.

#[path = "support/tagged.rs"]
mod tagged;

use std::collections::HashSet;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use capacitor_pool::ring::{BuildError, GetError, GetTimeoutError, RingStats, TryGetError};
use capacitor_pool::{OwnedRingGuard, Reset, RingGuard, RingPool};
use futures_util::FutureExt;
use tagged::{Counted, Tagged};

fn assert_accounting(s: &RingStats) {
    assert_eq!(s.num_idle + s.num_in_use, s.capacity as u64, "{s:?}");
    assert_eq!(
        s.created_count,
        s.capacity as u64 + s.drop_count() + s.detach_count,
        "{s:?}"
    );
    assert_eq!(s.get_count, s.return_count + s.num_in_use, "{s:?}");
}

/// Waits until `n` tasks wait on the ring.
async fn until_waiters<T, R: capacitor_pool::Recycle<T>>(ring: &RingPool<T, R>, n: u64) {
    for _ in 0..5_000 {
        if ring.stats().num_waiters == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never saw {n} waiters: {:?}", ring.stats());
}

#[tokio::test]
async fn smoke() {
    let ring = RingPool::new(2, || Vec::<u8>::with_capacity(16)).unwrap();
    let mut a = ring.get().await.unwrap();
    a.extend_from_slice(b"abc");
    let b = ring.try_get().unwrap();
    assert_eq!(ring.try_get().unwrap_err(), TryGetError::Empty);
    drop(a);
    let a = ring.try_get().unwrap();
    assert!(a.is_empty(), "reset on return");
    drop((a, b));
    let s = ring.stats();
    assert_eq!((s.get_count, s.created_count, s.num_idle), (3, 2, 2));
    assert_accounting(&s);
}

#[test]
fn zero_or_huge_capacity_is_a_build_error() {
    assert_eq!(
        RingPool::new(0, String::new).unwrap_err(),
        BuildError::ZeroCapacity
    );
    let err = RingPool::builder(usize::MAX, String::new)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::CapacityTooLarge { .. }));
    assert_eq!(
        BuildError::ZeroCapacity.to_string(),
        "a ring pool needs a capacity of at least 1"
    );
}

#[test]
fn capacities_across_bitmap_words() {
    for cap in [1, 63, 64, 65, 130] {
        let ring = RingPool::new(cap, Tagged::new).unwrap();
        let held: Vec<_> = (0..cap).map(|_| ring.try_get().unwrap()).collect();
        assert_eq!(ring.try_get().unwrap_err(), TryGetError::Empty);
        let ids: HashSet<u64> = held.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), cap, "every slot distinct");
        drop(held);
        assert_eq!(ring.stats().num_idle, cap as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_tasks_than_slots_are_served_in_fifo_order() {
    let ring = Arc::new(RingPool::new(1, Vec::<u8>::new).unwrap());
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = ring.try_get_owned().unwrap();
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let (ring2, order2) = (Arc::clone(&ring), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let g = ring2.get_owned().await.unwrap();
            order2.lock().unwrap().push(i);
            tokio::task::yield_now().await;
            drop(g);
        }));
        // Each task is in line before the next one starts waiting.
        until_waiters(&ring, i + 1).await;
    }
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    let s = ring.stats();
    assert_eq!((s.wait_count, s.num_waiters), (8, 0));
    assert!(s.wait_time > Duration::ZERO);
    assert_accounting(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_get_leaks_no_slot_and_the_next_waiter_wakes() {
    let ring = Arc::new(RingPool::new(1, Vec::<u8>::new).unwrap());
    let held = ring.try_get_owned().unwrap();
    let r = Arc::clone(&ring);
    let cancelled = tokio::spawn(async move { r.get_owned().await.map(drop) });
    until_waiters(&ring, 1).await;
    let r = Arc::clone(&ring);
    let next = tokio::spawn(async move { r.get_owned().await.map(|g| g.len()) });
    until_waiters(&ring, 2).await;
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    until_waiters(&ring, 1).await;
    drop(held);
    assert_eq!(next.await.unwrap(), Ok(0));
    let s = ring.stats();
    assert_eq!((s.num_idle, s.num_waiters), (1, 0));
    assert_accounting(&s);
}

#[tokio::test]
async fn get_lost_in_a_select_gives_up_its_place() {
    let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    let held = ring.try_get().unwrap();
    tokio::select! {
        biased;
        _ = ring.get() => panic!("no slot is free"),
        _ = tokio::task::yield_now() => {}
    }
    assert_eq!(ring.stats().num_waiters, 0);
    drop(held);
    assert!(ring.try_get().is_ok(), "the lost get kept no slot");
    // Polled once and dropped, too.
    let held = ring.try_get().unwrap();
    assert!(ring.get().now_or_never().is_none());
    drop(held);
    assert_eq!(ring.stats().num_idle, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_waiters_and_later_gets_but_guards_return() {
    let ring = Arc::new(RingPool::new(2, Vec::<u8>::new).unwrap());
    let a = ring.try_get_owned().unwrap();
    let b = ring.try_get_owned().unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let r = Arc::clone(&ring);
            tokio::spawn(async move { r.get_owned().await.map(drop) })
        })
        .collect();
    until_waiters(&ring, 3).await;
    ring.close();
    for w in waiters {
        let err: GetError = w.await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "ring pool closed");
    }
    assert_eq!(ring.try_get().unwrap_err(), TryGetError::Closed);
    assert!(ring.get().await.is_err());
    drop((a, b));
    let s = ring.stats();
    assert!(s.closed);
    assert_eq!((s.num_idle, s.num_waiters), (2, 0));
    assert_accounting(&s);
}

#[tokio::test(start_paused = true)]
async fn get_timeout_times_out_and_counts() {
    let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    let held = ring.get_timeout(Duration::from_secs(1)).await.unwrap();
    let err = ring.get_timeout(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(err, GetTimeoutError::Timeout);
    assert_eq!(err.to_string(), "timed out waiting for a ring pool slot");
    drop(held);
    let s = ring.stats();
    assert_eq!((s.timeout_count, s.num_waiters, s.num_idle), (1, 0, 1));
}

#[test]
fn guards_dropped_on_other_workers_and_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let ring = Arc::new(RingPool::new(4, Tagged::new).unwrap());
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let ring = Arc::clone(&ring);
                tokio::spawn(async move {
                    for _ in 0..200 {
                        let mut g: OwnedRingGuard<Tagged> = ring.get_owned().await.unwrap();
                        g.hold();
                        assert!(g.data.is_empty(), "reset before reuse");
                        g.data.push(t as u8);
                        tokio::task::yield_now().await; // maybe another worker
                        g.release();
                        if t % 8 == 0 {
                            // Dropped on a blocking-pool thread.
                            tokio::task::spawn_blocking(move || drop(g)).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let s = ring.stats();
    assert_eq!(s.get_count, 64 * 200);
    assert_eq!(s.created_count, 4, "never an object beyond the capacity");
    assert_accounting(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_holder_returns_the_slot() {
    let ring = Arc::new(RingPool::new(1, Vec::<u8>::new).unwrap());
    let r = Arc::clone(&ring);
    let task = tokio::spawn(async move {
        let mut g = r.get_owned().await.unwrap();
        g.push(1);
        panic!("handler failed");
    });
    assert!(task.await.unwrap_err().is_panic());
    let g = ring.try_get().expect("the slot came back");
    assert!(g.is_empty());
}

#[test]
fn a_panicking_reset_replaces_the_object() {
    struct Fragile(bool);
    impl Reset for Fragile {
        fn reset(&mut self) {
            if self.0 {
                panic!("reset failed");
            }
        }
    }
    let ring = RingPool::new(1, || Fragile(false)).unwrap();
    let mut g = ring.try_get().unwrap();
    g.0 = true;
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| drop(g)));
    assert!(r.is_err());
    let g = ring.try_get().expect("slot back, with a fresh object");
    assert!(!g.0);
    drop(g);
    let s = ring.stats();
    assert_eq!((s.drop_discarded_count, s.created_count), (1, 2));
    assert_accounting(&s);
}

#[test]
fn dropping_the_ring_drops_every_object_when_drops_panic() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&drops);
    let ring = RingPool::new(10, move || Counted::new(&d)).unwrap();
    let mut held: Vec<_> = (0..10).map(|_| ring.try_get().unwrap()).collect();
    held[2].armed = true;
    held[7].armed = true;
    drop(held);
    assert!(
        catch_unwind(AssertUnwindSafe(|| drop(ring))).is_err(),
        "no abort, a panic"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 10, "none leaked");
}

#[test]
fn oversized_detached_and_discarded_objects_are_replaced() {
    let ring = RingPool::builder(1, || Vec::<u8>::with_capacity(8))
        .retention_limit(64)
        .build()
        .unwrap();
    let mut g: RingGuard<'_, Vec<u8>> = ring.try_get().unwrap();
    g.resize(1000, 0);
    drop(g);
    assert_eq!(
        ring.try_get().unwrap().capacity(),
        8,
        "replaced by a fresh one"
    );
    let mut g = ring.try_get().unwrap();
    g.push(9);
    assert_eq!(g.detach(), vec![9]);
    ring.try_get().unwrap().discard();
    let s = ring.stats();
    assert_eq!(
        (
            s.drop_oversized_count,
            s.detach_count,
            s.drop_discarded_count
        ),
        (1, 1, 1)
    );
    assert_eq!((s.created_count, s.num_idle), (4, 1));
    assert_accounting(&s);
}

#[test]
fn reset_closure_works_for_rings() {
    struct Conn {
        n: u32,
    }
    let ring = RingPool::builder(1, || Conn { n: 0 })
        .reset(|c: &mut Conn| c.n = 0)
        .build()
        .unwrap();
    ring.try_get().unwrap().n = 5;
    assert_eq!(ring.try_get().unwrap().n, 0);
}

#[test]
fn guard_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RingPool<Vec<u8>>>();
    send_sync::<RingGuard<'static, Vec<u8>>>();
    send_sync::<OwnedRingGuard<Vec<u8>>>();
}

#[test]
fn zero_sized_objects_get_distinct_slots() {
    #[derive(Debug)]
    struct Permit;
    impl Reset for Permit {
        fn reset(&mut self) {}
    }
    for cap in [2, 64, 65] {
        let ring = RingPool::new(cap, || Permit).unwrap();
        let a = ring.try_get().unwrap();
        let held: Vec<_> = (1..cap).map(|_| ring.try_get().unwrap()).collect();
        let mut addrs: Vec<usize> = held
            .iter()
            .map(|g| &**g as *const Permit as usize)
            .collect();
        addrs.push(&*a as *const Permit as usize);
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), cap, "every holder has its own slot");
        drop(a); // frees its own slot, not a neighbour's
        let again = ring.try_get().unwrap();
        assert_eq!(ring.try_get().unwrap_err(), TryGetError::Empty);
        drop((again, held));
        assert_eq!(ring.stats().num_idle, cap as u64);
    }
}

#[test]
fn stress_with_cancellation_timeouts_and_close_adds_up() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ring = Arc::new(RingPool::new(3, Tagged::new).unwrap());
    rt.block_on(async {
        let tasks: Vec<_> = (0..24u64)
            .map(|t| {
                let ring = Arc::clone(&ring);
                tokio::spawn(async move {
                    let mut served = 0u64;
                    for i in 0..3000u64 {
                        let got = match (t + i) % 4 {
                            // Plain waits.
                            0 | 1 => ring.get_owned().await.ok(),
                            // Gets that give up quickly (cancelled waits).
                            2 => tokio::time::timeout(Duration::from_micros(20), ring.get_owned())
                                .await
                                .ok()
                                .and_then(Result::ok),
                            // No waiting at all.
                            _ => ring.try_get_owned().ok(),
                        };
                        let Some(g) = got else {
                            if ring.is_closed() {
                                break;
                            }
                            continue;
                        };
                        g.hold();
                        tokio::task::yield_now().await;
                        g.release();
                        served += 1;
                    }
                    served
                })
            })
            .collect();
        // Close part-way: everyone still waiting fails, holders return.
        tokio::time::sleep(Duration::from_millis(5)).await;
        ring.close();
        let mut served = 0;
        for t in tasks {
            served += t.await.unwrap();
        }
        assert!(served > 0);
        assert!(served < 24 * 3000, "the close came before the end");
    });
    let s = ring.stats();
    assert_eq!(s.num_waiters, 0, "{s:?}");
    assert_eq!(s.num_in_use, 0, "{s:?}");
    assert_eq!(s.num_idle, 3, "every slot back, none stranded: {s:?}");
    assert!(s.wait_count > 0, "the waiting path ran: {s:?}");
    assert_accounting(&s);
}

/// A waker that counts its wakes.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, std::task::Waker) {
    let count = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
    (
        Arc::clone(&count),
        std::task::Waker::from(Arc::clone(&count)),
    )
}

fn wakes(w: &CountingWaker) -> usize {
    w.0.load(std::sync::atomic::Ordering::SeqCst)
}

/// Polls `get` once with `waker`.
fn poll_with<F: Future>(
    get: &mut std::pin::Pin<Box<F>>,
    waker: &std::task::Waker,
) -> Poll<F::Output> {
    get.as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
}

/// Five queued `get`s; the head, one in the middle and the tail give up.
/// The others are served in their order, one wake each, and nothing is
/// left queued or stranded.
#[test]
fn waiters_leaving_from_any_place_keep_the_fifo_order() {
    let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    let held = ring.try_get().unwrap();
    let wakers: Vec<_> = (0..5).map(|_| counting_waker()).collect();
    let mut gets: Vec<_> = (0..5).map(|_| Some(Box::pin(ring.get()))).collect();
    for (get, (_, waker)) in gets.iter_mut().zip(&wakers) {
        let poll = poll_with(get.as_mut().unwrap(), waker);
        assert!(poll.is_pending(), "the only slot is held");
    }
    assert_eq!(ring.stats().num_waiters, 5);
    for gone in [2, 0, 4] {
        gets[gone] = None;
    }
    assert_eq!(ring.stats().num_waiters, 2);
    drop(held);
    // Handed to the first waiter left, number 1, and to no one else.
    let counts: Vec<_> = wakers.iter().map(|(c, _)| wakes(c)).collect();
    assert_eq!(counts, [0, 1, 0, 0, 0]);
    let Poll::Ready(Ok(mut first)) = poll_with(gets[1].as_mut().unwrap(), &wakers[1].1) else {
        panic!("the first waiter left is served first");
    };
    first.push(1);
    assert!(ring.try_get().is_err(), "waiter 3 still queued, slot held");
    drop(first);
    assert_eq!(wakes(&wakers[3].0), 1);
    let Poll::Ready(Ok(second)) = poll_with(gets[3].as_mut().unwrap(), &wakers[3].1) else {
        panic!("then the next one");
    };
    assert!(second.is_empty(), "reset on the way over");
    drop(second);
    drop(gets);
    let s = ring.stats();
    assert_eq!(
        (s.num_waiters, s.num_idle, s.wait_count),
        (0, 1, 5),
        "{s:?}"
    );
    assert_accounting(&s);
}

/// A queued `get` polled again with another waker (it moved to another
/// task, as in a `select!` loop): the slot's hand-over wakes the new waker
/// only.
#[test]
fn a_requeued_get_is_woken_through_its_latest_waker() {
    let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    let held = ring.try_get().unwrap();
    let (old_count, old) = counting_waker();
    let (new_count, new) = counting_waker();
    let mut get = Box::pin(ring.get());
    assert!(poll_with(&mut get, &old).is_pending());
    assert!(poll_with(&mut get, &new).is_pending());
    assert!(poll_with(&mut get, &new).is_pending());
    drop(held);
    assert_eq!((wakes(&old_count), wakes(&new_count)), (0, 1));
    assert!(poll_with(&mut get, &new).is_ready());
}

/// A slot handed to a `get` that is dropped before it is polled again goes
/// on to the next waiter (not back to the bitmap while tasks wait).
#[test]
fn a_slot_handed_to_a_dropped_get_goes_to_the_next_waiter() {
    let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    let held = ring.try_get().unwrap();
    let (first_count, first_waker) = counting_waker();
    let (next_count, next_waker) = counting_waker();
    let mut first = Box::pin(ring.get());
    let mut next = Box::pin(ring.get());
    assert!(poll_with(&mut first, &first_waker).is_pending());
    assert!(poll_with(&mut next, &next_waker).is_pending());
    drop(held); // granted to `first`
    assert_eq!(wakes(&first_count), 1);
    assert!(ring.try_get().is_err(), "granted, not free");
    drop(first); // never saw its grant
    assert_eq!(wakes(&next_count), 1);
    assert!(poll_with(&mut next, &next_waker).is_ready());
    let s = ring.stats();
    assert_eq!((s.num_waiters, s.num_in_use), (0, 0), "{s:?}");
}

/// A waker that panics when woken.
struct PanickingWaker;

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("a broken waker");
    }
}

/// `close` with a waker that panics: the panic goes on to the caller, but
/// only after every waiter was failed, so none stays queued on a closed
/// ring.
#[test]
fn close_fails_every_waiter_even_if_a_waker_panics() {
    let ring = RingPool::new(1, Vec::<u8>::new).unwrap();
    let held = ring.try_get().unwrap();
    let broken = std::task::Waker::from(Arc::new(PanickingWaker));
    let (count, fine) = counting_waker();
    let mut first = Box::pin(ring.get());
    let mut second = Box::pin(ring.get());
    assert!(poll_with(&mut first, &broken).is_pending());
    assert!(poll_with(&mut second, &fine).is_pending());
    let closing = std::panic::catch_unwind(AssertUnwindSafe(|| ring.close()));
    assert!(closing.is_err(), "the waker's panic reaches the caller");
    assert_eq!(wakes(&count), 1, "the waiter after it was woken anyway");
    assert!(matches!(poll_with(&mut second, &fine), Poll::Ready(Err(_))));
    assert!(matches!(poll_with(&mut first, &fine), Poll::Ready(Err(_))));
    drop(held);
    let s = ring.stats();
    assert_eq!((s.num_waiters, s.num_idle), (0, 1), "{s:?}");
}

/// A limiter as a user writes it: a ring of `()` and its guard types in
/// struct fields.
struct Limiter {
    permits: Arc<RingPool<()>>,
}

struct Job {
    _permit: OwnedRingGuard<()>,
    id: u64,
}

struct BorrowedJob<'a> {
    _permit: RingGuard<'a, ()>,
}

impl Limiter {
    async fn start(&self, id: u64) -> Result<Job, GetError> {
        Ok(Job {
            _permit: self.permits.get_owned().await?,
            id,
        })
    }
}

// One thread: woken tasks run in the order they were woken, so the order
// they record is the order the ring granted permits in.
#[tokio::test]
async fn a_ring_of_unit_limits_work_in_flight_in_fifo_order() {
    let limiter = Arc::new(Limiter {
        permits: Arc::new(RingPool::new(2, || ()).unwrap()),
    });
    let first = limiter.start(100).await.unwrap();
    let borrowed = BorrowedJob {
        _permit: limiter.permits.get().await.unwrap(),
    };
    assert_eq!(
        limiter.permits.try_get().unwrap_err(),
        TryGetError::Empty,
        "two in flight at most"
    );
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6u64 {
        let (limiter2, order2) = (Arc::clone(&limiter), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let job = limiter2.start(i).await.unwrap();
            order2.lock().unwrap().push(job.id);
            tokio::task::yield_now().await;
            assert!(limiter2.permits.stats().num_in_use <= 2);
        }));
        until_waiters(&limiter.permits, i + 1).await;
    }
    // A waiter that gives up leaves the line and holds no permit.
    let r = Arc::clone(&limiter.permits);
    let cancelled = tokio::spawn(async move { r.get_owned().await.map(drop) });
    until_waiters(&limiter.permits, 7).await;
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    until_waiters(&limiter.permits, 6).await;
    assert_eq!(first.id, 100);
    drop(first);
    drop(borrowed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..6).collect::<Vec<_>>());
    let s = limiter.permits.stats();
    assert_eq!((s.get_count, s.num_idle, s.num_waiters), (8, 2, 0));
    assert_eq!(s.created_count, 2, "permits are never made again");
    assert_accounting(&s);
}
