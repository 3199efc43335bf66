"""Label distribution learning: datasets, the six LDL measures, models and the benchmark.

Imports SciPy (for reading ``.mat`` files); ``import softxent`` does not import this.
"""

from ._benchmark import cross_validate as cross_validate
from ._benchmark import cross_validate_peer as cross_validate_peer
from ._benchmark import fold_assignment as fold_assignment
from ._data import LDLData as LDLData
from ._data import LDLDataError as LDLDataError
from ._data import load_mat as load_mat
from ._metrics import MEASURES as MEASURES
from ._metrics import score as score
