"""Label distribution learning benchmark: K-fold cross-validation on .mat datasets.

Reports the six measures of Geng (2016) as mean ± std over folds and the wall
time; --peer also runs SA-BFGS as PyLDL does (SciPy L-BFGS-B) on the same folds
in the same process. Files hold `features` (n × d) and `labels` (n × K).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "label-distribution-learning benchmark (LDL datasets, six measures, peer timing)"
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("scipy", "ldl"), ("optax", "ldl"))

ARROWS = {"chebyshev": "Chebyshev ↓", "clark": "Clark ↓", "canberra": "Canberra ↓",
          "kl": "KL ↓", "cosine": "Cosine ↑", "intersection": "Intersection ↑"}


def _l2_value(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number >= 0 or 'auto', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="one .mat file")
    source.add_argument("--data-dir", type=Path, help="every .mat file in a folder (Markdown)")
    parser.add_argument("--model", choices=("maxent", "mlp"), default="maxent")
    parser.add_argument("--loss", default="kl_divergence", help="a softmax registry loss")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations (maxent)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--l2", type=_l2_value, default=0.0, metavar="L2|auto",
                        help="ridge penalty on the maxent weights (default 0: Geng's model); "
                        "'auto' standardises the features and picks each fold's penalty "
                        "from 1e-4, 1e-3, ..., 1 by validation inside its training rows")
    parser.add_argument("--standardize", action="store_true",
                        help="standardise features per training fold (always on for mlp)")
    parser.add_argument("--normalize", action="store_true",
                        help="renormalise label rows that do not sum to 1")
    parser.add_argument("--peer", action="store_true",
                        help="also run the SciPy SA-BFGS peer on the same folds")
    parser.add_argument("--inverse-map", action="store_true",
                        help="also score the predictions mapped back through the loss's "
                        "symbolic inverse map (softxent analyze)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    from .. import _distributed

    _distributed.add_arguments(parser)


def _fail(message: str) -> int:
    print(f"softxent ldl: {message}", file=sys.stderr)
    return 2


def _fit(data, args: argparse.Namespace, fitted: list[int] | None = None) -> dict:
    """The folds ``fitted`` (default all) of softxent's model and, with ``--peer``, the
    peer's: a part for :func:`_result`, JSON-ready to pass between processes."""
    from ..bench import cross_validate_peer, fit_folds

    part = {"ours": fit_folds(data, model=args.model, loss=args.loss, folds=args.folds,
                              seed=args.seed, max_iter=args.max_iter, dtype=args.dtype,
                              standardize=True if args.standardize else None, l2=args.l2,
                              inverse_map=args.inverse_map, fitted=fitted)}
    if args.peer:
        part["peer"] = cross_validate_peer(data, folds=args.folds, seed=args.seed,
                                           fitted=fitted)
    return part


def _result(data, args: argparse.Namespace, parts: list[dict]) -> dict:
    """The dataset's result from parts that together fitted every fold once."""
    from ..bench import PUBLISHED, combine_folds, combine_peer_folds

    result = combine_folds([part["ours"] for part in parts])
    result["normalize"] = args.normalize
    result["renormalized_rows"] = data.renormalized_rows
    if data.name in PUBLISHED:
        result["published"] = PUBLISHED[data.name]._asdict()
    if args.peer:
        peer = combine_peer_folds([part["peer"] for part in parts])
        result["peer"] = {"model": peer["model"], "seconds": peer["seconds"],
                          "metrics": peer["metrics"]}
        result["speedup"] = peer["seconds"] / result["seconds"]
    return result


def _row(name: str, method: str, metrics: dict, seconds: str, digits: int = 4) -> str:
    cells = [f"{metrics[m]['mean']:.{digits}f} ± {metrics[m]['std']:.{digits}f}" for m in ARROWS]
    return f"| {name} | {method} | " + " | ".join(cells) + f" | {seconds} |"


def _notes(result: dict) -> list[str]:
    """What the table cannot show: folds stopped by the iteration cap, renormalised rows."""
    notes = []
    capped = result.get("folds_at_max_iter")
    if capped is not None:
        notes.append(f"{result['dataset']}: {capped} of {result['folds']} folds stopped at the "
                     f"iteration cap (--max-iter {result['max_iter']}) before converging")
    if result.get("normalize"):
        notes.append(f"{result['dataset']}: --normalize changed {result['renormalized_rows']} "
                     f"of {result['n']} label rows")
    return notes


