//! The `tracing` events (feature `tracing`), seen by a test subscriber.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capacitor_pool::observe::Reporter;
use capacitor_pool::{Pool, RingPool, WorkerPool};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One event: its level and its fields, printed.
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    fields: BTreeMap<String, String>,
}

impl Seen {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            fields,
        });
    }
}

/// Runs `f` with a subscriber on this thread; returns the crate's events.
fn events(f: impl FnOnce()) -> Vec<Seen> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, f);
    capture.0.lock().unwrap().clone()
}

const WARNING: Duration = Duration::from_millis(25);
const PAST: Duration = Duration::from_millis(80);

#[test]
fn smoke() {
    let pool = Pool::builder(Vec::<u8>::new)
        .name("traced")
        .hold_warning(WARNING)
        .build();
    let mut line = 0;
    let seen = events(|| {
        line = line!() + 1;
        let held = pool.get();
        std::thread::sleep(PAST);
        drop(held);
    });
    assert_eq!(seen.len(), 1, "{seen:?}");
    let warn = &seen[0];
    assert_eq!(warn.level, Level::WARN);
    assert_eq!(warn.field("pool"), "traced");
    assert_eq!(warn.field("kind"), "pool");
    assert_eq!(warn.field("state"), "returned");
    let location = warn.field("location");
    assert!(
        location.starts_with(&format!("{}:{line}:", file!())),
        "{location}"
    );
    let held_ms: f64 = warn.field("held_ms").parse().unwrap();
    assert!(held_ms >= PAST.as_secs_f64() * 1e3, "{held_ms}");
    assert_eq!(warn.field("threshold_ms"), "25");
}

#[test]
fn a_long_hold_warns_once_while_held_and_not_again_on_return() {
    let pool = Arc::new(
        WorkerPool::builder(Vec::<u8>::new)
            .name("once")
            .hold_warning(WARNING)
            .build(),
    );
    let mut reporter = Reporter::new().watch_arc(&pool);
    let seen = events(|| {
        let held = pool.get();
        std::thread::sleep(PAST);
        reporter.report(); // warns: still held
        reporter.report(); // already warned
        assert_eq!(pool.long_holds().len(), 1); // listed, not warned again
        drop(held); // not warned again
    });
    let warns: Vec<_> = seen.iter().filter(|e| e.level == Level::WARN).collect();
    assert_eq!(warns.len(), 1, "{seen:?}");
    assert_eq!(warns[0].field("state"), "still held");
    assert_eq!(warns[0].field("kind"), "worker_pool");
}

#[test]
fn a_rings_warning_says_who_waited() {
    let ring = Arc::new(
        RingPool::builder(1, Vec::<u8>::new)
            .name("ring")
            .hold_warning(WARNING)
            .build()
            .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seen = events(|| {
        rt.block_on(async {
            let held = ring.get().await.unwrap();
            let waiter = tokio::spawn({
                let ring = Arc::clone(&ring);
                async move { drop(ring.get().await.unwrap()) }
            });
            tokio::task::yield_now().await;
            std::thread::sleep(PAST);
            drop(held); // warns on return, with the waiter still queued
            waiter.await.unwrap();
        });
    });
    let warn = seen
        .iter()
        .find(|e| e.level == Level::WARN)
        .expect("a warning");
    assert_eq!(warn.field("kind"), "ring");
    assert_eq!(warn.field("waits"), "1");
    assert_eq!(warn.field("waiting_now"), "1");
}

#[test]
fn oversized_drops_and_trims_are_debug_events() {
    let pool = Pool::builder(Vec::<u8>::new)
        .name("sized")
        .retention_limit(1024)
        .prefill(2)
        .build();
    let seen = events(|| {
        pool.get().reserve(4096);
        pool.trim();
        pool.trim();
    });
    let debug: Vec<_> = seen.iter().filter(|e| e.level == Level::DEBUG).collect();
    assert_eq!(debug.len(), 3, "{seen:?}");
    assert_eq!(debug[0].field("pool"), "sized");
    assert_eq!(debug[0].field("retained_bytes"), "4096");
    assert_eq!(debug[0].field("retention_limit"), "1024");
    assert_eq!(debug[1].field("dropped"), "0");
    assert_eq!(
        debug[2].field("dropped"),
        "1",
        "the prefill object left idle"
    );
    assert_eq!(debug[2].field("idle"), "0");
}

#[test]
fn a_ring_replacing_an_oversized_object_says_so() {
    let ring = RingPool::builder(1, Vec::<u8>::new)
        .retention_limit(16)
        .build()
        .unwrap();
    let seen = events(|| ring.try_get().unwrap().reserve(64));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].level, Level::DEBUG);
    assert_eq!(seen[0].field("kind"), "ring");
    assert_eq!(seen[0].field("pool"), "");
}

#[test]
fn the_hot_path_emits_nothing() {
    let pool = WorkerPool::builder(Vec::<u8>::new)
        .hold_warning(Duration::from_secs(60))
        .build();
    let ring = RingPool::new(2, Vec::<u8>::new).unwrap();
    let seen = events(|| {
        for _ in 0..1000 {
            pool.get().push(1);
            drop(ring.try_get().unwrap());
        }
    });
    assert!(seen.is_empty(), "{seen:?}");
}
