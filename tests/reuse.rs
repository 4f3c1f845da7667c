//! Behaviour of `ReusableVec<T>`: cleared elements kept as spares and
//! filled again in place.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use capacitor_pool::{Pool, Reset, ReusableVec};

/// A header whose two strings keep their capacity through a reset.
#[derive(Debug, Default, Clone, PartialEq)]
struct Header {
    name: String,
    value: String,
}

impl Reset for Header {
    fn reset(&mut self) {
        self.name.reset();
        self.value.reset();
    }
    fn retained_bytes(&self) -> usize {
        self.name.retained_bytes() + self.value.retained_bytes()
    }
}

/// Counts its drops and resets in shared counters.
#[derive(Default)]
struct Counted {
    drops: Arc<AtomicUsize>,
    resets: Arc<AtomicUsize>,
}

impl Counted {
    fn new(drops: &Arc<AtomicUsize>, resets: &Arc<AtomicUsize>) -> Self {
        Self {
            drops: Arc::clone(drops),
            resets: Arc::clone(resets),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Reset for Counted {
    fn reset(&mut self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
}

fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (Arc::default(), Arc::default())
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<ReusableVec<String>>();
};

#[test]
fn smoke() {
    let mut headers: ReusableVec<Header> = ReusableVec::new();
    headers.push_with(|h| {
        h.name.push_str("host");
        h.value.push_str("example.com");
    });
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].name, "host");
    headers.clear();
    assert!(headers.is_empty());
    assert_eq!(headers.spares(), 1);
    let h = headers.push_with(|h| h.name.push_str("accept"));
    assert_eq!((h.name.as_str(), h.value.as_str()), ("accept", ""));
    assert!(h.value.capacity() >= "example.com".len());
    assert_eq!(headers.spares(), 0);
}

#[test]
fn clear_resets_every_live_element_and_keeps_it() {
    let (drops, resets) = counters();
    let mut v = ReusableVec::new();
    for _ in 0..3 {
        v.push(Counted::new(&drops, &resets));
    }
    v.clear();
    assert_eq!(resets.load(Ordering::SeqCst), 3);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert_eq!((v.len(), v.spares()), (0, 3));
    // Spares are not reset again by a second clear.
    v.clear();
    assert_eq!(resets.load(Ordering::SeqCst), 3);
    drop(v);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn push_with_fills_the_spare_s_own_allocation() {
    let mut v: ReusableVec<String> = ReusableVec::new();
    let first = v
        .push_with(|s| s.push_str("a string long enough to allocate"))
        .as_ptr();
    v.clear();
    let again = v.push_with(|s| s.push_str("short"));
    assert_eq!(again, "short");
    assert_eq!(again.as_ptr(), first, "the spare's buffer was not reused");
}

#[test]
fn push_with_makes_a_default_when_no_spare_is_left() {
    let mut v: ReusableVec<Vec<u8>> = ReusableVec::new();
    v.push_with(|b| b.push(1));
    v.clear();
    v.push_with(|b| b.push(2));
    let fresh = v.push_with(|b| assert!(b.is_empty() && b.capacity() == 0));
    fresh.push(3);
    assert_eq!(v, [vec![2], vec![3]]);
    assert_eq!(v.spares(), 0);
}

#[test]
fn truncate_resets_the_removed_elements_and_keeps_them_in_order_of_reuse() {
    let mut v: ReusableVec<String> = ReusableVec::new();
    for word in ["zero", "one", "two", "three"] {
        v.push_with(|s| s.push_str(word));
    }
    let ptrs: Vec<_> = v.iter().map(|s| s.as_ptr()).collect();
    v.truncate(2);
    assert_eq!(v, ["zero", "one"]);
    assert_eq!(v.spares(), 2);
    // The spares come back reset, with their buffers.
    let two = v.push_with(|s| assert!(s.is_empty())).as_ptr();
    let three = v.push_with(|s| assert!(s.is_empty())).as_ptr();
    assert_eq!([two, three], [ptrs[2], ptrs[3]]);
    v.truncate(10);
    assert_eq!(v.len(), 4);
}

#[test]
fn pop_hands_out_the_last_live_element_and_keeps_the_spares() {
    let mut v: ReusableVec<String> = ReusableVec::new();
    for word in ["a", "b", "c", "d"] {
        v.push_with(|s| s.push_str(word));
    }
    v.truncate(2);
    assert_eq!(v.pop().as_deref(), Some("b"));
    assert_eq!(v, ["a"]);
    assert_eq!(v.spares(), 2);
    assert_eq!(v.pop().as_deref(), Some("a"));
    assert_eq!(v.pop(), None);
    assert_eq!(v.spares(), 2);
    v.push_with(|s| assert!(s.is_empty()));
    v.push_with(|s| assert!(s.is_empty()));
    assert_eq!(v.spares(), 0);
}

#[test]
fn push_drops_the_spare_it_takes_the_place_of() {
    let (drops, resets) = counters();
    let mut v = ReusableVec::new();
    v.push(Counted::new(&drops, &resets));
    v.push(Counted::new(&drops, &resets));
    v.clear();
    v.push(Counted::new(&drops, &resets));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!((v.len(), v.spares()), (1, 1));
}

#[test]
fn shrink_spares_drops_the_spares_over_the_limit() {
    let (drops, resets) = counters();
    let mut v = ReusableVec::new();
    for _ in 0..5 {
        v.push(Counted::new(&drops, &resets));
    }
    v.truncate(1);
    let capacity = v.capacity();
    v.shrink_spares(1);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    assert_eq!((v.len(), v.spares(), v.capacity()), (1, 1, capacity));
    v.shrink_spares(0);
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    assert_eq!(v.len(), 1);
}

#[test]
fn a_panicking_fill_leaves_its_element_live() {
    let mut v: ReusableVec<String> = ReusableVec::new();
    v.push_with(|s| s.push_str("first"));
    v.clear();
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        v.push_with(|s| {
            s.push_str("half");
            panic!("fill failed");
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(v, ["half"]);
    assert_eq!(v.spares(), 0);
    v.clear();
    assert!(v.push_with(|_| {}).is_empty());
}

#[test]
fn a_panicking_reset_leaves_the_elements_live() {
    #[derive(Default, Debug, PartialEq)]
    struct Fragile(u32);
    impl Reset for Fragile {
        fn reset(&mut self) {
            assert_ne!(self.0, 13, "cannot reset 13");
            self.0 = 0;
        }
    }
    let mut v: ReusableVec<Fragile> = [1, 13, 2].map(Fragile).into_iter().collect();
    assert!(catch_unwind(AssertUnwindSafe(|| v.clear())).is_err());
    assert_eq!(v.len(), 3);
    assert_eq!(v.spares(), 0);
}

#[test]
fn retained_bytes_count_the_buffer_and_every_element_live_and_spare() {
    let mut v: ReusableVec<String> = ReusableVec::with_capacity(4);
    v.push_with(|s| s.reserve_exact(100));
    v.push_with(|s| s.reserve_exact(50));
    v.truncate(1);
    let nested: usize = 100 + 50;
    let buffer = v.capacity() * size_of::<String>();
    assert_eq!(v.retained_bytes(), buffer + nested);
    v.reset();
    assert_eq!(v.retained_bytes(), buffer + nested);
    v.shrink_spares(0);
    assert_eq!(v.retained_bytes(), buffer);
}

#[test]
fn pool_drops_an_object_whose_nested_elements_pass_the_retention_limit() {
    let pool = Pool::builder(ReusableVec::<String>::new)
        .retention_limit(4096)
        .build();
    let mut v = pool.get();
    for _ in 0..10 {
        v.push_with(|s| s.push_str(&"x".repeat(100)));
    }
    drop(v); // about 1 KiB nested: kept
    assert_eq!(pool.stats().num_idle, 1);
    let mut v = pool.get();
    assert_eq!(v.spares(), 10);
    for _ in 0..10 {
        v.push_with(|s| s.push_str(&"x".repeat(1000)));
    }
    drop(v); // about 10 KiB nested, in a buffer of 10 strings: dropped
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_oversized_count), (0, 1), "{s}");
}

#[test]
fn pooled_objects_keep_their_nested_allocations_across_users() {
    #[derive(Default)]
    struct Request {
        headers: ReusableVec<Header>,
    }
    impl Reset for Request {
        fn reset(&mut self) {
            self.headers.reset();
        }
        fn retained_bytes(&self) -> usize {
            self.headers.retained_bytes()
        }
    }
    let pool = Pool::builder(Request::default).shards(1).build();
    let mut req = pool.get();
    for i in 0..8 {
        req.headers.push_with(|h| {
            h.name.push_str("x-header-name");
            h.value.push_str(&i.to_string());
        });
    }
    let names: Vec<_> = req.headers.iter().map(|h| h.name.as_ptr()).collect();
    drop(req);
    let mut req = pool.get();
    assert!(req.headers.is_empty());
    for _ in 0..8 {
        req.headers.push_with(|h| h.name.push_str("other"));
    }
    let again: Vec<_> = req.headers.iter().map(|h| h.name.as_ptr()).collect();
    assert_eq!(again, names);
}

#[test]
fn comparisons_debug_clone_and_hash_see_the_live_elements_only() {
    let mut a: ReusableVec<String> = ["x", "y", "z"].map(String::from).into_iter().collect();
    a.truncate(2);
    let b: ReusableVec<String> = ["x", "y"].map(String::from).into_iter().collect();
    assert_eq!(a, b);
    assert_eq!(a, ["x", "y"]);
    assert_eq!(a, vec!["x", "y"]);
    assert_eq!(a, *["x", "y"].as_slice());
    assert_eq!(format!("{a:?}"), r#"["x", "y"]"#);
    let hash = |v: &ReusableVec<String>| {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    };
    assert_eq!(hash(&a), hash(&b));
    let c = a.clone();
    assert_eq!(c, a);
    assert_eq!(c.spares(), 0);
}

#[test]
fn from_iter_extend_and_into_iter_move_live_elements() {
    let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let mut v: ReusableVec<String> = words(&["a", "b", "c"]).into_iter().collect();
    v.extend(words(&["d", "e"]));
    assert_eq!(v, ["a", "b", "c", "d", "e"]);
    v.truncate(2);
    v.extend(words(&["z"]));
    assert_eq!(v, ["a", "b", "z"]);
    assert_eq!(v.spares(), 2);
    for s in &mut v {
        s.push('!');
    }
    assert_eq!(
        (&v).into_iter().cloned().collect::<Vec<_>>(),
        ["a!", "b!", "z!"]
    );
    assert_eq!(v.into_iter().collect::<Vec<_>>(), ["a!", "b!", "z!"]);
    let from_vec = ReusableVec::from(vec![7, 8]);
    assert_eq!((from_vec.len(), from_vec.spares()), (2, 0));
    assert_eq!(Vec::from(from_vec), [7, 8]);
}

#[test]
fn slice_methods_and_indexing_reach_the_live_elements_only() {
    let mut v: ReusableVec<String> = ["c", "a", "b", "hidden"]
        .map(String::from)
        .into_iter()
        .collect();
    v.truncate(3);
    v.sort_unstable();
    assert_eq!(v[..], ["a", "b", "c"]);
    assert_eq!(v[1..], ["b", "c"]);
    v[0].push('!');
    assert_eq!(v.first().map(String::as_str), Some("a!"));
    assert_eq!(v.get(3), None);
    assert!(catch_unwind(|| v[3].len()).is_err());
}
