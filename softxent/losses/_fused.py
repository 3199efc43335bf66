"""Fused value and logit gradient of the softmax losses whose gradient is ``sum(q) p - q``.

Soft cross-entropy, forward KL and the distillation loss share one gradient in
the logits. Left to autodiff, the log-softmax saves its N x V output and the
backward pass makes several more N x V passes; here the log-softmax is never
formed and the logit tangent is written out.

Passes, for one row of logits ``z`` (``V`` classes) and targets ``q``:

1. Targets (``_read``, the one place the loss kinds differ). Cross-entropy
   smooths ``q' = (1 - alpha) q + alpha / K`` over the ``K`` kept classes; KL
   keeps ``q`` and subtracts its entropy; distillation divides both logit rows
   by ``T`` and takes ``q = softmax(t / T)`` from the teacher's own peak and
   normaliser, which pass 2 computes and the gradient pass reuses; integer
   labels form ``q_c = hot [c = y] + spread w_c`` (``IntegerTargets``) from the
   class index where each block is read, never as an N x V one-hot.
2. Row statistics, one read of the inputs: the peak ``m = max z``, the
   normaliser's excess ``R = S - 1`` over the peak's own ``exp(0) = 1`` (with
   ``S = sum exp(z - m)``), the target mass ``Q = sum q`` and
   ``W = sum q (z - m [- log q])``. ``S = 1 + R`` rounds to 1 once ``R`` is
   below the unit roundoff (one logit 37 above the rest in float64, 17 in
   float32), and ``log S`` and ``1 - p_top`` would lose the whole mass of the
   other classes; so where ``S < 3/2`` (a lone peak holding over 2/3 of the
   mass) ``R`` is summed again without the peak entry (``peak_excess``), elsewhere
   it is ``S - 1``. The peak entry is the one with ``z - m == 0``, formed
   before distillation's scaling by ``1 / T`` so that it is exactly 0 however
   XLA forms it. Distillation's ``q log(q / p)`` is summed as
   ``(sqrt(q) x) sqrt(q)``, so a teacher probability below the smallest normal
   float still counts against a huge log-ratio. On the CPU a large array is
   read a block of rows at a time (``_row_blocked``), so each block's
   temporaries stay in cache.
3. Value. ``log p = z - m - log S`` with ``log S = log1p(R)``, so

       -sum q log p = sum q (log S - (z - m)) = Q log1p(R) - W,

   two sums of terms of one sign (no cancellation), and no log-softmax array.
   KL puts ``- log q`` inside ``W``: ``sum q (log q - log p)``. Distillation's
   KL, small where the student nears its teacher, is summed in pass 2 from the
   differences ``t' - s'`` of the two shifted rows instead (``_divergence``), so
   that two entropy-sized terms do not cancel.
4. Gradient, one elementwise pass. ``d log S / dz_j = exp(z_j - m) / S = p_j``
   and ``dW / dz_j = q_j`` (the entropy term does not depend on ``z``), so

       d loss / dz_j = Q p_j - q_j,

   with ``p`` formed again from ``m`` and ``R``. At a peak that holds more
   than half the mass (``p = 1 / S > 1/2``, so ``R < 1``: no tie) ``p`` rounds
   to 1 where the others' mass is small, and ``Q p - q`` would cancel; there
   ``Q / S = Q - Q R / S`` gives

       d loss / dz_peak = (Q - q_peak) - Q R / S,

   minus the others' mass, with no difference of nearly equal terms: ``Q - q_peak``
   is the other classes' target mass, summed without the peak in pass 2 (as a
   difference it would carry ``Q``'s rounding), and 0 for a one-hot target there.
   Its derivative, ``Q dR / S^2`` formed as ``Q (dR / S - R dR / S^2)``, loses at most a factor
   2 for ``R < 1``; beyond, ``Q p - q`` is kept, whose derivatives are those of
   ``p``. Distillation's ``Q`` is 1 and ``1 - q`` of a saturated teacher is its
   own ``R_t / S_t``. Its logits are ``s / T``, so its gradient in ``s`` is
   ``(Q p - q) / T``; the caller's ``T**2`` makes it ``T (Q p - q)``.
5. Tangents (``_fused_loss_jvp``). In the logits: ``sum_j slope_j dz_j``, linear
   in ``dz``, so JAX transposes it into the VJP and forward mode, reverse mode
   and higher derivatives all work (a ``custom_vjp`` would allow reverse mode
   only). In the targets and the scalar parameter (label smoothing,
   temperature): ``jax.jvp`` of the plainly written reference, so those
   derivatives are the reference's own.

Options of the cross-entropy, in the same passes (``Regularisers``): logit
soft-capping ``z -> c tanh(z / c)`` (Gemma 2) is applied where pass 1 reads the
logits, and the tangent pass multiplies by its derivative ``sech^2(z / c)``;
the z-loss (PaLM), with ``log Z = m + log S`` from pass 2, adds
``lambda Q (log Z)^2`` to the value and ``2 lambda Q log Z p_j`` to the slope:
per unit of target mass, so 1 per probability row, and for integer labels the
row's weight (0 for an ignored row). Distillation caps the student's logits
only (the teacher's are taken as given) and its normaliser is the tempered
student's, ``log Z = m / T + log S``, so that its z-loss ``lambda (log Z)^2``
sits inside the caller's ``T**2`` like the KL term. Neither forms an array of
its own.

The limits are ``masked_log_softmax``'s (``shifted_logits`` in ``_numerics`` is
their one statement): a masked class or a -inf logit has probability 0 and a
zero target there contributes 0; a row with +inf logits splits its mass evenly
over them and is constant in the logits; a fully masked row gives 0.

Where the work runs: XLA's CPU backend reads each reduction's input from a
materialised N x V temporary, so from ``BLOCKED_MIN_ENTRIES`` entries the CPU
computes pass 2 per block of rows and the compiled step keeps no N x V buffer
beyond the gradient; below it the array fits in cache, the time goes to the
exponentials, and pass 2 keeps ``exp(z - m)`` for pass 4. Other backends fuse
the elementwise work into the reductions and take the whole array at once.
bfloat16 inputs are cast to float32 where they are read (per block, and in the
gradient's pass), never copied whole beforehand; distillation's teacher
probabilities are likewise formed where they are read, never as an N x V array.
Integer labels on the CPU take a layout of their own, built around the library
kernels XLA runs plain reductions with (``_hard_labels_on_cpu``).
``tests/test_fast_paths.py`` holds these passes and the references to each other.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from .._numerics import (
    expm1,
    log1p,
    log_total_from_excess,
    nonzero_total,
    peak_excess,
    shifted_logits,
)

# reference(logits, targets, axis, where, parameter): the same loss written plainly.
Reference = Callable[[jax.Array, jax.Array, int, "jax.Array | None", jax.Array], jax.Array]

# Below this many entries the whole-array temporaries fit in cache (time goes
# to the exponentials, which are kept for the gradient); from it on the CPU's
# row-blocked statistics take over, each block holding about BLOCK_ENTRIES.
BLOCKED_MIN_ENTRIES = 1 << 21
BLOCK_ENTRIES = 1 << 18
# (m - z) BIG >= 1 for every entry but the peak of a row whose peak holds over 2/3 of
# its mass (there m - z >= log 2), so min(1, (m - z) BIG) drops the peak by arithmetic,
# which XLA's CPU reductions take along where they would write out a select's input.
_PEAK_DROP = 2.0**100


class Kind(enum.Enum):
    """What the targets are, and so what the scalar parameter means."""

    CROSS_ENTROPY = "cross_entropy"  # probabilities; the parameter is the label smoothing
    KL = "kl"  # probabilities; no parameter
    DISTILLATION = "distillation"  # a teacher's logits; the parameter is the temperature
    # class indices as an IntegerTargets; no parameter (the smoothing is in its weights)
    INTEGER_LABELS = "integer_labels"


class IntegerTargets(NamedTuple):
    """Hard labels as the fused passes read them: ``q_c = hot [c = label] + spread w_c``.

    Every field but ``class_weights`` has the logits' shape with the class axis
    of size 1; ``class_weights`` is size 1 on every other axis. Smoothing
    ``alpha`` over ``K`` kept classes, class weights ``w`` and a row weight ``r``
    (the example weight, 0 for an ignored row) give ``hot = r (1 - alpha) w_label``
    and ``spread = r alpha / K``: the one-hot row is never formed, only compared
    against the class index where a block of logits is read.
    """

    labels: jax.Array  # integer class per row
    hot: jax.Array  # the label's weight
    spread: jax.Array  # the smoothing's weight per unit of class weight
    class_weights: jax.Array  # w, or 1


class Regularisers(NamedTuple):
    """Cross-entropy's options on the logits, static (Python numbers)."""

    z_loss: float = 0.0  # lambda of lambda (log Z)^2; 0 for none
    soft_cap: float | None = None  # c of z -> c tanh(z / c); None for none


