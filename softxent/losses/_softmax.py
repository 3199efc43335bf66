"""Losses on softmax outputs: one value per example, summed over the class axis.

Shared conventions: ``logits`` and ``targets`` have the same shape; ``axis`` is
the class axis; ``where`` masks classes out (a masked class takes no part in the
softmax and its target is ignored; a fully masked row gives 0).

``where`` has one of two shapes, and no other is accepted: the logits' shape (a
class mask), or the logits' shape with the class axis of size 1 (a per-example
mask, ``[N, 1]`` for ``[N, K]`` logits, which keeps or drops every class of an
example). With ``reduction="mean"`` the mean is over the kept examples only
(those with at least one kept class). optax's ``where`` masks examples and has
the batch shape ``[N]``; here that shape is rejected rather than broadcast
against the classes (for 3 x 3 logits it would otherwise mask a class in every
row): pass ``mask[:, None]`` for an example mask, or
``jnp.broadcast_to(mask, logits.shape)`` for a class mask shared by all rows.
``reduction`` keeps the per-example values (``"none"``) or returns their mean
or sum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from .._numerics import (
    expm1,
    log1mexp,
    log1p,
    masked_log_softmax,
    masked_sum,
    safe_log,
    softplus,
    xlogx,
    xlogy,
)
from ._common import (
    LABEL_SMOOTHING,
    TEMPERATURE,
    as_param,
    check_regularisers,
    kept_examples,
    prepare,
)
from ._export import Param, apply_reduction, export_loss
from ._fused import Kind, smooth_targets, softmax_target_loss


def _cross_entropy_terms(targets: jax.Array, log_probs: jax.Array) -> jax.Array:
    return -xlogy(targets, log_probs)


@export_loss(params=(LABEL_SMOOTHING,))
def softmax_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Softmax cross-entropy against soft targets.

    .. math::
      \ell(z, q) = -\sum_i q'_i \log \operatorname{softmax}(\tilde z)_i
        + \lambda \textstyle\sum_i q'_i \big(\log \sum_i e^{\tilde z_i}\big)^2, \qquad
      q' = (1 - \alpha)\, q + \alpha / K

    where :math:`K` counts the kept classes, :math:`\lambda` is ``z_loss``
    (its term is per unit of target mass: :math:`\lambda (\log Z)^2` for a row
    that sums to 1) and
    :math:`\tilde z = c \tanh(z / c)` with ``soft_cap`` :math:`c` (or
    :math:`\tilde z = z`). Terms with :math:`q'_i = 0` are 0 even where the
    logit is -inf, so masked logits give no NaN; the loss is inf only where a
    class with positive target has probability 0.

    The z-loss (PaLM) leaves the minimiser in probabilities at :math:`p = q'`
    and pins the logits' free shift: it is least where :math:`\log Z = 0`,
    so the logits become log-probabilities. Soft-capping (Gemma 2) bounds the
    logits to :math:`(-c, c)`, so each probability lies strictly inside
    :math:`\big(1 / (1 + (K - 1) e^{2c}),\ 1 / (1 + (K - 1) e^{-2c})\big)`: a
    target outside that interval (a one-hot or a zero entry among them) is
    never reached, and the loss keeps a positive gradient towards it. Both are
    computed in the fused passes, with no array of their own.

    Args:
      logits: unnormalised scores, shape ``[..., K, ...]``.
      targets: soft targets of the same shape (rows are probability vectors).
      axis: the class axis.
      where: boolean mask of kept classes, the shape of ``logits``, or with the
        class axis of size 1 to keep or drop whole examples (see the module
        docstring for how this differs from optax).
      label_smoothing: :math:`\alpha \in [0, 1]`.
      z_loss: :math:`\lambda \ge 0`, a Python number (it decides whether the
        compiled passes hold the term).
      soft_cap: :math:`c > 0`, a Python number, or None for no cap.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per example: ``logits`` with ``axis`` removed, in float32 or
      wider.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> z = jnp.log(jnp.array([0.3, 0.5, 0.2]))
      >>> round(float(softxent.softmax_cross_entropy(z, jnp.array([0.3, 0.5, 0.2]))), 4)
      1.0297
      >>> round(float(softxent.softmax_cross_entropy(z + 1, jnp.array([0.3, 0.5, 0.2]),
      ...                                            z_loss=0.1)), 4)  # + 0.1 * 1^2
      1.1297

    References:
      Szegedy et al., Rethinking the Inception Architecture for Computer
      Vision, CVPR 2016.

      Chowdhery et al., PaLM: Scaling Language Modeling with Pathways, JMLR
      2023 (z-loss); Gemma Team, Gemma 2, arXiv:2408.00118, 2024 (logit
      soft-capping).
    """
    name = "softmax_cross_entropy"
    regularisers = check_regularisers(name, z_loss, soft_cap)
    logits, targets, axis, where, dtype = prepare(name, logits, targets, axis, where, cast=False)
    loss = softmax_target_loss(
        _reference_cross_entropy,
        logits,
        targets,
        axis,
        where,
        kind=Kind.CROSS_ENTROPY,
        parameter=as_param(label_smoothing, dtype),
        dtype=dtype,
        regularisers=regularisers,
    )
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))


