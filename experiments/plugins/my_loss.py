"""An example plugin: a loss of one's own, registered with its formula.

    softxent --plugin experiments/plugins/my_loss.py ...   (or any command's --plugin)

``squared_miss`` is Σ_i q_i (1 − p_i)², the expected squared miss of the
predicted probability of the true class. It is bounded and smooth, and it is
not proper: ``softxent analyze squared_miss --plugin experiments/plugins/my_loss.py``
derives where it drives p (towards the larger classes, to p_i = 0 for a small
enough q_i) and the inverse map q_i ∝ 1 / (1 − p*_i) that undoes it where p*
is interior.
"""

import jax
import jax.numpy as jnp

import softxent
from softxent.symbolic import SymbolicLoss

SQUARED_MISS = SymbolicLoss("squared_miss", "q*(1 - p)**2", "separable")


def squared_miss(logits, targets, *, axis=-1, where=None, reduction="none"):
    """Σ_i q_i (1 − p_i)² with p = softmax(logits): the expected squared miss.

    Args:
      logits: unnormalised scores, classes on ``axis``.
      targets: soft targets (rows on the simplex), same shape.
      axis: the class axis.
      where: boolean mask of the entries to include.
      reduction: "none", "mean" or "sum".

    Returns:
      One value per example (or their mean or sum).
    """
    p = jax.nn.softmax(logits, axis=axis, where=where)
    terms = targets * (1 - p) ** 2
    value = jnp.sum(terms, axis=axis, where=where)
    return softxent.apply_reduction("squared_miss", value, reduction)


softxent.register_loss(squared_miss, input="logits", link="softmax", output="per_example",
                       summary="expected squared miss Σ q_i (1 − p_i)² (example plugin)",
                       symbolic=SQUARED_MISS)
