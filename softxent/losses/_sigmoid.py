"""Per-component losses on sigmoid outputs, for soft multi-label targets.

Each component is an independent binary problem, so targets need not sum to 1.
The output has the shape of the logits; ``where`` zeroes masked components.

``where`` has the logits' shape (a component mask), or the logits' shape with
the last axis of size 1: a per-example mask (``[N, 1]`` for ``[N, L]`` logits)
that keeps or drops all ``L`` labels of an example. No other shape is accepted
(optax's ``[N]``-shaped example mask would broadcast against the labels).
With ``reduction="mean"`` the mean is over the kept components only.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from .._numerics import safe_log, sigmoid, softplus
from .._validation import check_broadcasts_to
from ._common import as_param, kept_examples, prepare
from ._export import Param, apply_reduction, export_loss


def _times(weight: jax.Array, value: jax.Array) -> jax.Array:
    """weight * value with 0 * inf = 0; d/dweight is exact wherever value is finite."""
    return weight * jnp.where((weight != 0) | jnp.isfinite(value), value, 0)


def _masked(loss: jax.Array, where: jax.Array | None) -> jax.Array:
    return loss if where is None else jnp.where(where, loss, 0)


_WEIGHT_FLAT_BEYOND = 1e4


def _log_miss_summed(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """log(1 - p_t) = log(y sigma(-x) + (1 - y) sigma(x)), formed in log space.

    With log sigma(-x) = -softplus(x), the two terms are log-summed around the
    larger one, so the sum inside the log lies in [1, 2]: its derivatives of every
    order stay finite where sigma(-x) underflows (a quotient by sigma(-x)^2 would be
    0/0), and they are accurate where sigma(x) rounds to 1 (sigma's own derivative,
    sigma (1 - sigma), rounds to 0 there). A zero target weight drops its term.
    """
    hit = safe_log(targets) - softplus(logits)  # log(y sigma(-x))
    miss = safe_log(1 - targets) - softplus(-logits)  # log((1 - y) sigma(x))
    top = lax.stop_gradient(jnp.maximum(hit, miss))
    top = jnp.where(jnp.isfinite(top), top, 0)
    total = jnp.exp(hit - top) + jnp.exp(miss - top)
    live = total > 0
    return jnp.where(live, top + jnp.log(jnp.where(live, total, 1)), -jnp.inf)


@jax.custom_jvp
def _log_miss(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``_log_miss_summed`` with its logit derivative written as a product.

    Differentiated as summed, the slope is ``sigma(-x) - sigma(x) e^hit / (e^hit +
    e^miss)``, a difference whose terms carry the rounding of ``softplus(x)`` (an
    absolute ``u |x|``) and cancel to ``(1 - 2y) sigma(x) sigma(-x) / (1 - p_t)``: 10
    units of roundoff in float32 at x = 4.2, y = 0.36, and the focal loss's second
    derivative, itself a sum that cancels, multiplies that by up to 16 there. The
    product, with ``1 - p_t = y sigma(-x) + (1 - y) sigma(x)`` (a sum of two terms of
    one sign) and ``1 - 2y`` (exact for y >= 1/4), is accurate to a few units. It is
    taken up to ``|x| = -log(tiny) / 4``, where ``sigma(-|x|)``, a lower bound of ``1 - p_t``,
    is normal to the fourth power (the quotient's derivatives divide by its powers);
    beyond, as ``(1 - 2y) exp(-softplus(x) - softplus(-x) - log(1 - p_t))`` in log space,
    finite where ``sigma(+-x)`` underflows, and accurate to ``u |x|`` relative, the
    resolution of ``e^-|x|`` itself. Tangents in the targets are the summed form's.
    """
    return _log_miss_summed(logits, targets)


def _log_miss_slope(logits: jax.Array, targets: jax.Array, value: jax.Array) -> jax.Array:
    """d log(1 - p_t) / dx, with ``value = log(1 - p_t)`` (see ``_log_miss``)."""
    near = jnp.abs(logits) < -math.log(jnp.finfo(logits.dtype).tiny) / 4
    x = jnp.where(near, logits, 0)  # the product's derivatives stay finite where unused
    up, down = sigmoid(x), sigmoid(-x)
    product = up * down / (targets * down + (1 - targets) * up)
    spread = softplus(logits) + softplus(-logits)  # -log(sigma(x) sigma(-x))
    logged = jnp.exp(-spread - jnp.where(near, 0, value))
    return (1 - 2 * targets) * jnp.where(near, product, logged)


def _log_miss_jvp(primals, tangents):
    logits, targets = primals
    d_logits, d_targets = tangents
    value = _log_miss(logits, targets)
    tangent = jnp.zeros(value.shape, value.dtype)
    if not isinstance(d_logits, SymbolicZero):
        tangent = _log_miss_slope(logits, targets, value) * d_logits
    if not isinstance(d_targets, SymbolicZero):
        along = functools.partial(_log_miss_summed, logits)
        tangent = tangent + jax.jvp(along, (targets,), (d_targets,))[1]
    return value, tangent


_log_miss.defjvp(_log_miss_jvp, symbolic_zeros=True)


