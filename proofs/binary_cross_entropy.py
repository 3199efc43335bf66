"""The note's proof: binary cross-entropy H(p, q) is minimised exactly at p = q,
with the sign argument, convexity and the logit form the note skipped.

Usage: python proofs/binary_cross_entropy.py [--latex | --markdown]; exits 1 if a step fails.
"""

import sys

from softxent.symbolic._proofs import script_main

if __name__ == "__main__":
    raise SystemExit(script_main(["binary_cross_entropy"], sys.argv[1:]))
