"""Print a checked derivation; exit 1 if any step fails to check.

Proofs: binary_cross_entropy (the note's proof), softmax_cross_entropy,
bce_on_softmax, catalogue. Every step is checked by SymPy as it is derived.
"""

from __future__ import annotations

import argparse
import sys

HELP = "print the symbolic derivations (every step checked by SymPy)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="which proof (default: all with --all)")
    parser.add_argument("--all", action="store_true", help="every proof")
    parser.add_argument("--format", choices=("text", "latex", "markdown"), default="text")


def run(args: argparse.Namespace) -> int:
    from ..symbolic._proofs import PROOFS

    if args.all == bool(args.name):
        print(f"softxent prove: give one proof name or --all (proofs: {', '.join(PROOFS)})",
              file=sys.stderr)
        return 2
    names = list(PROOFS) if args.all else [args.name]
    unknown = [n for n in names if n not in PROOFS]
    if unknown:
        print(f"softxent prove: unknown proof {unknown[0]!r} (proofs: {', '.join(PROOFS)})",
              file=sys.stderr)
        return 2
    return prove(names, args.format)


def prove(names: list[str], fmt: str) -> int:
    """Render each proof; a step that does not check ends the run with exit 1."""
    from ..symbolic import StepFailed
    from ..symbolic._proofs import PROOFS

    for name in names:
        try:
            text = PROOFS[name]().render(fmt)
        except StepFailed as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
        print(text)
    return 0