def _bce_from_logits(
    logits: jax.Array, targets: jax.Array, pos_weight: jax.Array | None
) -> jax.Array:
    # -log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x).
    positive = _times(targets, softplus(-logits))
    if pos_weight is not None:
        positive = pos_weight * positive
    return positive + _times(1 - targets, softplus(logits))


def _widened(x: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """``x.astype(dtype)``; bfloat16 to float32 through its bits, so that XLA does not
    merge it with the value's cast (one shared cast is an N x V float32 array)."""
    if x.dtype == jnp.bfloat16 and dtype == jnp.float32:
        bits = lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32) << 16
        return lax.bitcast_convert_type(bits, jnp.float32)
    return x.astype(dtype)


def _smoothed(targets: jax.Array, keep: jax.Array, share: jax.Array) -> jax.Array:
    """``(1 - alpha) y + alpha / 2`` from ``keep = 1 - alpha`` and ``share = alpha / 2``."""
    return keep * targets + share


def _bce_reference(
    logits: jax.Array, targets: jax.Array, pos_weight: jax.Array, smoothing: jax.Array
) -> jax.Array:
    """The loss written plainly, in ``pos_weight``'s dtype (the compute dtype)."""
    logits, targets = logits.astype(pos_weight.dtype), targets.astype(pos_weight.dtype)
    return _bce_from_logits(logits, _smoothed(targets, 1 - smoothing, smoothing / 2), pos_weight)