def _reference_cross_entropy(
    logits: jax.Array, targets: jax.Array, axis: int, where: jax.Array | None, alpha: jax.Array
) -> jax.Array:
    q = smooth_targets(targets, where, alpha, axis)
    log_p = masked_log_softmax(logits, axis, where)
    return masked_sum(_cross_entropy_terms(q, log_p), axis, where)


def _kl_terms(
    logits: jax.Array, targets: jax.Array, axis: int, where: jax.Array | None
) -> jax.Array:
    log_p = masked_log_softmax(logits, axis, where)
    return masked_sum(xlogx(targets) - xlogy(targets, log_p), axis, where)


def _reference_kl(
    logits: jax.Array, targets: jax.Array, axis: int, where: jax.Array | None, _: jax.Array
) -> jax.Array:
    return _kl_terms(logits, targets, axis, where)


def _reference_distillation(
    student: jax.Array,
    teacher: jax.Array,
    axis: int,
    where: jax.Array | None,
    temperature: jax.Array,
) -> jax.Array:
    """KL(softmax(t/T) || softmax(s/T)), without the T**2."""
    q = jnp.exp(masked_log_softmax(teacher / temperature, axis, where))
    return _kl_terms(student / temperature, q, axis, where)


@export_loss()
def kl_divergence(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Kullback-Leibler divergence of the model from the soft target.

    .. math::
      \mathrm{KL}(q \,\|\, p) + \lambda \textstyle\sum_i q_i
        \big(\log \sum_i e^{\tilde z_i}\big)^2,
      \qquad p = \operatorname{softmax}(\tilde z)

    with ``z_loss`` :math:`\lambda` and ``soft_cap`` :math:`c`, as in
    ``softmax_cross_entropy``: :math:`\tilde z = c \tanh(z / c)`, or
    :math:`\tilde z = z` without a cap. Zero exactly when :math:`p = q` (and,
    with a z-loss, :math:`\log Z = 0`). Terms with :math:`q_i = 0` are 0, and
    the derivative with respect to such a target is finite (see ``xlogx``).
    The gradient in the logits is cross-entropy's: the two differ by the
    target's entropy, so the z-loss and the cap move the minimiser as they do
    there (the cap leaves targets outside its interval of probabilities
    unreachable).

    Args:
      logits: unnormalised scores.
      targets: soft targets of the same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      z_loss: :math:`\lambda \ge 0`, a Python number.
      soft_cap: :math:`c > 0`, a Python number, or None for no cap.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The divergence per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> q = jnp.array([0.3, 0.5, 0.2])
      >>> abs(float(softxent.kl_divergence(jnp.log(q), q))) < 1e-6
      True

    References:
      Kullback and Leibler, On Information and Sufficiency, Ann. Math. Stat. 1951.
    """
    name = "kl_divergence"
    regularisers = check_regularisers(name, z_loss, soft_cap)
    logits, targets, axis, where, dtype = prepare(name, logits, targets, axis, where, cast=False)
    loss = softmax_target_loss(
        _reference_kl, logits, targets, axis, where, kind=Kind.KL, dtype=dtype,
        regularisers=regularisers,
    )
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))


@export_loss()
def reverse_kl_divergence(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Reverse Kullback-Leibler divergence.

    .. math::
      \mathrm{KL}(p \,\|\, q) = \sum_i p_i (\log p_i - \log q_i)

    Mode-seeking: it is infinite whenever the model puts mass on a class whose
    target is exactly 0, which is the true value, not a numerical failure.

    Args:
      logits: unnormalised scores.
      targets: soft targets of the same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The divergence per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> q = jnp.array([0.3, 0.5, 0.2])
      >>> round(float(softxent.reverse_kl_divergence(jnp.zeros(3), q)), 4)
      0.0702

    References:
      Minka, Divergence measures and message passing, MSR-TR-2005-173.
    """
    name = "reverse_kl_divergence"
    logits, targets, axis, where, _ = prepare(name, logits, targets, axis, where)
    log_p = masked_log_softmax(logits, axis, where)
    p = jnp.exp(log_p)
    loss = masked_sum(xlogy(p, log_p - safe_log(targets)), axis, where)
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))