NO_REGULARISERS = Regularisers()


class _Setting(NamedTuple):
    """What a call computes, besides its logits and targets."""

    keep: jax.Array | None  # kept classes, the logits' shape; None keeps all
    parameter: jax.Array  # label smoothing, temperature, or unused (0)
    axis: int
    kind: Kind
    dtype: jnp.dtype  # the compute dtype
    regularisers: Regularisers = NO_REGULARISERS
    # Pass 2 reads a block of rows (CPU): its second sum of R runs only where needed.
    blocked: bool = False


def soft_capped(logits: jax.Array, soft_cap: float | None) -> jax.Array:
    """``c tanh(z / c)``, or ``z`` for ``soft_cap=None``.

    ``z / c`` is formed as a product with the constant ``1 / c``: XLA may rewrite a
    division so in one fusion and not in another, and the passes that take the
    row's peak and the ones that find it again must see the same capped logits."""
    if soft_cap is None:
        return logits
    return soft_cap * jnp.tanh(logits * (1 / soft_cap))


def soft_cap_slope(logits: jax.Array, soft_cap: float) -> jax.Array:
    """``d/dz c tanh(z / c) = sech^2(z / c)``: ``4 e / (1 + e)^2`` with ``e = exp(-2 |z / c|)``
    from ``|z / c| = 1`` on, where ``1 - tanh^2`` would round to 0 (from ``|z / c|`` near
    9 in float32, 19 in float64) while the slope is still a normal number."""
    x = logits * (1 / soft_cap)
    e = jnp.exp(-2 * jnp.abs(x))
    # Near 0 the product's derivative 4 e' (1 - e) / (1 + e)^3 cancels in 1 - e, and
    # 1 - tanh^2 (derivative -2 tanh sech^2) loses nothing: each where it is accurate.
    return jnp.where(jnp.abs(x) < 1, 1 - jnp.tanh(x) ** 2, 4 * e / (1 + e) ** 2)


def smooth_targets(
    targets: jax.Array, keep: jax.Array | None, alpha: jax.Array, axis: int
) -> jax.Array:
    """``(1 - alpha) q + alpha / K`` on the kept classes (``K`` of them), 0 on the others."""
    if keep is None:
        return (1 - alpha) * targets + alpha / targets.shape[axis]
    kept = jnp.sum(keep, axis=axis, keepdims=True).astype(targets.dtype)
    return jnp.where(keep, (1 - alpha) * targets + alpha / jnp.maximum(kept, 1), 0)


class _Normaliser(NamedTuple):
    peak: jax.Array  # m, per row, of the logits as given (before any scaling by 1 / T)
    at_peak: jax.Array  # z == m: the peak entry and its ties
    shifted: jax.Array  # shifted_logits, (z - m) / T for distillation
    exponentials: jax.Array  # exp(shifted)
    excess: jax.Array  # R = S - 1, summed without the peak's 1 (pass 2)
    halves: jax.Array | None  # exp(shifted / 2), where asked for
    # The targets' mass off the peak, where asked for: ``Q - q_peak`` without ``Q``'s
    # rounding (a relative u / (1 - q_peak) of it), where R < 1/2; NaN elsewhere, where
    # pass 4 forms Q - q_peak.
    rest: jax.Array | None = None


def _shifted(
    logits: jax.Array, keep: jax.Array | None, peak: jax.Array, scale: jax.Array | None,
    capped: _Capped | None = None,
) -> tuple[jax.Array, jax.Array]:
    """``(z - m) [/ T]`` and where it is exactly 0: at the peak. Scaling after the
    difference keeps that 0 exact: XLA may form ``z / T`` anew for each consumer
    with a different rounding (a division as a product with 1 / T), so that
    ``z / T - max(z / T)`` need not be 0 at the peak; ``z - m`` is one exact
    difference of the same two numbers wherever it is formed."""
    if capped is None:
        difference = shifted_logits(logits, keep, peak)
        at_peak = difference == 0
    else:
        at_peak = capped.at_peak
        difference = capped_difference(capped.raw, capped.top, capped.cap)
        if keep is not None:
            difference = jnp.where(keep, difference, -jnp.inf)
        difference = jnp.where(at_peak, 0, difference)
    return (difference if scale is None else difference / scale), at_peak


