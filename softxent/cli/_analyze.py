"""Analyse a loss: a registry name, or your own formula.

  softxent analyze focal_cross_entropy --param gamma=1 --target 0.2,0.3,0.5
  softxent analyze --expr "-q*log(p) + eps*q*(1 - p)" --kind separable --param eps=2

Kinds: elementwise (p, q in (0, 1), one component), separable (Σ_i f(p_i, q_i)
with --expr f in p, q), distribution (any formula in p1..pK, q1..qK; --classes K
or the largest index used). Parameters of a formula are declared with --param
NAME=VALUE. The report is a derivation whose every step SymPy (or a confirmed
counterexample) checks: gradient, stationarity (KKT), strict properness
(true/false/undecided), the minimiser for --target, the inverse map, and
convexity in p and in the logits.

Exit 0 when the analysis completes (undecided verdicts included), 1 if a step
fails its check, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

HELP = "analyse a loss (registry name or --expr): properness, minimiser, inverse map, convexity"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="a registry loss (or use --expr)")
    parser.add_argument("--expr", help="the loss as a formula (see the kinds above)")
    parser.add_argument("--kind", choices=("elementwise", "separable", "distribution"),
                        help="what --expr describes (required with --expr)")
    parser.add_argument("--classes", type=int, metavar="K",
                        help="number of classes K for a class loss (default: the target's "
                        "length, else 3)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter value (repeatable); with --expr it declares the "
                        "parameter")
    parser.add_argument("--target", metavar="q1,q2,...", help="report the minimiser for this "
                        "soft target")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--format", choices=("text", "latex", "markdown"), default="text",
                        help="how to print the derivation (default text)")


def _fail(message: str) -> int:
    print(f"softxent analyze: {message}", file=sys.stderr)
    return 2


def _parameters(items: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"--param {item!r}: {name} expects a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"--param {item!r}: {name} must be finite, got {raw!r}")
        if name in values:
            raise ValueError(f"--param {name} is given twice")
        values[name] = value
    return values


def _target(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--target expects comma-separated numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.expr is None):
        return _fail("give a registry loss NAME or --expr EXPR (not both)")
    if args.expr is not None and args.kind is None:
        return _fail("--expr needs --kind elementwise|separable|distribution")
    if args.name is not None and args.kind is not None:
        return _fail("--kind goes with --expr; a registry loss has its own kind")
    if args.classes is not None and args.classes < 2:
        return _fail(f"--classes must be at least 2, got {args.classes}")
    try:
        params = _parameters(args.param)
        target = _target(args.target)
    except ValueError as err:
        return _fail(str(err))
    from ..symbolic import ExpressionError, StepFailed, SymbolicLoss, analyze

    try:
        if args.expr is not None:
            if args.kind == "elementwise" and args.classes is not None:
                raise ExpressionError("--classes does not apply to an elementwise loss")
            loss = SymbolicLoss("expression", args.expr, args.kind, params,
                                classes=args.classes)
            subject, values = loss, None
        else:
            from .._registry import get_loss

            get_loss(args.name, family="dense")
            subject, values = args.name, params
        if target is not None and args.classes is not None and args.kind != "elementwise" \
                and len(target) != args.classes:
            raise ValueError(f"--target has {len(target)} entries but --classes is "
                             f"{args.classes}")
        from .._progress import stages
        from ..symbolic._analysis import STAGES

        start = time.perf_counter()
        with stages("analyze", STAGES):
            result = analyze(subject, params=values, target=target, classes=args.classes)
            report = result.as_json() if args.json else result.render(args.format)
        seconds = time.perf_counter() - start
    except StepFailed as failure:
        print(f"softxent analyze: a step failed its check: {failure}", file=sys.stderr)
        return 1
    except KeyError as err:
        return _fail(str(err.args[0]))
    except (ExpressionError, ValueError, TypeError) as err:
        return _fail(str(err))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(report, end="")
        print(f"\n(analysed in {seconds:.1f} s)", file=sys.stderr)
    return 0
