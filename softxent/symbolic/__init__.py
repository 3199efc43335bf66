"""Symbolic verification: SymPy twins of the losses, checked derivations, the catalogue.

Importing this subpackage imports SymPy and mpmath (the ``symbolic`` extra);
``import softxent`` does not.
"""

from . import _requirements  # noqa: F401  (first: a missing extra is named before use)
from ._catalogue import CLOSED_FORMS as CLOSED_FORMS
from ._catalogue import INVERSE_MAPS as INVERSE_MAPS
from ._catalogue import is_proper as is_proper
from ._catalogue import minimizer as minimizer
from ._catalogue import stationarity as stationarity
from ._engine import Derivation as Derivation
from ._engine import Step as Step
from ._engine import StepFailed as StepFailed
from ._twins import SEPARABLE as SEPARABLE
from ._twins import Twin as Twin
from ._twins import all_twins as all_twins
from ._twins import twin as twin