def _markdown(results: list[dict], skipped: list[str]) -> str:
    from ..bench import PUBLISHED

    header = "| dataset | method | " + " | ".join(ARROWS.values()) + " | seconds |"
    lines = [header, "|" + "---|" * (len(ARROWS) + 3)]
    sources = []
    for r in results:
        name = r["dataset"]
        lines.append(_row(name, f"softxent {r['model']}", r["metrics"], f"{r['seconds']:.2f}"))
        if "metrics_inverse_map" in r:
            lines.append(_row(name, f"softxent {r['model']}, mapped back: {r['inverse_map']}",
                              r["metrics_inverse_map"], "-"))
        if "peer" in r:
            lines.append(_row(name, "SA-BFGS (SciPy)", r["peer"]["metrics"],
                              f"{r['peer']['seconds']:.2f} ({r['speedup']:.1f}× softxent's time)"))
        if name in PUBLISHED:
            entry = PUBLISHED[name]
            # Published to three decimals; more would invent precision.
            lines.append(_row(name, f"{entry.method} (published)", entry.metrics, "n/a", 3))
            sources.append(f"{name}: {entry.source}")
    lines += [f"\n{note}" for r in results for note in _notes(r)]
    lines += [f"\nPublished figures: {s}" for s in sources]
    lines += [f"\nSkipped {s}" for s in skipped]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import jax

    from .._registry import get_loss
    from ..bench import softmax_loss
    from ..ldl import LDLDataError

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    if args.folds < 2:
        return _fail(f"--folds must be at least 2, got {args.folds}")
    if args.l2 == "auto":
        if args.model != "maxent":
            return _fail(f"--l2 auto needs --model maxent, got --model {args.model}")
    elif not args.l2 >= 0:
        return _fail(f"--l2 must be >= 0, got {args.l2}")
    if args.max_iter < 1:
        return _fail(f"--max-iter must be at least 1, got {args.max_iter}")
    try:
        get_loss(args.loss, family="dense")
        softmax_loss(args.loss)
    except (KeyError, ValueError) as err:
        return _fail(str(err.args[0]))
    from .. import _distributed
    from ..bench._environment import environment
    from ..ldl import load_mat
    from ._paths import folder

    # Every file is read and checked before any fitting starts.
    if args.data is not None:
        datasets = [load_mat(args.data, normalize=args.normalize)]
        skipped: list[str] = []
    else:
        files = sorted(folder(args.data_dir, "--data-dir").glob("*.mat"))
        if not files:
            return _fail(f"--data-dir {args.data_dir}: no .mat files")
        datasets, skipped = [], []
        for path in files:
            try:
                datasets.append(load_mat(path, normalize=args.normalize))
            except LDLDataError as err:
                skipped.append(f"{path.name}: {err}")
    try:
        _distributed.settings(args)
    except _distributed.DistributedError as error:
        return _fail(str(error))
    _distributed.start(args, "ldl")  # before anything asks JAX for its devices
    # Taken before the fits start: the load average then says how busy the machine was.
    run_environment = environment(args.command_line)
    index, count = jax.process_index(), jax.process_count()
    if args.data is not None:
        # Several processes: each fits every count-th fold; process 0 combines them.
        data = datasets[0]
        mine = [f for f in range(args.folds) if f % count == index] or None
        try:
            part = {"part": _fit(data, args, mine) if mine else None}
        except ValueError as err:
            part = {"error": str(err)}
        if index != 0:
            _distributed.share(f"ldl/folds/{index}", json.dumps(part))
            _distributed.finish()
            return 2 if "error" in part else 0
        parts = [part] + [json.loads(_distributed.receive(f"ldl/folds/{i}"))
                          for i in range(1, count)]
        _distributed.finish()
        errors = [p["error"] for p in parts if "error" in p]
        if errors:
            return _fail(errors[0])
        fitted = [p["part"] for p in parts if p["part"] is not None]
        outcomes = {0: {"result": _result(data, args, fitted)}}
    else:
        outcomes = _deal_datasets(datasets, args, index, count)
        if outcomes is None:  # another process's share went to process 0
            return 0
    results = [outcomes[i]["result"] for i in range(len(datasets)) if "result" in outcomes[i]]
    skipped += [outcomes[i]["skipped"] for i in range(len(datasets)) if "skipped" in outcomes[i]]
    if args.data is not None:
        if args.json:
            print(json.dumps({"environment": run_environment, **results[0]}, indent=2))
        else:
            print(_markdown(results, []))
    elif args.json:
        print(json.dumps({"environment": run_environment, "results": results,
                          "skipped": skipped}, indent=2))
    else:
        print(_markdown(results, skipped))
    return 0


def _deal_datasets(datasets: list, args: argparse.Namespace, index: int, count: int
                   ) -> dict[int, dict] | None:
    """Each process fits every count-th dataset; process 0 gathers them all (the
    others return None once their results are shared)."""
    from .. import _distributed
    from .._progress import bar, shown

    outcomes: dict[int, dict] = {}
    mine = [i for i in range(len(datasets)) if i % count == index]
    for i in bar(mine, "datasets", unit="dataset"):
        data = datasets[i]
        try:
            outcomes[i] = {"result": _result(data, args, [_fit(data, args)])}
        except ValueError as err:
            outcomes[i] = {"skipped": f"{data.name}: {err}"}
        if count > 1 and index != 0:
            _distributed.share(f"ldl/{i}", json.dumps(outcomes[i]))
        if not shown():  # a log line where no bar is drawn
            print(f"done {data.name}", file=sys.stderr, flush=True)
    if index != 0:
        _distributed.finish()
        return None
    for i in range(len(datasets)):
        if i not in outcomes:
            outcomes[i] = json.loads(_distributed.receive(f"ldl/{i}"))
    _distributed.finish()
    return outcomes
