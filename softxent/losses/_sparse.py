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
   would lose ``R`` below the unit roundoff), and its logits at the teacher's
   classes, a gather ``z_I - m`` (``k`` entries).
2. Value. With ``log p_i = z_i - m - log S``,

       renormalize:  sum_i q_i (log q_i - log p_i)
                   = sum_i q_i (log a_i - log A - (z_i - m)) + log S,
       bucket:       sum_i a_i (log a_i - (z_i - m) + log S)
                     + (1 - A) (log(1 - A) - log S_out + log S),

   where ``log S_out`` is the log of the student's mass outside the top k,
   summed from that tail's own peak (the k gathered places of ``z - m`` set to
   -inf by a scatter), so that it stays finite where ``S_out`` underflows,
   and never as ``log(S - S_I)``, which would cancel when the student's tail
   is small.
3. Gradient, one elementwise pass. Renormalised it is that of a soft
   cross-entropy, ``p_j - q_j``. With the bucket, ``d(-log p_i)/dz_j =
   p_j - [i = j]`` and ``d(-log(1 - P_I))/dz_j = p_j - [j not in I] p_j / (1 - P_I)``,
   so with the teacher's masses summing to 1,

       d loss / dz_j = p_j - a_j           (j in I),
                       p_j - (1 - A) e_j / S_out   (j not in I):

   the teacher's tail is spread over the student's tail in the student's own
   proportions, each term formed from its log (``exp(z_j - m - log S_out)``).
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

from .._numerics import expm1, shifted_logits, xlogy
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


def _value_and_slope(
    logits: jax.Array, indices: jax.Array, log_probs: jax.Array, tail: Tail
) -> tuple[jax.Array, jax.Array]:
    """Passes 1-3 on ``[R, V]`` logits and ``[R, k]`` teacher rows: KL per row, slope."""
    rows, classes = logits.shape
    k = indices.shape[-1]
    peak = jnp.max(logits, axis=-1, keepdims=True)
    # z - m, with the limit of a row holding +inf: its mass split evenly over those entries.
    shifted = shifted_logits(logits, None, peak)
    exponentials = jnp.exp(shifted)
    valid = (indices >= 0) & (indices < classes)
    # A gather outside [0, V) would wrap or clip; NaN makes the mistake visible under jit.
    picked = jnp.where(valid, jnp.take_along_axis(shifted, indices, axis=-1), jnp.nan)
    row = jnp.arange(rows)[:, None]
    log_mass = jax.nn.logsumexp(log_probs, axis=-1, keepdims=True)
    live = log_probs > -jnp.inf
    total = jnp.sum(exponentials, axis=-1, keepdims=True)
    # log S = log1p(R), R the mass below the peak summed without the peak's exp(0) = 1:
    # S - 1 would lose R once it is below the unit roundoff (see _fused's pass 2).
    below = jnp.sum(jnp.where(shifted == 0, 0, exponentials), axis=-1, keepdims=True)
    alone = (total < 1.5) & (below < 0.75)
    excess = jnp.where(alone, below, total - 1)
    log_total = jnp.where(total > 0, jnp.log1p(excess), 0)
    # A lone peak holding over 2/3 of the mass is among the teacher's top k where a
    # gathered z - m is 0; its slope p - q would cancel there (both near 1).
    at_peak = alone & (picked == 0)
    peak_in_top = jnp.any(at_peak, axis=-1, keepdims=True)

    def peak_slope(slope: jax.Array, others: jax.Array, mass: jax.Array) -> jax.Array:
        """At such a peak, ``p - q = (mass - q) - mass R / S`` with ``mass - q`` the
        teacher's mass at its other classes (``others``), summed where it lies."""
        lone = peak_in_top & (shifted == 0)
        return jnp.where(lone, others - mass * excess / (1 + excess), slope)

    if tail is Tail.RENORMALIZE:
        has_mass = log_mass > -jnp.inf
        log_q = log_probs - jnp.where(has_mass, log_mass, 0)
        q = jnp.where(live, jnp.exp(log_q), 0)
        mass = has_mass.astype(logits.dtype)
        value = mass * log_total + jnp.sum(
            jnp.where(live, q * (log_q - picked), 0), axis=-1, keepdims=True)
        slope = (mass * jnp.exp(shifted - log_total)).at[row, indices].add(-q)
        others = jnp.sum(jnp.where(at_peak, 0, q), axis=-1, keepdims=True)
        slope = peak_slope(slope, others, mass)
        return value[:, 0], _constant_at_infinity(peak, slope)
    a = jnp.where(live, jnp.exp(log_probs), 0)
    # The student's mass outside the top k in log space, log S_out, from its own peak:
    # S_out itself underflows where the top k hold all but e^-745 of the mass.
    outside = shifted.at[row, indices].set(-jnp.inf)
    outside_peak = lax.stop_gradient(jnp.max(outside, axis=-1, keepdims=True))
    outside_peak = jnp.where(jnp.isfinite(outside_peak), outside_peak, 0)
    outside_sum = jnp.sum(jnp.exp(outside - outside_peak), axis=-1, keepdims=True)
    log_outside = outside_peak + jnp.log(outside_sum)
    # The teacher's leftover mass 1 - A from log A without cancellation; 0 when the
    # top k is every class (what remains is rounding), and never below 0.
    rest = jnp.zeros_like(log_mass) if k == classes else jnp.maximum(-expm1(log_mass), 0)
    tail_value = xlogy(rest, jnp.log(rest) - log_outside + log_total)
    value = tail_value + jnp.sum(
        jnp.where(live, a * (log_probs - picked + log_total), 0), axis=-1, keepdims=True)
    # Outside the top k: p_j - (1 - A) e_j / S_out, each term from its log.
    spread = jnp.where(rest > 0, rest * jnp.exp(outside - jnp.where(rest > 0, log_outside, 0)),
                       0)
    slope = jnp.exp(outside - log_total) - spread
    slope = slope.at[row, indices].set(jnp.exp(picked - log_total) - a)
    # With the bucket the teacher's masses sum to 1: 1 - a_peak = rest + the others'.
    others = rest + jnp.sum(jnp.where(at_peak, 0, a), axis=-1, keepdims=True)
    slope = peak_slope(slope, others, jnp.ones_like(others))
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
