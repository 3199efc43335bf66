"""Per-component BCE on softmax outputs: p = q when the target sums to 1, and a
checked counterexample for soft multi-label targets that do not.

Usage: python proofs/bce_on_softmax.py [--latex | --markdown]; exits 1 if a step fails.
"""

import sys

from softxent.symbolic._proofs import script_main

if __name__ == "__main__":
    raise SystemExit(script_main(["bce_on_softmax"], sys.argv[1:]))
