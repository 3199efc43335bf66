"""K classes: KKT on the simplex (K = 3), Gibbs' inequality for every K (with
the lemma log x <= x - 1), and the logit Hessian with its null vector.

Usage: python proofs/softmax_cross_entropy.py [--latex | --markdown]; exits 1 if a step fails.
"""

import sys

from softxent.symbolic._proofs import script_main

if __name__ == "__main__":
    raise SystemExit(script_main(["softmax_cross_entropy"], sys.argv[1:]))
