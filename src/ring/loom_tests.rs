//! Loom models of slot claim, release and hand-over against concurrent
//! claimers, waiters, cancelled waiters and `close`. Waiters run the
//! ring's own `Acquire` future (intrusive FIFO node, list lock, grant)
//! on loom's executor: a lost wake-up shows as a waiter that never
//! finishes, which loom reports as a deadlock.

use super::slots::Claimed;
use super::*;
use loom::sync::Arc;
use loom::thread;
use std::future::Future;
use std::pin::pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

use crate::loom::model::{Obj, hold, release};

/// `get` as the ring does it.
fn get(ring: &RingPool<Obj>) -> Result<NonNull<Obj>, GetError> {
    loom::future::block_on(ring.acquire()).map(Lent::into_raw)
}

/// Holds `slot` (checking no one else does, and that its bit is not
/// set meanwhile), then frees it.
fn hold_and_free(ring: &RingPool<Obj>, slot: NonNull<Obj>) {
    hold(slot);
    assert!(!is_free(ring, slot), "a held slot is in the bitmap");
    release(slot);
    free(ring, slot);
}

/// Whether `slot`'s bit is set: a free slot, which any `claim` takes.
fn is_free(ring: &RingPool<Obj>, slot: NonNull<Obj>) -> bool {
    ring.slots.is_free(ring.slots.index_of(slot))
}

fn use_slot(ring: &RingPool<Obj>) {
    hold_and_free(ring, get(ring).expect("open"));
}

/// Frees `slot` without holding it.
fn free(ring: &RingPool<Obj>, slot: NonNull<Obj>) {
    // SAFETY: the models free each slot they claimed, once.
    ring.release(unsafe { Claimed::assume(ring.slots.index_of(slot)) });
}

/// Claims a free slot without waiting, as `try_get` does.
fn claim(ring: &RingPool<Obj>) -> Option<NonNull<Obj>> {
    ring.slots.claim(0).map(|slot| ring.slots.hand_out(slot))
}

/// A one-slot ring with its slot claimed, as most models start.
fn one_slot_held() -> (Arc<RingPool<Obj>>, NonNull<Obj>) {
    let ring = Arc::new(RingPool::new(1, Obj::new).unwrap());
    let held = claim(&ring).unwrap();
    (ring, held)
}

/// Runs `f` on a new model thread with a handle of its own on `ring`.
fn spawn_on(
    ring: &Arc<RingPool<Obj>>,
    f: impl FnOnce(&RingPool<Obj>) + 'static,
) -> thread::JoinHandle<()> {
    let ring = Arc::clone(ring);
    thread::spawn(move || f(&ring))
}

fn check_all_free(ring: &RingPool<Obj>) {
    let s = ring.stats();
    assert_eq!((s.num_idle, s.num_waiters), (s.capacity as u64, 0), "{s:?}");
    assert!(ring.wait.lock().is_empty(), "no node left queued");
}

/// Three tasks, two slots: at least one has to wait for a hand-over.
#[test]
fn waiters_are_handed_slots_and_none_is_lost() {
    loom::model(|| {
        let ring = Arc::new(RingPool::new(2, Obj::new).unwrap());
        let threads: Vec<_> = (0..2).map(|_| spawn_on(&ring, use_slot)).collect();
        use_slot(&ring);
        for t in threads {
            t.join().unwrap();
        }
        check_all_free(&ring);
    });
}

/// Two waiters queue for one slot; the first gives up (its future is
/// dropped after one poll) while the slot is freed: the slot must reach
/// the other waiter or the bitmap, never stay granted to nobody.
#[test]
fn a_cancelled_get_strands_no_slot() {
    loom::model(|| {
        let (ring, held) = one_slot_held();
        let quitter = spawn_on(&ring, |ring| {
            let mut fut = pin!(ring.acquire());
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(slot) = fut.as_mut().poll(&mut cx) {
                free(ring, slot.expect("open").into_raw());
            }
            // Dropped here: gives up its place if it has one.
        });
        let patient = spawn_on(&ring, use_slot);
        free(&ring, held);
        quitter.join().unwrap();
        patient.join().unwrap();
        check_all_free(&ring);
        assert!(claim(&ring).is_some());
    });
}

/// `close` while a task waits: the waiter either gets the slot (freed
/// first) or an error, and the slot ends up free either way.
#[test]
fn close_fails_or_serves_the_waiter_and_frees_the_slot() {
    loom::model(|| {
        let (ring, held) = one_slot_held();
        let waiter = spawn_on(&ring, |ring| {
            if let Ok(slot) = get(ring) {
                hold_and_free(ring, slot);
            }
        });
        ring.close();
        free(&ring, held);
        waiter.join().unwrap();
        check_all_free(&ring);
        assert!(get(&ring).is_err(), "closed");
    });
}

/// A queued `get` polled again with another waker while its slot is
/// being released: the new waker must be the one woken (`block_on`
/// parks until it is), or the re-poll must see the grant.
#[test]
fn a_get_re_polled_with_a_new_waker_is_woken_through_it() {
    loom::model(|| {
        let (ring, held) = one_slot_held();
        let waiter = spawn_on(&ring, |ring| {
            let mut fut = Box::pin(ring.acquire());
            let mut cx = Context::from_waker(Waker::noop());
            let slot = match fut.as_mut().poll(&mut cx) {
                Poll::Ready(slot) => slot,
                // Queued under the no-op waker; now wait with a real
                // one.
                Poll::Pending => loom::future::block_on(&mut fut),
            };
            hold_and_free(ring, slot.expect("open").into_raw());
        });
        free(&ring, held);
        waiter.join().unwrap();
        check_all_free(&ring);
    });
}

/// `close`, a release and a waiter on three threads: the waiter gets
/// the slot or an error, never sleeps forever, and the slot ends free.
#[test]
fn close_release_and_a_waiter_on_three_threads() {
    loom::model(|| {
        let (ring, held) = one_slot_held();
        let closer = spawn_on(&ring, RingPool::close);
        let releaser = spawn_on(&ring, move |ring| free(ring, held));
        if let Ok(slot) = get(&ring) {
            hold_and_free(&ring, slot);
        }
        closer.join().unwrap();
        releaser.join().unwrap();
        check_all_free(&ring);
    });
}

/// A `try_get` barging in while a release hands its slot to a waiter
/// that is registering (it may take the bit between the release's
/// `set_bit` and `take_bit`, or the waiter may): the slot is held by
/// one of them at a time, and the waiter is still served.
#[test]
fn a_barging_try_get_does_not_strand_a_waiter() {
    loom::model(|| {
        let (ring, held) = one_slot_held();
        let waiter = spawn_on(&ring, use_slot);
        free(&ring, held);
        // Barge in right after the release, as a `try_get` would.
        if let Some(slot) = claim(&ring) {
            hold_and_free(&ring, slot);
        }
        waiter.join().unwrap();
        check_all_free(&ring);
    });
}
