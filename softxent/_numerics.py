"""Numerically safe building blocks for the losses.

Every NaN that optax and PyTorch produce on soft targets comes from ``0 * inf``
in either the value or a derivative. Each helper here keeps infinities out of
the branch that is discarded (the "double where"), so values, reverse-mode,
forward-mode and second derivatives stay finite wherever the loss is finite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

# XLA's float64 log1p on the CPU is up to 120 ulp off for x in about [-0.414, -0.361]
# (measured with mpmath; float32 stays within 2.2 ulp); this band is widened a little.
_LOG1P_BAND = (-0.43, -0.35)


def log1p(x: jax.Array) -> jax.Array:
    """log(1 + x), accurate to a few ulp in every dtype.

    Inside ``_LOG1P_BAND`` it is log(y) corrected for the rounding of y = 1 + x:
    log(1 + x) = log(y) - ((y - 1) - x) / y to first order, where (y - 1) - x is
    exact there. Elsewhere it is ``jnp.log1p``.
    """
    low, high = _LOG1P_BAND
    band = (x > low) & (x < high)
    inside = jnp.where(band, x, -0.4)
    y = 1 + inside
    corrected = jnp.log(y) - ((y - 1) - inside) / y
    return jnp.where(band, corrected, jnp.log1p(jnp.where(band, 0, x)))


def safe_log(x: jax.Array) -> jax.Array:
    """log(x) with log(0) = -inf and a zero (not NaN) derivative at x = 0."""
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1)), -jnp.inf)


def safe_log1m(x: jax.Array) -> jax.Array:
    """log(1 - x) with log(0) = -inf at x = 1 and a zero derivative there."""
    below_one = x < 1
    return jnp.where(below_one, log1p(-jnp.where(below_one, x, 0)), -jnp.inf)


def xlogy(x: jax.Array, log_y: jax.Array) -> jax.Array:
    """x * log_y with the convention 0 * log 0 = 0.

    ``log_y`` is already a logarithm. Where ``x == 0`` the value is 0 and the
    derivative with respect to ``log_y`` is 0; the derivative with respect to
    ``x`` is ``log_y`` where that is finite (the exact partial derivative) and 0
    where ``log_y = -inf`` (the term is then a structural zero).
    """
    finite_log = jnp.where((x != 0) | jnp.isfinite(log_y), log_y, 0)
    return x * finite_log


def _log_cut_at_zero_weight(x: jax.Array, p: jax.Array, log_fn, neutral: float) -> jax.Array:
    """log_fn(p) for the factor of x * log_fn(p), with the p-path cut where x == 0.

    Where x == 0 the factor is a constant (stop_gradient), so d/dx keeps its
    exact value log_fn(p) while derivatives in p of every order are exactly 0,
    even where 1/p^2 would overflow. A factor of -inf there becomes 0.
    """
    live = x != 0
    log_live = log_fn(jnp.where(live, p, neutral))
    factor = jnp.where(live, log_live, lax.stop_gradient(log_fn(p)))
    return jnp.where(live | jnp.isfinite(factor), factor, 0)


def xlogp(x: jax.Array, p: jax.Array) -> jax.Array:
    """x * log(p) for probabilities p, with 0 * log 0 = 0 (see ``xlogy``)."""
    return x * _log_cut_at_zero_weight(x, p, safe_log, 1.0)


def xlog1mp(x: jax.Array, p: jax.Array) -> jax.Array:
    """x * log(1 - p) with 0 * log 0 = 0, accurate for small p (log1p)."""
    return x * _log_cut_at_zero_weight(x, p, safe_log1m, 0.0)


def xlogx(x: jax.Array) -> jax.Array:
    """x log x for x >= 0 with 0 log 0 = 0.

    At x = 0 the one-sided derivative is -inf; we return 0 there (the term is
    treated as a structural zero), which keeps gradients with respect to targets
    that are exactly 0 finite.
    """
    positive = x > 0
    safe_x = jnp.where(positive, x, 1)
    return jnp.where(positive, safe_x * jnp.log(safe_x), 0)


def softplus(x: jax.Array) -> jax.Array:
    """log(1 + e^x), exact at x = ±inf with finite derivatives of all orders."""
    positive = x > 0
    x_pos = jnp.where(positive, x, 0)
    x_neg = jnp.where(positive, 0, x)
    return jnp.where(positive, x_pos + jnp.log1p(jnp.exp(-x_pos)), jnp.log1p(jnp.exp(x_neg)))


@jax.custom_jvp
def sigmoid(x: jax.Array) -> jax.Array:
    """1 / (1 + e^-x) whose derivative is sigmoid(x) sigmoid(-x).

    JAX differentiates the logistic as s (1 - s), which rounds to 0 where s
    rounds to 1 (x above about 17 in float32, 37 in float64) and is off by up
    to 100 % a little below that; each factor here is accurate, so derivatives
    of every order keep their relative accuracy at large |x|.
    """
    return jax.nn.sigmoid(x)


@sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return sigmoid(x), sigmoid(x) * sigmoid(-x) * dx


@jax.custom_jvp
def expm1(x: jax.Array) -> jax.Array:
    """e^x - 1 whose derivative is e^x itself.

    JAX differentiates jnp.expm1 as (e^x - 1) + 1, which rounds to 0 for
    x below about -37 in float64 and loses the gradient of small terms.
    """
    return jnp.expm1(x)


@expm1.defjvp
def _expm1_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return jnp.expm1(x), jnp.exp(x) * dx


def log1mexp(log_p: jax.Array) -> jax.Array:
    """log(1 - e^a) for a <= 0, accurate near 0 and -inf at a = 0 (zero derivative)."""
    near_zero = log_p > -0.6931471805599453
    inside = log_p < 0
    a = jnp.where(inside, log_p, -1.0)
    # Each branch sees only its own inputs: log1p(-e^a) has an infinite derivative
    # where e^a rounds to 1, which a zero cotangent would turn into NaN.
    near = jnp.log(-expm1(jnp.where(near_zero, a, -1.0)))
    far = log1p(-jnp.exp(jnp.where(near_zero, -1.0, a)))
    value = jnp.where(near_zero, near, far)
    return jnp.where(inside, value, -jnp.inf)


def masked_log_softmax(logits: jax.Array, axis: int, where: jax.Array | None) -> jax.Array:
    """log softmax over the kept classes; -inf at masked classes.

    Handles -inf logits (probability 0), +inf logits (the limit: all mass split
    evenly over the +inf entries) and fully masked rows (all -inf, no NaN in the
    value or any derivative). Derivatives come from a custom JVP that keeps
    saturated gradients accurate (see ``_log_softmax_jvp``).
    """
    keep = keep_mask(where, logits.shape)
    return _log_softmax(logits, keep, axis % logits.ndim)


def limit_of_infinite_rows(logits: jax.Array, peak: jax.Array) -> jax.Array:
    """The logits, except in a row whose ``peak`` (its largest logit, class axis kept,
    size 1) is +inf: there the limit the softmax takes, 0 at the +inf entries and -inf
    elsewhere, so that the row's mass splits evenly over those entries."""
    # log 1 = 0 at the +inf entries and log 0 = -inf elsewhere, in the logits' dtype.
    limit = jnp.log(jnp.isposinf(logits).astype(logits.dtype))
    return jnp.where(jnp.isposinf(peak), limit, logits)


