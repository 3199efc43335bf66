"""Distillation from a sparse teacher: its top-k classes and their log-probabilities per row.

Offline distillation pipelines store, per token, the teacher's ``k`` most likely
classes and their log-probabilities; the teacher's other ``V - k``
probabilities are gone. This module reads them as two ``[..., k]`` arrays and
never forms an N x V teacher row. Two ways to treat the missing mass
(``Tail``):

* ``RENORMALIZE``: the teacher is its top k renormalised, ``q_i = a_i / A``
  with ``a_i = exp(log_probs_i)`` and ``A = sum_i a_i``, and 0 elsewhere;
  the loss is ``KL(q || p)`` over all ``V`` classes.
* ``BUCKET``: the top k stay as they are and the teacher's leftover mass
  ``1 - A`` is one more category, matched against the student's mass outside
  the top k, ``1 - P_I = sum_{j not in I} p_j``: a KL over ``k + 1``
  categories.

Passes, for one row of (already temperature-scaled) student logits ``z``:

1. The student's normaliser: ``m = max z``, ``e = exp(z - m)``, ``log S =
   log1p(R)`` with ``R`` the sum of ``e`` without the peak's own 1 (``S - 1``
   would lose ``R`` below the unit roundoff; ``_numerics.peak_excess``), and its
   logits at the teacher's classes, a gather ``z_I - m`` (``k`` entries), also
   as ``z_I / 2 - m / 2``, finite where ``z - m`` overflows (logits near -+ the
   largest float). The student's mass outside the top k, ``S_out``, is summed
   from the logits themselves about that tail's own peak (the k gathered places
   set to -inf by a scatter): it stays finite in log space where ``S_out``
   underflows, is never ``log(S - S_I)``, which would cancel when the student's
   tail is small, and its shares ``e_j / S_out`` tell apart logits whose
   ``z - m`` round to one value.
2. Value, as a sum of nonnegative terms. Over categories on which both the
   teacher ``w`` and the student ``p`` sum to 1,

       KL = sum_c w_c phi(log(p_c / w_c)),   phi(x) = e^x - 1 - x >= 0,

   each term ``w log(w / p) + p - w``: no cancellation however small the KL,
   and a normalisation of ``w`` that is off by a rounding changes it only to
   second order (``log A``'s rounding would otherwise dominate a KL of 1e-21).
   ``phi`` is a Taylor series for ``|x| <= 1`` and ``p - w (1 + x)`` beyond,
   with ``w (1 + x)`` from its log where ``w`` is below the smallest normal
   float, so that a teacher probability that underflows still counts against a
   huge log-ratio. Renormalised the categories are the top k (``w = q``) and
   the student's tail, where ``w = 0`` leaves ``1 - P_I``; with the bucket
   they are the top k (``w = a``) and the tail (``w = 1 - A``, ``p = 1 - P_I``).
   ``1 - A`` is ``1 - a_top`` (from ``log a_top``) less the other ``a_i``, not
   ``1 - exp(log A)``, which loses a tail of 1e-14 in float32. Without a tail
   (``k = V``, or ``A`` a rounding above 1) the bucket's KL is ``sum_i a_i
   phi(.) + (A - 1) + (1 - P_I)``.
3. Gradient, one elementwise pass. Renormalised it is that of a soft
   cross-entropy, ``p_j - q_j``. With the bucket, ``d(-log p_i)/dz_j =
   p_j - [i = j]`` and ``d(-log(1 - P_I))/dz_j = p_j - [j not in I] p_j / (1 - P_I)``,
   so with ``M`` the teacher's mass over its categories (1 with a tail, ``A``
   without one),

       d loss / dz_j = M p_j - a_j           (j in I),
                       M p_j - (1 - A) e_j / S_out   (j not in I):

   the teacher's tail is spread over the student's tail in the student's own
   proportions, each share formed from its log about the tail's peak, which is
   not held constant, so that a share's derivative is relative to the peak's
   and keeps its accuracy where the share rounds to 1.
4. Tangent: ``sum_j slope_j dz_j``, linear in ``dz``, so JAX transposes it into
   the VJP (a ``custom_jvp``, as in ``_fused``). The teacher is a constant.

A row whose top-k log-probabilities are all -inf has no teacher mass: it gives
0 with ``RENORMALIZE``. With ``k = V`` there is no tail, ``1 - A`` is rounding
only and is taken as 0, and both modes are ``KL(softmax(t) || p)``.
"""

from __future__ import annotations

import enum
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike

