"""Check every shipped loss against its SymPy twin: value, jax.grad, Hessian-vector products.

For each registry loss of every family (dense, sparse, chunked, linear), at its
defaults and at the non-default settings of its twin (z_loss and soft_cap among
them), in float32 and float64, order 0 compares the value, order 1 jax.grad,
order 2 a Hessian-vector product (forward over reverse) with the twin evaluated
by mpmath. A chunked or linear form shares its plain form's points and
reference; the chunked forms run 3 rows a chunk, the linear forms at an output
matrix that permutes the hidden states into the logits (no bias). Points run
past where exp overflows (|z| near 88.7 and 709.8) out to the largest finite
logit (half of it in a softmax row), probabilities to one ulp of 1 and to the
smallest normal float, targets exactly 0 and 1, and rows that mix these scales.

Error at a point, in units of roundoff u (2^-24 float32, 2^-53 float64):
  e = ||computed - exact||_inf / max(u ||exact||_inf, u phi, 2^20 tiny)
phi: sum over the inputs a (predictions, targets) of |a d(exact)/da|, how far
the exact quantity moves as each input moves by one u of its own (the dtype's
resolution of the inputs); tiny: the smallest normal float (XLA flushes
subnormals to 0 on the CPU). An order passes if e <= 64 at every point where the
exact value is finite in the dtype; a derivative that overflows the dtype must
be inf, not NaN. Exit 1 on a failure, naming the loss, order, dtype and point.

The mpmath references are kept in $XDG_CACHE_HOME/softxent/verify (~/.cache by
default) under a digest of their points, parameters, the symbolic code and the
SymPy and mpmath versions, and the compiled JAX programs in its compiled/
folder (JAX's persistent compilation cache, keyed by the program, the jaxlib
version and the device), so a second run with the same points evaluates no
reference and compiles nothing; --no-cache computes and compiles them all again.

A user's loss (``--plugin``) registered with a ``SymbolicLoss`` is checked
against it by ``softxent.symbolic.check_gradient``: value, jax.grad and a
Hessian-vector product in float64 at --points points (a third in the boundary
regions, logits up to |z| = 50), relative error within 1e-10. A user's loss
registered without one is named as not verified.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import sys
import time

HELP = "check values, gradients and Hessians against SymPy in float32 and float64"
DEFAULT_POINTS = 400
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("sympy", "symbolic"), ("mpmath", "symbolic"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS,
                        help=f"points per loss setting and dtype ({DEFAULT_POINTS})")
    parser.add_argument("--order", type=int, action="append", choices=(0, 1, 2),
                        help="0 value, 1 gradient, 2 Hessian-vector product "
                             "(repeatable; default all)")
    parser.add_argument("--dtype", action="append", choices=("float32", "float64"),
                        help="repeatable; default both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", action="append", help="only this loss (repeatable)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for the mpmath references, and as many for the "
                             "JAX side (with 1, it runs in this process; default: one per CPU)")
    parser.add_argument("--no-cache", action="store_true",
                        help="compute every mpmath reference and compile every JAX "
                             "program again, neither reading nor writing the cache "
                             "($XDG_CACHE_HOME/softxent/verify)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results, with machine, versions and date, "
                             "to PATH (e.g. benchmarks/results/verify.json)")


def _environment(load: tuple[float, ...]) -> dict[str, str]:
    import jax
    import mpmath
    import numpy
    import sympy

    from .. import __version__

    return {
        "softxent": __version__,
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", "") or jax.__version__,
        "numpy": numpy.__version__,
        "sympy": sympy.__version__,
        "mpmath": mpmath.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        # At the start (1, 5, 15 min): on a shared machine a high load means a slow run.
        "load_average": ", ".join(f"{a:.2f}" for a in load),
        "processor": platform.processor(),
        "jax_backend": jax.default_backend(),
    }


def _write_json(path: str, document: dict) -> None:
    """Written whole or not at all: a failed run never leaves a half-written file behind."""
    from .._files import atomic_file

    with atomic_file(path) as out:
        json.dump(document, out, indent=1)
        out.write("\n")


def _check_users_losses(specs: list, points: int, seed: int) -> tuple[list, list[str]]:
    """``check_gradient`` of each user's loss that has a ``SymbolicLoss``; the names of
    those that have none."""
    from ..symbolic import SymbolicLoss, check_gradient

    checked = [(spec, check_gradient(spec.fn, spec.symbolic, points=points, input=spec.input,
                                     seed=seed))
               for spec in specs if isinstance(spec.symbolic, SymbolicLoss)]
    return checked, [spec.name for spec in specs if not isinstance(spec.symbolic, SymbolicLoss)]


def run(args: argparse.Namespace) -> int:
    from .._registry import get_loss, list_losses
    from ..symbolic._twins import has_twin
    from ..symbolic._verify import (
        DTYPES,
        ORDERS,
        TINY_FLOOR,
        TOLERANCE,
        default_cache_dir,
        format_params,
        verify,
    )

    if args.points < 1:
        print(f"softxent verify: --points must be >= 1, got {args.points}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"softxent verify: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    for name in args.loss or []:
        try:
            get_loss(name)
        except KeyError as err:
            print(f"softxent verify: {err.args[0]}", file=sys.stderr)
            return 2
    orders = tuple(sorted(set(args.order or ORDERS)))
    dtypes = tuple(dict.fromkeys(args.dtype or DTYPES))
    selected = [spec for spec in list_losses(family=None)
                if not args.loss or spec.name in args.loss]
    built_in = [spec.name for spec in selected if has_twin(spec.name)]
    load = os.getloadavg()
    start = time.perf_counter()
    counts: collections.Counter[str] = collections.Counter()
    results = verify(points=args.points, seed=args.seed, losses=built_in, orders=orders,
                     dtypes=dtypes, workers=args.workers,
                     cache=None if args.no_cache else default_cache_dir(),
                     counts=counts) if built_in else []
    users, unverified = _check_users_losses(
        [spec for spec in selected if spec.name not in built_in], args.points, args.seed)
    seconds = time.perf_counter() - start
    print(f"values (0), jax.grad (1) and Hessian-vector products (2) vs SymPy/mpmath, "
          f"{args.points} points per setting and dtype; normwise relative error in units of "
          f"roundoff u, floored by how far the exact result moves as each input moves by "
          f"one u (see --help), "
          f"tolerance {TOLERANCE:g} u")
    header = "".join(f" {f'{d} o{o}':>11}" for d in dtypes for o in orders)
    print(f"  {'loss':<50} {'params':<32}{header}")
    table: dict[tuple, dict] = {}
    for r in results:
        table.setdefault((r.loss, tuple(r.params.items())), {})[(r.dtype, r.order)] = r
    for (loss, params), row in table.items():
        text = format_params(dict(params))
        cells = ""
        for d in dtypes:
            for o in orders:
                r = row[(d, o)]
                mark = "" if r.passed else "!"
                cells += f" {f'{r.max_err:.3g}{mark}':>11}"
        print(f"  {loss:<50} {text:<32}{cells}")
    if users:
        print("users' losses against their SymbolicLoss (check_gradient: float64, value, "
              "jax.grad and Hessian-vector product, relative error)")
        for _, check in users:
            print(f"  {check.summary()}")
    for name in unverified:
        print(f"  {name}: not verified (registered without a SymbolicLoss: "
              f"softxent.register_loss(..., symbolic=SymbolicLoss(...)))")
    failed = [r for r in results if not r.passed]
    failed_users = [check for _, check in users if not check.passed]
    total = len(results) + len(users)
    print(f"  {total - len(failed) - len(failed_users)}/{total} within tolerance in "
          f"{seconds:.1f} s (references: {counts['references computed']} computed, "
          f"{counts['references loaded']} from the cache; XLA programs: "
          f"{counts['compiled']} compiled, {counts['loaded']} from the cache)")
    for r in failed:
        print(f"FAIL {r.describe()}", file=sys.stderr)
    for check in failed_users:
        print(f"FAIL {check.summary()}", file=sys.stderr)
    if args.json:
        document = {
            "command": "softxent verify " + " ".join(sys.argv[2:]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "environment": _environment(load),
            "points": args.points,
            "seed": args.seed,
            "orders": list(orders),
            "dtypes": list(dtypes),
            "tolerance_units_of_roundoff": TOLERANCE,
            "absolute_floor_in_smallest_normals": TINY_FLOOR,
            "seconds": round(seconds, 1),
            "reference_cache": not args.no_cache,
            "references_computed": counts["references computed"],
            "references_loaded_from_cache": counts["references loaded"],
            "programs_compiled": counts["compiled"],
            "programs_loaded_from_cache": counts["loaded"],
            "results": [r.as_dict() for r in results],
            "user_losses": [check.as_dict() for _, check in users],
            "not_verified": unverified,
        }
        _write_json(args.json, document)
        print(f"  wrote {args.json}")
    return 0 if not failed and not failed_users else 1
