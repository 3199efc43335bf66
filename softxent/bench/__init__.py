"""Research tooling: the speed bench of the losses and the LDL benchmark.

:mod:`softxent.bench.speed` times softxent's losses against optax and a
naive form (``softxent bench``); ``_ldl`` cross-validates softxent's LDL models
and the SciPy SA-BFGS peer (``_ldl_peer``) on an LDL dataset, printed beside
the published figures (``_published``) by ``softxent ldl``. :func:`environment` is the
record of the machine, versions, date and load that their ``--json`` output carries. The
speed bench needs the ``bench`` extra and the LDL benchmark the ``ldl`` extra.
"""

from ._environment import environment as environment
from ._ldl import combine_folds as combine_folds
from ._ldl import combine_peer_folds as combine_peer_folds
from ._ldl import cross_validate as cross_validate
from ._ldl import cross_validate_peer as cross_validate_peer
from ._ldl import fit_folds as fit_folds
from ._ldl import fold_assignment as fold_assignment
from ._ldl import softmax_loss as softmax_loss
from ._published import PUBLISHED as PUBLISHED
