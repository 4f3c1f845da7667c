//! Behaviour of `#[derive(Reset)]` (feature `derive`).

#![cfg(feature = "derive")]

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::hint::black_box;

use capacitor_pool::{Pool, Reset, ReusableVec};
use counting_alloc::{Counting, thread_allocs};

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Debug, Default, Reset)]
struct Header {
    name: String,
    value: String,
}

#[derive(Debug, Default, Reset)]
struct Request {
    method: String,
    path: String,
    headers: ReusableVec<Header>,
    body: Vec<u8>,
}

fn fill(req: &mut Request) {
    req.method.push_str("GET");
    req.path.push_str("/v1/items/42");
    for (name, value) in [("host", "api.example.com"), ("accept", "*/*")] {
        req.headers.push_with(|h| {
            h.name.push_str(name);
            h.value.push_str(value);
        });
    }
    req.body.extend_from_slice(b"{}");
}

#[test]
fn smoke() {
    let mut req = Request::default();
    fill(&mut req);
    req.reset();
    assert!(req.method.is_empty() && req.path.is_empty() && req.body.is_empty());
    assert!(req.headers.is_empty());
    assert_eq!(req.headers.spares(), 2);
}

#[test]
fn reset_resets_every_field_and_keeps_its_capacity() {
    let mut req = Request::default();
    fill(&mut req);
    let capacities = (
        req.method.capacity(),
        req.path.capacity(),
        req.body.capacity(),
    );
    req.reset();
    assert_eq!(
        (
            req.method.capacity(),
            req.path.capacity(),
            req.body.capacity()
        ),
        capacities
    );
    let h = req.headers.push_with(|_| {});
    assert!(h.name.is_empty() && h.name.capacity() >= "host".len());
}

#[test]
fn retained_bytes_are_the_sum_of_the_fields() {
    let mut req = Request::default();
    fill(&mut req);
    req.reset();
    let sum = req.method.retained_bytes()
        + req.path.retained_bytes()
        + req.headers.retained_bytes()
        + req.body.retained_bytes();
    assert_eq!(req.retained_bytes(), sum);
    let header = Header {
        name: String::with_capacity(10),
        value: String::with_capacity(32),
    };
    assert_eq!(header.retained_bytes(), 42);
}

fn zero(peer: &mut [u8; 4]) {
    *peer = [0; 4];
}

#[derive(Reset)]
struct Conn {
    #[reset(skip)]
    id: u64,
    #[reset(skip)]
    config: Vec<u8>,
    #[reset(default)]
    requests: u32,
    #[reset(default)]
    user: Option<String>,
    #[reset(with = "zero")]
    peer: [u8; 4],
    out: Vec<u8>,
}

#[test]
fn field_attributes_skip_default_and_with() {
    let mut c = Conn {
        id: 7,
        config: vec![1; 100],
        requests: 3,
        user: Some("alice".into()),
        peer: [10, 0, 0, 1],
        out: Vec::with_capacity(64),
    };
    c.out.push(1);
    c.reset();
    assert_eq!((c.id, c.config.len()), (7, 100), "skipped fields are left");
    assert_eq!((c.requests, c.user.as_deref()), (0, None));
    assert_eq!(c.peer, [0; 4]);
    assert!(c.out.is_empty());
    // Only `out` counts: skipped, defaulted and `with` fields count 0.
    assert_eq!(c.retained_bytes(), 64);
}

