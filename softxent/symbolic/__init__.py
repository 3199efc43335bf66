"""Symbolic verification: SymPy twins of the losses, checked derivations, the catalogue,
and the analysis of any loss a user writes.

Importing this subpackage imports SymPy and mpmath (the ``symbolic`` extra);
``import softxent`` does not.
"""

from . import _requirements  # noqa: F401  (first: a missing extra is named before use)
from ._analysis import Analysis as Analysis
from ._analysis import analyze as analyze
from ._bridge import to_jax as to_jax
from ._catalogue import is_proper as is_proper
from ._catalogue import minimizer as minimizer
from ._catalogue import stationarity as stationarity
from ._check import GradientCheck as GradientCheck
from ._check import check_gradient as check_gradient
from ._engine import Derivation as Derivation
from ._engine import Step as Step
from ._engine import StepFailed as StepFailed
from ._loss import SymbolicLoss as SymbolicLoss
from ._parse import ExpressionError as ExpressionError
from ._parse import parse_expression as parse_expression
from ._twins import SEPARABLE as SEPARABLE
from ._twins import Twin as Twin
from ._twins import all_twins as all_twins
from ._twins import twin as twin
