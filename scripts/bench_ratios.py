#!/usr/bin/env python3
"""Per-group ratio tables from criterion's output.

Reads every ``<criterion dir>/**/new/estimates.json`` (with the
``benchmark.json`` beside it for the group and function names) and prints,
per group, each benchmark's time per iteration (ns) and its ratio to a base
contestant (``--base``, default ``capacitor_pool``) and to ``new``
(``--also``), fastest first. A ratio above 1 is slower than the base.

Examples:
    cargo bench --bench pool
    python3 scripts/bench_ratios.py                 # every group
    python3 scripts/bench_ratios.py pool_4k         # groups matching a regex
    python3 scripts/bench_ratios.py worker --base worker_pool --stat mean
"""

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path


def default_criterion_dir():
    """target/criterion under CARGO_TARGET_DIR, else the repository's."""
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    here = Path("target") / "criterion"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "target" / "criterion"


def load(criterion_dir, stat):
    """{group: {function id: ns}} for every benchmark's latest run."""
    groups = defaultdict(dict)
    for est_path in sorted(criterion_dir.glob("**/new/estimates.json")):
        new_dir = est_path.parent
        try:
            with open(est_path) as f:
                ns = json.load(f)[stat]["point_estimate"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"skipping {est_path}: {e}", file=sys.stderr)
            continue
        group, function = names(criterion_dir, new_dir)
        groups[group][function] = float(ns)
    return groups


def names(criterion_dir, new_dir):
    """(group, function id) from benchmark.json, else from the path."""
    try:
        with open(new_dir / "benchmark.json") as f:
            bench = json.load(f)
        group = bench["group_id"]
        parts = [p for p in (bench.get("function_id"), bench.get("value_str")) if p]
        return group, "/".join(parts) or group
    except (OSError, ValueError, KeyError, TypeError):
        rel = new_dir.parent.relative_to(criterion_dir).parts
        return rel[0], "/".join(rel[1:]) or rel[0]


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3f} us"
    if ns >= 100:
        return f"{ns:.1f} ns"
    return f"{ns:.2f} ns"


def fmt_ratio(ns, base_ns):
    if base_ns is None or base_ns <= 0:
        return "-"
    return f"{ns / base_ns:.2f}x"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("filter", nargs="?", default="",
                   help="regex a group name must match (re.search); default: all")
    p.add_argument("--base", default="capacitor_pool",
                   help="contestant the ratios are taken to (default: capacitor_pool)")
    p.add_argument("--also", default="new",
                   help="second contestant to take ratios to; '' for none (default: new)")
    p.add_argument("--stat", default="median", choices=["median", "mean"],
                   help="criterion estimate to use (default: median)")
    p.add_argument("--dir", type=Path, default=None,
                   help="criterion output directory (default: target/criterion)")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = p.parse_args()

    criterion_dir = args.dir or default_criterion_dir()
    if not criterion_dir.is_dir():
        sys.exit(f"no criterion output in {criterion_dir} (run cargo bench first)")
    groups = load(criterion_dir, args.stat)
    pattern = re.compile(args.filter)
    selected = sorted(g for g in groups if pattern.search(g))
    if not selected:
        sys.exit(f"no group in {criterion_dir} matches {args.filter!r}")

    print(f"{args.stat} time per iteration, from {criterion_dir}")
    for group in selected:
        rows = sorted(groups[group].items(), key=lambda kv: kv[1])
        base = groups[group].get(args.base)
        also = groups[group].get(args.also) if args.also else None
        header = ["contestant", "time/op", f"vs {args.base}"]
        if args.also:
            header.append(f"vs {args.also}")
        table = []
        for name, ns in rows:
            row = [name, fmt_ns(ns), fmt_ratio(ns, base)]
            if args.also:
                row.append(fmt_ratio(ns, also))
            table.append(row)
        print()
        if args.markdown:
            print(f"**{group}**\n")
            print("| " + " | ".join(header) + " |")
            print("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            for row in table:
                print("| " + " | ".join(row) + " |")
        else:
            print(group)
            widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]
            for row in [header] + table:
                cells = [row[0].ljust(widths[0])]
                cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
                print("  " + "  ".join(cells))
        if base is None:
            print(f"  (no {args.base} in this group)")


if __name__ == "__main__":
    main()
