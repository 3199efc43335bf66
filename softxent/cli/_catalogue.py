"""Where each loss drives the prediction for a soft target, from ``softxent analyze``.

For every registry loss, its twin analysed: the minimiser p* for --target
(closed form where SymPy derives one, or the KKT conditions solved numerically;
never an optimiser run on the JAX loss), whether it is strictly proper, the bias
p* − q, the inverse map back to q, and convexity in p and in the logits. Then
softmax_cross_entropy with the z-loss and with soft caps (options on the logits,
which the analysis in p does not see): what their checked derivations state about
the minimiser, the pinned logits' shift and the reachable probabilities.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys

HELP = "minimiser, properness, bias, inverse map and convexity of every loss"
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("sympy", "symbolic"), ("mpmath", "symbolic"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="0.2,0.3,0.5",
                        help="comma-separated soft target (default 0.2,0.3,0.5)")
    parser.add_argument("--set", action="append", default=[], metavar="LOSS.PARAM=VALUE",
                        help="override a parameter, e.g. focal_cross_entropy.gamma=1")
    parser.add_argument("--loss", action="append", help="only this loss (repeatable)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")


def _fail(message: str) -> int:
    print(f"softxent catalogue: {message}", file=sys.stderr)
    return 2


def parse_overrides(items: list[str]) -> dict[str, dict[str, float]]:
    """``LOSS.PARAM=VALUE`` strings, checked against the registry (ValueError if bad)."""
    from .._registry import get_loss, loss_names

    overrides: dict[str, dict[str, float]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        loss, dot, param = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set expects LOSS.PARAM=VALUE, got {item!r}")
        if loss not in loss_names():
            close = difflib.get_close_matches(loss, loss_names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--set {item!r}: unknown loss {loss!r}{hint}")
        spec = get_loss(loss)
        try:
            definition = spec.param(param)
        except KeyError as err:
            raise ValueError(f"--set {item!r}: {err.args[0]}") from None
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"--set {item!r}: {param} expects a number, got {raw!r}") from None
        definition.validate(loss, value)
        overrides.setdefault(loss, {})[param] = value
    return overrides


def run(args: argparse.Namespace) -> int:
    from .._registry import get_loss, list_losses
    from ..symbolic._catalogue import entry, option_entries

    try:
        target = [float(v) for v in args.target.split(",")]
    except ValueError:
        return _fail(f"--target expects comma-separated numbers, got {args.target!r}")
    try:
        overrides = parse_overrides(args.set)
        for name in args.loss or []:
            get_loss(name, family="dense")
    except (ValueError, KeyError) as err:
        return _fail(str(err.args[0]))
    from .._progress import bar

    rows = []
    chosen = [spec for spec in list_losses() if not args.loss or spec.name in args.loss]
    for spec in bar(chosen, "catalogue", unit="loss"):
        try:
            rows.append(entry(spec.name, target, overrides.get(spec.name)))
        except (ValueError, KeyError) as err:
            return _fail(str(err.args[0]) if isinstance(err, KeyError) else str(err))
    if any(spec.name == "softmax_cross_entropy" for spec in chosen):
        try:
            rows += option_entries(target)
        except ValueError as err:
            return _fail(str(err))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Catalogue for the soft target q = {target}")
    for row in rows:
        params = ", ".join(f"{k}={v:g}" for k, v in row["params"].items() if v is not None)
        p_star = "[" + ", ".join(f"{v:.4f}" for v in row["minimizer"]) + "]"
        bias = max(abs(v) for v in row["bias"])
        print(f"\n{row['loss']}" + (f" ({params})" if params else ""))
        proper = {True: "yes", False: "no", None: "undecided"}[row["proper"]]
        print(f"  proper: {proper}   p* = {p_star}   max|p* − q| = {bias:.4f}")
        print(f"  {row['method']}")
        if row.get("logits") is not None:
            print("  logits at p*: [" + ", ".join(f"{v:.4f}" for v in row["logits"]) + "]")
        if row["inverse"]:
            print(f"  inverse: {row['inverse']} (recovers q to {row['inverse_error']:.1e})")
        print(f"  convex in p: {row['convex_in_p']}")
        print(f"  convex in z: {row['convex_in_z']}")
    return 0
