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
elementwise work into the reductions and take the whole array at once.
bfloat16 inputs are cast to float32 where they are read (per block, and in the
gradient's pass), not copied whole beforehand. The
tangent is linear in the tangents, so JAX
transposes it into the VJP: forward mode (``jacfwd``), reverse mode and higher
derivatives all work, which a ``custom_vjp`` would not allow.

The limits are the reference's (``masked_log_softmax`` followed by ``xlogy``):
a masked class or a -inf logit has probability 0 and a zero target there
contributes 0; a row with +inf logits splits its mass evenly over them and is
constant in the logits; a fully masked row gives 0. Tangents in the targets are
the reference formula's own (``jax.jvp`` of it), so derivatives in the targets
are unchanged. ``tests/test_fast_paths.py`` holds the two to each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

Reference = Callable[[jax.Array, jax.Array, int, "jax.Array | None"], jax.Array]


# The CPU's row-blocked statistics: below this many entries the whole-array
# temporaries fit in cache anyway; above it each block holds about this many.
BLOCKED_MIN_ENTRIES = 1 << 20
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


def _row_statistics(
    logits: jax.Array,
    targets: jax.Array,
    log_targets: jax.Array | None,
    keep: jax.Array | None,
    smoothing: jax.Array | None,
    axis: int,
    with_entropy: bool,
) -> tuple[jax.Array, ...]:
    """Per row (class axis kept, size 1): the peak logit, ``S = sum exp(z - m)``,
    the target mass and ``sum q (z - m [- log q])`` over the live targets.

    ``-sum q log p = sum(q) log S - sum q (z - m)``: two sums of terms of one
    sign (no cancellation), and no log-softmax array.
    """
    masked = logits if keep is None else jnp.where(keep, logits, -jnp.inf)
    peak = jnp.max(masked, axis=axis, keepdims=True)
    shift = jnp.where(jnp.isfinite(peak), peak, 0)
    term = _limited(logits, keep, jnp.isposinf(peak)) - shift
    total = jnp.sum(jnp.exp(term), axis=axis, keepdims=True)
    if smoothing is not None:
        targets = smooth_targets(targets, keep, smoothing, axis)
    live = targets != 0
    if with_entropy:
        if log_targets is None:
            log_targets = jnp.log(jnp.where(live, targets, 1))
        term = term - log_targets
    mass = jnp.sum(targets, axis=axis, keepdims=True)
    # A zero target contributes 0 even where its logit is -inf (masked or -inf).
    weighted = jnp.sum(jnp.where(live, targets * term, 0), axis=axis, keepdims=True)
    return peak, total, mass, weighted


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
    logits: jax.Array,
    targets: jax.Array,
    log_targets: jax.Array | None,
    keep: jax.Array | None,
    smoothing: jax.Array | None,
    axis: int,
    with_entropy: bool,
    dtype: jnp.dtype,
) -> tuple[jax.Array, ...]:
    """``_row_statistics`` in ``dtype``; row-blocked on the CPU (large arrays, class axis last)."""
    optional = [a for a in (log_targets, keep) if a is not None]

    def whole(z: jax.Array, q: jax.Array, *rest: jax.Array, axis: int = axis) -> tuple:
        it = iter(rest)
        log_q = None if log_targets is None else next(it)
        kept = None if keep is None else next(it)
        z, q = z.astype(dtype), q.astype(dtype)  # per block: no full-size copy
        return _row_statistics(z, q, log_q, kept, smoothing, axis, with_entropy)

    # Distillation's targets and their logarithms come from the teacher's
    # log-softmax: as loop inputs they would be two N x V buffers, where on the
    # whole array XLA fuses them into the reductions' inputs.
    if (
        axis != logits.ndim - 1
        or log_targets is not None
        or logits.size == 0
        or logits.size < BLOCKED_MIN_ENTRIES
    ):
        return whole(logits, targets, *optional)
    block_rows = max(1, BLOCK_ENTRIES // logits.shape[-1])

    def blocked(*arrays: jax.Array) -> tuple:
        return _row_blocked(lambda *b: whole(*b, axis=-1), list(arrays), block_rows)

    return lax.platform_dependent(
        logits, targets, *optional, cpu=blocked, default=whole
    )


def _value_and_slope(
    logits: jax.Array,
    targets: jax.Array,
    log_targets: jax.Array | None,
    keep: jax.Array | None,
    smoothing: jax.Array | None,
    axis: int,
    with_entropy: bool,
    dtype: jnp.dtype,
) -> tuple[jax.Array, jax.Array]:
    """The loss per row and its gradient in the logits (targets are 0 at masked classes),
    computed in ``dtype`` whatever the dtypes of ``logits`` and ``targets``."""
    peak, total, mass, weighted = _statistics(
        logits, targets, log_targets, keep, smoothing, axis, with_entropy, dtype
    )
    logits, targets = logits.astype(dtype), targets.astype(dtype)
    if smoothing is not None:
        targets = smooth_targets(targets, keep, smoothing, axis)
    pos_inf_row = jnp.isposinf(peak)
    shift = jnp.where(jnp.isfinite(peak), peak, 0)
    log_total = jnp.log(jnp.where(total > 0, total, 1))
    value = jnp.squeeze(mass * log_total - weighted, axis)
    limited = _limited(logits, keep, pos_inf_row)
    slope = jnp.where(pos_inf_row, 0, mass * jnp.exp(limited - shift - log_total) - targets)
    return value, slope


def softmax_target_loss(
    reference: Reference,
    logits: jax.Array,
    targets: jax.Array,
    axis: int,
    where: jax.Array | None,
    *,
    with_entropy: bool,
    log_targets: jax.Array | None = None,
    label_smoothing: jax.Array | None = None,
    dtype: jnp.dtype | None = None,
) -> jax.Array:
    """Soft cross-entropy (``with_entropy=False``) or KL (``True``) with the fast tangent.

    ``targets`` must be 0 at masked classes. ``reference(logits, targets, axis,
    where)`` is the same loss written plainly; only its derivative in the
    targets is used. ``log_targets``, when the caller has it (distillation), saves
    a logarithm per entry; it must carry no gradient. ``label_smoothing`` (a
    scalar) replaces the targets by ``smooth_targets``; it is applied here, not
    by the caller, so that no smoothed N x V copy is made before the row loop.
    ``dtype`` is the compute dtype, when ``logits`` and ``targets`` are passed in
    a narrower one (bfloat16): they are cast where they are read.
    """
    dtype = logits.dtype if dtype is None else jnp.dtype(dtype)
    masked = where is not None
    smoothed = label_smoothing is not None
    keep_arg = jnp.broadcast_to(where, logits.shape) if masked else jnp.ones((), dtype=bool)
    log_arg = jnp.zeros((), dtype) if log_targets is None else log_targets
    alpha_arg = jnp.zeros((), dtype) if label_smoothing is None else label_smoothing

    def parts(z, q, log_q, keep_arg, alpha):
        return _value_and_slope(
            z,
            q,
            None if log_targets is None else log_q,
            keep_arg if masked else None,
            alpha if smoothed else None,
            axis,
            with_entropy,
            dtype,
        )

    def reference_in_targets(z, q, keep_arg, alpha):
        z, q = z.astype(dtype), q.astype(dtype)
        keep = keep_arg if masked else None
        if smoothed:
            q = smooth_targets(q, keep, alpha, axis)
        return reference(z, q, axis, keep)

    # The mask and the smoothing are arguments, not closures: custom_jvp cannot
    # close over tracers.
    @jax.custom_jvp
    def loss(z, q, log_q, keep_arg, alpha):
        return parts(z, q, log_q, keep_arg, alpha)[0]

    def loss_jvp(primals, tangents):
        z, q, log_q, keep_arg, alpha = primals
        dz, dq, d_log_q, _, d_alpha = tangents
        if not isinstance(d_log_q, SymbolicZero):
            raise TypeError("softmax_target_loss: log_targets must not carry a gradient")
        value, slope = parts(z, q, log_q, keep_arg, alpha)
        tangent = jnp.zeros(value.shape, value.dtype)
        if not isinstance(dz, SymbolicZero):
            tangent = jnp.sum(slope * dz.astype(dtype), axis=axis)
        if not (isinstance(dq, SymbolicZero) and isinstance(d_alpha, SymbolicZero)):
            dq, d_alpha = (
                jnp.zeros(d.shape, d.dtype) if isinstance(d, SymbolicZero) else d
                for d in (dq, d_alpha)
            )
            _, dq_part = jax.jvp(
                lambda t, a: reference_in_targets(z, t, keep_arg, a), (q, alpha), (dq, d_alpha)
            )
            tangent = tangent + dq_part
        return value, tangent

    loss.defjvp(loss_jvp, symbolic_zeros=True)
    return loss(logits, targets, log_arg, keep_arg, alpha_arg)
