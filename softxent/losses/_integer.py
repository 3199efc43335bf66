"""Softmax cross-entropy against integer class labels, with PyTorch's options.

Label smoothing, ``ignore_index``, class weights and example weights are folded
into two numbers per row (``IntegerTargets``), so no N x V one-hot array is made;
the fused passes compare each block of logits with the class index instead.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from .._numerics import masked_log_softmax, masked_sum, xlogy
from .._validation import (
    check_axis,
    check_broadcasts_to,
    check_floating,
    check_reduction,
    check_where,
    compute_dtype,
)
from ._common import LABEL_SMOOTHING, check_regularisers
from ._export import export_loss
from ._fused import IntegerTargets, Kind, softmax_target_loss


class Labels(NamedTuple):
    """Checked integer labels, ready for the fused passes or a chunked loop."""

    targets: IntegerTargets
    weight: jax.Array  # per row: r w_label, the mean's weight (0 for an ignored row)


def check_labels(fn: str, logits: jax.Array, labels: Any, axis: int) -> jax.Array:
    """``labels`` as an integer array of the logits' shape without ``axis``."""
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{fn}: labels must have an integer dtype, got {labels.dtype}")
    want = logits.shape[:axis] + logits.shape[axis + 1 :]
    if labels.shape != want:
        raise ValueError(
            f"{fn}: labels shape {tuple(labels.shape)} must be the logits' shape without "
            f"the class axis, {tuple(want)}"
        )
    return labels


def check_ignore_index(fn: str, ignore_index: Any) -> int | None:
    if ignore_index is None:
        return None
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
        raise TypeError(f"{fn}: ignore_index must be an int or None, got {ignore_index!r}")
    return ignore_index


def integer_targets(
    fn: str,
    logits: jax.Array,
    labels: jax.Array,
    axis: int,
    where: jax.Array | None,
    *,
    label_smoothing: ArrayLike,
    ignore_index: int | None,
    class_weights: ArrayLike | None,
    example_weights: ArrayLike | None,
    dtype: jnp.dtype,
) -> Labels:
    """The per-row weights of ``q_c = r ((1 - alpha) w_y [c = y] + alpha w_c / K)``.

    ``r`` is the example weight (1 by default), 0 where the label is
    ``ignore_index``; ``K`` counts the kept classes. No derivative flows into
    the weights or the smoothing (they are constants of the loss).
    """
    classes = logits.shape[axis]
    row = jnp.ones(labels.shape, dtype)
    if ignore_index is not None:
        row = jnp.where(labels == ignore_index, 0, row)
    if example_weights is not None:
        example_weights = jnp.asarray(example_weights)
        check_floating(fn, "example_weights", example_weights)
        check_broadcasts_to(fn, "example_weights", example_weights.shape, labels.shape)
        row = row * jnp.broadcast_to(example_weights.astype(dtype), labels.shape)
    if class_weights is None:
        label_weight = jnp.ones(labels.shape, dtype)
        weights = jnp.ones(tuple(classes if d == axis else 1 for d in range(logits.ndim)), dtype)
    else:
        class_weights = jnp.asarray(class_weights)
        check_floating(fn, "class_weights", class_weights)
        if class_weights.shape != (classes,):
            raise ValueError(
                f"{fn}: class_weights shape {tuple(class_weights.shape)} must be ({classes},), "
                "one weight per class"
            )
        class_weights = class_weights.astype(dtype)
        # An ignored row's label may lie outside [0, V): its weight is 0 anyway.
        label_weight = class_weights[jnp.clip(labels, 0, classes - 1)]
        weights = jnp.expand_dims(class_weights, [d for d in range(logits.ndim) if d != axis])
    if where is None:
        kept = jnp.asarray(classes, dtype)
    else:
        kept = jnp.sum(jnp.broadcast_to(where, logits.shape), axis=axis).astype(dtype)
    alpha = jnp.asarray(label_smoothing).astype(dtype)
    hot = row * (1 - alpha) * label_weight
    spread = row * alpha / jnp.maximum(kept, 1)
    expand = (lambda x: jnp.expand_dims(x, axis))  # noqa: E731
    targets = IntegerTargets(
        expand(labels), *(lax.stop_gradient(expand(x)) for x in (hot, spread)),
        lax.stop_gradient(weights),
    )
    return Labels(targets, lax.stop_gradient(row * label_weight))


def reduce_weighted(fn: str, losses: jax.Array, weight: jax.Array, reduction: str) -> jax.Array:
    """``reduction`` of per-row ``losses``: ``"mean"`` is ``sum(loss) / sum(weight)``
    (PyTorch's weighted mean over the kept rows; 0 when no row is kept)."""
    reduction = check_reduction(fn, reduction)
    if reduction == "none":
        return losses
    total = jnp.sum(losses)
    if reduction == "sum":
        return total
    denominator = jnp.sum(weight)
    return jnp.where(denominator != 0, total / jnp.where(denominator != 0, denominator, 1), 0)