@export_loss()
def js_divergence(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Jensen-Shannon divergence (natural log).

    .. math::
      \mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(q \,\|\, m) + \tfrac12 \mathrm{KL}(p \,\|\, m),
      \qquad m = \tfrac12 (p + q)

    Symmetric, in :math:`[0, \log 2]` for targets that sum to 1, and finite for
    every input. Each term :math:`x \log(x / m)` is formed from the log-ratio
    :math:`d = \log q - \log p` alone (:math:`\log(p/m) = -\log((1 + e^d)/2)`),
    not from entropies, so that nothing cancels within a term near
    :math:`p = q`, :math:`m` cannot underflow, and no derivative divides by
    :math:`m^2`.

    Args:
      logits: unnormalised scores.
      targets: soft targets of the same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The divergence per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> z = jnp.array([0.0, -jnp.inf])
      >>> round(float(softxent.js_divergence(z, jnp.array([0.0, 1.0]))), 6)  # log 2
      0.693147

    References:
      Lin, Divergence measures based on the Shannon entropy, IEEE Trans.
      Inf. Theory 37(1), 1991.
    """
    name = "js_divergence"
    logits, targets, axis, where, _ = prepare(name, logits, targets, axis, where)
    log_p = masked_log_softmax(logits, axis, where)
    p, ratio_p, ratio_q = _js_parts(log_p, targets)
    value = 0.5 * masked_sum(xlogy(p, ratio_p) + xlogy(targets, ratio_q), axis, where)
    # The derivatives from terms shifted by the top class's log(p/m): sum p = 1, so
    # -c sum p changes no derivative in the logits, and with c = log(p_top / m_top)
    # the top class's cotangent on log p is exactly 0. Unshifted, the gradient
    # p_k (h_k - sum_j p_j h_j) (h = log(p/m) / 2) forms sum_j p_j h_j ~ h_top and
    # subtracts: a roundoff of h_top, times p_k, where the exact difference may be
    # e^-700 times smaller (a saturated row whose other classes share h_top).
    top = jnp.argmax(log_p, axis=axis, keepdims=True)
    shift = lax.stop_gradient(jnp.take_along_axis(ratio_p, top, axis))
    shift = jnp.where(jnp.isfinite(shift), shift, 0)  # a fully masked row
    shifted = 0.5 * masked_sum(_shifted_js_terms(log_p, targets, shift), axis, where)
    # The value is ``value``'s, the derivatives (of every order) are ``shifted``'s.
    loss = lax.stop_gradient(value) + (shifted - lax.stop_gradient(shifted))
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))


def _js_parts(log_p: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """p, log(p / m) and log(q / m) for m = (p + q) / 2.

    Both logs come from the log-ratio d = log q - log p alone
    (log(p/m) = -log((1 + e^d)/2)): m is never formed, so it cannot underflow to 0
    beside a finite p (0.5 * p is subnormal, and flushed, for p near the smallest
    normal), and the derivatives carry no 1/m^2 (inf in float32 from p ~ 1e-19).
    """
    log_q = safe_log(targets)  # prepare has zeroed the masked targets
    both = jnp.isfinite(log_p) & jnp.isfinite(log_q)
    infinity = jnp.asarray(jnp.inf, log_p.dtype)
    one_sided = jnp.where(jnp.isfinite(log_q), infinity, -infinity)
    d = jnp.where(both, log_q - jnp.where(both, log_p, 0), one_sided)
    return jnp.exp(log_p), _log_two_over_one_plus_exp(d), _log_two_over_one_plus_exp(-d)


@jax.custom_jvp
def _shifted_js_terms(log_p: jax.Array, targets: jax.Array, shift: jax.Array) -> jax.Array:
    """p log(p/m) + q log(q/m) - shift p per class, with its derivatives written out:
    d/d log p = p (log(p/m) - shift) and d/dq = log(q/m), the terms from m cancelling
    exactly (q/(p + q) - q/(p + q)) instead of in rounding."""
    p, ratio_p, ratio_q = _js_parts(log_p, targets)
    return xlogy(p, ratio_p) + xlogy(targets, ratio_q) - shift * p


@_shifted_js_terms.defjvp
def _shifted_js_terms_jvp(primals, tangents):
    log_p, targets, shift = primals
    d_log_p, d_targets, d_shift = tangents
    p, ratio_p, ratio_q = _js_parts(log_p, targets)
    value = xlogy(p, ratio_p) + xlogy(targets, ratio_q) - shift * p
    live = p > 0  # log(p/m) is finite there; elsewhere the term is a structural 0
    slope_p = jnp.where(live, p * (jnp.where(live, ratio_p, 0) - shift), 0)
    # A zero target's term is 0 whatever p (as in xlogy): log(q/m) = -inf there.
    finite_q = jnp.isfinite(ratio_q)
    slope_q = jnp.where(finite_q, jnp.where(finite_q, ratio_q, 0), 0)
    return value, slope_p * d_log_p + slope_q * d_targets - p * d_shift


def _log_two_over_one_plus_exp(d: jax.Array) -> jax.Array:
    """log(2 / (1 + e^d)), which is log(x / m) for x = p, d = log(q / p) (and q, -d).

    Near d = 0 it is -log1p(expm1(d) / 2), without the cancellation of
    log 2 - softplus(d); above d = 1 that difference loses under a bit and
    expm1 would overflow. -inf at d = inf, log 2 at d = -inf.
    """
    small = d < 1
    near = -log1p(expm1(jnp.where(small, d, 0)) / 2)
    far = jnp.log(2.0).astype(d.dtype) - softplus(jnp.where(small, 1, d))
    return jnp.where(small, near, far)


@export_loss()
def brier_score(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Brier score (quadratic proper scoring rule).

    .. math::
      \ell(z, q) = \sum_i (p_i - q_i)^2, \qquad p = \operatorname{softmax}(z)

    Args:
      logits: unnormalised scores.
      targets: soft targets of the same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The score per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> round(float(softxent.brier_score(jnp.zeros(2), jnp.array([1.0, 0.0]))), 4)
      0.5

    References:
      Brier, Verification of forecasts expressed in terms of probability,
      Monthly Weather Review 78(1), 1950.
    """
    name = "brier_score"
    logits, targets, axis, where, _ = prepare(name, logits, targets, axis, where)
    p = jnp.exp(masked_log_softmax(logits, axis, where))
    loss = masked_sum(jnp.square(p - targets), axis, where)
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))


