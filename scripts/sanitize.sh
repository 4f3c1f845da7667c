#!/usr/bin/env bash
# Runs the whole test suite under a sanitizer (nightly toolchain with the
# `rust-src` component: std is rebuilt instrumented). Not part of CI, which
# uses stable only.
#
#   scripts/sanitize.sh          # AddressSanitizer + LeakSanitizer
#   scripts/sanitize.sh thread   # ThreadSanitizer
#
# Extra arguments go to `cargo test` (a test binary: `--test worker`).
# EXTRA_RUSTFLAGS adds compiler flags, for example the slab close race's
# widened window:
#
#   EXTRA_RUSTFLAGS="--cfg capacitor_race_window" scripts/sanitize.sh address --test slab
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-address}"
[ $# -gt 0 ] && shift
target="$(rustc +nightly -vV | sed -n 's/^host: //p')"
case "$kind" in
    address) export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" ;;
    thread) export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp:${TSAN_OPTIONS:-}" ;;
    *) echo "usage: $0 [address|thread] [cargo test args]" >&2; exit 2 ;;
esac
RUSTFLAGS="-Zsanitizer=$kind ${EXTRA_RUSTFLAGS:-}" RUSTDOCFLAGS="-Zsanitizer=$kind" \
    cargo +nightly test -Zbuild-std --target "$target" --all-features \
    --target-dir "target/sanitize-$kind" --tests "$@"
