"""Label distribution learning: datasets, the six LDL measures and the models.

Needs the ``ldl`` extra (SciPy reads the ``.mat`` files; the models train with
optax); ``import softxent`` does not import this. The cross-validated benchmark
and its SciPy peer are in :mod:`softxent.bench`.
"""

from ._data import LDLData as LDLData
from ._data import LDLDataError as LDLDataError
from ._data import load_mat as load_mat
from ._metrics import MEASURES as MEASURES
from ._metrics import score as score