from .._numerics import (
    expm1,
    is_top,
    limit_of_infinite_rows,
    log_total_from_excess,
    peak_excess,
)
from .._validation import check_floating, check_reduction, compute_dtype
from ._common import TEMPERATURE
from ._export import apply_reduction, export_loss


class Tail(enum.Enum):
    """What the teacher's mass outside its top k becomes."""

    RENORMALIZE = "renormalize"  # dropped: the top k renormalised to sum to 1
    BUCKET = "bucket"  # one more category, matched to the student's mass outside the top k


def check_tail(fn: str, tail: object) -> Tail:
    choices = tuple(t.value for t in Tail)
    if not isinstance(tail, str) or tail not in choices:
        raise ValueError(f"{fn}: tail must be one of {choices}, got {tail!r}")
    return Tail(tail)


def check_sparse_teacher(
    fn: str, classes_shape: tuple[int, ...], indices: ArrayLike, log_probs: ArrayLike,
    *, logits_name: str = "student_logits",
) -> tuple[jax.Array, jax.Array]:
    """``teacher_indices`` and ``teacher_log_probs`` checked against the student's shape.

    ``classes_shape`` is the student's logits shape ``[..., V]``. Shapes and
    dtypes are checked always; the values (indices in ``[0, V)`` and distinct
    within a row, log-probabilities at most 0 with row masses at most 1) where
    the arrays are concrete, outside ``jit``. Under ``jit`` an index outside
    ``[0, V)`` gives a NaN loss.
    """
    indices, log_probs = jnp.asarray(indices), jnp.asarray(log_probs)
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"{fn}: teacher_indices must have an integer dtype, got {indices.dtype}")
    check_floating(fn, "teacher_log_probs", log_probs)
    leading, classes = tuple(classes_shape[:-1]), classes_shape[-1]
    if indices.ndim != len(classes_shape) or indices.shape[:-1] != leading:
        raise ValueError(
            f"{fn}: teacher_indices shape {tuple(indices.shape)} must be {logits_name}'s "
            f"leading shape {leading} followed by k, {(*leading, 'k')}"
        )
    if log_probs.shape != indices.shape:
        raise ValueError(
            f"{fn}: teacher_log_probs shape {tuple(log_probs.shape)} must equal "
            f"teacher_indices' shape {tuple(indices.shape)}"
        )
    k = indices.shape[-1]
    if not 1 <= k <= classes:
        raise ValueError(
            f"{fn}: teacher_indices has k = {k} classes per row; k must be in [1, V] with "
            f"V = {classes}, the classes of {logits_name}"
        )
    if not isinstance(indices, jax.core.Tracer) and indices.size:
        _check_index_values(fn, np.asarray(indices), classes)
    if not isinstance(log_probs, jax.core.Tracer) and log_probs.size:
        _check_log_prob_values(fn, np.asarray(log_probs, np.float64), log_probs.dtype)
    return indices, log_probs


