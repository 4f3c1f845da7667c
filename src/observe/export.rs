//! Snapshots to the `metrics` recorder (feature `metrics`); the series are
//! listed on [`Reporter`](super::Reporter).

use metrics::{SharedString, counter, gauge};

use super::Snapshot;
use crate::stats::PoolStats;

/// Records one pool's snapshot under the label `pool`.
pub(super) fn record(pool: &str, snapshot: &Snapshot) {
    let pool: SharedString = match snapshot.name() {
        Some(name) => SharedString::const_str(name),
        None => SharedString::from(pool.to_owned()),
    };
    let kind = snapshot.kind();
    let labels = [("pool", pool), ("kind", SharedString::const_str(kind))];
    let count = |name: &'static str, v: u64| counter!(name, &labels).absolute(v);
    let level = |name: &'static str, v: f64| gauge!(name, &labels).set(v);
    let drops = |cause: &'static str, v: u64| {
        let with_cause = [
            labels[0].clone(),
            labels[1].clone(),
            ("cause", SharedString::const_str(cause)),
        ];
        counter!("capacitor_pool_drops_total", &with_cause).absolute(v);
    };
    match snapshot {
        Snapshot::Pool(s) | Snapshot::WorkerPool(s) => {
            record_pool(s, &count, &level, &drops);
        }
        Snapshot::Ring(s) => {
            count("capacitor_pool_gets_total", s.get_count);
            count("capacitor_pool_created_total", s.created_count);
            count("capacitor_pool_returns_total", s.return_count);
            drops("oversized", s.drop_oversized_count);
            drops("discarded", s.drop_discarded_count);
            count("capacitor_pool_detached_total", s.detach_count);
            count("capacitor_pool_long_holds_total", s.long_hold_count);
            level("capacitor_pool_idle", s.num_idle as f64);
            level("capacitor_pool_in_use", s.num_in_use as f64);
            count("capacitor_pool_ring_waits_total", s.wait_count);
            count(
                "capacitor_pool_ring_wait_microseconds_total",
                s.wait_time.as_micros() as u64,
            );
            count("capacitor_pool_ring_timeouts_total", s.timeout_count);
            level("capacitor_pool_ring_waiters", s.num_waiters as f64);
        }
        Snapshot::Slab(s) => {
            for class in &s.classes {
                let with_class = [
                    labels[0].clone(),
                    labels[1].clone(),
                    ("class", SharedString::from(class.chunk_size.to_string())),
                ];
                let c = |name: &'static str, v: u64| counter!(name, &with_class).absolute(v);
                let g = |name: &'static str, v: f64| gauge!(name, &with_class).set(v);
                g(
                    "capacitor_pool_slab_chunks_in_use",
                    class.pool.num_in_use as f64,
                );
                g(
                    "capacitor_pool_slab_chunks_idle",
                    class.pool.num_idle as f64,
                );
                g("capacitor_pool_slab_pages", class.num_pages as f64);
                c("capacitor_pool_slab_exhausted_total", class.exhausted_count);
                c(
                    "capacitor_pool_slab_heap_fallbacks_total",
                    class.heap_fallback_count,
                );
            }
            count("capacitor_pool_slab_oversized_total", s.oversized_count);
        }
        Snapshot::Cache(s) => {
            count("capacitor_pool_cache_hits_total", s.hit_count);
            count("capacitor_pool_cache_misses_total", s.miss_count);
            count("capacitor_pool_cache_evictions_total", s.eviction_count);
            count("capacitor_pool_cache_expirations_total", s.expiration_count);
            level("capacitor_pool_cache_entries", s.num_entries as f64);
        }
    }
}

fn record_pool(
    s: &PoolStats,
    count: &impl Fn(&'static str, u64),
    level: &impl Fn(&'static str, f64),
    drops: &impl Fn(&'static str, u64),
) {
    count("capacitor_pool_gets_total", s.get_count);
    count("capacitor_pool_hits_total", s.hit_count);
    count("capacitor_pool_misses_total", s.miss_count);
    count("capacitor_pool_created_total", s.created_count);
    count("capacitor_pool_returns_total", s.return_count);
    drops("full", s.drop_full_count);
    drops("oversized", s.drop_oversized_count);
    drops("discarded", s.drop_discarded_count);
    drops("aged", s.drop_aged_count);
    count("capacitor_pool_detached_total", s.detach_count);
    count("capacitor_pool_long_holds_total", s.long_hold_count);
    level("capacitor_pool_idle", s.num_idle as f64);
    level("capacitor_pool_in_use", s.num_in_use as f64);
}
