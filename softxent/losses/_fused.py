"""Fast derivatives for the softmax losses whose logit gradient is ``sum(q) p - q``.

Soft cross-entropy, forward KL and the distillation loss share one gradient in
the logits: ``sum(q) * softmax(z) - q`` on the kept classes. Left to autodiff,
the log-softmax saves its N x V output and the backward pass makes several
more N x V passes. Here the value is the reference formula itself (so values
match it bit for bit) and the tangent is written out with ``jax.custom_jvp``.
The tangent is linear in the tangents, so JAX transposes it into the VJP:
forward mode (``jacfwd``), reverse mode and higher derivatives all work, which
a ``custom_vjp`` would not allow. Inside one jitted program XLA fuses the
recomputed ``exp(log_softmax)`` into the gradient write, so no N x V
temporary survives (checked with ``memory_analysis()`` in the benchmark).

The targets' tangent is the reference's own (``jax.jvp`` of the value in the
targets), so derivatives in the targets are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from .._numerics import masked_log_softmax

Reference = Callable[[jax.Array, jax.Array, int, "jax.Array | None"], jax.Array]


def softmax_target_loss(
    reference: Reference,
    logits: jax.Array,
    targets: jax.Array,
    axis: int,
    where: jax.Array | None,
) -> jax.Array:
    """``reference(logits, targets, axis, where)`` with the fast logit tangent.

    ``reference`` must be a loss whose derivative in ``logits`` is
    ``sum(targets) * softmax(logits) - targets`` on the kept classes (CE, KL).
    """

    masked = where is not None
    keep_arg = jnp.broadcast_to(where, logits.shape) if masked else jnp.ones((), dtype=bool)

    # The mask is an argument, not a closure: custom_jvp cannot close over tracers.
    @jax.custom_jvp
    def loss(z: jax.Array, q: jax.Array, keep_arg: jax.Array) -> jax.Array:
        return reference(z, q, axis, keep_arg if masked else None)

    def loss_jvp(primals, tangents):
        z, q, keep_arg = primals
        dz, dq, _ = tangents
        where = keep_arg if masked else None
        value = loss(z, q, keep_arg)
        p = jnp.exp(masked_log_softmax(z, axis, where))
        keep = jnp.broadcast_to(keep_arg, z.shape)
        # The reference's +inf branch is a constant (mass split over the +inf
        # entries), so its derivative in the logits is 0 there.
        peak = jnp.max(jnp.where(keep, z, -jnp.inf), axis=axis, keepdims=True)
        finite_row = ~jnp.isposinf(peak)
        q_kept = jnp.where(keep, q, 0)
        mass = jnp.sum(q_kept, axis=axis, keepdims=True)
        grad = jnp.where(keep & finite_row, mass * p - q_kept, 0)
        if isinstance(dz, SymbolicZero):
            tangent = jnp.zeros(value.shape, value.dtype)
        else:
            tangent = jnp.sum(grad * dz, axis=axis)
        if not isinstance(dq, SymbolicZero):
            _, dq_part = jax.jvp(lambda t: reference(z, t, axis, where), (q,), (dq,))
            tangent = tangent + dq_part
        return value, tangent

    loss.defjvp(loss_jvp, symbolic_zeros=True)
    return loss(logits, targets, keep_arg)
