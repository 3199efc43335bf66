"""softxent's losses, each a pure function exported with ``export_loss`` (see ``_export``)."""

from ._probability import binary_cross_entropy as binary_cross_entropy
from ._probability import cross_entropy as cross_entropy
from ._sigmoid import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from ._sigmoid import sigmoid_focal_loss as sigmoid_focal_loss
from ._softmax import brier_score as brier_score
from ._softmax import distillation_loss as distillation_loss
from ._softmax import focal_cross_entropy as focal_cross_entropy
from ._softmax import generalized_cross_entropy as generalized_cross_entropy
from ._softmax import js_divergence as js_divergence
from ._softmax import kl_divergence as kl_divergence
from ._softmax import poly1_cross_entropy as poly1_cross_entropy
from ._softmax import reverse_kl_divergence as reverse_kl_divergence
from ._softmax import softmax_cross_entropy as softmax_cross_entropy
