"""Fast values and derivatives for the softmax losses whose logit gradient is ``sum(q) p - q``.

Soft cross-entropy, forward KL and the distillation loss share one gradient in
the logits: ``sum(q) * softmax(z) - q`` on the kept classes. Left to autodiff,
the log-softmax saves its N x V output and the backward pass makes several more
N x V passes. Here the value is computed from the row's log-sum-exp without
forming the log-softmax (a pass for the peak, one for the sum of exponentials,
one for the weighted sum of the targets), and the logit tangent is written out
with ``jax.custom_jvp``. XLA's CPU backend reads each reduction's input from a
materialised N x V temporary, so on the CPU the row statistics of a large array
are computed a block of rows at a time (``_row_blocked``): the temporaries stay
in cache and the compiled step keeps no N x V buffer beyond the gradient
(``softxent bench`` reports the temp memory). Other backends fuse the
elementwise work into the reductions and take the whole array at once. On the
CPU an array small enough to stay in cache (under ``BLOCKED_MIN_ENTRIES``) is
taken whole and keeps its ``exp(z - m)`` for the gradient: there the time goes
to the exponentials, not to memory traffic.
bfloat16 inputs are cast to float32 where they are read (per block, and in the
gradient's pass), not copied whole beforehand. The tangent is linear in the
tangents, so JAX transposes it into the VJP: forward mode (``jacfwd``), reverse
mode and higher derivatives all work, which a ``custom_vjp`` would not allow.

The limits are the reference's (``masked_log_softmax`` followed by ``xlogy``):
a masked class or a -inf logit has probability 0 and a zero target there
contributes 0; a row with +inf logits splits its mass evenly over them and is
constant in the logits; a fully masked row gives 0. Tangents in the targets and
in the scalar parameter (label smoothing, temperature) are the reference
formula's own (``jax.jvp`` of it), so those derivatives are unchanged.
Distillation's teacher probabilities are formed from the teacher's logits where
they are read (per block on the CPU, and in the gradient's pass), from the
teacher's row statistics, so they are never an N x V array either.
``tests/test_fast_paths.py`` holds the fast paths and the references to each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

# reference(logits, targets, axis, where, parameter): the same loss written plainly.
Reference = Callable[[jax.Array, jax.Array, int, "jax.Array | None", jax.Array], jax.Array]

# What the targets are, and so what the scalar parameter means:
CROSS_ENTROPY = "cross_entropy"  # probabilities; the parameter is the label smoothing
KL = "kl"  # probabilities; no parameter
DISTILLATION = "distillation"  # a teacher's logits; the parameter is the temperature


class _Setting(NamedTuple):
    """What a call of ``softmax_target_loss`` computes, besides its logits and targets."""

    keep: jax.Array | None  # kept classes, the logits' shape; None keeps all
    parameter: jax.Array  # label smoothing, temperature, or unused (0)
    axis: int
    kind: str
    dtype: jnp.dtype  # the compute dtype


# Below this many entries the whole-array temporaries fit in cache (time goes
# to the exponentials, which are kept for the gradient); from it on the CPU's
# row-blocked statistics take over, each block holding about BLOCK_ENTRIES.
BLOCKED_MIN_ENTRIES = 1 << 21
BLOCK_ENTRIES = 1 << 18


def _limited(logits: jax.Array, keep: jax.Array | None, pos_inf_row: jax.Array) -> jax.Array:
    """The logits with masked classes at -inf and a +inf row at its limit.

    A row holding +inf takes its limit: 0 at the +inf entries, -inf elsewhere.
    """
    if keep is not None:
        logits = jnp.where(keep, logits, -jnp.inf)
    limit = jnp.where(jnp.isposinf(logits), 0, -jnp.inf).astype(logits.dtype)
    return jnp.where(pos_inf_row, limit, logits)


def smooth_targets(
    targets: jax.Array, keep: jax.Array | None, alpha: jax.Array, axis: int
) -> jax.Array:
    """``(1 - alpha) q + alpha / K`` on the kept classes (``K`` of them), 0 on the others."""
    if keep is None:
        return (1 - alpha) * targets + alpha / targets.shape[axis]
    kept = jnp.sum(keep, axis=axis, keepdims=True).astype(targets.dtype)
    return jnp.where(keep, (1 - alpha) * targets + alpha / jnp.maximum(kept, 1), 0)


class _Normaliser(NamedTuple):
    peak: jax.Array  # per row
    shifted: jax.Array  # the limited logits less their shift
    exponentials: jax.Array  # exp(shifted)
    total: jax.Array  # S, the row sum of the exponentials


def _normaliser(logits: jax.Array, keep: jax.Array | None, axis: int) -> _Normaliser:
    masked = logits if keep is None else jnp.where(keep, logits, -jnp.inf)
    peak = jnp.max(masked, axis=axis, keepdims=True)
    shifted = _log_probabilities(logits, keep, peak, 0)
    exponentials = jnp.exp(shifted)
    return _Normaliser(peak, shifted, exponentials, jnp.sum(exponentials, axis=axis, keepdims=True))


def _nonzero(total: jax.Array) -> jax.Array:
    """``S`` with 1 for a row with no finite mass (fully masked), whose exponentials are all 0."""
    return jnp.where(total > 0, total, 1)


def _log_total(total: jax.Array) -> jax.Array:
    return jnp.log(_nonzero(total))


def _log_probabilities(
    logits: jax.Array, keep: jax.Array | None, peak: jax.Array, log_total: jax.Array | int
) -> jax.Array:
    """The log-softmax from the row's peak and log normaliser (``masked_log_softmax``'s
    value); with ``log_total=0``, the limited logits less their shift."""
    shift = jnp.where(jnp.isfinite(peak), peak, 0)
    return _limited(logits, keep, jnp.isposinf(peak)) - shift - log_total


class _RowParts(NamedTuple):
    statistics: tuple[jax.Array, ...]  # per row: see _row_statistics
    exponentials: jax.Array  # exp(z - m) of the (scaled, limited) logits
    targets: jax.Array  # as the loss weighs them: smoothed, or the teacher's probabilities


def _row_statistics(logits: jax.Array, targets: jax.Array, setting: _Setting) -> _RowParts:
    """Per row (class axis kept, size 1): the peak logit, ``S = sum exp(z - m)``,
    the target mass and ``sum q (z - m [- log q])`` over the live targets; for
    distillation also the teacher's peak and log normaliser. Besides them, the
    full-size arrays they were summed from, for a caller that keeps them.

    ``-sum q log p = sum(q) log S - sum q (z - m)``: two sums of terms of one
    sign (no cancellation), and no log-softmax array.
    """
    keep, parameter, axis, kind, _ = setting
    teacher: tuple[jax.Array, ...] = ()
    log_targets = None
    if kind == DISTILLATION:
        logits = logits / parameter
        t_peak, t_shifted, t_exponentials, t_total = _normaliser(targets / parameter, keep, axis)
        teacher = (t_peak, _log_total(t_total))
        log_targets = t_shifted - teacher[1]
        targets = t_exponentials / _nonzero(t_total)
    elif kind == CROSS_ENTROPY:
        targets = smooth_targets(targets, keep, parameter, axis)
    peak, term, exponentials, total = _normaliser(logits, keep, axis)
    live = targets != 0
    if kind != CROSS_ENTROPY:
        if log_targets is None:
            log_targets = jnp.log(jnp.where(live, targets, 1))
        term = term - log_targets
    mass = jnp.sum(targets, axis=axis, keepdims=True)
    # A zero target contributes 0 even where its logit is -inf (masked or -inf).
    weighted = jnp.sum(jnp.where(live, targets * term, 0), axis=axis, keepdims=True)
    return _RowParts((peak, total, mass, weighted, *teacher), exponentials, targets)


def _as_bits(x: jax.Array) -> jax.Array:
    if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize == 2:
        return lax.bitcast_convert_type(x, jnp.uint16)
    return x


def _from_bits(x: jax.Array, dtype: jnp.dtype) -> jax.Array:
    return lax.bitcast_convert_type(x, dtype) if x.dtype != dtype else x


def _row_blocked(
    statistics: Callable[..., tuple[jax.Array, ...]], arrays: list[jax.Array], block_rows: int
) -> tuple[jax.Array, ...]:
    """``statistics`` of ``[..., V]`` arrays (rows reduced to size 1), a block of rows at a time.

    XLA's CPU backend does not fuse elementwise work into a reduction: each
    reduction reads a materialised N x V temporary, written and read back
    through main memory. A loop over blocks of rows keeps those temporaries in
    cache. The last block is shifted back to end at the last row; its overlap
    is computed twice, with the same result.
    """
    shape = arrays[0].shape
    rows, classes = math.prod(shape[:-1]), shape[-1]
    block_rows = min(block_rows, rows)
    dtypes = [a.dtype for a in arrays]
    # XLA's CPU backend widens a loop's bfloat16 operand to float32 outside the
    # loop (a full-size copy); the same bits as unsigned integers stay as they are.
    flat = [_as_bits(a).reshape(rows, classes) for a in arrays]

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

    blocks = (jax.ShapeDtypeStruct((block_rows, classes), d) for d in dtypes)
    shapes = jax.eval_shape(statistics, *blocks)
    initial = tuple(jnp.zeros((rows, 1), s.dtype) for s in shapes)
    outputs = lax.fori_loop(0, -(-rows // block_rows), block, initial)
    return tuple(out.reshape(*shape[:-1], 1) for out in outputs)


def _statistics(
    logits: jax.Array, targets: jax.Array, setting: _Setting
) -> tuple[jax.Array, ...]:
    """``_row_statistics`` in the compute dtype; row-blocked on the CPU (large arrays, class
    axis last)."""

    def whole(z: jax.Array, t: jax.Array, *kept: jax.Array, axis: int = setting.axis) -> tuple:
        z, t = z.astype(setting.dtype), t.astype(setting.dtype)  # per block: no full-size copy
        keep = kept[0] if kept else None
        return _row_statistics(z, t, setting._replace(keep=keep, axis=axis)).statistics

    arrays = [logits, targets, *([] if setting.keep is None else [setting.keep])]
    size = logits.size
    # A parameter per row (say a temperature of shape [N, 1]) would not follow the blocks.
    per_row = setting.parameter.ndim != 0
    if setting.axis != logits.ndim - 1 or per_row or size == 0 or size < BLOCKED_MIN_ENTRIES:
        return whole(*arrays)
    block_rows = max(1, BLOCK_ENTRIES // logits.shape[-1])

    def blocked(*arrays: jax.Array) -> tuple:
        return _row_blocked(lambda *b: whole(*b, axis=-1), list(arrays), block_rows)

    return lax.platform_dependent(*arrays, cpu=blocked, default=whole)


def _value_and_slope(
    logits: jax.Array, targets: jax.Array, setting: _Setting
) -> tuple[jax.Array, jax.Array]:
    """The loss per row and its gradient in the logits (targets are 0 at masked classes),
    computed in ``dtype`` whatever the dtypes of ``logits`` and ``targets``. For
    distillation the loss is KL at temperature ``T`` (without the ``T**2``) and the
    gradient is in ``logits / T``."""
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
    parts = _row_statistics(logits.astype(dtype), targets.astype(dtype), setting)
    peak, total, mass, weighted, *_ = parts.statistics
    probabilities = parts.exponentials / _nonzero(total)
    return _value_and_slope_from(
        peak, _log_total(total), mass, weighted, probabilities, parts.targets, setting.axis
    )


def _formed_again(
    logits: jax.Array, targets: jax.Array, setting: _Setting
) -> tuple[jax.Array, jax.Array]:
    peak, total, mass, weighted, *teacher = _statistics(logits, targets, setting)
    keep, parameter, axis, kind, dtype = setting
    logits, targets = logits.astype(dtype), targets.astype(dtype)
    if kind == DISTILLATION:
        logits = logits / parameter
        targets = jnp.exp(_log_probabilities(targets / parameter, keep, *teacher))
    elif kind == CROSS_ENTROPY:
        targets = smooth_targets(targets, keep, parameter, axis)
    log_total = _log_total(total)
    probabilities = jnp.exp(_log_probabilities(logits, keep, peak, log_total))
    return _value_and_slope_from(peak, log_total, mass, weighted, probabilities, targets, axis)


def _value_and_slope_from(
    peak: jax.Array,
    log_total: jax.Array,
    mass: jax.Array,
    weighted: jax.Array,
    probabilities: jax.Array,
    targets: jax.Array,
    axis: int,
) -> tuple[jax.Array, jax.Array]:
    value = jnp.squeeze(mass * log_total - weighted, axis)
    # A row with +inf logits is constant in them.
    return value, jnp.where(jnp.isposinf(peak), 0, mass * probabilities - targets)


def softmax_target_loss(
    reference: Reference,
    logits: jax.Array,
    targets: jax.Array,
    axis: int,
    where: jax.Array | None,
    *,
    kind: str,
    parameter: jax.Array | None = None,
    dtype: jnp.dtype | None = None,
) -> jax.Array:
    """Soft cross-entropy, KL or distillation (``kind``) with the fast logit tangent.

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
    """
    dtype = logits.dtype if dtype is None else jnp.dtype(dtype)
    masked = where is not None
    keep_arg = jnp.broadcast_to(where, logits.shape) if masked else jnp.ones((), dtype=bool)
    parameter = jnp.zeros((), dtype) if parameter is None else parameter

    def parts(z, t, keep_arg, parameter):
        keep = keep_arg if masked else None
        return _value_and_slope(z, t, _Setting(keep, parameter, axis, kind, dtype))

    # The mask and the parameter are arguments, not closures: custom_jvp cannot
    # close over tracers.
    @jax.custom_jvp
    def loss(z, t, keep_arg, parameter):
        return parts(z, t, keep_arg, parameter)[0]

    def loss_jvp(primals, tangents):
        z, t, keep_arg, parameter = primals
        dz, dt, _, d_parameter = tangents
        value, slope = parts(z, t, keep_arg, parameter)
        tangent = jnp.zeros(value.shape, value.dtype)
        if not isinstance(dz, SymbolicZero):
            dz = dz.astype(dtype)
            if kind == DISTILLATION:
                dz = dz / parameter
            tangent = jnp.sum(slope * dz, axis=axis)
        if not (isinstance(dt, SymbolicZero) and isinstance(d_parameter, SymbolicZero)):
            dt, d_parameter = (
                jnp.zeros(d.shape, d.dtype) if isinstance(d, SymbolicZero) else d
                for d in (dt, d_parameter)
            )
            keep = keep_arg if masked else None

            def plain(t, p):
                return reference(z.astype(dtype), t.astype(dtype), axis, keep, p)

            _, other = jax.jvp(plain, (t, parameter), (dt, d_parameter))
            tangent = tangent + other
        return value, tangent

    loss.defjvp(loss_jvp, symbolic_zeros=True)
    return loss(logits, targets, keep_arg, parameter)
