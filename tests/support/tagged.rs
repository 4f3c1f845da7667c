//! `Tagged`: a pooled object that knows its identity and whether someone
//! holds it, so a test can catch one object handed to two holders at once;
//! and the accounting check every `PoolStats` must pass. Shared by the pool
//! tests (`#[path]`-included).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use capacitor_pool::{PoolStats, Reset};

#[derive(Debug)]
pub struct Tagged {
    pub id: u64,
    held: AtomicBool,
    pub data: Vec<u8>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Tagged {
    pub fn new() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            held: AtomicBool::new(false),
            data: Vec::new(),
        }
    }

    /// Marks the object held; panics if it already was.
    pub fn hold(&self) {
        assert!(
            !self.held.swap(true, Ordering::SeqCst),
            "object {} handed out twice",
            self.id
        );
    }

    /// Marks the object free again; panics if it was not held.
    pub fn release(&self) {
        assert!(self.held.swap(false, Ordering::SeqCst));
    }
}

impl Reset for Tagged {
    fn reset(&mut self) {
        self.data.clear();
    }
    fn retained_bytes(&self) -> usize {
        self.data.capacity()
    }
}

/// Gets are hits plus misses, and every object that came in (made or put)
/// is idle, in use, dropped or detached.
pub fn assert_accounting(s: &PoolStats) {
    assert_eq!(s.get_count, s.hit_count + s.miss_count, "{s}");
    assert_eq!(
        s.created_count + s.adopt_count,
        s.num_idle + s.num_in_use + s.drop_count() + s.detach_count,
        "{s}"
    );
}

/// A `Tagged` object that counts its drops in a shared counter, to see
/// where pooled objects end up. An armed one panics in its drop (after
/// counting it): a user destructor that panics.
#[derive(Debug)]
pub struct Counted {
    drops: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub tag: Tagged,
    pub armed: bool,
}

impl Counted {
    pub fn new(drops: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        Self {
            drops: std::sync::Arc::clone(drops),
            tag: Tagged::new(),
            armed: false,
        }
    }

    /// A new object whose drop panics.
    pub fn armed(drops: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        let mut object = Self::new(drops);
        object.armed = true;
        object
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.armed {
            panic!("armed object {} panicked in drop", self.tag.id);
        }
    }
}

/// The message of a panic payload caught by `catch_unwind`.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("")
}

impl Reset for Counted {
    fn reset(&mut self) {}
}