def _row(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _check_index_values(fn: str, indices: np.ndarray, classes: int) -> None:
    rows = indices.reshape(-1, indices.shape[-1])
    outside = (rows < 0) | (rows >= classes)
    shape = indices.shape[:-1]
    if outside.any():
        r = int(np.argmax(outside.any(axis=-1)))
        value = int(rows[r][np.argmax(outside[r])])
        raise ValueError(
            f"{fn}: teacher_indices must lie in [0, {classes}) (the student's classes), got "
            f"{value} in row {_row(r, shape)}"
        )
    ordered = np.sort(rows, axis=-1)
    repeated = ordered[:, 1:] == ordered[:, :-1]
    if repeated.any():
        r = int(np.argmax(repeated.any(axis=-1)))
        value = int(ordered[r, 1:][np.argmax(repeated[r])])
        raise ValueError(
            f"{fn}: teacher_indices must be distinct within a row, got {value} more than once "
            f"in row {_row(r, shape)}"
        )


def _check_log_prob_values(fn: str, log_probs: np.ndarray, dtype: jnp.dtype) -> None:
    rows = log_probs.reshape(-1, log_probs.shape[-1])
    shape = log_probs.shape[:-1]
    bad = np.isnan(rows) | (rows > 0)
    if bad.any():
        r = int(np.argmax(bad.any(axis=-1)))
        raise ValueError(
            f"{fn}: teacher_log_probs must be log-probabilities, <= 0 and not NaN, got "
            f"{rows[r][np.argmax(bad[r])]:g} in row {_row(r, shape)}"
        )
    mass = np.exp(rows).sum(axis=-1)
    tolerance = math.sqrt(float(jnp.finfo(dtype).eps))
    over = mass > 1 + tolerance
    if over.any():
        r = int(np.argmax(over))
        raise ValueError(
            f"{fn}: teacher_log_probs of a row must hold probability at most 1 (tolerance "
            f"{tolerance:.2g}), got {mass[r]:.6g} in row "
            f"{_row(r, shape)}"
        )


# Taylor coefficients of e^x - 1 - x = x^2 sum_n x^n / (n + 2)!: 18 terms leave a relative
# 1/19! of the sum at |x| = 1, below float64's unit roundoff.
_EXCESS_SERIES = tuple(1 / math.factorial(n + 2) for n in range(18))


def _exp_excess(x: jax.Array) -> jax.Array:
    """``e^x - 1 - x`` for ``|x| <= 1``, where ``expm1(x) - x`` would cancel (``x^2 / 2``)."""
    acc = jnp.full_like(x, _EXCESS_SERIES[-1])
    for c in reversed(_EXCESS_SERIES[:-1]):
        acc = acc * x + c
    return x * x * acc


def _kl_term(log_w: jax.Array, half_log_p: jax.Array) -> jax.Array:
    """``w log(w / p) + p - w = w phi(log(p / w))`` with ``phi(x) = e^x - 1 - x >= 0``,
    from ``log w`` and half of ``log p``; ``p`` where ``w = 0``.

    Over categories where both ``w`` and ``p`` sum to 1 these terms sum to the KL, each
    one nonnegative: no cancellation however small the KL, and insensitive to first
    order to how exactly ``w`` is normalised. ``log p`` enters halved, finite where
    ``z - m`` overflows (logits near -+ the largest float), so that ``w log(w / p)``
    overflows only where it is that large itself. Infinite where the student's ``p`` is 0
    and ``w`` is not."""
    live = log_w > -jnp.inf
    log_w = jnp.where(live, log_w, 0)
    w = jnp.exp(log_w)
    half_x = half_log_p - log_w / 2  # half of log(p / w)
    p = jnp.exp(2 * half_log_p)
    near = jnp.abs(half_x) <= 0.5
    series = w * _exp_excess(2 * jnp.where(near, half_x, 0))
    # Beyond |x| = 1: p - w (1 + x), two terms of one sign below x = -1 and at most a
    # factor e / (e - 2) above their difference beyond x = 1.
    finite = jnp.isfinite(half_x)
    factor = jnp.where(finite, half_x, 0) + 0.5  # (1 + x) / 2
    # Where w is below the smallest normal float, w (1 + x) is formed from its log: a
    # teacher probability that underflows still counts against a huge log(w / p).
    normal = w >= jnp.finfo(w.dtype).tiny
    magnitude = jnp.log(jnp.abs(jnp.where(normal, 1, factor))) + math.log(2)
    spread = jnp.where(normal, 2 * (w * factor),
                       jnp.sign(factor) * jnp.exp(jnp.where(normal, 0, log_w) + magnitude))
    apart = jnp.where(finite | jnp.isnan(half_x), p - spread, jnp.inf)
    return jnp.where(live, jnp.where(near, series, apart), p)


def _value_and_slope(
    logits: jax.Array, indices: jax.Array, log_probs: jax.Array, tail: Tail
) -> tuple[jax.Array, jax.Array]:
    """Passes 1-3 on ``[R, V]`` logits and ``[R, k]`` teacher rows: KL per row, slope."""
    rows, classes = logits.shape
    k = indices.shape[-1]
    peak = jnp.max(logits, axis=-1, keepdims=True)
    # z - m, with the limit of a row holding +inf: its mass split evenly over those
    # entries; and the same limit without the shift, and the shift: z and m, each finite
    # where z - m may not be (two logits near -+ the largest float).
    limited = limit_of_infinite_rows(logits, peak)
    shift = jnp.where(jnp.isfinite(peak), peak, 0)
    shifted = limited - shift
    exponentials = jnp.exp(shifted)
    valid = (indices >= 0) & (indices < classes)
    # A gather outside [0, V) would wrap or clip; NaN makes the mistake visible under jit.
    picked = jnp.where(valid, jnp.take_along_axis(shifted, indices, axis=-1), jnp.nan)
    half_picked = jnp.where(valid, jnp.take_along_axis(limited, indices, axis=-1) / 2
                            - shift / 2, jnp.nan)
    row = jnp.arange(rows)[:, None]
    live = log_probs > -jnp.inf
    total = jnp.sum(exponentials, axis=-1, keepdims=True)
    # log S = log1p(R), R the mass below the peak summed without the peak's exp(0) = 1:
    # S - 1 would lose R once it is below the unit roundoff (see _fused's pass 2).
    excess = peak_excess(total, lambda: jnp.sum(
        jnp.where(shifted == 0, 0, exponentials), axis=-1, keepdims=True))
    log_total = log_total_from_excess(excess)
    half_log_p = half_picked - log_total / 2
    # A lone peak holding over 2/3 of the mass (S < 3/2) is among the teacher's top k
    # where a gathered z - m is 0; its slope p - q would cancel there (both near 1).
    at_peak = (excess < 0.5) & (picked == 0)
    peak_in_top = jnp.any(at_peak, axis=-1, keepdims=True)
    # The student's mass outside the top k, from the logits themselves and that tail's
    # own peak (the k gathered places set to -inf by a scatter): its shares e_j / S_out
    # tell apart logits that z - m would round to one value, and its log stays finite
    # where S_out underflows, never log(S - S_I), which would cancel.
    outside = limited.at[row, indices].set(-jnp.inf)
    # Not held constant: the shares' tangents are then relative to that peak's, which
    # keeps the tangent of a share that rounds to 1 (1 - share would round to 0).
    outside_peak = jnp.max(outside, axis=-1, keepdims=True)
    outside_peak = jnp.where(jnp.isfinite(outside_peak), outside_peak, 0)
    outside_sum = jnp.sum(jnp.exp(outside - outside_peak), axis=-1, keepdims=True)
    log_outside_sum = jnp.log(outside_sum)
    half_log_outside = (outside_peak / 2 - shift / 2) + (log_outside_sum - log_total) / 2
    outside_mass = jnp.exp(2 * half_log_outside)  # 1 - P_I
    # e_j / S_out at the places outside the top k (0 in it).
    tail_share = jnp.where(outside_sum > 0, jnp.exp(
        outside - outside_peak - jnp.where(outside_sum > 0, log_outside_sum, 0)), 0)
    probabilities = jnp.exp(shifted - log_total)

    def peak_slope(slope: jax.Array, others: jax.Array, mass: jax.Array) -> jax.Array:
        """At such a peak, ``p - q = (mass - q) - mass R / S`` with ``mass - q`` the
        teacher's mass at its other classes (``others``), summed where it lies."""
        lone = peak_in_top & (shifted == 0)
        return jnp.where(lone, others - mass * excess / (1 + excess), slope)

    if tail is Tail.RENORMALIZE:
        log_mass = jax.nn.logsumexp(log_probs, axis=-1, keepdims=True)
        has_mass = log_mass > -jnp.inf
        log_q = log_probs - jnp.where(has_mass, log_mass, 0)
        q = jnp.where(live, jnp.exp(log_q), 0)
        mass = has_mass.astype(logits.dtype)
        # sum_i q_i log(q_i / p_i) = sum_i q_i phi(log(p_i / q_i)) + (1 - P_I).
        kl = jnp.sum(_kl_term(jnp.where(live, log_q, -jnp.inf), half_log_p), axis=-1,
                     keepdims=True) + outside_mass
        value = jnp.where(has_mass, kl, 0)
        slope = (mass * probabilities).at[row, indices].add(-q)
        others = jnp.sum(jnp.where(at_peak, 0, q), axis=-1, keepdims=True)
        slope = peak_slope(slope, others, mass)
        return value[:, 0], _constant_at_infinity(peak, slope)
    a = jnp.where(live, jnp.exp(log_probs), 0)
    # The teacher's leftover mass 1 - A, as 1 - a_top less the other a_i: 1 - a_top from
    # log a_top without cancellation, and a difference of the teacher's own numbers where
    # the top k hold nearly all its mass (log A would have rounded it away).
    top = is_top(log_probs, 1)
    deficit = -expm1(jnp.max(log_probs, axis=-1, keepdims=True)) - jnp.sum(
        jnp.where(top, 0, a), axis=-1, keepdims=True)
    # 0 when the top k is every class (what remains is rounding), and never below 0.
    rest = jnp.zeros_like(deficit) if k == classes else jnp.maximum(deficit, 0)
    has_rest = rest > 0
    log_rest = jnp.where(has_rest, jnp.log(jnp.where(has_rest, rest, 1)), -jnp.inf)
    # Over the k + 1 categories, sum_i a_i phi(log(p_i / a_i)) + (1 - A) phi(log((1 - P_I)
    # / (1 - A))). Without a tail, sum_i a_i log(a_i / p_i) = sum_i a_i phi(.) + A - P_I,
    # and A - P_I = (A - 1) + (1 - P_I): the second _kl_term is 1 - P_I there.
    kl = (jnp.sum(_kl_term(jnp.where(live, log_probs, -jnp.inf), half_log_p), axis=-1,
                  keepdims=True) + _kl_term(log_rest, half_log_outside)
          - jnp.where(has_rest, 0, deficit))
    value = kl
    # The gradient is M p_j - a_j in the top k and M p_j - (1 - A) e_j / S_out outside it,
    # with M the mass of the k + 1 categories: 1 with a tail, A without one (the
    # teacher's top k as given, its mass a rounding away from 1 or a little below).
    mass = jnp.where(has_rest, 1, 1 - deficit)
    slope = mass * probabilities - rest * tail_share
    slope = slope.at[row, indices].set(mass * jnp.exp(picked - log_total) - a)
    # M p - a = (M - a) - M (1 - p) at the peak, M - a = (1 - a) - (1 - M) with 1 - a
    # from log a.
    others = -expm1(jnp.sum(jnp.where(at_peak, log_probs, 0), axis=-1, keepdims=True)) - (
        jnp.where(has_rest, 0, deficit))
    slope = peak_slope(slope, others, mass)
    return value[:, 0], _constant_at_infinity(peak, slope)


def _constant_at_infinity(peak: jax.Array, slope: jax.Array) -> jax.Array:
    """A row holding +inf logits is at its limit, constant in them: slope 0."""
    return jnp.where(jnp.isposinf(peak), 0, slope)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _sparse_kl(tail: Tail, logits: jax.Array, indices: jax.Array, log_probs: jax.Array):
    return _value_and_slope(logits, indices, log_probs, tail)[0]


def _sparse_kl_jvp(tail: Tail, primals: tuple, tangents: tuple) -> tuple:
    """Pass 4: the tangent in the logits; the teacher (indices, log-probs) is a constant."""
    logits, indices, log_probs = primals
    value, slope = _value_and_slope(logits, indices, log_probs, tail)
    d_logits = tangents[0]
    if isinstance(d_logits, SymbolicZero):
        return value, jnp.zeros_like(value)
    return value, jnp.sum(slope * d_logits.astype(slope.dtype), axis=-1)


_sparse_kl.defjvp(_sparse_kl_jvp, symbolic_zeros=True)


def sparse_teacher_kl(
    logits: jax.Array, indices: jax.Array, log_probs: jax.Array, tail: Tail, dtype: jnp.dtype
) -> jax.Array:
    """KL from the sparse teacher to ``softmax(logits)`` per row, ``logits`` ``[..., V]``
    (already divided by the temperature), computed in ``dtype``; the teacher frozen."""
    shape = logits.shape
    flat = logits.astype(dtype).reshape(-1, shape[-1])
    k = indices.shape[-1]
    teacher = lax.stop_gradient(log_probs.astype(dtype)).reshape(-1, k)
    return _sparse_kl(tail, flat, indices.reshape(-1, k), teacher).reshape(shape[:-1])


def sparse_distillation_dtype(student: jax.Array, log_probs: jax.Array) -> jnp.dtype:
    return compute_dtype(student.dtype, log_probs.dtype)


def check_sparse_values(fn: str, logits_name: str = "student_logits"):
    """An ``export_loss`` check: the teacher's values, looked at before ``jit`` hides them."""

    def check(student_logits: ArrayLike, teacher_indices: ArrayLike,
              teacher_log_probs: ArrayLike, **_: object) -> None:
        shape = np.shape(student_logits)
        if shape:
            check_sparse_teacher(fn, shape, teacher_indices, teacher_log_probs,
                                 logits_name=logits_name)

    return check


@export_loss((TEMPERATURE,), check=check_sparse_values("sparse_distillation_loss"))
def sparse_distillation_loss(
    student_logits: ArrayLike,
    teacher_indices: ArrayLike,
    teacher_log_probs: ArrayLike,
    *,
    temperature: ArrayLike = 2.0,
    tail: str = "renormalize",
    reduction: str = "none",
) -> jax.Array:
    r"""Distillation from a teacher known by its top-k classes and their log-probabilities.

    With the teacher's top-k classes :math:`I_n`, their probabilities
    :math:`a_{n,i} = e^{\ell_{n,i}}` (``teacher_log_probs``
    :math:`\ell`), their mass :math:`A_n = \sum_{i \in I_n} a_{n,i}` and the
    student's :math:`p_n = \operatorname{softmax}(s_n / T)`:

    .. math::
      \text{renormalize:}\quad \ell_n = T^2 \sum_{i \in I_n} \frac{a_{n,i}}{A_n}
        \log \frac{a_{n,i} / A_n}{p_{n,i}}

      \text{bucket:}\quad \ell_n = T^2 \Big[\sum_{i \in I_n} a_{n,i}
        \log \frac{a_{n,i}}{p_{n,i}} + (1 - A_n) \log \frac{1 - A_n}{1 - P_n}\Big],
        \qquad P_n = \sum_{i \in I_n} p_{n,i}

    ``"renormalize"`` takes the teacher to be its top k renormalised (0
    elsewhere): the KL over all classes of that teacher from the student.
    ``"bucket"`` keeps the top k as they are and adds one category, the
    teacher's leftover mass :math:`1 - A_n` against the student's mass outside
    the top k, :math:`1 - P_n`: a KL over :math:`k + 1` categories, which also
    penalises a student whose tail is heavier or lighter than the teacher's.
    With :math:`k = V` both are the dense ``distillation_loss``.

    The teacher's log-probabilities are read as stored, at the temperature the
    pipeline used (pass ``log_softmax(t / T)`` to match ``distillation_loss``
    with teacher logits ``t``); ``temperature`` softens the student and sets
    the :math:`T^2` factor. The teacher is not differentiated, and it is read
    as its ``[..., k]`` arrays only: no N x V teacher array is formed. Outside
    ``jit`` the indices are checked to lie in ``[0, V)`` and be distinct within
    a row, and the log-probabilities to be at most 0 with at most unit mass per
    row; under ``jit`` an index outside ``[0, V)`` gives NaN.

    Args:
      student_logits: the student's unnormalised scores ``[..., V]`` (the class
        axis is the last).
      teacher_indices: the teacher's top-k classes ``[..., k]``, integers in
        ``[0, V)``, distinct within a row.
      teacher_log_probs: their log-probabilities ``[..., k]`` (at most 0; -inf
        for probability 0).
      temperature: :math:`T > 0`.
      tail: ``"renormalize"`` or ``"bucket"``, as above.
      reduction: ``"none"`` (one loss per row), ``"mean"`` over the rows or
        ``"sum"``.

    Returns:
      The loss per row (``student_logits`` without its last axis, float32 or
      wider), or its reduction, a scalar.

    Example:
      >>> import jax, jax.numpy as jnp, softxent
      >>> s = jnp.array([[1.0, 0.0, 0.0, -1.0]])
      >>> top = jnp.array([[0, 1]])  # the teacher's two likeliest classes, p = 0.6, 0.3
      >>> log_q = jnp.log(jnp.array([[0.6, 0.3]]))
      >>> round(float(softxent.sparse_distillation_loss(s, top, log_q, temperature=1.0)[0]), 4)
      0.3233
      >>> round(float(softxent.sparse_distillation_loss(
      ...     s, top, log_q, temperature=1.0, tail="bucket")[0]), 4)
      0.0973

    References:
      Hinton, Vinyals and Dean, Distilling the Knowledge in a Neural Network,
      arXiv:1503.02531, 2015.

      Sparse (top-k) teachers stored offline: Anshumann et al., Sparse Logit
      Sampling: Accelerating Knowledge Distillation in LLMs, ACL 2025; the
      tail bucket: verl, tail-aware top-k KL for on-policy distillation
      (pull request 7855), 2026.
    """
    fn = "sparse_distillation_loss"
    check_reduction(fn, reduction)
    tail_mode = check_tail(fn, tail)
    student = jnp.asarray(student_logits)
    check_floating(fn, "student_logits", student)
    if student.ndim == 0:
        raise ValueError(f"{fn}: student_logits must have a class axis, got a scalar")
    indices, log_probs = check_sparse_teacher(fn, student.shape, teacher_indices,
                                              teacher_log_probs)
    dtype = sparse_distillation_dtype(student, log_probs)
    temperature = jnp.asarray(temperature).astype(dtype)
    kl = sparse_teacher_kl(student.astype(dtype) / temperature, indices, log_probs, tail_mode,
                           dtype)
    return apply_reduction(fn, temperature**2 * kl, reduction)
