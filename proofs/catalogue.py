"""The catalogue: each closed-form minimiser checked against the stationarity
conditions, then every loss's minimiser, bias, inverse map and convexity.

Usage: python proofs/catalogue.py [--latex | --markdown]; exits 1 if a step fails.
"""

import sys

from softxent.symbolic._proofs import script_main

if __name__ == "__main__":
    status = script_main(["catalogue"], sys.argv[1:])
    if status == 0:
        from softxent.cli import main

        status = main(["catalogue"])
    raise SystemExit(status)
