"""Check jax.grad of every shipped loss against the SymPy gradient of its twin.

Points include probabilities within 1e-6 of 0 and 1 and logits up to |z| = 50;
the reference is evaluated by mpmath at 50 digits. Relative error at a point is
normwise, ‖g_jax − g_sym‖∞ / ‖g_sym‖∞. Exit 1 if any exceeds 1e-10.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

HELP = "check the JAX gradients against the symbolic ones (exit 1 on a mismatch)"
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("sympy", "symbolic"), ("mpmath", "symbolic"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=10_000, help="points per loss (10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", action="append", help="only this loss (repeatable)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")


def run(args: argparse.Namespace) -> int:
    from .._registry import get_loss
    from ..symbolic._verify import TOLERANCE, verify

    if args.points < 1:
        print(f"softxent verify: --points must be >= 1, got {args.points}", file=sys.stderr)
        return 2
    for name in args.loss or []:
        try:
            get_loss(name)
        except KeyError as err:
            print(f"softxent verify: {err.args[0]}", file=sys.stderr)
            return 2
    start = time.perf_counter()
    results = verify(points=args.points, seed=args.seed, losses=args.loss)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(f"jax.grad vs SymPy gradient, float64, {args.points} points per row "
              f"(|z| <= 50, p within 1e-6 of 0 and 1), tolerance {TOLERANCE:g}")
        print(f"  {'loss':<30} {'params':<42} {'max abs err':>11} {'max rel err':>11}")
        for r in results:
            params = ", ".join(f"{k}={v:g}" for k, v in r.params.items()) or "defaults"
            mark = "" if r.passed else "  FAIL"
            print(f"  {r.loss:<30} {params:<42} {r.max_abs_err:>11.2e} "
                  f"{r.max_rel_err:>11.2e}{mark}")
        print(f"  {sum(r.passed for r in results)}/{len(results)} within tolerance "
              f"in {seconds:.1f} s")
    return 0 if all(r.passed for r in results) else 1