def _log_top_complement(logits: jax.Array, log_p: jax.Array, axis: int,
                        where: jax.Array | None) -> jax.Array:
    """log(1 - p), with the top class's from the other classes' mass.

    For the top class 1 - p = r / (1 + r), r = sum of exp(z_j - z_top) over the
    others, so log(1 - p) = log r - softplus(log r): its derivatives are those of
    a log-sum-exp, bounded, where log1mexp(log p) would divide by (1 - p)^2
    (inf at logits [708, 0] in float64, and NaN times a zero target). The other
    classes have p <= 1/2, where log1mexp is well conditioned.
    """
    z = logits if where is None else jnp.where(where, logits, -jnp.inf)
    top = jnp.argmax(z, axis=axis, keepdims=True)
    is_top = lax.broadcasted_iota(top.dtype, z.shape, axis) == top
    # The top entry itself, not max(z): at a tie max's derivative is split between
    # the tied entries, while log(1 - p_top) moves with the top entry alone.
    z_top = jnp.take_along_axis(z, top, axis=axis)
    others = jnp.where(is_top, -jnp.inf, z)
    peak = lax.stop_gradient(jnp.max(others, axis=axis, keepdims=True))
    usable = jnp.isfinite(peak) & jnp.isfinite(z_top)
    shift = jnp.where(usable, peak, 0)
    mass = jnp.sum(jnp.exp(jnp.where(usable, others, -jnp.inf) - shift), axis=axis,
                   keepdims=True)
    # The difference first: exact (or one rounding) where the logits are close, while
    # (shift + log(mass)) - z_top would round at the logits' magnitude (|z| ~ 700).
    log_rest = (shift - jnp.where(usable, z_top, 0)) + jnp.log(jnp.where(usable, mass, 1))
    top_value = log_rest - softplus(log_rest)
    inside = is_top & usable
    return jnp.where(inside, top_value, log1mexp(jnp.where(inside, -1.0, log_p)))