def _bce_value_and_slope(
    logits: jax.Array, targets: jax.Array, pos_weight: jax.Array, smoothing: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``_bce_reference``'s value (one exponential, not two) and its derivative in the logits.

    The value is ``w y softplus(-x) + (1 - y) softplus(x)`` with ``softplus(+-x)
    = relu(+-x) + log1p(exp(-|x|))`` and ``0 * inf = 0``. XLA's CPU backend
    hands a reduction of it (the caller's mean) to YNNPACK, which fuses
    arithmetic only, and no operation that the slope's pass uses as well:
    anything else is first written to memory as an N x V temporary. So the
    value has no comparison or select (the relu terms take ``|x|`` capped at
    the largest float, and ``blow_up``, 1 for a finite logit and the largest
    float for an infinite one, multiplies them back to ``inf`` where their
    weight is not 0); its scalars sit behind an optimisation barrier, so that
    XLA cannot merge them, or the smoothed targets, with the slope's; and the
    slope groups its products differently.
    """
    dtype = pos_weight.dtype
    one, half, top, weight, keep, share = lax.optimization_barrier(
        (
            jnp.ones((), dtype),
            jnp.full((), 0.5, dtype),
            jnp.finfo(dtype).max,
            pos_weight,
            1 - smoothing,
            smoothing / 2,
        )
    )
    x = logits.astype(dtype)
    size = jnp.abs(x)
    capped = jnp.minimum(size, top)
    blow_up = jnp.minimum(one + (size - capped), top)
    side = jnp.sign(x)
    y = _smoothed(targets.astype(dtype), keep, share)
    positive = weight * y
    negative = one - y
    linear = (positive * ((one - side) * half) + negative * ((one + side) * half)) * capped
    value = linear * blow_up * blow_up + (positive + negative) * jnp.log1p(jnp.exp(-size))
    x, y = (_widened(a, dtype) for a in (logits, targets))
    y = _smoothed(y, 1 - smoothing, smoothing / 2)
    slope = (1 - y) * sigmoid(x) - y * sigmoid(-x) * pos_weight
    return value, slope


@jax.custom_jvp
def _fast_bce(
    logits: jax.Array, targets: jax.Array, pos_weight: jax.Array, smoothing: jax.Array
) -> jax.Array:
    """``_bce_reference`` with its logit tangent written out.

    Left to autodiff, the double-where softplus saves several N x V residuals for
    the backward pass; the derivative in the logits is simply
    ``(1 - y) sigmoid(x) - w y sigmoid(-x)``, finite at x = +-inf, so the VJP
    keeps one buffer. Tangents in the targets, the weight and the label
    smoothing are the reference's.
    """
    return _bce_value_and_slope(logits, targets, pos_weight, smoothing)[0]


def _fast_bce_jvp(primals, tangents):
    d_logits, *d_others = tangents
    value, slope = _bce_value_and_slope(*primals)
    tangent = jnp.zeros(value.shape, value.dtype)
    if not isinstance(d_logits, SymbolicZero):
        tangent = slope * d_logits.astype(slope.dtype)
    # Skipped when the tangent is a symbolic zero: a materialised zero times an
    # infinite partial in the targets (x = -inf) would be NaN.
    for index, d_arg in enumerate(d_others, start=1):
        if not isinstance(d_arg, SymbolicZero):

            def along(a, index=index):
                args = list(primals)
                args[index] = a
                return _bce_reference(*args)

            tangent = tangent + jax.jvp(along, (primals[index],), (d_arg,))[1]
    return value, tangent


_fast_bce.defjvp(_fast_bce_jvp, symbolic_zeros=True)


@export_loss(
    params=(
        Param("pos_weight", None, 0.0, None, optional=True, doc="weight of the positive term"),
        Param("label_smoothing", 0.0, 0.0, 1.0, doc="pulls every target towards 1/2"),
    )
)
def sigmoid_binary_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    axis: int | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Sigmoid binary cross-entropy with soft targets, elementwise.

    .. math::
      \ell(x, y) = -w\, y' \log \sigma(x) - (1 - y') \log(1 - \sigma(x)),
      \qquad y' = (1 - \alpha) y + \alpha / 2

    Computed as :math:`w y' \operatorname{softplus}(-x) + (1-y')
    \operatorname{softplus}(x)` with :math:`0 \cdot \infty = 0`, so
    :math:`x = +\infty, y = 1` and :math:`x = -\infty, y = 0` give 0, not NaN.
    Its derivative in :math:`x` is :math:`\sigma(x) - y` (for :math:`w = 1`).

    Args:
      logits: one logit per component.
      targets: probabilities in [0, 1], same shape; they need not sum to 1.
      where: boolean mask; masked components give 0.
      pos_weight: :math:`w \ge 0`, broadcastable to ``logits`` (default 1).
      label_smoothing: :math:`\alpha \in [0, 1]`.
      axis: unused (the loss is elementwise); accepted so every registry loss
        takes the same keywords.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per component, the shape of ``logits``.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> x = jnp.array([jnp.inf, -jnp.inf, 0.0])
      >>> softxent.sigmoid_binary_cross_entropy(x, jnp.array([1.0, 0.0, 0.5])).tolist()[:2]
      [0.0, 0.0]

    References:
      Goodfellow, Bengio and Courville, Deep Learning, MIT Press 2016, 6.2.2.2.
    """
    name = "sigmoid_binary_cross_entropy"
    logits, targets, _, where, dtype = prepare(name, logits, targets, None, where, cast=False)
    alpha = as_param(label_smoothing, dtype)
    weight = jnp.ones((), dtype) if pos_weight is None else as_param(pos_weight, dtype)
    check_broadcasts_to(name, "pos_weight", weight.shape, logits.shape)
    loss = _masked(_fast_bce(logits, targets, weight, alpha), where)
    return apply_reduction(name, loss, reduction, kept_examples(where, None))


@export_loss(
    params=(
        Param("gamma", 2.0, 0.0, None, doc="focusing parameter"),
        Param("alpha", None, 0.0, 1.0, optional=True, doc="weight of the positive term"),
    )
)
def sigmoid_focal_loss(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    axis: int | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Sigmoid focal loss with soft targets, elementwise.

    .. math::
      \ell(x, y) = \alpha_t\, (1 - p_t)^\gamma\, \mathrm{BCE}(x, y), \quad
      p_t = y p + (1 - y)(1 - p), \quad \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    with :math:`p = \sigma(x)` (no :math:`\alpha_t` when ``alpha`` is None), as
    in optax, but :math:`1 - p_t = y\sigma(-x) + (1-y)\sigma(x)` is formed
    without cancellation and the weight has finite derivatives at
    :math:`1 - p_t = 0`.

    Args:
      logits: one logit per component.
      targets: probabilities in [0, 1], same shape.
      where: boolean mask; masked components give 0.
      gamma: :math:`\gamma \ge 0`.
      alpha: optional class-balance weight in [0, 1].
      axis: unused (the loss is elementwise).
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per component.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> x, y = jnp.zeros(1), jnp.ones(1)
      >>> round(float(softxent.sigmoid_focal_loss(x, y, gamma=0.0)[0]), 4)  # log 2
      0.6931

    References:
      Lin et al., Focal Loss for Dense Object Detection, ICCV 2017.
    """
    name = "sigmoid_focal_loss"
    logits, targets, _, where, dtype = prepare(name, logits, targets, None, where)
    gamma = as_param(gamma, dtype)
    ce = _bce_from_logits(logits, targets, None)
    # Beyond |x| = 1e4, sigma(-|x|) is 0 in every float dtype, so log(1 - p_t) is
    # log(1 - y) (x > 0) or log(y) (x < 0) exactly, constant in x. It is taken in
    # that form there: the reverse pass carries gamma * weight * BCE, which
    # overflows for |x| near the largest float, and inside _log_miss that inf
    # would meet the zero derivative of an underflowed exponential (NaN).
    flat = jnp.abs(logits) >= _WEIGHT_FLAT_BEYOND
    near = _log_miss(jnp.where(flat, 0, logits), targets)
    far = jnp.where(logits > 0, safe_log(1 - targets), safe_log(targets))
    log_miss = jnp.where(flat, far, near)
    finite = jnp.isfinite(log_miss)
    at_zero = jnp.where(gamma == 0, 1, 0).astype(dtype)
    weight = jnp.where(finite, jnp.exp(gamma * jnp.where(finite, log_miss, 0)), at_zero)
    loss = _times(weight, ce)
    if alpha is not None:
        a = as_param(alpha, dtype)
        loss = (a * targets + (1 - a) * (1 - targets)) * loss
    return apply_reduction(name, _masked(loss, where), reduction, kept_examples(where, None))
