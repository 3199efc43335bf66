"""Row losses between a student's and a teacher's logits for the large-vocabulary forms.

The generalized Jensen-Shannon divergence of Agarwal et al. (GKD) and Liger
Kernel's ``LigerFusedLinearJSD``, and reverse-KL distillation, each on one
chunk of ``[rows, V]`` logits; the chunked and linear forms in ``_chunked``
map them over row chunks. Their gradients are autodiff's, recomputed per chunk
under ``jax.checkpoint`` (or made in the forward pass of a reduced linear form),
so their temporaries are a chunk's.

With ``P = softmax(t / T)`` (teacher) and ``Q = softmax(s / T)`` (student) and
``M = beta P + (1 - beta) Q``:

    JSD_beta = beta KL(P || M) + (1 - beta) KL(Q || M),

with ``log M = logaddexp(log beta + log P, log(1 - beta) + log Q)``, never
``log`` of a sum that could underflow. The formula is 0 at ``beta = 0`` and
``beta = 1`` (``M`` is then ``Q`` or ``P``); as in Liger Kernel those two
values stand for the KLs it approaches after dividing by ``beta`` or
``1 - beta``: forward ``KL(P || Q)`` at 0 and reverse ``KL(Q || P)`` at 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._export import Param

BETA = Param("beta", 0.5, 0.0, 1.0, doc="the teacher's weight in the mixture M")


def _weighted_log_ratio(weight: jax.Array, log_weight: jax.Array, log_other: jax.Array):
    """``sum weight (log_weight - log_other)`` over the last axis, 0 where ``weight`` is 0."""
    live = weight > 0
    # Both logs are cut where the weight is 0: a -inf there, times the weight's zero
    # cotangent, would turn the gradient into NaN.
    ratio = jnp.where(live, log_weight, 0) - jnp.where(live, log_other, 0)
    terms = jnp.where(live, weight * ratio, 0)
    return jnp.sum(terms, axis=-1)


def generalized_js_rows(
    student_logits: jax.Array, teacher_logits: jax.Array, beta: jax.Array
) -> jax.Array:
    """``JSD_beta(P || Q)`` per row (``KL(P || Q)`` at ``beta = 0``, ``KL(Q || P)`` at 1),
    for temperature-scaled logits ``[..., V]``; the teacher is not differentiated."""
    log_q = jax.nn.log_softmax(student_logits, axis=-1)
    log_p = jax.lax.stop_gradient(jax.nn.log_softmax(teacher_logits, axis=-1))
    p, q = jnp.exp(log_p), jnp.exp(log_q)
    forward = _weighted_log_ratio(p, log_p, log_q)
    reverse = _weighted_log_ratio(q, log_q, log_p)
    # Inside (0, 1) both logs of the weights are finite; at the ends the mixture's
    # branch is not taken, and its finite stand-ins keep its derivatives finite.
    inside = (beta > 0) & (beta < 1)
    safe_beta = jnp.where(inside, beta, 0.5)
    log_m = jnp.logaddexp(jnp.log(safe_beta) + log_p, jnp.log1p(-safe_beta) + log_q)
    mixed = (safe_beta * _weighted_log_ratio(p, log_p, log_m)
             + (1 - safe_beta) * _weighted_log_ratio(q, log_q, log_m))
    return jnp.where(beta == 0, forward, jnp.where(beta == 1, reverse, mixed))


def reverse_kl_rows(student_logits: jax.Array, teacher_logits: jax.Array) -> jax.Array:
    """``KL(Q || P)`` per row, ``Q`` the student's softmax and ``P`` the teacher's (not
    differentiated): infinite where the student puts mass on a class the teacher gives 0."""
    log_q = jax.nn.log_softmax(student_logits, axis=-1)
    log_p = jax.lax.stop_gradient(jax.nn.log_softmax(teacher_logits, axis=-1))
    return _weighted_log_ratio(jnp.exp(log_q), log_q, log_p)
