"""Time value_and_grad of the soft-target losses: softxent vs optax vs a naive version.

Medians of repeated runs after a warm-up, XLA temp memory of each compiled step,
and each implementation's fraction of the memory-bandwidth bound
3 * N * V * itemsize / (copy bandwidth measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "benchmark the losses against optax and a naive implementation"
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("optax", "bench"),)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    output.add_argument(
        "--markdown", action="store_true",
        help="print the README's Markdown table (implementations side by side) after the run",
    )
    parser.add_argument(
        "--from-json", metavar="PATH", default=None,
        help="run nothing: print the Markdown table of a saved --json output (of either kind)",
    )
    parser.add_argument(
        "--loss", action="append", default=None, metavar="NAME",
        help="time this registry loss (repeatable; a --plugin's losses included); losses "
        "optax has are timed against it and a naive version, others alone (default: the five "
        "losses optax has, listed in `softxent losses`); with --large-vocab, one of its "
        "losses (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small shapes only (smoke test)")
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs per case (>= 1; default 7)"
    )
    parser.add_argument(
        "--large-vocab", action="store_true",
        help="instead: hidden [N, D] @ weight [D, V] -> loss, softxent's chunked linear form "
        "against forming the logits (time and compiled memory)",
    )
    parser.add_argument(
        "--shape", default=None, metavar="N,V | N,D,V",
        help="run this one shape: N,V (instead of the four default shapes), or N,D,V with "
        "--large-vocab (default 2048,256,32000)",
    )
    parser.add_argument("--chunk-size", type=int, default=1024, help="--large-vocab row chunk")
    parser.add_argument(
        "--memory-only", action="store_true",
        help="with --large-vocab: compile each step from its inputs' shapes and report its "
        "memory, allocating and timing nothing (for shapes whose N x V arrays do not fit)",
    )
    parser.add_argument(
        "--dtype", action="append", choices=("float32", "bfloat16"), default=None,
        help="dtype(s) to run (repeatable; default float32 and bfloat16, float32 for "
        "--large-vocab)",
    )


def _parse_shape(text: str, names: str) -> tuple[int, ...]:
    """``text`` as positive integers, one per comma-separated name in ``names``."""
    parts = text.split(",")
    count = len(names.split(","))
    if len(parts) != count or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        words = {2: "two", 3: "three"}[count]
        raise ValueError(f"--shape must be {words} positive integers {names}, got {text!r}")
    return tuple(int(p) for p in parts)


def _run_large_vocab(args: argparse.Namespace) -> int:
    from ..bench import speed

    try:
        shape = (
            speed.LARGE_VOCAB_SHAPE if args.shape is None else _parse_shape(args.shape, "N,D,V")
        )
    except ValueError as error:
        print(f"softxent bench: {error}", file=sys.stderr)
        return 2
    losses = tuple(dict.fromkeys(args.loss)) if args.loss else speed.LARGE_VOCAB_LOSSES
    unknown = [loss for loss in losses if loss not in speed.LARGE_VOCAB_LOSSES]
    if unknown:
        print(f"softxent bench: --loss with --large-vocab must be among "
              f"{', '.join(speed.LARGE_VOCAB_LOSSES)}, got {unknown[0]!r}", file=sys.stderr)
        return 2
    dtypes = tuple(args.dtype) if args.dtype else ("float32",)
    environment = _environment(args)
    rows = []
    table = not (args.json or args.markdown)
    if table:
        timing = "compiled only" if args.memory_only else f"medians of {args.repeats} runs"
        print(f"hidden @ weight -> loss, value_and_grad in both; {timing}")
        print(f"{'loss':24} {'impl':11} {'n':>6} {'d':>5} {'v':>7} {'dtype':8} {'chunk':>6} "
              f"{'median ms':>10} {'temp MiB':>9} {'peak MiB':>9}")
    from .._progress import bar

    cases = speed.run_large_vocab(shape, dtypes, args.chunk_size, args.repeats, losses,
                                  memory_only=args.memory_only)
    for item in bar(cases, "bench --large-vocab", unit="case"):
        rows.append(item)
        if table:
            ms = "not run" if item.median_s is None else f"{item.median_s * 1e3:.2f}"
            print(f"{item.loss:24} {item.impl:11} {item.n:6d} {item.d:5d} {item.v:7d} "
                  f"{item.dtype:8} {item.chunk_size:6d} {ms:>10} "
                  f"{item.temp_bytes / 2**20:9.1f} {item.peak_bytes / 2**20:9.1f}", flush=True)
    _print_rows(args, [speed.as_dict(r) for r in rows], environment)
    return 0


def _environment(args: argparse.Namespace) -> dict[str, Any]:
    """Where and when this run happens, taken before it starts (the load average then)."""
    from ..bench._environment import environment

    return environment(args.command_line)


def _print_rows(args: argparse.Namespace, dicts: list[dict[str, Any]],
                environment: dict[str, Any]) -> None:
    if args.json:
        json.dump({"environment": environment, "rows": dicts}, sys.stdout, indent=1)
        print()
    elif args.markdown:
        print(_markdown(dicts))


def _is_large_vocab(rows: list[dict[str, Any]]) -> bool:
    """Whether saved rows come from ``--large-vocab`` (its rows have the hidden size ``d``)."""
    return bool(rows) and "d" in rows[0]


def _markdown(rows: list[dict[str, Any]]) -> str:
    from ..bench import speed

    if _is_large_vocab(rows):
        return speed.large_vocab_markdown(rows)
    return speed.markdown(rows)


def _read_saved(path: str) -> list[dict[str, Any]]:
    """Rows of a saved ``--json`` output, or ValueError naming the file and the problem."""
    from ..bench import speed
    from ._paths import UsageError, readable_file

    try:
        readable_file(path, "--from-json")
    except UsageError as error:
        raise ValueError(str(error)) from None
    try:
        with open(path, encoding="utf-8") as handle:
            rows = json.load(handle)
    except OSError as error:
        raise ValueError(f"--from-json: cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"--from-json: {path} is not JSON ({error})") from None
    if isinstance(rows, dict) and "rows" in rows:  # `--json` output: environment and rows
        rows = rows["rows"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"--from-json: {path} must hold a non-empty JSON list of objects "
                         "(or an object whose 'rows' is one), as `softxent bench --json` "
                         "prints it")
    kind = speed.LargeVocabResult if _is_large_vocab(rows) else speed.Result
    expected = set(kind.__dataclass_fields__)
    # a saved run without the warm copy's bound is read with that cell left empty
    optional = {"warm_bound_fraction"}
    for index, row in enumerate(rows):
        if not expected - optional <= set(row) <= expected:
            raise ValueError(
                f"--from-json: {path}: entry {index} has keys {sorted(row)}, expected "
                f"{sorted(expected)}")
    return rows


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1:
        print(f"softxent bench: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    if args.chunk_size < 1:
        print(f"softxent bench: --chunk-size must be >= 1, got {args.chunk_size}",
              file=sys.stderr)
        return 2
    if args.from_json is not None:
        try:
            print(_markdown(_read_saved(args.from_json)))
        except ValueError as error:
            print(f"softxent bench: {error}", file=sys.stderr)
            return 2
        return 0
    if args.memory_only and not args.large_vocab:
        print("softxent bench: --memory-only needs --large-vocab", file=sys.stderr)
        return 2
    if args.large_vocab:
        return _run_large_vocab(args)
    from ..bench import speed

    shapes = speed.QUICK_SHAPES if args.quick else speed.FULL_SHAPES
    if args.shape is not None:
        if args.quick:
            print("softxent bench: give --quick or --shape, not both", file=sys.stderr)
            return 2
        try:
            shapes = (_parse_shape(args.shape, "N,V"),)
        except ValueError as error:
            print(f"softxent bench: {error}", file=sys.stderr)
            return 2
    losses = tuple(dict.fromkeys(args.loss)) if args.loss else None
    if losses is not None:
        try:
            speed.check_losses(losses)
        except KeyError as error:
            print(f"softxent bench: --loss: {error.args[0]}", file=sys.stderr)
            return 2
        except ValueError as error:
            print(f"softxent bench: {error}", file=sys.stderr)
            return 2
    environment = _environment(args)
    rows = []
    table = not (args.json or args.markdown)
    dtypes = tuple(args.dtype) if args.dtype else None
    from .._progress import bar

    cases = speed.run_bench(shapes=shapes, dtypes=dtypes, losses=losses, repeats=args.repeats)
    for item in bar(cases, "bench", unit="case"):
        if isinstance(item, speed.Bandwidths):
            environment["copy_bandwidth_gb_s"] = round(item.allocating / 1e9, 2)
            environment["warm_copy_bandwidth_gb_s"] = round(item.warm / 1e9, 2)
            copies = (f"copy bandwidth: {item.allocating / 1e9:.2f} GB/s allocating, "
                      f"{item.warm / 1e9:.2f} GB/s into warm memory")
            if not table:  # stdout stays pure JSON / Markdown
                print(copies, file=sys.stderr)
            else:
                print(f"{copies}; medians of {args.repeats} runs")
                print(
                    f"{'loss':41} {'impl':9} {'n':>5} {'v':>6} {'dtype':8} {'median ms':>10} "
                    f"{'vs optax':>8} {'temp MB':>9} {'bound %':>7} {'warm %':>6}"
                )
            continue
        rows.append(item)
        if table:
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
                f"{item.loss:41} {item.impl:9} {item.n:5d} {item.v:6d} {item.dtype:8} "
                f"{item.median_s * 1e3:10.2f} {ratio} {item.temp_bytes / 2**20:9.1f} "
                f"{100 * item.bound_fraction:7.1f} {100 * item.warm_bound_fraction:6.1f}",
                flush=True,
            )
    _print_rows(args, [speed.as_dict(r) for r in rows], environment)
    return 0
