"""softxent: soft-target classification losses for JAX, verified with SymPy.

Every loss takes predictions (logits or probabilities) and soft targets of the
same shape and returns one value per example (or per component for the
elementwise sigmoid losses), or their mean or sum with ``reduction``. The
registry (:func:`list_losses`, :func:`get_loss`) lists them all with their
parameters; :func:`register_loss` adds a loss of one's own.
"""

import sys as _sys

# Run as the command line (`softxent ...`, or `python -m softxent`, during which
# argv[0] is "-m"), SIGINT and SIGTERM end it with one line from its first
# moment: the imports below take seconds on a busy machine.
if _sys.argv[:1] == ["-m"] or _sys.argv[0].rsplit("/", 1)[-1] == "softxent":
    from ._exit import install_early as _install_early

    _install_early()

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from ._checked import checked as checked
from ._registry import LossSpec as LossSpec
from ._registry import get_loss as get_loss
from ._registry import list_losses as list_losses
from ._registry import loss_names as loss_names
from ._registry import register_loss as register_loss
from ._registry import unregister_loss as unregister_loss
from ._validation import check_targets as check_targets
from .losses import binary_cross_entropy as binary_cross_entropy
from .losses import brier_score as brier_score
from .losses import cross_entropy as cross_entropy
from .losses import distillation_loss as distillation_loss
from .losses import focal_cross_entropy as focal_cross_entropy
from .losses import generalized_cross_entropy as generalized_cross_entropy
from .losses import js_divergence as js_divergence
from .losses import kl_divergence as kl_divergence
from .losses import poly1_cross_entropy as poly1_cross_entropy
from .losses import reverse_kl_divergence as reverse_kl_divergence
from .losses import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from .losses import sigmoid_focal_loss as sigmoid_focal_loss
from .losses import softmax_cross_entropy as softmax_cross_entropy
from .losses._chunked import chunked_distillation_loss as chunked_distillation_loss
from .losses._chunked import (
    chunked_generalized_js_divergence as chunked_generalized_js_divergence,
)
from .losses._chunked import (
    chunked_reverse_kl_distillation_loss as chunked_reverse_kl_distillation_loss,
)
from .losses._chunked import chunked_softmax_cross_entropy as chunked_softmax_cross_entropy
from .losses._chunked import (
    chunked_softmax_cross_entropy_with_integer_labels as chunked_softmax_cross_entropy_with_integer_labels,  # noqa: E501
)
from .losses._chunked import (
    chunked_sparse_distillation_loss as chunked_sparse_distillation_loss,
)
from .losses._chunked import linear_distillation_loss as linear_distillation_loss
from .losses._chunked import (
    linear_generalized_js_divergence as linear_generalized_js_divergence,
)
from .losses._chunked import (
    linear_reverse_kl_distillation_loss as linear_reverse_kl_distillation_loss,
)
from .losses._chunked import linear_softmax_cross_entropy as linear_softmax_cross_entropy
from .losses._chunked import (
    linear_softmax_cross_entropy_with_integer_labels as linear_softmax_cross_entropy_with_integer_labels,  # noqa: E501
)
from .losses._chunked import (
    linear_sparse_distillation_loss as linear_sparse_distillation_loss,
)
from .losses._export import Param as Param
from .losses._export import apply_reduction as apply_reduction
from .losses._export import export_loss as export_loss
from .losses._integer import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from .losses._sparse import sparse_distillation_loss as sparse_distillation_loss

try:
    __version__ = _version("softxent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