def _focal_weight(log_rest: jax.Array, gamma: jax.Array) -> jax.Array:
    """(1 - p)^gamma from log(1 - p), with 0^0 = 1 and finite derivatives at p = 1.

    Where p underflows to 0, log(1 - p) is exactly 0 and the weight is the constant
    1: its derivative there is gamma q |log p| p, below every float, while the
    chain rule would carry the cotangent q |log p| (up to the largest float, so
    gamma times it overflows) into log1mexp's zero derivative: inf * 0.
    """
    finite = jnp.isfinite(log_rest)
    at_one = jnp.where(gamma == 0, 1, 0).astype(log_rest.dtype)
    varies = finite & (log_rest != 0)
    weight = jnp.exp(gamma * jnp.where(varies, log_rest, 0))
    return jnp.where(varies, weight, jnp.where(finite, 1, at_one).astype(log_rest.dtype))


@export_loss(params=(Param("gamma", 2.0, 0.0, None, doc="focusing parameter"),))
def focal_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    gamma: ArrayLike = 2.0,
    reduction: str = "none",
) -> jax.Array:
    r"""Softmax focal loss for soft targets.

    .. math::
      \ell(z, q) = -\sum_i q_i (1 - p_i)^\gamma \log p_i

    With :math:`\gamma = 0` this is the cross-entropy. Focal loss is not
    strictly proper: its minimiser for a soft target is not :math:`q` (see
    ``softxent catalogue``), which is why it tends to give under-confident
    predictions.

    Args:
      logits: unnormalised scores.
      targets: soft targets of the same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      gamma: :math:`\gamma \ge 0`.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> q = jnp.array([0.3, 0.5, 0.2])
      >>> round(float(softxent.focal_cross_entropy(jnp.log(q), q, gamma=0.0)), 4)
      1.0297

    References:
      Lin et al., Focal Loss for Dense Object Detection, ICCV 2017.

      Charoenphakdee et al., Focal Loss Calibration, CVPR 2021.
    """
    name = "focal_cross_entropy"
    logits, targets, axis, where, dtype = prepare(name, logits, targets, axis, where)
    log_p = masked_log_softmax(logits, axis, where)
    log_rest = _log_top_complement(logits, log_p, axis, where)
    weight = _focal_weight(log_rest, as_param(gamma, dtype))
    loss = masked_sum(-xlogy(targets * weight, log_p), axis, where)
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))


@export_loss(
    params=(Param("epsilon", 2.0, -1.0, None, doc="weight of the first polynomial term"),)
)
def poly1_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    epsilon: ArrayLike = 2.0,
    reduction: str = "none",
) -> jax.Array:
    r"""Poly-1 cross-entropy for soft targets.

    .. math::
      \ell(z, q) = -\sum_i q_i \log p_i + \epsilon \sum_i q_i (1 - p_i)

    For targets that sum to 1 the second term is :math:`\epsilon(1 - q^\top p)`,
    as in optax; written per class, a fully masked row is 0.

    Args:
      logits: unnormalised scores.
      targets: soft targets of the same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      epsilon: :math:`\epsilon \ge -1`. Below -1 the term
        :math:`-\log p + \epsilon (1 - p)` stops decreasing towards
        :math:`p = 1`: its minimum moves to :math:`p = -1/\epsilon < 1`, so the
        loss no longer rewards a confident correct prediction.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> q = jnp.array([1.0, 0.0])
      >>> round(float(softxent.poly1_cross_entropy(jnp.zeros(2), q, epsilon=1.0)), 4)
      1.1931

    References:
      Leng et al., PolyLoss: A Polynomial Expansion Perspective of
      Classification Loss Functions, ICLR 2022.
    """
    name = "poly1_cross_entropy"
    logits, targets, axis, where, dtype = prepare(name, logits, targets, axis, where)
    log_p = masked_log_softmax(logits, axis, where)
    # 1 - p as -expm1(log p): accurate where p rounds to 1 (a saturated top class).
    terms = -xlogy(targets, log_p) + as_param(epsilon, dtype) * targets * -expm1(log_p)
    return apply_reduction(
        name, masked_sum(terms, axis, where), reduction, kept_examples(where, axis)
    )


