#!/usr/bin/env bash
# Runs the tests that exercise the crate's `unsafe` code under Miri (nightly
# toolchain with the `miri` component). Not part of CI, which uses stable
# only. Skips tests that need real I/O drivers, timers or long stress loops.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo +nightly miri test --test future -- \
    --skip smoke --skip reused --skip in_place --skip ring_of_slots
cargo +nightly miri test --test pool -- \
    --skip stress --skip owned_guards_move --skip static_pool --skip mutex_is_not_needed
# The ring's runtime tests (FIFO, cancellation, select!, close, timeouts) run
# under Miri too; the two many-task stress tests take too long.
cargo +nightly miri test --test ring -- --skip guards_dropped_on_other --skip stress
cargo +nightly miri test --test worker -- \
    smoke magazines_spill oversized threads_that_are_not detach_discard \
    objects_parked_by_an_exiting dropping_the_pool_drops more_pools_than a_pool_dropped_after \
    zero_sized_objects
# What `trim` does with the magazines and slots of exited worker threads.
cargo +nightly miri test --test worker_exit
# `worker_pool!` statics (their own thread-local slots), minus the stress
# test; and the crate's unit tests.
cargo +nightly miri test --test worker_static -- --skip tasks_migrate
cargo +nightly miri test --lib
# The slab's chunk and page handling (the unsafe of `src/slab/`), minus
# the many-thread stress tests.
cargo +nightly miri test --test slab -- --skip many_waiters --skip frames_dropped_on_other \
    --skip threads_hammering --skip live_chunks --skip the_last_handle_drops
# The slab's close: the last handle drops while threads return chunks and
# `Bytes` clones. `--cfg capacitor_race_window` yields after every push's
# unlock so that a return still inside the push meets the class being freed;
# many seeds, under Stacked Borrows and Tree Borrows. SEEDS=0..64 by default.
seeds="${SEEDS:-0..64}"
for borrows in "" "-Zmiri-tree-borrows"; do
    RUSTFLAGS="--cfg capacitor_race_window" MIRIFLAGS="$borrows -Zmiri-many-seeds=$seeds" \
        cargo +nightly miri test --target-dir target/miri-race --test slab -- the_last_handle_drops
done
# The pooled `Framed` buffers (the pinned drop of `PooledFramed`).
cargo +nightly miri test --test codec -- smoke pooled_framed buffers_go_back \
    bytes_clones_outlive backpressure_holds never_shows_a_previous poll_read_payload
