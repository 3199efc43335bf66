"""Large-vocabulary forms: losses evaluated over row chunks, so peak memory is set by the chunk.

``lax.map`` runs one chunk of rows at a time and ``jax.checkpoint`` makes the
backward pass recompute each chunk's intermediates instead of keeping them, so
the temporaries are O(chunk_size x V) rather than O(N x V). The ``linear_*``
forms go further (the idea of Cut Cross-Entropy and Liger Kernel's fused linear
losses, here for soft targets): they take hidden states and the output matrix
and form the logits one chunk at a time, so the N x V logits never exist.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._softmax import distillation_loss, softmax_cross_entropy


def _check_chunk(name: str, chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{name}: chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


def _map_row_chunks(
    per_chunk: Callable[..., jax.Array], chunk_size: int, *rows: jax.Array
) -> jax.Array:
    """``per_chunk`` applied to row chunks of ``rows`` (padded with zero rows, cut after)."""
    n = rows[0].shape[0]
    chunk_size = min(chunk_size, max(n, 1))
    padded = -(-n // chunk_size) * chunk_size

    def split(x: jax.Array) -> jax.Array:
        x = jnp.pad(x, [(0, padded - n)] + [(0, 0)] * (x.ndim - 1))
        return x.reshape(padded // chunk_size, chunk_size, *x.shape[1:])

    out = jax.lax.map(jax.checkpoint(lambda args: per_chunk(*args)), tuple(split(x) for x in rows))
    return out.reshape(padded)[:n]


def chunked_softmax_cross_entropy(
    logits: ArrayLike, targets: ArrayLike, *, chunk_size: int = 1024, label_smoothing: float = 0.0
) -> jax.Array:
    """``softmax_cross_entropy`` on ``[N, V]`` inputs, computed ``chunk_size`` rows at a time."""
    chunk_size = _check_chunk("chunked_softmax_cross_entropy", chunk_size)
    return _map_row_chunks(
        lambda z, q: softmax_cross_entropy(z, q, label_smoothing=label_smoothing),
        chunk_size,
        jnp.asarray(logits),
        jnp.asarray(targets),
    )


def chunked_distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    temperature: float = 2.0,
    chunk_size: int = 1024,
) -> jax.Array:
    """``distillation_loss`` on ``[N, V]`` logits, computed ``chunk_size`` rows at a time."""
    chunk_size = _check_chunk("chunked_distillation_loss", chunk_size)
    return _map_row_chunks(
        lambda s, t: distillation_loss(s, t, temperature=temperature),
        chunk_size,
        jnp.asarray(student_logits),
        jnp.asarray(teacher_logits),
    )


def linear_softmax_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    targets: ArrayLike,
    *,
    chunk_size: int = 1024,
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Soft CE of ``hidden @ weight`` (``[N, D] @ [D, V]``) without forming the N x V logits."""
    chunk_size = _check_chunk("linear_softmax_cross_entropy", chunk_size)
    weight = jnp.asarray(weight)
    return _map_row_chunks(
        lambda h, q: softmax_cross_entropy(h @ weight, q, label_smoothing=label_smoothing),
        chunk_size,
        jnp.asarray(hidden),
        jnp.asarray(targets),
    )


def linear_distillation_loss(
    hidden: ArrayLike,
    weight: ArrayLike,
    teacher_hidden: ArrayLike,
    teacher_weight: ArrayLike,
    *,
    temperature: float = 2.0,
    chunk_size: int = 1024,
) -> jax.Array:
    """Distillation from ``teacher_hidden @ teacher_weight`` to ``hidden @ weight``, chunked.

    Neither the student's nor the teacher's N x V logits are formed.
    """
    chunk_size = _check_chunk("linear_distillation_loss", chunk_size)
    weight, teacher_weight = jnp.asarray(weight), jnp.asarray(teacher_weight)
    return _map_row_chunks(
        lambda h, th: distillation_loss(h @ weight, th @ teacher_weight, temperature=temperature),
        chunk_size,
        jnp.asarray(hidden),
        jnp.asarray(teacher_hidden),
    )