@export_loss(
    params=(
        Param("k", 0.7, 0.0, 1.0, low_open=True, doc="exponent; k -> 0 gives cross-entropy"),
    )
)
def generalized_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    k: ArrayLike = 0.7,
    reduction: str = "none",
) -> jax.Array:
    r"""Generalized cross-entropy (the :math:`L_q` loss) for soft targets.

    .. math::
      \ell(z, q) = \sum_i q_i \frac{1 - p_i^k}{k}

    Interpolates between cross-entropy (:math:`k \to 0`) and mean absolute
    error (:math:`k = 1`); bounded, so a class with probability 0 costs
    :math:`q_i / k`, never inf. Computed as :math:`-\mathrm{expm1}(k \log p)/k`
    for accuracy at small :math:`k`.

    Args:
      logits: unnormalised scores.
      targets: soft targets of the same shape.
      axis: the class axis.
      where: boolean mask of kept classes.
      k: the exponent, in (0, 1].
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> q = jnp.array([1.0, 0.0])
      >>> round(float(softxent.generalized_cross_entropy(jnp.zeros(2), q, k=1.0)), 4)
      0.5

    References:
      Zhang and Sabuncu, Generalized Cross Entropy Loss for Training Deep
      Neural Networks with Noisy Labels, NeurIPS 2018.
    """
    name = "generalized_cross_entropy"
    logits, targets, axis, where, dtype = prepare(name, logits, targets, axis, where)
    k = as_param(k, dtype)
    log_p = masked_log_softmax(logits, axis, where)
    loss = masked_sum(targets * (-expm1(k * log_p) / k), axis, where)
    return apply_reduction(name, loss, reduction, kept_examples(where, axis))


@export_loss(
    params=(TEMPERATURE,)
)
def distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
    temperature: ArrayLike = 2.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    reduction: str = "none",
) -> jax.Array:
    r"""Knowledge-distillation loss with temperature.

    .. math::
      \ell(s, t) = T^2 \Big[\mathrm{KL}\big(\operatorname{softmax}(t/T) \,\big\|\,
      \operatorname{softmax}(\tilde s/T)\big)
      + \lambda \big(\log \textstyle\sum_i e^{\tilde s_i / T}\big)^2\Big]

    The :math:`T^2` factor keeps gradient magnitudes comparable across
    temperatures (Hinton et al. 2015). No gradient flows into the teacher. Its
    gradient in the student logits equals that of the soft-target cross-entropy
    (they differ by the teacher's entropy, a constant). ``soft_cap``
    :math:`c` caps the student's logits, :math:`\tilde s = c \tanh(s / c)`
    (:math:`\tilde s = s` without it); the teacher's are taken as given, so
    a teacher probability outside the capped student's reach stays unmatched.
    ``z_loss`` :math:`\lambda` pins the tempered student's normaliser, least
    where :math:`\log \sum_i e^{\tilde s_i / T} = 0`; inside the
    :math:`T^2`, so at :math:`T = 1` it is PaLM's z-loss.

    Args:
      student_logits: the student's unnormalised scores.
      teacher_logits: the teacher's, same shape (not differentiated).
      axis: the class axis.
      where: boolean mask of kept classes.
      temperature: :math:`T > 0`.
      z_loss: :math:`\lambda \ge 0`, a Python number.
      soft_cap: :math:`c > 0`, a Python number, or None for no cap.
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).

    Returns:
      The loss per example.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> s, t = jnp.array([0.0, 1.0, 2.0]), jnp.array([2.0, 1.0, 0.0])
      >>> round(float(softxent.distillation_loss(s, t)), 4)
      1.2806
      >>> abs(float(softxent.distillation_loss(t, t))) < 1e-6  # zero, up to rounding
      True

    References:
      Hinton, Vinyals and Dean, Distilling the Knowledge in a Neural Network,
      arXiv:1503.02531, 2015.
    """
    name = "distillation_loss"
    regularisers = check_regularisers(name, z_loss, soft_cap)
    student, teacher, axis, where, dtype = prepare(
        name,
        student_logits,
        teacher_logits,
        axis,
        where,
        predictions_name="student_logits",
        targets_name="teacher_logits",
        targets_floating=True,
        cast=False,
    )
    temperature = as_param(temperature, dtype)
    kl = softmax_target_loss(
        _reference_distillation,
        student,
        lax.stop_gradient(teacher),
        axis,
        where,
        kind=Kind.DISTILLATION,
        parameter=temperature,
        dtype=dtype,
        regularisers=regularisers,
    )
    return apply_reduction(name, temperature**2 * kl, reduction, kept_examples(where, axis))
