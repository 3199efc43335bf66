"""Large-vocabulary forms: losses evaluated over row chunks, so peak memory is set by the chunk.

``lax.map`` runs one chunk of rows at a time and ``jax.checkpoint`` makes the
backward pass recompute each chunk's intermediates instead of keeping them, so
the temporaries are O(chunk_size x V) rather than O(N x V). The ``linear_*``
forms go further (the idea of Cut Cross-Entropy and Liger Kernel's fused linear
losses, here for soft targets): they take hidden states and the output matrix
and form the logits one chunk at a time, so the N x V logits never exist.

With ``reduction="none"`` (per-example output) the backward pass must
recompute each chunk's logits, since the gradient in the output matrix needs
each row's cotangent: four matrix products where forming the logits takes
three. With ``reduction="mean"`` or ``"sum"`` the cotangent is one scalar, so
each chunk's gradients are accumulated in the forward pass and the backward
pass only scales them (three products, no recomputation: the approach of
Liger Kernel's fused linear cross-entropy).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._validation import check_reduction
from ._softmax import distillation_loss, softmax_cross_entropy


def _check_chunk(name: str, chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{name}: chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


def _split_rows(x: jax.Array, chunk_size: int) -> jax.Array:
    """``x`` as ``[chunks, chunk_size, ...]``, padded with zero rows."""
    n = x.shape[0]
    padded = -(-n // chunk_size) * chunk_size
    x = jnp.pad(x, [(0, padded - n)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape(padded // chunk_size, chunk_size, *x.shape[1:])


def _map_row_chunks(
    per_chunk: Callable[..., jax.Array], chunk_size: int, *rows: jax.Array
) -> jax.Array:
    """``per_chunk`` applied to row chunks of ``rows`` (padded with zero rows, cut after)."""
    n = rows[0].shape[0]
    chunk_size = min(chunk_size, max(n, 1))
    chunks = tuple(_split_rows(x, chunk_size) for x in rows)
    out = jax.lax.map(jax.checkpoint(lambda args: per_chunk(*args)), chunks)
    return out.reshape(-1)[:n]


def _reduced_linear_loss(
    row_loss: Callable[[jax.Array, jax.Array, object], jax.Array],
    reduction: str,
    chunk_size: int,
    hidden: jax.Array,
    weight: jax.Array,
    other: jax.Array,
    constants: object,
) -> jax.Array:
    """``reduce(row_loss(hidden @ weight, other, constants))``, gradients made in the forward pass.

    ``row_loss(logits_chunk, other_chunk, constants)`` gives one float32 loss
    per row; ``other`` is split into row chunks with ``hidden``, ``constants``
    (a pytree) is passed whole. Each chunk's logit gradient becomes its share of
    the hidden-state gradient and is added to the output-matrix gradient at
    once, so the backward pass scales two saved arrays ([N, D] and [D, V])
    instead of recomputing the logits. Gradients in ``other`` and ``constants``
    are recomputed chunk by chunk; under ``jit`` XLA drops that work when
    nothing uses them.
    """
    n = hidden.shape[0]
    chunk_size = min(chunk_size, max(n, 1))
    # Padded rows have zero hidden state; a zero row weight keeps them out.
    row_weight = _split_rows(jnp.ones((n,), jnp.float32), chunk_size)
    scale = 1.0 / max(n, 1) if reduction == "mean" else 1.0

    def chunk_total(logits, o, c, keep):
        values = row_loss(logits, o, c)
        return jnp.sum(keep.astype(values.dtype) * values)

    # The output-matrix gradient sums over every row: accumulate it in at least float32.
    accumulate = weight.dtype if jnp.finfo(weight.dtype).bits >= 32 else jnp.dtype(jnp.float32)

    def forward_pass(h, w, o, c):
        def body(d_weight, chunk):
            h_c, o_c, keep = chunk
            total, d_logits = jax.value_and_grad(chunk_total)(h_c @ w, o_c, c, keep)
            d_weight = d_weight + jnp.einsum(
                "nd,nv->dv", h_c, d_logits, preferred_element_type=accumulate)
            return d_weight, (total, d_logits @ w.T)

        chunks = (_split_rows(h, chunk_size), _split_rows(o, chunk_size), row_weight)
        d_weight, (totals, d_hidden) = jax.lax.scan(body, jnp.zeros(w.shape, accumulate), chunks)
        return scale * jnp.sum(totals), (d_hidden.reshape(-1, h.shape[1])[:n], d_weight)

    def recomputed_total(h, w, o, c):
        chunk = jax.checkpoint(lambda args: chunk_total(args[0] @ w, args[1], c, args[2]))
        chunks = (_split_rows(h, chunk_size), _split_rows(o, chunk_size), row_weight)
        return scale * jnp.sum(jax.lax.map(chunk, chunks))

    @jax.custom_vjp
    def reduced(h, w, o, c):
        return forward_pass(h, w, o, c)[0]

    def reduced_fwd(h, w, o, c):
        value, (d_hidden, d_weight) = forward_pass(h, w, o, c)
        return value, (d_hidden, d_weight, h, w, o, c)

    def reduced_bwd(residuals, g):
        d_hidden, d_weight, h, w, o, c = residuals
        g_scaled = g.astype(accumulate) * scale
        d_h = (g_scaled * d_hidden.astype(accumulate)).astype(h.dtype)
        d_w = (g_scaled * d_weight).astype(w.dtype)
        _, other_vjp = jax.vjp(lambda o, c: recomputed_total(h, w, o, c), o, c)
        d_o, d_c = other_vjp(g)
        return d_h, d_w, d_o, d_c

    reduced.defvjp(reduced_fwd, reduced_bwd)
    return reduced(hidden, weight, other, constants)


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
    reduction: str = "none",
) -> jax.Array:
    """Soft CE of ``hidden @ weight`` (``[N, D] @ [D, V]``) without forming the N x V logits.

    ``reduction``: ``"none"`` (one loss per row), ``"mean"`` or ``"sum"`` (a
    scalar, and faster: its gradients come from the forward pass, so the
    logits are formed once instead of twice; reverse mode only).
    """
    name = "linear_softmax_cross_entropy"
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    weight, hidden, targets = jnp.asarray(weight), jnp.asarray(hidden), jnp.asarray(targets)

    def row_loss(logits: jax.Array, q: jax.Array, smoothing: ArrayLike) -> jax.Array:
        return softmax_cross_entropy(logits, q, label_smoothing=smoothing)

    if reduction != "none":
        return _reduced_linear_loss(row_loss, reduction, chunk_size, hidden, weight, targets,
                                    label_smoothing)
    return _map_row_chunks(lambda h, q: row_loss(h @ weight, q, label_smoothing), chunk_size,
                           hidden, targets)


def linear_distillation_loss(
    hidden: ArrayLike,
    weight: ArrayLike,
    teacher_hidden: ArrayLike,
    teacher_weight: ArrayLike,
    *,
    temperature: float = 2.0,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    """Distillation from ``teacher_hidden @ teacher_weight`` to ``hidden @ weight``, chunked.

    Neither the student's nor the teacher's N x V logits are formed; the
    teacher is not differentiated. ``reduction`` as in
    ``linear_softmax_cross_entropy`` (``"mean"``/``"sum"`` form each chunk's
    logits once instead of twice).
    """
    name = "linear_distillation_loss"
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    weight, teacher_weight = jnp.asarray(weight), jnp.asarray(teacher_weight)
    hidden, teacher_hidden = jnp.asarray(hidden), jnp.asarray(teacher_hidden)

    def row_loss(logits: jax.Array, th: jax.Array, tw: jax.Array) -> jax.Array:
        return distillation_loss(logits, th @ tw, temperature=temperature)

    if reduction != "none":
        return _reduced_linear_loss(row_loss, reduction, chunk_size, hidden, weight,
                                    teacher_hidden, teacher_weight)
    return _map_row_chunks(lambda h, th: row_loss(h @ weight, th, teacher_weight), chunk_size,
                           hidden, teacher_hidden)
