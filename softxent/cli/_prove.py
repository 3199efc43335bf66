"""Print a checked derivation; exit 1 if any step fails to check.

Proofs: binary_cross_entropy (the note's proof), softmax_cross_entropy,
bce_on_softmax, catalogue. Every step is checked by SymPy as it is derived.
"""

from __future__ import annotations

import argparse
import sys

HELP = "print the symbolic derivations (every step checked by SymPy)"
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("sympy", "symbolic"), ("mpmath", "symbolic"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="which proof (default: all with --all)")
    parser.add_argument("--all", action="store_true", help="every proof")
    parser.add_argument("--format", choices=("text", "latex", "markdown"), default="text")


def run(args: argparse.Namespace) -> int:
    from ..symbolic._proofs import PROOFS, print_proofs

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
    return print_proofs(names, args.format)
