#!/usr/bin/env bash
# Runs the crate's loom models (the `loom_tests.rs` files beside the modules
# of src/, built with `--cfg loom`) at a deeper preemption bound than CI's.
#
#   scripts/loom.sh [BOUND] [FILTER]
#
# BOUND is loom's LOOM_MAX_PREEMPTIONS (default 4; CI's `.ci/run` uses 3).
# FILTER is a libtest name filter, as for `cargo test`: `ring::` runs the
# ring's models, `waiters_are_handed` one of them. The models run one at a
# time; for each the script prints its status, wall time and how many
# interleavings loom explored ("Completed in N iterations").
#
# Measured on the 2-core development VM, shared with other builds (noisy),
# once built: the whole step takes under 1 s at bound 2, about 4 s at 3,
# 10-30 s at 4 and 2-3 min at 5. The three-thread ring models are the
# slowest by far; at 5: waiters_are_handed_slots_and_none_is_lost 72 s,
# a_cancelled_get_strands_no_slot 48 s,
# close_release_and_a_waiter_on_three_threads 17 s; every other model
# under a second.
#
# docs/LOOM.md lists seeded bugs, each a small change to src/ that some
# model must reject, and which models catch each: to check a model still
# catches them, make the change, run `scripts/loom.sh 3 <module>::`, and
# put src/ back (`git checkout -- src/`).
set -euo pipefail
cd "$(dirname "$0")/.."
bound="${1:-4}"
filter="${2:-}"
export RUSTFLAGS="--cfg loom"
export LOOM_MAX_PREEMPTIONS="$bound"
cargo="cargo test --release --lib --target-dir target/loom"
$cargo --no-run
# One model at a time, so that each one's time is its own.
tests=$($cargo -q -- --list "$filter" 2>/dev/null | sed -n 's/: test$//p')
if [ -z "$tests" ]; then
    echo "no loom model matches '$filter'" >&2
    exit 1
fi
failed=0
for t in $tests; do
    start=$(date +%s%N)
    if out=$(LOOM_LOG=loom::model=info $cargo -q -- --exact "$t" --nocapture 2>&1); then
        status=ok
    else
        status=FAILED
        failed=1
    fi
    ms=$((($(date +%s%N) - start) / 1000000))
    iterations=$(grep -o 'Completed in [0-9]* iterations' <<<"$out" | tail -n 1 || true)
    printf '%-7s %5d.%03ds  %s  (%s)\n' "$status" $((ms / 1000)) $((ms % 1000)) "$t" \
        "${iterations:-no count}"
    if [ "$status" = FAILED ]; then
        grep -E 'panicked|deadlock|Causality|assertion' <<<"$out" | head -n 5 >&2 || true
    fi
done
exit "$failed"
