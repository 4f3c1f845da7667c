//! Object pools for tokio services: zero allocations in the steady state,
//! no contended lock on the hot path, and guards that make misuse hard.
//!
//! (Crate docs are completed below in a later step.)

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]

mod guard;
mod loom;
mod pool;
mod reset;
mod shard;
mod stats;

pub use crate::guard::{OwnedPooled, PoolKind, Pooled};
pub use crate::pool::{DEFAULT_MAX_IDLE, DEFAULT_RETENTION_LIMIT, Pool, PoolBuilder};
pub use crate::reset::{Recycle, Reset, ResetWith, UseReset};
pub use crate::stats::PoolStats;
