"""Fast values and derivatives for the softmax losses whose logit gradient is ``sum(q) p - q``.

Soft cross-entropy, forward KL and the distillation loss share one gradient in
the logits: ``sum(q) * softmax(z) - q`` on the kept classes. Left to autodiff,
the log-softmax saves its N x V output and the backward pass makes several more
N x V passes. Here the value is computed from the row's log-sum-exp without
forming the log-softmax (a pass for the peak, one for the sum of exponentials,
one for the weighted sum of the targets), and the logit tangent is written out
with ``jax.custom_jvp``. In float32 XLA keeps one N x V temporary (the logits
with the +inf-row limit applied; bfloat16 inputs add their float32 copies;
``softxent bench`` reports it). The tangent is linear in the tangents, so JAX
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

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

Reference = Callable[[jax.Array, jax.Array, int, "jax.Array | None"], jax.Array]


def _value_and_slope(
    logits: jax.Array,
    targets: jax.Array,
    log_targets: jax.Array | None,
    keep: jax.Array | None,
    axis: int,
    with_entropy: bool,
) -> tuple[jax.Array, jax.Array]:
    """The loss per row and its gradient in the logits (targets are 0 at masked classes).

    With ``m`` the row's largest logit and ``S = sum exp(z - m)``,
    ``-sum q log p = sum(q) log S + sum q (m - z)``: two sums of terms of one
    sign (no cancellation), and no log-softmax array.
    """
    if keep is not None:
        logits = jnp.where(keep, logits, -jnp.inf)
    peak = jnp.max(logits, axis=axis, keepdims=True)
    pos_inf_row = jnp.isposinf(peak)

    # A row holding +inf takes its limit: 0 at the +inf entries, -inf elsewhere.
    limit = jnp.where(jnp.isposinf(logits), 0, -jnp.inf).astype(logits.dtype)
    logits = jnp.where(pos_inf_row, limit, logits)
    shift = jnp.where(jnp.isfinite(peak), peak, 0)
    total = jnp.sum(jnp.exp(logits - shift), axis=axis, keepdims=True)
    log_total = jnp.log(jnp.where(total > 0, total, 1))
    live = targets != 0
    term = logits - shift
    if with_entropy:
        if log_targets is None:
            log_targets = jnp.log(jnp.where(live, targets, 1))
        term = term - log_targets
    mass = jnp.sum(targets, axis=axis, keepdims=True)
    # A zero target contributes 0 even where its logit is -inf (masked or -inf).
    weighted = jnp.sum(jnp.where(live, targets * term, 0), axis=axis)
    value = jnp.squeeze(mass * log_total, axis) - weighted
    slope = jnp.where(pos_inf_row, 0, mass * jnp.exp(logits - shift - log_total) - targets)
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
) -> jax.Array:
    """Soft cross-entropy (``with_entropy=False``) or KL (``True``) with the fast tangent.

    ``targets`` must be 0 at masked classes. ``reference(logits, targets, axis,
    where)`` is the same loss written plainly; only its derivative in the
    targets is used. ``log_targets``, when the caller has it (distillation), saves
    a logarithm per entry; it must carry no gradient.
    """
    masked = where is not None
    keep_arg = jnp.broadcast_to(where, logits.shape) if masked else jnp.ones((), dtype=bool)
    log_arg = jnp.zeros((), logits.dtype) if log_targets is None else log_targets

    def parts(z, q, log_q, keep_arg):
        return _value_and_slope(
            z,
            q,
            None if log_targets is None else log_q,
            keep_arg if masked else None,
            axis,
            with_entropy,
        )

    # The mask is an argument, not a closure: custom_jvp cannot close over tracers.
    @jax.custom_jvp
    def loss(z, q, log_q, keep_arg):
        return parts(z, q, log_q, keep_arg)[0]

    def loss_jvp(primals, tangents):
        z, q, log_q, keep_arg = primals
        dz, dq, d_log_q, _ = tangents
        if not isinstance(d_log_q, SymbolicZero):
            raise TypeError("softmax_target_loss: log_targets must not carry a gradient")
        value, slope = parts(z, q, log_q, keep_arg)
        tangent = jnp.zeros(value.shape, value.dtype)
        if not isinstance(dz, SymbolicZero):
            tangent = jnp.sum(slope * dz, axis=axis)
        if not isinstance(dq, SymbolicZero):
            where = keep_arg if masked else None
            _, dq_part = jax.jvp(lambda t: reference(z, t, axis, where), (q,), (dq,))
            tangent = tangent + dq_part
        return value, tangent

    loss.defjvp(loss_jvp, symbolic_zeros=True)
    return loss(logits, targets, log_arg, keep_arg)