class _Capped(NamedTuple):
    """A soft-capped row seen from its raw logits (see ``_capped_peak``)."""

    raw: jax.Array  # the logits before capping
    top: jax.Array  # their peak per row (class axis kept)
    cap: float
    at_peak: jax.Array  # where the raw logits equal it


def _capped_peak(raw: jax.Array | None, keep: jax.Array | None, axis: int,
                 cap: float | None) -> _Capped | None:
    """Where the row's peak is, from the logits before soft-capping (None: not capped).

    ``tanh`` is monotone, so the capped peak sits where the raw one does; but XLA
    forms the capped logits anew in each fusion that reads them, and not always
    with the same rounding, so ``c tanh(z / c) - max`` need not be 0 at the peak
    where it is formed again. The raw logits compare exactly."""
    if raw is None or cap is None:
        return None
    masked = raw if keep is None else jnp.where(keep, raw, -jnp.inf)
    top = jnp.max(masked, axis=axis, keepdims=True)
    return _Capped(raw, top, cap, (masked == top) & (top > -jnp.inf))


def capped_difference(z: jax.Array, m: jax.Array, c: float) -> jax.Array:
    """``c tanh(z / c) - c tanh(m / c)`` for ``z <= m``, without the cancellation of two
    rounded values near ``+-c``: with ``a = z / c``, ``b = m / c``, ``d = b - a >= 0``,

        tanh a - tanh b = -sinh d / (cosh a cosh b)
                        = -2 e^(d - |a| - |b|) (1 - e^(-2d)) / ((1 + e^(-2|a|)) (1 + e^(-2|b|))),

    every exponential of a non-positive number. ``d - |a| - |b|`` is ``-2a`` for
    ``a >= 0``, ``2b`` for ``b <= 0`` and 0 between, written so. Rounding each
    capped logit to the dtype would cost ``u c`` absolutely, far more than the
    capped difference moves with its inputs where ``tanh`` saturates. Infinite
    logits take their limits (``-c (1 + tanh b)`` for ``z = -inf``)."""
    a, b = z * (1 / c), m * (1 / c)
    d = jnp.where(z == m, 0, (m - z) * (1 / c))
    exponent = jnp.where(a >= 0, -2 * a, jnp.where(b <= 0, 2 * b, 0))
    exponent = jnp.where(z == m, 0, exponent)
    denominator = (1 + jnp.exp(-2 * jnp.abs(a))) * (1 + jnp.exp(-2 * jnp.abs(b)))
    return -2 * c * jnp.exp(exponent) * -expm1(-2 * d) / denominator


def _exponentials(shifted: jax.Array, keep: jax.Array | None, capped: _Capped | None,
                  scale: jax.Array | None, less: jax.Array | None = None) -> jax.Array:
    """``exp(shifted - less)``; for a soft-capped row (unscaled) at the places where
    ``shifted`` nears ``-2c``, as ``e^(-2c) exp(lo - less)`` instead.

    There the capped difference is a rounded number of size up to ``2c``, and ``exp``
    turns its rounding into a relative error of ``2c`` units (60 at ``c = 30``). For
    ``z < 0 < m`` (``a = z / c``, ``b = m / c``)

        c tanh a - c tanh b = -2c + lo,   lo = 2c (sigmoid(2a) + sigmoid(-2b)),

    two positive terms, and where ``lo < c`` (so ``|shifted| > lo``) ``e^(-2c)`` (one
    rounding of a constant) times ``exp(lo)`` errs by about ``lo`` units at most. Not
    taken where ``e^(-2c)`` is below the smallest normal float."""
    offset = 0 if less is None else less
    if capped is None or scale is not None:
        return jnp.exp(shifted - offset)
    c = capped.cap
    floor = math.exp(-2 * c)
    if floor < jnp.finfo(shifted.dtype).tiny:
        return jnp.exp(shifted - offset)
    # sigmoid(2a) and sigmoid(-2b) from exponentials of non-positive numbers.
    below, above = (jnp.exp(jnp.minimum(x, 0) * (2 / c)) for x in (capped.raw, -capped.top))
    lo = 2 * c * (below / (1 + below) + above / (1 + above))
    split = (capped.raw < 0) & (capped.top > 0) & (lo < c)
    if keep is not None:
        split = split & keep
    near = jnp.asarray(floor, shifted.dtype) * jnp.exp(jnp.where(split, lo, 0) - offset)
    return jnp.where(split, near, jnp.exp(shifted - offset))


def _normaliser(
    logits: jax.Array,
    keep: jax.Array | None,
    axis: int,
    scale: jax.Array | None = None,
    blocked: bool = False,
    halves: bool = False,
    capped: _Capped | None = None,
    targets: jax.Array | None = None,
) -> _Normaliser:
    """``capped``: the soft-capped ``logits`` seen from their raw values (``_capped_peak``).
    ``targets``: also sum them without the peak entry where ``R`` is (``rest``)."""
    masked = logits if keep is None else jnp.where(keep, logits, -jnp.inf)
    peak = jnp.max(masked, axis=axis, keepdims=True)
    shifted, at_peak = _shifted(logits, keep, peak, scale, capped)
    half = jnp.exp(shifted / 2) if halves else None
    exponentials = half * half if halves else jnp.exp(shifted)
    total = jnp.sum(exponentials, axis=axis, keepdims=True)

    def off_peak(values: jax.Array, where_peak: jax.Array) -> jax.Array:
        return jnp.sum(jnp.where(where_peak, 0, values), axis=axis, keepdims=True)

    def below() -> jax.Array:
        # R is the row's value where it is below 1/2 (log S = log1p(R)): summed from the
        # capped form of the exponentials (``_exponentials``) where it applies.
        if not blocked:
            return off_peak(exponentials if capped is None or halves
                            else _exponentials(shifted, keep, capped, scale), at_peak)
        # Formed anew from the block's inputs inside the branch, so that no block of
        # exponentials is kept for it.
        again, again_at_peak = _shifted(logits, keep, peak, scale, capped)
        again = (jnp.exp(again / 2) ** 2 if halves
                 else _exponentials(again, keep, capped, scale))
        return off_peak(again, again_at_peak)

    excess = peak_excess(total, below, blocked)
    rest = None
    if targets is not None:
        # Summed beside Q from the same read; kept where R < 1/2, where every entry but
        # the peak has z - m <= -log 2 and min(1, (m - z) BIG) drops the peak alone.
        drop = jnp.minimum(1, -shifted * _PEAK_DROP)
        rest = jnp.sum(targets * drop, axis=axis, keepdims=True)
        rest = jnp.where((total < 1.5) & (total > 0), rest, jnp.nan)
    return _Normaliser(peak, at_peak, shifted, exponentials, excess, half, rest)


