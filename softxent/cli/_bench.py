"""Time value_and_grad of the soft-target losses: softxent vs optax vs a naive version.

Medians of repeated runs after a warm-up, XLA temp memory of each compiled step,
and each implementation's fraction of the memory-bandwidth bound
3 * N * V * itemsize / (copy bandwidth measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "benchmark the losses against optax and a naive implementation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--quick", action="store_true", help="small shapes only (smoke test)")
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs per case (>= 1; default 7)"
    )


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        print(f"softxent bench: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    from .. import _bench

    shapes = _bench.QUICK_SHAPES if args.quick else _bench.FULL_SHAPES
    rows = []
    bandwidth = None
    for item in _bench.run_bench(shapes=shapes, repeats=args.repeats):
        if isinstance(item, float):
            bandwidth = item
            if args.json:  # stdout stays pure JSON
                print(f"copy bandwidth: {bandwidth / 1e9:.2f} GB/s", file=sys.stderr)
            else:
                print(f"copy bandwidth: {bandwidth / 1e9:.2f} GB/s; medians of {args.repeats} runs")
                print(
                    f"{'loss':30} {'impl':9} {'n':>5} {'v':>6} {'dtype':8} {'median ms':>10} "
                    f"{'vs optax':>8} {'temp MB':>9} {'bound %':>7}"
                )
            continue
        rows.append(item)
        if not args.json:
            ref = next(
                (
                    r
                    for r in rows
                    if (r.loss, r.n, r.v, r.dtype, r.impl)
                    == (item.loss, item.n, item.v, item.dtype, "optax")
                ),
                None,
            )
            ratio = f"{ref.median_s / item.median_s:8.2f}" if ref else f"{'':8}"
            print(
                f"{item.loss:30} {item.impl:9} {item.n:5d} {item.v:6d} {item.dtype:8} "
                f"{item.median_s * 1e3:10.2f} {ratio} {item.temp_bytes / 2**20:9.1f} "
                f"{100 * item.bound_fraction:7.1f}",
                flush=True,
            )
    if args.json:
        json.dump([_bench.as_dict(r) for r in rows], sys.stdout, indent=1)
        print()
    return 0