def _reference_integer(
    logits: jax.Array,
    targets: IntegerTargets,
    axis: int,
    where: jax.Array | None,
    _: jax.Array,
) -> jax.Array:
    """The same loss with the smoothed, weighted one-hot targets written out."""
    labels, hot, spread, weights = targets
    classes = lax.broadcasted_iota(labels.dtype, logits.shape, axis)
    q = jnp.where(classes == labels, hot, 0) + spread * weights
    if where is not None:
        q = jnp.where(where, q, 0)
    return masked_sum(-xlogy(q, masked_log_softmax(logits, axis, where)), axis, where)


def cross_entropy_with_integer_labels(
    fn: str,
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int,
    where: ArrayLike | None,
    *,
    label_smoothing: ArrayLike,
    ignore_index: int | None,
    class_weights: ArrayLike | None,
    example_weights: ArrayLike | None,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The loss per row and the mean's weight per row (see ``reduce_weighted``)."""
    regularisers = check_regularisers(fn, z_loss, soft_cap)
    logits = jnp.asarray(logits)
    check_floating(fn, "logits", logits)
    axis = check_axis(fn, axis, logits.ndim)
    labels = check_labels(fn, logits, labels, axis)
    ignore_index = check_ignore_index(fn, ignore_index)
    dtype = compute_dtype(logits.dtype)
    if where is not None:
        where = jnp.asarray(where)
        check_where(fn, where, logits.shape)
    parts = integer_targets(
        fn, logits, labels, axis, where,
        label_smoothing=label_smoothing, ignore_index=ignore_index,
        class_weights=class_weights, example_weights=example_weights, dtype=dtype,
    )
    losses = softmax_target_loss(
        _reference_integer, logits, parts.targets, axis, where,
        kind=Kind.INTEGER_LABELS, dtype=dtype, regularisers=regularisers,
    )
    return losses, parts.weight


@export_loss((LABEL_SMOOTHING,))
def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = None,
    class_weights: ArrayLike | None = None,
    example_weights: ArrayLike | None = None,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Softmax cross-entropy against integer class labels, as PyTorch defines it.

    .. math::
      \ell_n = r_n \Big[(1 - \alpha)\, w_{y_n} \big(-\log p_{n, y_n}\big)
        + \frac{\alpha}{K} \sum_c w_c \big(-\log p_{n, c}\big)\Big],
      \qquad p_n = \operatorname{softmax}(z_n)

    with :math:`K` kept classes, class weights :math:`w` (1 by default) and
    example weights :math:`r` (1 by default, 0 where the label is
    ``ignore_index``). ``reduction="mean"`` is the weighted mean over the kept
    rows, :math:`\sum_n \ell_n / \sum_n r_n w_{y_n}` (0 if no row is kept): with
    weights and ``ignore_index`` it is ``torch.nn.functional.cross_entropy``'s
    mean. The smoothed one-hot row is never formed: each block of logits is
    compared with the class index where it is read, and the value and gradient
    come from the same fused passes as ``softmax_cross_entropy``.

    Args:
      logits: unnormalised scores, shape ``[..., V, ...]``.
      labels: integer class indices, the logits' shape without ``axis``.
      axis: the class axis.
      where: boolean mask of kept classes, broadcastable to ``logits``; a
        label at a masked class gives an infinite loss.
      label_smoothing: :math:`\alpha \in [0, 1]`, spread over the kept classes.
      ignore_index: a label value whose rows give 0 and leave the mean's
        denominator (PyTorch's default is -100; here None ignores nothing).
      class_weights: :math:`w`, shape ``[V]``, not differentiated.
      example_weights: :math:`r`, broadcastable to ``labels``, not
        differentiated.
      z_loss: :math:`\lambda \ge 0` (a Python number): adds
        :math:`\lambda Q_n (\log Z_n)^2` with the row's target mass
        :math:`Q_n = r_n ((1 - \alpha) w_{y_n} + \alpha \bar w)` (:math:`r_n`
        without class weights, 0 for an ignored row), as in
        ``softmax_cross_entropy``.
      soft_cap: :math:`c > 0` (a Python number) or None: the logits become
        :math:`c \tanh(z / c)`, as in ``softmax_cross_entropy``.
      reduction: ``"none"`` (one loss per row), ``"sum"``, or ``"mean"`` (the
        weighted mean above).

    Returns:
      The loss per row (``logits`` without ``axis``, float32 or wider), or its
      reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> z = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
      >>> loss = softxent.softmax_cross_entropy_with_integer_labels(
      ...     z, jnp.array([0, -100]), ignore_index=-100, reduction="mean")
      >>> round(float(loss), 4)  # -log 0.7, the second row ignored
      0.3567

    References:
      Szegedy et al., Rethinking the Inception Architecture for Computer
      Vision, CVPR 2016 (label smoothing); PyTorch,
      ``torch.nn.functional.cross_entropy`` (weights, ``ignore_index``, mean).
    """
    fn = "softmax_cross_entropy_with_integer_labels"
    check_reduction(fn, reduction)
    losses, weight = cross_entropy_with_integer_labels(
        fn, logits, labels, axis, where,
        label_smoothing=label_smoothing, ignore_index=ignore_index,
        class_weights=class_weights, example_weights=example_weights, z_loss=z_loss,
        soft_cap=soft_cap,
    )
    return reduce_weighted(fn, losses, weight, reduction)