def _total(excess: jax.Array) -> jax.Array:
    """``S = 1 + R``; 1 for a row with no mass, so that no 0/0 arises."""
    return nonzero_total(1 + excess)


class _Read(NamedTuple):
    """Pass 1's output: the inputs as the loss weighs them."""

    logits: jax.Array  # z, or the student's s (divided by ``scale``)
    scale: jax.Array | None  # distillation: T
    targets: jax.Array  # q: smoothed, as given, or the teacher's probabilities
    log_targets: jax.Array | None  # log q where the loss subtracts q's entropy
    # Distillation: 1 - q, the teacher's mass at the other classes, formed without
    # cancellation where q rounds to 1 (None: Q - q from the targets as given).
    complements: jax.Array | None
    # Distillation, pass 2: sqrt(q), so that q x (a huge log-ratio) is formed as
    # (sqrt(q) x) sqrt(q) where q alone is below the smallest normal float.
    roots: jax.Array | None
    teacher: tuple[jax.Array, ...]  # distillation: the teacher's peak and R
    raw: jax.Array | None = None  # the logits before soft-capping, where capped
    # Distillation, pass 2: the teacher's (t - m_t) / T, which the divergence is formed
    # from (``_divergence``).
    shifted_targets: jax.Array | None = None


def _read(
    logits: jax.Array,
    targets: jax.Array,
    setting: _Setting,
    teacher: tuple[jax.Array, ...] | None = None,
) -> _Read:
    """Pass 1: the one place where the kinds differ.

    ``teacher`` is distillation's row statistics from pass 2, when the gradient
    pass forms the teacher's probabilities again; without it they are computed
    from the teacher's logits (and returned). The entropy's ``log q`` is only
    formed where pass 2 needs it (``teacher is None``).
    """
    cap = setting.regularisers.soft_cap
    read = _read_targets(soft_capped(logits, cap), targets, setting, teacher)
    return read if cap is None else read._replace(raw=logits)


def _read_targets(
    logits: jax.Array,
    targets: jax.Array,
    setting: _Setting,
    teacher: tuple[jax.Array, ...] | None,
) -> _Read:
    """``_read`` on logits already soft-capped (or left as they are)."""
    keep, parameter, axis, kind = setting.keep, setting.parameter, setting.axis, setting.kind
    if kind is Kind.INTEGER_LABELS:
        labels, hot, spread, class_weights = targets
        classes = lax.broadcasted_iota(labels.dtype, logits.shape, axis % logits.ndim)
        spread = spread * class_weights
        if keep is not None:
            spread = jnp.where(keep, spread, 0)
        hot = jnp.where(classes == labels, hot, 0)
        return _Read(logits, None, hot + spread, None, None, None, ())
    if kind is Kind.CROSS_ENTROPY:
        smoothed = smooth_targets(targets, keep, parameter, axis)
        return _Read(logits, None, smoothed, None, None, None, ())
    if kind is Kind.KL:
        live = targets != 0
        log_targets = None if teacher is not None else jnp.log(jnp.where(live, targets, 1))
        return _Read(logits, None, targets, log_targets, None, None, ())
    if teacher is None:
        t_peak, t_at_peak, t_shifted, t_exponentials, t_excess, t_halves, _ = _normaliser(
            targets, keep, axis, parameter, setting.blocked, halves=True
        )
        t_log_total = log_total_from_excess(t_excess)
        probabilities = t_exponentials / _total(t_excess)
        roots = t_halves * lax.rsqrt(_total(t_excess))
        log_targets = t_shifted - t_log_total
        shifted_targets = t_shifted
    else:
        t_peak, t_excess = teacher
        t_shifted, t_at_peak = _shifted(targets, keep, t_peak, parameter)
        probabilities = jnp.exp(t_shifted - log_total_from_excess(t_excess))
        log_targets = roots = shifted_targets = None
    # A teacher's peak holding over half its mass has 1 - q = R_t / S_t (pass 4).
    dominant = t_at_peak & (t_excess < 1)
    complements = jnp.where(dominant, t_excess / _total(t_excess), 1 - probabilities)
    return _Read(
        logits, parameter, probabilities, log_targets, complements, roots, (t_peak, t_excess),
        shifted_targets=shifted_targets,
    )


class _RowParts(NamedTuple):
    # per row: peak, R, Q, W, then the others' mass (soft targets) or the teacher's peak
    # and R (distillation)
    statistics: tuple[jax.Array, ...]
    exponentials: jax.Array  # exp(z - m) of the (scaled, limited) logits
    at_peak: jax.Array  # z == m
    targets: jax.Array  # as the loss weighs them
    complements: jax.Array | None  # _Read's


def _row_statistics(logits: jax.Array, targets: jax.Array, setting: _Setting) -> _RowParts:
    """Passes 1 and 2: per row (class axis kept, size 1) ``m``, ``R``, ``Q`` and ``W``
    over the live targets, then the teacher's statistics for distillation; besides
    them, the full-size arrays they were summed from, for a caller that keeps them."""
    read = _read(logits, targets, setting)
    soft = setting.kind is Kind.CROSS_ENTROPY or setting.kind is Kind.KL
    peak, at_peak, term, exponentials, excess, _, rest = _normaliser(
        read.logits, setting.keep, setting.axis, read.scale, setting.blocked,
        capped=_capped_peak(read.raw, setting.keep, setting.axis, setting.regularisers.soft_cap),
        targets=read.targets if soft else None,
    )
    if setting.kind is Kind.INTEGER_LABELS:
        mass, weighted = _integer_sums(read.logits, targets, setting, peak, term,
                                       capped=read.raw is not None)
        statistics = (peak, excess, mass, weighted)
        return _RowParts(statistics, exponentials, at_peak, read.targets, None)
    mass = jnp.sum(read.targets, axis=setting.axis, keepdims=True)
    if setting.kind is Kind.DISTILLATION:
        divergence = _divergence(term, exponentials, excess, mass, read, setting.axis)
        statistics = (peak, excess, mass, divergence, *read.teacher)
        return _RowParts(statistics, exponentials, at_peak, read.targets, read.complements)
    if read.log_targets is not None:
        term = term - read.log_targets
    if read.roots is None:
        live, products = read.targets != 0, read.targets * term
    else:
        live, products = read.roots != 0, (read.roots * term) * read.roots
    # A zero target contributes 0 even where its logit is -inf (masked or -inf).
    weighted = jnp.sum(jnp.where(live, products, 0), axis=setting.axis, keepdims=True)
    statistics = (peak, excess, mass, weighted, rest)
    return _RowParts(statistics, exponentials, at_peak, read.targets, read.complements)


