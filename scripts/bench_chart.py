#!/usr/bin/env python3
"""Draws the README's bench chart (docs/bench.svg) from criterion's output.

One panel per bench group (get + use + return of a 4 KiB buffer: `Pool`
from plain threads, `WorkerPool` from tasks on tokio workers; 1 and 2 busy
at once), a bar per contestant on a log scale, labelled with its median
ns/op and its allocations per op. No dependencies beyond Python 3.

Regenerate with:
    cargo bench --bench pool -- 4k && cargo bench --bench worker -- 'worker_4k_[12]'
    python3 scripts/bench_chart.py            # writes docs/bench.svg
"""

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ratios import default_criterion_dir, load  # noqa: E402

PANELS = [
    ("pool_4k_1_thread", "Pool, 1 thread"),
    ("pool_4k_2_threads", "Pool, 2 threads at once"),
    ("worker_4k_1_worker", "WorkerPool, 1 tokio worker"),
    ("worker_4k_2_workers", "WorkerPool, 2 tokio workers at once"),
]

# Allocations per op in the steady state, as the benches print them before
# their timings (and tests/alloc.rs asserts for the crate's pools).
ALLOCS = {"new": 1}

OURS = {"capacitor_pool", "worker_pool", "worker_static"}
LABELS = {
    "capacitor_pool": "capacitor Pool",
    "worker_pool": "capacitor WorkerPool",
    "worker_static": "capacitor worker_pool! static",
    "floor": "floor (owned buffer)",
    "tls_slot": "thread-local slot (reference)",
    "new": "allocate + drop",
    "mutex_vec": "Mutex<Vec<T>>",
    "lockfree_linear": "lockfree-object-pool linear",
    "lockfree_spinlock": "lockfree-object-pool spinlock",
    "object_pool": "object-pool",
    "opool": "opool",
    "crossbeam_array_queue": "crossbeam ArrayQueue",
    "sharded_slab": "sharded-slab Pool",
}


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def draw(groups, title):
    bar_h, gap, label_w, plot_w, pad = 16, 4, 230, 360, 12
    lo, hi = 1.0, 1000.0  # ns, log scale
    x_of = lambda ns: label_w + plot_w * (
        math.log10(min(max(ns, lo), hi)) - math.log10(lo)
    ) / (math.log10(hi) - math.log10(lo))
    out, y = [], 40
    for group, heading in PANELS:
        rows = sorted(groups.get(group, {}).items(), key=lambda kv: kv[1])
        if not rows:
            continue
        out.append(f'<text x="{pad}" y="{y}" class="h">{esc(heading)}</text>')
        y += 8
        for name, ns in rows:
            y += bar_h + gap
            cls = "ours" if name in OURS else ("floor" if name in ("floor", "tls_slot") else "peer")
            allocs = ALLOCS.get(name, 0)
            out.append(
                f'<text x="{label_w - 8}" y="{y - 4}" class="l">'
                f"{esc(LABELS.get(name, name))}</text>"
            )
            out.append(
                f'<rect x="{label_w}" y="{y - bar_h}" width="{x_of(ns) - label_w:.1f}" '
                f'height="{bar_h}" class="{cls}"/>'
            )
            out.append(
                f'<text x="{x_of(ns) + 4:.1f}" y="{y - 4}" class="v">'
                f"{ns:.1f} ns · {allocs} alloc/op</text>"
            )
        y += 24
    axis_y = y
    ticks = []
    for ns in (1, 10, 100, 1000):
        x = x_of(ns)
        ticks.append(
            f'<line x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{axis_y - 12}" class="grid"/>'
            f'<text x="{x:.1f}" y="{axis_y}" class="t">{ns} ns</text>'
        )
    width = label_w + plot_w + 150
    height = axis_y + 16
    style = (
        "<style>"
        "text{font:12px sans-serif;fill:#222}"
        ".h{font-weight:bold}.l{text-anchor:end}.t{text-anchor:middle;fill:#666}"
        ".v{fill:#444}.ours{fill:#2b7bb9}.peer{fill:#b8b8b8}.floor{fill:#7fbf7f}"
        ".grid{stroke:#ddd}"
        "</style>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{style}'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="{pad}" y="18" class="h">{esc(title)}</text>'
        + "".join(ticks)
        + "".join(out)
        + "</svg>\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/bench.svg"))
    parser.add_argument(
        "--title",
        default="get + write + read + return of a 4 KiB BytesMut, median ns/op (log scale)",
    )
    args = parser.parse_args()
    groups = load(args.criterion_dir or default_criterion_dir(), "median")
    missing = [g for g, _ in PANELS if g not in groups]
    if len(missing) == len(PANELS):
        sys.exit("no bench results found: run `cargo bench --bench pool` and `--bench worker` first")
    for g in missing:
        print(f"note: no results for {g}; panel skipped", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(draw(groups, args.title))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