#[derive(Reset)]
struct Tuple(String, #[reset(skip)] u8, Vec<u16>);

#[derive(Reset)]
struct Unit;

#[test]
fn tuple_and_unit_structs_derive_too() {
    let mut t = Tuple(String::from("abc"), 9, Vec::with_capacity(8));
    t.2.push(1);
    t.reset();
    assert!(t.0.is_empty() && t.2.is_empty());
    assert_eq!(t.1, 9);
    assert_eq!(t.retained_bytes(), t.0.capacity() + 8 * 2);
    let mut u = Unit;
    u.reset();
    assert_eq!(u.retained_bytes(), 0);
}

/// `Vec<T>` resets for any `T`: the derive must not require `T: Reset`.
#[derive(Reset)]
struct Batch<'a, T, M: Clone, const N: usize>
where
    T: Send,
{
    items: Vec<T>,
    meta: M,
    #[reset(skip)]
    tag: &'a str,
    #[reset(default)]
    last: Option<[T; N]>,
}

struct NotReset;

#[test]
fn generic_structs_bound_field_types_not_parameters() {
    let mut b: Batch<'_, NotReset, String, 2> = Batch {
        items: vec![NotReset, NotReset],
        meta: String::from("meta"),
        tag: "tag",
        last: Some([NotReset, NotReset]),
    };
    b.reset();
    assert!(b.items.is_empty() && b.meta.is_empty() && b.last.is_none());
    assert_eq!(b.tag, "tag");
    assert_eq!(
        b.retained_bytes(),
        b.items.capacity() * size_of::<NotReset>() + b.meta.capacity()
    );
}

/// A private field type in a public generic struct.
#[derive(Reset)]
struct Inner<T> {
    items: Vec<T>,
}

/// Public, with a private field type that names a parameter.
#[derive(Reset)]
pub struct Outer<T> {
    inner: Inner<T>,
}

#[test]
fn private_field_types_in_public_structs_derive() {
    let mut o = Outer {
        inner: Inner {
            items: vec![1u8; 4],
        },
    };
    o.reset();
    assert!(o.inner.items.is_empty());
    assert_eq!(o.retained_bytes(), 4);
}

mod renamed {
    pub use capacitor_pool as pool;
}

#[derive(Reset)]
#[reset(crate = "renamed::pool")]
struct ThroughReexport {
    buf: String,
}

#[test]
fn crate_attribute_names_the_crate_path() {
    let mut t = ThroughReexport {
        buf: String::from("x"),
    };
    t.reset();
    assert!(t.buf.is_empty());
}

#[test]
fn pool_drops_a_derived_object_whose_nested_fields_pass_the_retention_limit() {
    let pool = Pool::builder(Request::default)
        .retention_limit(4096)
        .build();
    let mut req = pool.get();
    req.headers
        .push_with(|h| h.value.push_str(&"v".repeat(8192)));
    drop(req);
    let s = pool.stats();
    assert_eq!((s.num_idle, s.drop_oversized_count), (0, 1), "{s}");
}

#[test]
fn pooled_derived_requests_allocate_nothing_once_warm() {
    const REQUESTS: u64 = 1_000;
    let pool = Pool::new(Request::default);
    let serve = || {
        let mut req = pool.get();
        fill(&mut req);
        black_box(&*req);
    };
    serve(); // warm-up: the request, its headers and their strings made
    let before = thread_allocs();
    for _ in 0..REQUESTS {
        serve();
    }
    let allocs = thread_allocs() - before;
    assert_eq!(allocs, 0, "{allocs} allocations in {REQUESTS} requests");
    assert_eq!(pool.stats().created_count, 1);
}

#[test]
fn shrink_excess_shrinks_each_reset_field_and_leaves_the_others() {
    let mut c = Conn {
        id: 1,
        config: Vec::with_capacity(8192), // skipped: not shrunk
        requests: 0,
        user: None,
        peer: [0; 4],
        out: Vec::with_capacity(8192),
    };
    c.out.extend_from_slice(b"reply");
    c.shrink_excess();
    assert_eq!(c.config.capacity(), 8192);
    assert!(c.out.capacity() < 1024 && c.out == b"reply");

    let mut req = Request::default();
    fill(&mut req);
    let filled = req.retained_bytes();
    req.shrink_excess(); // filled fresh: nothing well over its contents
    assert_eq!(req.retained_bytes(), filled);
    req.body.reserve(64 * 1024);
    req.shrink_excess();
    assert_eq!(
        req.body.capacity(),
        req.body.len(),
        "the nested body is shrunk"
    );
    assert!(req.retained_bytes() <= filled);
}