def _divergence(
    shifted: jax.Array, exponentials: jax.Array, excess: jax.Array, mass: jax.Array,
    read: _Read, axis: int,
) -> jax.Array:
    """Distillation's ``KL(q || p)`` per row, from the differences of the two rows.

    With ``s' = (s - m_s) / T`` and ``t' = (t - m_t) / T`` (both ``<= 0``, so their
    difference ``d = t' - s'`` cannot overflow), ``log(q / p) = d - c`` for
    ``c = log S_t - log S_s``, and

        KL = sum q d - Q c,    c = log1p(sum (e^t' - e^s') / S_s),

    with ``e^t' - e^s' = e^s' expm1(d)`` where ``|d| < 1``. As ``Q log S_s - W`` the
    value would be a difference of two terms of the size of the entropy, which cancel
    to the small divergence of a student near its teacher (a relative 1e-11 lost in
    float64 at a divergence of 1e-4); here both terms shrink with ``d``, and ``c``
    carries no rounding of ``log S_t`` or ``log S_s``. ``q d`` is summed as
    ``(sqrt(q) d) sqrt(q)`` (see ``_Read.roots``).
    """
    d = read.shifted_targets - shifted
    live = read.roots != 0
    cross = jnp.sum(jnp.where(live, (read.roots * d) * read.roots, 0), axis=axis, keepdims=True)
    teacher_exponentials = read.targets * _total(read.teacher[1])
    near = jnp.abs(d) < 1
    gaps = jnp.where(near, exponentials * expm1(jnp.where(near, d, 0)),
                     teacher_exponentials - exponentials)
    gap = jnp.sum(gaps, axis=axis, keepdims=True)
    # gap / S_s lies in (-1, V) (the negative side meets XLA's float64 log1p band), and
    # is -1 where the teacher has no mass on the kept classes, whose divergence is 0.
    ratio = jnp.where(mass > 0, gap / _total(excess), 0)
    return cross - mass * log1p(ratio)


