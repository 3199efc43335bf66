"""Cross-entropy written in probability space, exactly as the note states it.

These take probabilities ``p`` (not logits). They are the objects the proofs
reason about; for training, the logit forms are better conditioned near 0 and 1
(see ``proofs/binary_cross_entropy.py``).
"""

from __future__ import annotations

import jax
from jax.typing import ArrayLike

from .._numerics import masked_sum, xlog1mp, xlogp
from ._common import kept_examples, prepare
from ._export import apply_reduction, export_loss


@export_loss()
def binary_cross_entropy(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    axis: int | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Binary cross-entropy of a predicted probability against a soft target.

    .. math::
      H(p, q) = -[q \log p + (1 - q) \log(1 - p)], \qquad
      \frac{\partial H}{\partial p} = \frac{p - q}{p (1 - p)}

    The derivative vanishes only at :math:`p = q`. Values follow
    :math:`0 \log 0 = 0`: :math:`p = q \in \{0, 1\}` gives 0 with finite
    derivatives, and the loss is inf only where a positive target meets a
    probability of 0 (or 1 against 1 - q > 0).

    Args:
      probs: predicted probabilities in [0, 1].
      targets: soft targets in [0, 1], same shape.
      where: boolean mask; masked components give 0.
      axis: unused (the loss is elementwise).
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per component.

    Example:
      >>> import jax, softxent
      >>> grad = jax.grad(lambda p: softxent.binary_cross_entropy(p, 0.3))
      >>> round(float(grad(0.3)), 6)
      0.0

    References:
      Shannon, A Mathematical Theory of Communication, Bell Syst. Tech. J. 1948.
    """
    name = "binary_cross_entropy"
    probs, targets, _, where, _ = prepare(
        name, probs, targets, None, where, predictions_name="probs"
    )
    loss = -(xlogp(targets, probs) + xlog1mp(1 - targets, probs))
    loss = loss if where is None else jax.numpy.where(where, loss, 0)
    return apply_reduction(name, loss, reduction, kept_examples(where, None))


@export_loss()
def cross_entropy(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Categorical cross-entropy of predicted probabilities.

    .. math::
      H(q, p) = -\sum_i q_i \log p_i

    ``probs`` are used as given (not renormalised); on the simplex the
    minimiser is :math:`p = q` (Gibbs' inequality).

    Args:
      probs: predicted probability vectors.
      targets: soft targets, same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> q = jnp.array([0.5, 0.5, 0.0])
      >>> round(float(softxent.cross_entropy(q, q)), 6)  # log 2
      0.693147

    References:
      Shannon, A Mathematical Theory of Communication, Bell Syst. Tech. J. 1948.
    """
    name = "cross_entropy"
    probs, targets, axis, where, _ = prepare(
        name, probs, targets, axis, where, predictions_name="probs"
    )
    loss = masked_sum(-xlogp(targets, probs), axis, where)
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))
