//! The crate's `tracing` events (feature `tracing`): each is a function
//! that compiles to nothing without the feature, called from cold paths
//! only.

use std::time::Duration;

use super::LongHold;
use super::holds::Label;

/// A guard passed its pool's hold warning: `warn`, once per guard.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn long_hold(label: Label, long: &LongHold, threshold: Duration) {
    #[cfg(feature = "tracing")]
    {
        let state = if long.still_held {
            "still held"
        } else {
            "returned"
        };
        // Milliseconds to the microsecond: no float noise in the logs.
        let held_ms = long.held_for.as_micros() as f64 / 1e3;
        match long.waits {
            Some(w) => tracing::warn!(
                pool = label.name.unwrap_or(""),
                kind = label.kind,
                location = %long.location,
                held_ms,
                threshold_ms = threshold.as_millis() as u64,
                state,
                waits = w.count,
                wait_ms = w.time.as_micros() as f64 / 1e3,
                waiting_now = w.num_waiters,
                "pooled object held past its hold warning while other tasks waited for the ring"
            ),
            None => tracing::warn!(
                pool = label.name.unwrap_or(""),
                kind = label.kind,
                location = %long.location,
                held_ms,
                threshold_ms = threshold.as_millis() as u64,
                state,
                "pooled object held past its hold warning"
            ),
        }
    }
}

/// An object came back retaining more than the retention limit and was
/// dropped: `debug`.
#[cold]
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn dropped_oversized(label: Label, retained: usize, limit: usize) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        pool = label.name.unwrap_or(""),
        kind = label.kind,
        retained_bytes = retained,
        retention_limit = limit,
        "pooled object dropped: it retained more than the retention limit"
    );
}

/// A trim ran: `debug`, with what it dropped and what stays idle (`idle`
/// is called only when the event is on).
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn trimmed(label: Label, dropped: usize, idle: impl FnOnce() -> u64) {
    #[cfg(feature = "tracing")]
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!(
            pool = label.name.unwrap_or(""),
            kind = label.kind,
            dropped,
            idle = idle(),
            "pool trimmed"
        );
    }
}