def _integer_sums(
    logits: jax.Array,
    targets: IntegerTargets,
    setting: _Setting,
    peak: jax.Array,
    shifted: jax.Array,
    capped: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """``Q`` and ``W`` of hard labels without the one-hot row: with
    ``q_c = hot [c = y] + spread w_c``,

        Q = hot + spread sum_c w_c,    W = hot (z_y - m) + spread sum_c w_c (z_c - m),

    so the label's term is a gather and the smoothing's one weighted row sum,
    each taken only where its weight is nonzero (a -inf logit times 0 is 0)."""
    keep, axis = setting.keep, setting.axis
    labels, hot, spread, weights = targets
    # An ignored row's label may lie outside [0, V); its hot weight is 0.
    index = jnp.clip(labels, 0, logits.shape[axis] - 1)
    if capped:  # the label's z - m as pass 2 formed it: exactly 0 at the peak
        picked = jnp.take_along_axis(shifted, index, axis)
    else:
        label_keep = None if keep is None else jnp.take_along_axis(keep, index, axis)
        picked = shifted_logits(jnp.take_along_axis(logits, index, axis), label_keep, peak)
    kept_weights = weights if keep is None else jnp.where(keep, weights, 0)
    weight_total = jnp.sum(kept_weights, axis=axis, keepdims=True)
    # Each term weighted before the sum: sum_c w_c (z_c - m) alone may overflow where
    # spread times it (alpha / K of it) does not.
    spread_weights = spread * kept_weights
    spread_term = jnp.where(spread_weights != 0, spread_weights * shifted, 0)
    spread_sum = jnp.sum(spread_term, axis=axis, keepdims=True)
    weighted = jnp.where(hot != 0, hot * picked, 0) + spread_sum
    return hot + spread * weight_total, weighted


def _as_bits(x: jax.Array) -> jax.Array:
    if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize == 2:
        return lax.bitcast_convert_type(x, jnp.uint16)
    return x


def _from_bits(x: jax.Array, dtype: jnp.dtype) -> jax.Array:
    return lax.bitcast_convert_type(x, dtype) if x.dtype != dtype else x


def _row_blocked(
    statistics: Callable[..., tuple[jax.Array, ...]], arrays: list[jax.Array], block_rows: int
) -> tuple[jax.Array, ...]:
    """``statistics`` of ``[..., V]`` or ``[..., 1]`` arrays (rows reduced to size 1), a block
    of rows at a time.

    XLA's CPU backend does not fuse elementwise work into a reduction: each
    reduction reads a materialised N x V temporary, written and read back
    through main memory. A loop over blocks of rows keeps those temporaries in
    cache. The last block is shifted back to end at the last row; its overlap
    is computed twice, with the same result.
    """
    shape = arrays[0].shape
    rows = math.prod(shape[:-1])
    block_rows = min(block_rows, rows)
    dtypes = [a.dtype for a in arrays]
    # XLA's CPU backend widens a loop's bfloat16 operand to float32 outside the
    # loop (a full-size copy); the same bits as unsigned integers stay as they are.
    flat = [_as_bits(a).reshape(rows, a.shape[-1]) for a in arrays]

    def block(i: jax.Array, outputs: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        start = jnp.minimum(i * block_rows, rows - block_rows)
        blocks = (
            _from_bits(lax.dynamic_slice_in_dim(a, start, block_rows), dtype)
            for a, dtype in zip(flat, dtypes, strict=True)
        )
        parts = statistics(*blocks)
        return tuple(
            lax.dynamic_update_slice_in_dim(out, part, start, 0)
            for out, part in zip(outputs, parts, strict=True)
        )

    blocks = (jax.ShapeDtypeStruct((block_rows, a.shape[-1]), a.dtype) for a in arrays)
    shapes = jax.eval_shape(statistics, *blocks)
    initial = tuple(jnp.zeros((rows, 1), s.dtype) for s in shapes)
    outputs = lax.fori_loop(0, -(-rows // block_rows), block, initial)
    return tuple(out.reshape(*shape[:-1], 1) for out in outputs)


def _cast(targets: object, dtype: jnp.dtype) -> object:
    """``targets`` in ``dtype`` (an array: all of it; an ``IntegerTargets``: all but its
    class indices)."""
    if isinstance(targets, IntegerTargets):
        return targets._replace(
            hot=targets.hot.astype(dtype),
            spread=targets.spread.astype(dtype),
            class_weights=targets.class_weights.astype(dtype),
        )
    return targets.astype(dtype)


def _as_rows(x: jax.Array, blocked: bool) -> jax.Array:
    """A target array read whole by every block (class weights, size 1 on the leading
    axes), shaped for the blocks' ``[rows, V]`` when ``blocked``."""
    return x.reshape(1, x.shape[-1]) if blocked and x.ndim > 2 else x


def _statistics(
    logits: jax.Array, targets: object, setting: _Setting
) -> tuple[jax.Array, ...]:
    """Pass 2's row statistics in the compute dtype; row-blocked on the CPU (large arrays,
    class axis last). Target arrays with a row per logit row follow the blocks; the
    others (class weights) are read whole by every block."""
    leaves, structure = jax.tree.flatten(targets)
    follows = [x.shape[:-1] == logits.shape[:-1] for x in leaves]
    keep = [] if setting.keep is None else [setting.keep]

    def whole(
        z: jax.Array, *rest: jax.Array, axis: int = setting.axis, blocked: bool = False
    ) -> tuple:
        blocks = iter(rest)
        t = structure.unflatten([
            next(blocks) if f else _as_rows(x, blocked)
            for x, f in zip(leaves, follows, strict=True)
        ])
        kept = list(blocks)
        z, t = z.astype(setting.dtype), _cast(t, setting.dtype)  # per block: no full-size copy
        local = setting._replace(keep=kept[0] if kept else None, axis=axis, blocked=blocked)
        return _row_statistics(z, t, local).statistics

    arrays = [logits, *(x for x, f in zip(leaves, follows, strict=True) if f), *keep]
    size = logits.size
    # A parameter per row (say a temperature of shape [N, 1]) would not follow the blocks.
    per_row = setting.parameter.ndim != 0
    if setting.axis != logits.ndim - 1 or per_row or size == 0 or size < BLOCKED_MIN_ENTRIES:
        return whole(*arrays)
    block_rows = max(1, BLOCK_ENTRIES // logits.shape[-1])

    def blocked(*arrays: jax.Array) -> tuple:
        return _row_blocked(lambda *b: whole(*b, axis=-1, blocked=True), list(arrays), block_rows)

    return lax.platform_dependent(*arrays, cpu=blocked, default=whole)


def _value_and_slope(
    logits: jax.Array, targets: jax.Array, setting: _Setting
) -> tuple[jax.Array, jax.Array]:
    """Passes 1-4: the loss per row and its gradient in the (scaled) logits, computed in
    the compute dtype whatever the dtypes of ``logits`` and ``targets``. For
    distillation the loss is KL at temperature ``T`` (without the ``T**2``)."""
    if _takes_the_hard_label_pass(logits, setting):
        return lax.platform_dependent(
            cpu=lambda: _hard_labels_on_cpu(logits, targets, setting),
            default=lambda: _general_value_and_slope(logits, targets, setting),
        )
    return _general_value_and_slope(logits, targets, setting)


def _general_value_and_slope(
    logits: jax.Array, targets: jax.Array, setting: _Setting
) -> tuple[jax.Array, jax.Array]:
    if logits.size >= BLOCKED_MIN_ENTRIES:
        return _formed_again(logits, targets, setting)
    # A cache-resident array on the CPU: the time goes to the exponentials, not
    # to memory traffic, so those of the statistics are kept for the gradient.
    # Other backends fuse them into the reductions and form them again.
    return lax.platform_dependent(
        cpu=lambda: _kept_exponentials(logits, targets, setting),
        default=lambda: _formed_again(logits, targets, setting),
    )


def _kept_exponentials(
    logits: jax.Array, targets: jax.Array, setting: _Setting
) -> tuple[jax.Array, jax.Array]:
    dtype = setting.dtype
    parts = _row_statistics(logits.astype(dtype), _cast(targets, dtype), setting)
    peak, excess, mass, weighted, *extra = parts.statistics
    probabilities = parts.exponentials / _total(excess)
    return _value_and_slope_from(
        peak, excess, mass, weighted, probabilities, parts.at_peak, parts.targets,
        parts.complements, setting.axis, setting.regularisers.z_loss, _scale(setting),
        _rest(extra, setting), _divergence_of(weighted, setting),
    )


def _rest(extra: list[jax.Array], setting: _Setting) -> jax.Array | None:
    """Soft targets' mass off the peak (``_Normaliser.rest``), from the statistics."""
    if setting.kind is Kind.DISTILLATION or setting.kind is Kind.INTEGER_LABELS:
        return None
    return extra[0]


def _divergence_of(weighted: jax.Array, setting: _Setting) -> jax.Array | None:
    """Distillation's KL, pass 2's fourth statistic in its place of ``W`` (``_divergence``);
    None for the kinds whose value is ``Q log S - W``."""
    return weighted if setting.kind is Kind.DISTILLATION else None


def _scale(setting: _Setting) -> jax.Array | None:
    """Distillation's temperature, which divides the logits; None for the other kinds."""
    return setting.parameter if setting.kind is Kind.DISTILLATION else None


def _formed_again(
    logits: jax.Array, targets: jax.Array, setting: _Setting
) -> tuple[jax.Array, jax.Array]:
    peak, excess, mass, weighted, *extra = _statistics(logits, targets, setting)
    dtype = setting.dtype
    teacher = tuple(extra) if setting.kind is Kind.DISTILLATION else ()
    read = _read(logits.astype(dtype), _cast(targets, dtype), setting, teacher)
    capped = _capped_peak(read.raw, setting.keep, setting.axis, setting.regularisers.soft_cap)
    shifted, at_peak = _shifted(read.logits, setting.keep, peak, read.scale, capped)
    probabilities = _exponentials(shifted, setting.keep, capped, read.scale,
                                  log_total_from_excess(excess))
    return _value_and_slope_from(
        peak, excess, mass, weighted, probabilities, at_peak, read.targets, read.complements,
        setting.axis, setting.regularisers.z_loss, read.scale, _rest(extra, setting),
        _divergence_of(weighted, setting),
    )


def _value_and_slope_from(
    peak: jax.Array,
    excess: jax.Array,
    mass: jax.Array,
    weighted: jax.Array,
    probabilities: jax.Array,
    at_peak: jax.Array,
    targets: jax.Array,
    complements: jax.Array | None,
    axis: int,
    z_loss: float = 0.0,
    scale: jax.Array | None = None,
    rest: jax.Array | None = None,
    divergence: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Passes 3 and 4: ``Q log1p(R) - W`` and ``Q p - q`` (``(Q - q) - Q R / S`` at the
    peak), plus the z-loss's ``lambda Q (log Z)^2`` and ``2 lambda Q log Z p``
    (``log Z = m / T + log S`` with distillation's ``scale`` T, else ``m + log S``; 0 for
    a row with no finite normaliser).

    ``complements`` is ``Q - q`` where the targets come from logits (distillation:
    ``Q = 1``, and ``1 - q`` is formed from the teacher's own ``R``); ``rest``, per row,
    is soft targets' ``Q - q_peak`` summed without the peak (``_Normaliser.rest``, NaN
    where it was not); elsewhere ``Q - q`` is formed. ``divergence``, distillation's
    KL from pass 2 (``_divergence``), is its value, and ``weighted`` is then unused."""
    log_total = log_total_from_excess(excess)
    value = mass * log_total - weighted if divergence is None else divergence
    others = mass * (excess / _total(excess))
    if complements is None:
        complements = mass - targets
        if rest is not None:
            complements = jnp.where(jnp.isnan(rest), complements, rest)
    dominant = at_peak & (excess < 1)  # p > 1/2 at the peak
    slope = jnp.where(dominant, complements - others, mass * probabilities - targets)
    if z_loss:
        log_z = (peak if scale is None else peak / scale) + log_total
        finite = jnp.isfinite(log_z)
        log_z = jnp.where(finite, log_z, 0)
        value = value + _z_loss_term(z_loss, mass, log_z)
        slope = slope + 2 * z_loss * (mass * log_z) * probabilities
    # A row with +inf logits is constant in them.
    return jnp.squeeze(value, axis), jnp.where(jnp.isposinf(peak), 0, slope)


def _takes_the_hard_label_pass(logits: jax.Array, setting: _Setting) -> bool:
    """Integer labels on every class of a row, uncapped, in the compute dtype, class axis
    last (see ``_hard_labels_on_cpu``)."""
    return (setting.kind is Kind.INTEGER_LABELS and setting.keep is None
            and setting.regularisers.soft_cap is None
            and logits.dtype == setting.dtype and setting.axis == logits.ndim - 1)


def _hard_labels_on_cpu(
    z: jax.Array, targets: IntegerTargets, setting: _Setting
) -> tuple[jax.Array, jax.Array]:
    """Passes 2-4 for integer labels on the CPU, laid out for XLA's CPU backend.

    Its row reductions run as library kernels (YNNPACK) that read a materialised array or
    take simple elementwise work along; a select or a comparison inside one makes XLA
    write its input out first. So here:

    1. ``m = max z``, then ``e = exp(z - m)`` written out once: the reductions below
       read it, and the gradient is formed from it in its own buffer.
    2. ``S = sum e``; ``R`` summed again without the peak as ``e - floor(e)``, which
       drops the entries equal to 1 (``peak_excess``'s second sum, by arithmetic; used
       only where ``S < 3/2``, so the peak is the only such entry); and
       ``sum_c spread w_c (z_c - m)`` (the smoothing's part of ``W``, only if some row
       is smoothed), which takes its own copy of ``m`` from behind an optimisation
       barrier, so that XLA does not form ``z - m`` as an array of its own.
    3. The gradient in one elementwise pass over ``e``: ``Q e / S - spread w`` (at a peak
       holding over half the mass, ``(Q - spread w) - Q R / S``), and at the label the
       row's own ``Q p_y - q_y`` (there ``(Q - q_y) - Q R / S``), computed once per row
       and selected by comparing the label with a row of class indices (an iota's column
       index costs a division per entry). ``e == 1`` marks the peak: an entry just below
       it that rounds to 1 makes ``R >= 1``, where the peak's own form is not taken.

    If a row's statistics are not finite where these sums cannot hold the limits (an
    infinite peak, a NaN, ``0 * inf`` from a zero class weight at a -inf logit), the
    general pass 2 (``_statistics``) recomputes them all.
    """
    labels, hot, spread, weights = _cast(targets, setting.dtype)
    classes = z.shape[-1]
    peak = jnp.max(z, axis=-1, keepdims=True)
    for_spread = lax.optimization_barrier(peak * 1)
    # Per row, not per entry, the limits of an infinite peak: its rows' statistics come
    # from the general pass 2 below and their slope is 0, whatever e holds there.
    exponentials = jnp.exp(z - jnp.where(jnp.isfinite(peak), peak, 0))
    total = jnp.sum(exponentials, axis=-1, keepdims=True)
    dominant = (total < 1.5) & (total > 0)
    # e - floor(e) drops the entries equal to 1: where R < 1/2, the peak's exp(0) alone.
    again = jnp.sum(exponentials - jnp.floor(exponentials), axis=-1, keepdims=True)

    def spread_sum() -> jax.Array:
        # Each term weighted before the sum: sum_c w_c (z_c - m) alone may overflow where
        # spread times it does not.
        return jnp.sum((spread * weights) * (z - for_spread), axis=-1, keepdims=True)

    smoothed = lax.cond(jnp.any(spread != 0), spread_sum, lambda: jnp.zeros_like(total))
    index = jnp.clip(labels, 0, classes - 1)
    at_index = jnp.take_along_axis(z, index, axis=-1)
    picked = at_index - peak
    mass = hot + spread * jnp.sum(weights, axis=-1, keepdims=True)

    def fast() -> tuple[jax.Array, ...]:
        excess = jnp.where(dominant & (again < 0.75), again, total - 1)
        weighted = (jnp.where(hot != 0, hot * picked, 0)
                    + jnp.where(spread != 0, smoothed, 0))
        return peak, excess, mass, weighted

    fine = jnp.isfinite(peak) & ~jnp.isnan(total) & ~jnp.isnan(again)
    fine = fine & ((spread == 0) | ~jnp.isnan(smoothed))
    general = setting._replace(blocked=False)
    peak, excess, mass, weighted = lax.cond(
        jnp.all(fine), fast, lambda: _statistics(z, targets, general)[:4])

    # Passes 3 and 4 as for every kind: the label's entry per row, then the others with
    # the smoothing's share alone as their target.
    log_total = log_total_from_excess(excess)
    z_loss = setting.regularisers.z_loss
    label_weight = (weights if weights.shape[-1] == 1
                    else jnp.take_along_axis(jnp.broadcast_to(weights, z.shape), index, -1))
    label_shifted = shifted_logits(at_index, None, peak)
    value, label_slope = _value_and_slope_from(
        peak, excess, mass, weighted, jnp.exp(label_shifted - log_total), label_shifted == 0,
        hot + spread * label_weight, None, -1, z_loss)
    # The per-row numbers are formed before the gradient's pass, behind a barrier: fused
    # into it, XLA would form them again for every entry of the row.
    label_slope, index, inverse = lax.optimization_barrier(
        (label_slope, index, 1 / _total(excess)))
    _, slope = _value_and_slope_from(
        peak, excess, mass, weighted, exponentials * inverse, exponentials == 1,
        spread * weights, None, -1, z_loss)
    columns = lax.optimization_barrier(jnp.arange(classes, dtype=index.dtype))
    return value, jnp.where(columns == index, label_slope, slope)


def _z_loss_term(z_loss: float, mass: jax.Array, log_z: jax.Array) -> jax.Array:
    """``lambda Q (log Z)^2`` as ``(lambda Q |log Z|) |log Z|``, which overflows only where
    the term does; 0 for a row without weight (an ignored label), whatever its log Z."""
    size = jnp.abs(log_z)
    return jnp.where(mass > 0, (z_loss * mass * size) * size, 0)


class _Static(NamedTuple):
    """The hashable part of a call: ``_fused_loss``'s non-differentiable argument."""

    reference: Reference
    kind: Kind
    axis: int
    dtype: jnp.dtype
    masked: bool  # whether ``keep`` is a mask (else a placeholder scalar)
    regularisers: Regularisers = NO_REGULARISERS

    def setting(self, keep: jax.Array, parameter: jax.Array) -> _Setting:
        return _Setting(keep if self.masked else None, parameter, self.axis, self.kind,
                        self.dtype, self.regularisers)


# The mask and the parameter are arguments, not closures: custom_jvp cannot
# close over tracers.
@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _fused_loss(
    static: _Static, logits: jax.Array, targets: jax.Array, keep: jax.Array, parameter: jax.Array
) -> jax.Array:
    return _value_and_slope(logits, targets, static.setting(keep, parameter))[0]


def _is_symbolic_zero(x: object) -> bool:
    return isinstance(x, SymbolicZero)


def _fused_loss_jvp(static: _Static, primals: tuple, tangents: tuple) -> tuple:
    """Pass 5: the logit tangent from the slope; the others from the reference."""
    logits, targets, keep, parameter = primals
    d_logits, d_targets, _, d_parameter = tangents
    setting = static.setting(keep, parameter)
    value, slope = _value_and_slope(logits, targets, setting)
    tangent = jnp.zeros(value.shape, value.dtype)
    cap = static.regularisers.soft_cap
    if not isinstance(d_logits, SymbolicZero):
        d_logits = d_logits.astype(static.dtype)
        if static.kind is Kind.DISTILLATION:
            d_logits = d_logits / parameter  # the slope is in s / T
        if cap is not None:  # the slope is in c tanh(z / c)
            d_logits = d_logits * soft_cap_slope(logits.astype(static.dtype), cap)
        tangent = jnp.sum(slope * d_logits, axis=static.axis)
    symbolic = jax.tree.leaves((d_targets, d_parameter), is_leaf=_is_symbolic_zero)
    if not all(isinstance(d, SymbolicZero) for d in symbolic):
        d_targets, d_parameter = (
            jnp.zeros(d.shape, d.dtype) if isinstance(d, SymbolicZero) else d
            for d in (d_targets, d_parameter)
        )

        def plain(t: jax.Array, p: jax.Array) -> jax.Array:
            raw, t = logits.astype(static.dtype), t.astype(static.dtype)
            z = soft_capped(raw, cap)
            value = static.reference(z, t, static.axis, setting.keep, p)
            z_loss = static.regularisers.z_loss
            if z_loss:  # lambda Q (log Z)^2 depends on the targets through Q
                mass = jnp.sum(_read(raw, t, setting._replace(parameter=p)).targets,
                               axis=static.axis)
                kept = z if setting.keep is None else jnp.where(setting.keep, z, -jnp.inf)
                if static.kind is Kind.DISTILLATION:  # the tempered normaliser moves with T
                    kept = kept / p
                log_z = jax.nn.logsumexp(kept, axis=static.axis)
                log_z = jnp.where(jnp.isfinite(log_z), log_z, 0)
                value = value + _z_loss_term(z_loss, mass, log_z)
            return value

        _, other = jax.jvp(plain, (targets, parameter), (d_targets, d_parameter))
        tangent = tangent + other
    return value, tangent


_fused_loss.defjvp(_fused_loss_jvp, symbolic_zeros=True)


def softmax_target_loss(
    reference: Reference,
    logits: jax.Array,
    targets: jax.Array,
    axis: int,
    where: jax.Array | None,
    *,
    kind: Kind,
    parameter: jax.Array | None = None,
    dtype: jnp.dtype | None = None,
    regularisers: Regularisers = NO_REGULARISERS,
) -> jax.Array:
    """Soft cross-entropy, KL or distillation (``kind``) with the fused passes.

    ``targets`` must be 0 at masked classes (probabilities) or are the teacher's
    logits (distillation: no gradient flows into them, so pass them through
    ``lax.stop_gradient``). ``parameter`` is the label smoothing or the
    temperature; it is applied here, not by the caller, so that no N x V array
    of smoothed targets or scaled logits is made before the CPU's row loop.
    Distillation returns KL at that temperature; the caller multiplies by
    ``T**2``. ``reference(logits, targets, axis, where, parameter)`` is the same loss
    written plainly; only its derivatives in the targets and the parameter are
    used. ``dtype`` is the compute dtype, when ``logits`` and ``targets`` come in
    a narrower one (bfloat16): they are cast where they are read.
    ``regularisers`` adds the z-loss and soft-caps the logits (see the module
    docstring); the reference is called on the capped logits, without the z-loss,
    whose derivatives in the targets (through ``Q``) and in distillation's
    temperature (through the tempered normaliser) pass 5 adds itself.
    """
    dtype = logits.dtype if dtype is None else jnp.dtype(dtype)
    masked = where is not None
    keep = jnp.broadcast_to(where, logits.shape) if masked else jnp.ones((), dtype=bool)
    parameter = jnp.zeros((), dtype) if parameter is None else parameter
    static = _Static(reference, Kind(kind), axis, dtype, masked, regularisers)
    return _fused_loss(static, logits, targets, keep, parameter)
