"""The symbolic module's optional dependencies, checked before any of its modules loads."""

from .._optional import require

require("sympy", "symbolic", "softxent.symbolic")
require("mpmath", "symbolic", "softxent.symbolic")