def shifted_logits(logits: jax.Array, keep: jax.Array | None, peak: jax.Array) -> jax.Array:
    """The logits as the softmax takes them, less the row's shift: the core of every
    masked log-softmax in softxent.

    ``peak`` is the row's largest kept logit (class axis kept, size 1). Masked
    classes are -inf; a row holding +inf takes its limit (``limit_of_infinite_rows``);
    other rows are ``z - peak``, and a fully masked row (peak -inf) is left unshifted.
    """
    if keep is not None:
        logits = jnp.where(keep, logits, -jnp.inf)
    return limit_of_infinite_rows(logits, peak) - jnp.where(jnp.isfinite(peak), peak, 0)


def nonzero_total(total: jax.Array) -> jax.Array:
    """A row's ``sum exp(shifted_logits)``, with 1 for a row with no finite mass (fully
    masked: all its exponentials are 0), so that its log is 0 and no 0/0 arises."""
    return jnp.where(total > 0, total, 1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _log_softmax(logits: jax.Array, keep: jax.Array, axis: int) -> jax.Array:
    masked = jnp.where(keep, logits, -jnp.inf)
    peak = lax.stop_gradient(jnp.max(masked, axis=axis, keepdims=True))
    shifted = shifted_logits(masked, None, peak)
    # The normaliser is 1 + rest, the top entry's exp(0) = 1 left out of the sum, and
    # its log is log1p(rest): log(1 + rest) would round the top class's log p to 0
    # once rest < eps, losing 1 - p_top (and every derivative of (1 - p)^gamma) for a
    # saturated row. A fully masked row has rest = 0 and stays at -inf, with no 0/0.
    top = is_top(shifted, axis)
    rest = jnp.sum(jnp.where(top, 0, jnp.exp(shifted)), axis=axis, keepdims=True)
    return shifted - jnp.log1p(rest)


def is_top(logits: jax.Array, axis: int) -> jax.Array:
    """True at the first largest entry along ``axis`` (ties: the first one)."""
    top_index = jnp.argmax(logits, axis=axis, keepdims=True)
    return lax.broadcasted_iota(top_index.dtype, logits.shape, axis) == top_index


@_log_softmax.defjvp
def _log_softmax_jvp(axis: int, primals, tangents):
    """Tangents measured relative to the largest logit.

    Mathematically d log p = dz - (p . dz); since softmax ignores a shift, dz may
    be replaced by dz - dz_top with the top component set to 0. The value is the
    same, but when JAX transposes this rule the top logit's gradient comes out
    as minus the sum of the others instead of g_top - p_top * sum(g), which
    cancels to 0 when p_top rounds to 1 (saturated logits, |z| of 40 or more).
    """
    logits, keep = primals
    d_logits = tangents[0]
    log_p = _log_softmax(logits, keep, axis)
    p = jnp.exp(log_p)
    masked = jnp.where(keep, logits, -jnp.inf)
    top = is_top(masked, axis)
    d_top = jnp.sum(jnp.where(top, d_logits, 0), axis=axis, keepdims=True)
    relative = jnp.where(keep & ~top, d_logits - d_top, 0)
    d_log_p = relative - jnp.sum(p * relative, axis=axis, keepdims=True)
    # Rows with a +inf logit are constant (their limit), and masked entries too.
    constant = jnp.isposinf(jnp.max(masked, axis=axis, keepdims=True)) | ~keep
    return log_p, jnp.where(constant, 0, d_log_p)


def keep_mask(where: jax.Array | None, shape: tuple[int, ...]) -> jax.Array:
    """The boolean mask of kept classes, broadcast to ``shape``."""
    if where is None:
        return jnp.ones(shape, dtype=bool)
    return jnp.broadcast_to(where, shape)


def masked_sum(x: jax.Array, axis: int, where: jax.Array | None) -> jax.Array:
    """Sum over ``axis`` of the kept entries only (masked entries may be inf)."""
    if where is not None:
        x = jnp.where(where, x, 0)
    return jnp.sum(x, axis=axis)


def peak_excess(total: jax.Array, below: Callable[[], jax.Array], blocked: bool = False
                ) -> jax.Array:
    """``R = S - 1``, a softmax normaliser ``S = sum exp(z - m)`` less its peak's own
    ``exp(0) = 1``: from ``S`` where that loses nothing, and summed again without the
    peak entry (``below``) where it would, below ``S = 3/2`` (``R < 1/2``; the rounding
    of ``S = 1 + R`` is a relative ``u / R`` of ``R``). There the peak entry is alone (a
    tie would make ``S >= 2``). ``blocked``: a block of rows read from main memory, where
    the second sum runs only if some row needs it; a cache-resident array (or a fusing
    backend) takes it always, cheaper than the branch.
    A fully masked row has ``S = 0`` and ``R = -1`` (see ``log_total_from_excess``)."""
    dominant = (total < 1.5) & (total > 0)
    if blocked:
        again = lax.cond(jnp.any(dominant), below, lambda: jnp.zeros_like(total))
    else:
        again = below()
    # If the peak entry was not told apart (a computed logit, soft-capped, formed with
    # a different rounding for the max), below holds its 1: keep S - 1 there.
    return jnp.where(dominant & (again < 0.75), again, total - 1)


def log_total_from_excess(excess: jax.Array) -> jax.Array:
    """``log S = log1p(R)`` (``R`` from ``peak_excess``); 0 for a row with no mass (R = -1)."""
    has_mass = excess > -1
    return jnp.where(has_mass, jnp.log1p(jnp.where(has_mass, excess, 0)), 0)
