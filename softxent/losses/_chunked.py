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
import numpy as np
from jax.typing import ArrayLike

from .._validation import (
    check_broadcasts_to,
    check_floating,
    check_reduction,
    check_where,
    compute_dtype,
)
from ._common import LABEL_SMOOTHING, TEMPERATURE, check_regularisers
from ._export import Param, export_loss
from ._integer import check_labels, cross_entropy_with_integer_labels
from ._softmax import distillation_loss, softmax_cross_entropy
from ._sparse import (
    check_sparse_teacher,
    check_sparse_values,
    check_tail,
    sparse_distillation_dtype,
    sparse_teacher_kl,
)
from ._teacher_divergences import BETA, generalized_js_rows, reverse_kl_rows

# The generalized JSD softens both models and, as Liger Kernel's, applies no T**2.
_SOFTENING = Param("temperature", 1.0, 0.0, None, low_open=True,
                   doc="temperature T dividing both models' logits")


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
    row_loss: Callable[[jax.Array, object, object], jax.Array],
    reduction: str,
    chunk_size: int,
    hidden: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    other: object,
    constants: object,
) -> jax.Array:
    """``reduce(row_loss(hidden @ weight + bias, other, constants))``, gradients made in the
    forward pass.

    ``row_loss(logits_chunk, other_chunk, constants)`` gives one float32 loss
    per row; ``other`` (an array or a tuple of them) is split into row chunks with
    ``hidden``, ``constants`` (a pytree) is passed whole. ``bias`` (``[V]``) may be
    None. Each chunk's logit gradient becomes its share of
    the hidden-state gradient and is added to the output-matrix gradient at
    once, so the backward pass scales two saved arrays ([N, D] and [D, V])
    instead of recomputing the logits. Gradients in ``other`` and ``constants``
    are recomputed chunk by chunk; under ``jit`` XLA drops that work when
    nothing uses them.
    """
    n = hidden.shape[0]
    chunk_size = min(chunk_size, max(n, 1))
    scale = 1.0 / max(n, 1) if reduction == "mean" else 1.0

    def chunk_total(logits, o, c, keep):
        values = row_loss(logits, o, c)
        return jnp.sum(keep.astype(values.dtype) * values)

    # The output-matrix gradient sums over every row: accumulate it in at least float32.
    accumulate = weight.dtype if jnp.finfo(weight.dtype).bits >= 32 else jnp.dtype(jnp.float32)

    def split(o):
        return jax.tree.map(lambda x: _split_rows(x, chunk_size), o)

    def row_weight():
        # Padded rows have zero hidden state; a zero row weight keeps them out. Made
        # where it is used: the custom_vjp's functions cannot close over a traced array.
        return _split_rows(jnp.ones((n,), jnp.float32), chunk_size)

    def forward_pass(h, w, b, o, c):
        def body(sums, chunk):
            d_weight, d_bias = sums
            h_c, o_c, keep = chunk
            logits = _linear_logits(h_c, w, b)
            total, d_logits = jax.value_and_grad(chunk_total)(logits, o_c, c, keep)
            d_weight = d_weight + jnp.einsum(
                "nd,nv->dv", h_c, d_logits, preferred_element_type=accumulate)
            if b is not None:
                d_bias = d_bias + jnp.sum(d_logits.astype(accumulate), axis=0)
            return (d_weight, d_bias), (total, d_logits @ w.T)

        chunks = (_split_rows(h, chunk_size), split(o), row_weight())
        zero_bias = None if b is None else jnp.zeros(b.shape, accumulate)
        initial = (jnp.zeros(w.shape, accumulate), zero_bias)
        (d_weight, d_bias), (totals, d_hidden) = jax.lax.scan(body, initial, chunks)
        gradients = (d_hidden.reshape(-1, h.shape[1])[:n], d_weight, d_bias)
        return scale * jnp.sum(totals), gradients

    def recomputed_total(h, w, b, o, c):
        def chunk_loss(args):
            return chunk_total(_linear_logits(args[0], w, b), args[1], c, args[2])

        chunks = (_split_rows(h, chunk_size), split(o), row_weight())
        return scale * jnp.sum(jax.lax.map(jax.checkpoint(chunk_loss), chunks))

    @jax.custom_vjp
    def reduced(h, w, b, o, c):
        return forward_pass(h, w, b, o, c)[0]

    def reduced_fwd(h, w, b, o, c):
        value, gradients = forward_pass(h, w, b, o, c)
        return value, (gradients, h, w, b, o, c)

    def reduced_bwd(residuals, g):
        (d_hidden, d_weight, d_bias), h, w, b, o, c = residuals
        g_scaled = g.astype(accumulate) * scale
        d_h = (g_scaled * d_hidden.astype(accumulate)).astype(h.dtype)
        d_w = (g_scaled * d_weight).astype(w.dtype)
        d_b = None if b is None else (g_scaled * d_bias).astype(b.dtype)
        _, other_vjp = jax.vjp(lambda o, c: recomputed_total(h, w, b, o, c), o, c)
        d_o, d_c = other_vjp(g)
        return d_h, d_w, d_b, d_o, d_c

    reduced.defvjp(reduced_fwd, reduced_bwd)
    return reduced(hidden, weight, bias, other, constants)


def _check_bias(name: str, bias: ArrayLike | None, weight: jax.Array) -> jax.Array | None:
    if bias is None:
        return None
    bias = jnp.asarray(bias)
    if bias.shape != weight.shape[-1:]:
        raise ValueError(
            f"{name}: bias shape {tuple(bias.shape)} must be ({weight.shape[-1]},), one per "
            "class of weight"
        )
    return bias


def _linear_logits(h: jax.Array, weight: jax.Array, bias: jax.Array | None) -> jax.Array:
    logits = h @ weight
    return logits if bias is None else logits + bias.astype(logits.dtype)


def _reduce(losses: jax.Array, reduction: str) -> jax.Array:
    if reduction == "none":
        return losses
    total = jnp.sum(losses)
    return total / max(losses.size, 1) if reduction == "mean" else total


def _row_mask(name: str, where: ArrayLike | None, shape: tuple[int, ...]) -> tuple:
    """``where`` split into what follows the row chunks (``rows``) and what every chunk
    reads whole (``shared``): a class mask ``[V]`` is shared, a mask per row is chunked."""
    if where is None:
        return (), None
    where = jnp.asarray(where)
    check_where(name, where, shape)
    if where.ndim == len(shape) and where.shape[0] == shape[0] and shape[0] != 1:
        return (jnp.broadcast_to(where, shape),), None
    return (), where


def _chunk_mask(rows: tuple, shared: jax.Array | None, shape: tuple[int, ...]) -> jax.Array | None:
    """A chunk's mask of its logits' shape (the dense losses take no other class mask)."""
    if rows:
        return rows[0]
    return None if shared is None else jnp.broadcast_to(shared, shape)


@export_loss((LABEL_SMOOTHING,))
def chunked_softmax_cross_entropy(
    logits: ArrayLike,
    targets: ArrayLike,
    *,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""``softmax_cross_entropy`` on ``[N, V]`` inputs, computed ``chunk_size`` rows at a time.

    .. math::
      \ell_n = -\sum_i q'_{n,i} \log \operatorname{softmax}(z_n)_i, \qquad
      q' = (1 - \alpha)\, q + \alpha / K

    The backward pass recomputes each chunk (``jax.checkpoint``), so the
    temporaries are ``chunk_size x V``, not ``N x V``. ``z_loss`` and
    ``soft_cap`` are ``softmax_cross_entropy``'s (the z-loss
    :math:`\lambda (\log Z)^2` and the logits capped to :math:`c \tanh(z / c)`).

    Args:
      logits: unnormalised scores ``[N, V]`` (the class axis is the last).
      targets: soft targets of the same shape.
      where: boolean mask of kept classes, broadcastable to ``logits``.
      label_smoothing: :math:`\alpha \in [0, 1]`.
      z_loss: :math:`\lambda \ge 0`, a Python number.
      soft_cap: :math:`c > 0`, a Python number, or None.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"`` (one loss per row), ``"mean"`` over the rows or ``"sum"``.

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> q = jnp.array([[0.3, 0.5, 0.2]] * 4)
      >>> loss = softxent.chunked_softmax_cross_entropy(jnp.log(q), q, chunk_size=3)
      >>> [round(float(x), 4) for x in loss]
      [1.0297, 1.0297, 1.0297, 1.0297]

    References:
      Wijmans et al., Cut Your Losses in Large-Vocabulary Language Models,
      ICLR 2025 (chunked and fused large-vocabulary losses).
    """
    name = "chunked_softmax_cross_entropy"
    check_regularisers(name, z_loss, soft_cap)
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    logits, targets = jnp.asarray(logits), jnp.asarray(targets)
    rows, shared = _row_mask(name, where, logits.shape)

    def per_chunk(z: jax.Array, q: jax.Array, *mask: jax.Array) -> jax.Array:
        keep = _chunk_mask(mask, shared, z.shape)
        return softmax_cross_entropy(z, q, where=keep, label_smoothing=label_smoothing,
                                     z_loss=z_loss, soft_cap=soft_cap)

    return _reduce(_map_row_chunks(per_chunk, chunk_size, logits, targets, *rows), reduction)


@export_loss((TEMPERATURE,))
def chunked_distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    where: ArrayLike | None = None,
    temperature: ArrayLike = 2.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""``distillation_loss`` on ``[N, V]`` logits, computed ``chunk_size`` rows at a time.

    .. math::
      \ell_n = T^2 \, \mathrm{KL}\big(\operatorname{softmax}(t_n/T) \,\big\|\,
      \operatorname{softmax}(s_n/T)\big)

    ``z_loss`` and ``soft_cap`` are ``distillation_loss``'s (the tempered
    student's :math:`T^2 \lambda (\log Z)^2`, and the student's logits capped
    to :math:`c \tanh(s / c)`).

    Args:
      student_logits: the student's unnormalised scores ``[N, V]``.
      teacher_logits: the teacher's, same shape (not differentiated).
      where: boolean mask of kept classes, broadcastable to the logits.
      temperature: :math:`T > 0`.
      z_loss: :math:`\lambda \ge 0`, a Python number.
      soft_cap: :math:`c > 0`, a Python number, or None.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"`` (one loss per row), ``"mean"`` over the rows or ``"sum"``.

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> s, t = jnp.array([[0.0, 1.0, 2.0]]), jnp.array([[2.0, 1.0, 0.0]])
      >>> round(float(softxent.chunked_distillation_loss(s, t, reduction="sum")), 4)
      1.2806

    References:
      Hinton, Vinyals and Dean, Distilling the Knowledge in a Neural Network,
      arXiv:1503.02531, 2015.
    """
    name = "chunked_distillation_loss"
    check_regularisers(name, z_loss, soft_cap)
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    student, teacher = jnp.asarray(student_logits), jnp.asarray(teacher_logits)
    rows, shared = _row_mask(name, where, student.shape)

    def per_chunk(s: jax.Array, t: jax.Array, *mask: jax.Array) -> jax.Array:
        keep = _chunk_mask(mask, shared, s.shape)
        return distillation_loss(s, t, where=keep, temperature=temperature, z_loss=z_loss,
                                 soft_cap=soft_cap)

    return _reduce(_map_row_chunks(per_chunk, chunk_size, student, teacher, *rows), reduction)


@export_loss((LABEL_SMOOTHING,))
def chunked_softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = None,
    class_weights: ArrayLike | None = None,
    example_weights: ArrayLike | None = None,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""``softmax_cross_entropy_with_integer_labels`` on ``[N, V]`` logits, by row chunks.

    .. math::
      \ell_n = r_n \Big[(1 - \alpha)\, w_{y_n} \big(-\log p_{n, y_n}\big)
        + \frac{\alpha}{K} \sum_c w_c \big(-\log p_{n, c}\big)\Big]

    ``reduction="mean"`` is :math:`\sum_n \ell_n / \sum_n r_n w_{y_n}` over the
    kept rows, as in PyTorch.

    Args:
      logits: unnormalised scores ``[N, V]``.
      labels: integer class indices ``[N]``.
      where: boolean mask of kept classes, broadcastable to ``logits``.
      label_smoothing: :math:`\alpha \in [0, 1]`.
      ignore_index: a label value whose rows give 0 and leave the mean.
      class_weights: :math:`w`, shape ``[V]``.
      example_weights: :math:`r`, broadcastable to ``[N]``.
      z_loss: :math:`\lambda \ge 0`, a Python number (see
        ``softmax_cross_entropy_with_integer_labels``).
      soft_cap: :math:`c > 0`, a Python number, or None.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (the weighted mean above).

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> z = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
      >>> loss = softxent.chunked_softmax_cross_entropy_with_integer_labels(
      ...     z, jnp.array([0, 2]), chunk_size=1, reduction="mean")
      >>> round(float(loss), 4)
      0.2899

    References:
      PyTorch, ``torch.nn.functional.cross_entropy``; Szegedy et al., CVPR 2016.
    """
    name = "chunked_softmax_cross_entropy_with_integer_labels"
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    logits = jnp.asarray(logits)
    labels = check_labels(name, logits, labels, logits.ndim - 1)
    rows, shared = _row_mask(name, where, logits.shape)
    options = dict(label_smoothing=label_smoothing, ignore_index=ignore_index,
                   class_weights=class_weights, z_loss=z_loss, soft_cap=soft_cap)
    row_weight, denominator = _integer_row_weights(
        name, logits.shape[0], labels, example_weights, reduction, ignore_index, class_weights,
        compute_dtype(logits.dtype),
    )

    def per_chunk(z: jax.Array, y: jax.Array, r: jax.Array, *mask: jax.Array) -> jax.Array:
        keep = _chunk_mask(mask, shared, z.shape)
        losses, _ = cross_entropy_with_integer_labels(
            name, z, y, -1, keep, example_weights=r, **options)
        return losses

    losses = _map_row_chunks(per_chunk, chunk_size, logits, labels, row_weight, *rows)
    return losses if reduction == "none" else jnp.sum(losses) / denominator


def _integer_row_weights(
    name: str,
    n: int,
    labels: jax.Array,
    example_weights: ArrayLike | None,
    reduction: str,
    ignore_index: int | None,
    class_weights: ArrayLike | None,
    dtype: jnp.dtype,
) -> tuple[jax.Array, jax.Array]:
    """Per-row example weights and the reduction's denominator.

    The loss is linear in a row's weight, so the weighted mean is the sum of
    the losses with every weight divided by ``sum(r w_y)``: no second pass.
    """
    row = jnp.ones((n,), dtype)
    if example_weights is not None:
        example_weights = jnp.asarray(example_weights)
        check_floating(name, "example_weights", example_weights)
        check_broadcasts_to(name, "example_weights", example_weights.shape, (n,))
        row = jnp.broadcast_to(example_weights.astype(dtype), (n,))
    if reduction != "mean":
        return row, jnp.ones((), dtype)
    kept = row if ignore_index is None else jnp.where(labels == ignore_index, 0, row)
    if class_weights is not None:
        w = jnp.asarray(class_weights).astype(dtype)
        kept = kept * w[jnp.clip(labels, 0, w.shape[0] - 1)]
    total = jnp.sum(kept)
    return row, jnp.where(total != 0, total, jnp.inf)  # 0 / inf = 0: no row kept


@export_loss((LABEL_SMOOTHING,))
def linear_softmax_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    targets: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Soft cross-entropy of ``hidden @ weight + bias`` without forming the N x V logits.

    .. math::
      \ell_n = -\sum_i q'_{n,i} \log \operatorname{softmax}(\tilde z_n)_i
        + \lambda \big(\log \textstyle\sum_i e^{\tilde z_{n,i}}\big)^2, \qquad
      q' = (1 - \alpha)\, q + \alpha / V

    with :math:`z_n = h_n W + b` and :math:`\tilde z = c \tanh(z / c)` for
    ``soft_cap`` :math:`c` (else :math:`\tilde z = z`), :math:`\lambda` the
    ``z_loss`` (see ``softmax_cross_entropy`` for what each does to the
    minimiser).

    Args:
      hidden: hidden states ``[N, D]``.
      weight: the output matrix ``[D, V]``.
      targets: soft targets ``[N, V]``.
      bias: optional ``[V]``.
      label_smoothing: :math:`\alpha \in [0, 1]`.
      z_loss: :math:`\lambda \ge 0`, a Python number.
      soft_cap: :math:`c > 0`, a Python number, or None.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"`` (one loss per row), ``"mean"`` or ``"sum"`` (a
        scalar, and faster: its gradients come from the forward pass, so the
        logits are formed once instead of twice; reverse mode only).

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> h, w = jnp.eye(2), jnp.log(jnp.array([[0.3, 0.7], [0.6, 0.4]]))
      >>> q = jnp.array([[0.3, 0.7], [0.6, 0.4]])
      >>> round(float(softxent.linear_softmax_cross_entropy(h, w, q, reduction="sum")), 4)
      1.2839

    References:
      Wijmans et al., Cut Your Losses in Large-Vocabulary Language Models,
      ICLR 2025; Hsu et al., Liger Kernel, arXiv:2410.10989, 2024.
    """
    name = "linear_softmax_cross_entropy"
    check_regularisers(name, z_loss, soft_cap)
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    weight, hidden, targets = jnp.asarray(weight), jnp.asarray(hidden), jnp.asarray(targets)
    bias = _check_bias(name, bias, weight)

    def row_loss(logits: jax.Array, q: jax.Array, smoothing: ArrayLike) -> jax.Array:
        return softmax_cross_entropy(logits, q, label_smoothing=smoothing, z_loss=z_loss,
                                     soft_cap=soft_cap)

    if reduction != "none":
        return _reduced_linear_loss(row_loss, reduction, chunk_size, hidden, weight, bias,
                                    targets, label_smoothing)
    return _map_row_chunks(
        lambda h, q: row_loss(_linear_logits(h, weight, bias), q, label_smoothing),
        chunk_size, hidden, targets,
    )


@export_loss((TEMPERATURE,))
def linear_distillation_loss(
    hidden: ArrayLike,
    weight: ArrayLike,
    teacher_hidden: ArrayLike,
    teacher_weight: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    teacher_bias: ArrayLike | None = None,
    temperature: ArrayLike = 2.0,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Distillation from ``teacher_hidden @ teacher_weight`` to ``hidden @ weight``, chunked.

    .. math::
      \ell_n = T^2 \, \mathrm{KL}\big(\operatorname{softmax}(t_n/T) \,\big\|\,
      \operatorname{softmax}(s_n/T)\big), \quad s_n = h_n W + b, \quad
      t_n = h^t_n W^t + b^t

    Neither the student's nor the teacher's N x V logits are formed; the
    teacher is not differentiated. ``z_loss`` and ``soft_cap`` are
    ``distillation_loss``'s, on the student's logits.

    Args:
      hidden: the student's hidden states ``[N, D]``.
      weight: the student's output matrix ``[D, V]``.
      teacher_hidden: the teacher's hidden states ``[N, D_t]``.
      teacher_weight: the teacher's output matrix ``[D_t, V]``.
      bias: the student's optional bias ``[V]``.
      teacher_bias: the teacher's optional bias ``[V]``.
      temperature: :math:`T > 0`.
      z_loss: :math:`\lambda \ge 0`, a Python number.
      soft_cap: :math:`c > 0`, a Python number, or None.
      chunk_size: rows per chunk (a positive int).
      reduction: as in ``linear_softmax_cross_entropy`` (``"mean"``/``"sum"``
        form each chunk's logits once instead of twice).

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> h = jnp.ones((1, 1))
      >>> s, t = jnp.array([[0.0, 1.0, 2.0]]), jnp.array([[2.0, 1.0, 0.0]])
      >>> round(float(softxent.linear_distillation_loss(h, s, h, t, reduction="sum")), 4)
      1.2806

    References:
      Hinton, Vinyals and Dean, Distilling the Knowledge in a Neural Network,
      arXiv:1503.02531, 2015; Hsu et al., Liger Kernel, arXiv:2410.10989, 2024.
    """
    name = "linear_distillation_loss"
    check_regularisers(name, z_loss, soft_cap)
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    weight, teacher_weight = jnp.asarray(weight), jnp.asarray(teacher_weight)
    hidden, teacher_hidden = jnp.asarray(hidden), jnp.asarray(teacher_hidden)
    bias = _check_bias(name, bias, weight)
    teacher_bias = _check_bias(name, teacher_bias, teacher_weight)

    def row_loss(logits: jax.Array, th: jax.Array, teacher: tuple) -> jax.Array:
        tw, tb, t = teacher
        return distillation_loss(logits, _linear_logits(th, tw, tb), temperature=t,
                                 z_loss=z_loss, soft_cap=soft_cap)

    # The temperature is an argument of the reduced form's custom_vjp, which cannot
    # close over a traced value (under jit it is one).
    teacher = (teacher_weight, teacher_bias, jnp.asarray(temperature))
    if reduction != "none":
        return _reduced_linear_loss(row_loss, reduction, chunk_size, hidden, weight, bias,
                                    teacher_hidden, teacher)
    return _map_row_chunks(
        lambda h, th: row_loss(_linear_logits(h, weight, bias), th, teacher),
        chunk_size, hidden, teacher_hidden,
    )


@export_loss((LABEL_SMOOTHING,))
def linear_softmax_cross_entropy_with_integer_labels(
    hidden: ArrayLike,
    weight: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = None,
    class_weights: ArrayLike | None = None,
    example_weights: ArrayLike | None = None,
    z_loss: float = 0.0,
    soft_cap: float | None = None,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Integer-label cross-entropy of ``hidden @ weight + bias``, never forming the logits.

    .. math::
      \ell_n = r_n \Big[(1 - \alpha)\, w_{y_n} \big(-\log p_{n, y_n}\big)
        + \frac{\alpha}{V} \sum_c w_c \big(-\log p_{n, c}\big)\Big],
      \qquad p_n = \operatorname{softmax}(h_n W + b)

    ``reduction="mean"`` is :math:`\sum_n \ell_n / \sum_n r_n w_{y_n}` over the
    kept rows, as in PyTorch; reduced, the gradients are made in the forward
    pass (each chunk's logits formed once).

    Args:
      hidden: hidden states ``[N, D]``.
      weight: the output matrix ``[D, V]``.
      labels: integer class indices ``[N]``.
      bias: optional ``[V]``.
      label_smoothing: :math:`\alpha \in [0, 1]`.
      ignore_index: a label value whose rows give 0 and leave the mean.
      class_weights: :math:`w`, shape ``[V]``.
      example_weights: :math:`r`, broadcastable to ``[N]``.
      z_loss: :math:`\lambda \ge 0`, a Python number (see
        ``softmax_cross_entropy_with_integer_labels``).
      soft_cap: :math:`c > 0`, a Python number, or None.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"``, ``"sum"`` or ``"mean"`` (the weighted mean above).

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> h, w = jnp.eye(2), jnp.log(jnp.array([[0.7, 0.3], [0.2, 0.8]]))
      >>> loss = softxent.linear_softmax_cross_entropy_with_integer_labels(
      ...     h, w, jnp.array([0, -100]), ignore_index=-100, reduction="mean")
      >>> round(float(loss), 4)  # -log 0.7
      0.3567

    References:
      Wijmans et al., Cut Your Losses in Large-Vocabulary Language Models,
      ICLR 2025; PyTorch, ``torch.nn.functional.cross_entropy``.
    """
    name = "linear_softmax_cross_entropy_with_integer_labels"
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    weight, hidden = jnp.asarray(weight), jnp.asarray(hidden)
    bias = _check_bias(name, bias, weight)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer) or labels.shape != hidden.shape[:1]:
        raise ValueError(
            f"{name}: labels must be integers of shape ({hidden.shape[0]},), got "
            f"{labels.dtype} {tuple(labels.shape)}"
        )
    row_weight, denominator = _integer_row_weights(
        name, hidden.shape[0], labels, example_weights, reduction, ignore_index, class_weights,
        jnp.dtype(jnp.float32) if jnp.finfo(weight.dtype).bits < 32 else weight.dtype,
    )
    def row_loss(logits: jax.Array, rows: tuple, constants: tuple) -> jax.Array:
        (y, r), (w, denominator, smoothing) = rows, constants
        losses, _ = cross_entropy_with_integer_labels(
            name, logits, y, -1, None, example_weights=r / denominator, class_weights=w,
            label_smoothing=smoothing, ignore_index=ignore_index, z_loss=z_loss,
            soft_cap=soft_cap)
        return losses

    # Arguments, not closures, of the reduced form's custom_vjp (traced under jit).
    constants = (class_weights if class_weights is None else jnp.asarray(class_weights),
                 denominator, jnp.asarray(label_smoothing))
    if reduction != "none":
        return _reduced_linear_loss(row_loss, "sum", chunk_size, hidden, weight, bias,
                                    (labels, row_weight), constants)
    return _map_row_chunks(
        lambda h, y, r: row_loss(_linear_logits(h, weight, bias), (y, r), constants),
        chunk_size, hidden, labels, row_weight,
    )


def _check_linear_sparse_values(hidden: ArrayLike, weight: ArrayLike, teacher_indices: ArrayLike,
                                teacher_log_probs: ArrayLike, **_: object) -> None:
    """``check_sparse_values`` for the linear form, whose logits would be [N, V]."""
    h, w = np.shape(hidden), np.shape(weight)
    if len(h) == 2 and len(w) == 2:
        check_sparse_teacher("linear_sparse_distillation_loss", (h[0], w[1]), teacher_indices,
                             teacher_log_probs, logits_name="hidden @ weight")


def _sparse_teacher(fn: str, logits_shape: tuple[int, ...], indices: ArrayLike,
                    log_probs: ArrayLike, temperature: ArrayLike, tail: str,
                    logits_name: str) -> tuple:
    tail_mode = check_tail(fn, tail)
    if len(logits_shape) != 2:
        raise ValueError(f"{fn}: {logits_name} must be [N, V], got shape {tuple(logits_shape)}")
    indices, log_probs = check_sparse_teacher(fn, logits_shape, indices, log_probs,
                                              logits_name=logits_name)
    return indices, log_probs, tail_mode


def _sparse_row_loss(tail):
    def row_loss(logits: jax.Array, teacher: tuple, temperature: jax.Array) -> jax.Array:
        indices, log_probs = teacher
        dtype = sparse_distillation_dtype(logits, log_probs)
        t = temperature.astype(dtype)
        return t**2 * sparse_teacher_kl(logits.astype(dtype) / t, indices, log_probs, tail,
                                        dtype)

    return row_loss


@export_loss((TEMPERATURE,),
             check=check_sparse_values("chunked_sparse_distillation_loss"))
def chunked_sparse_distillation_loss(
    student_logits: ArrayLike,
    teacher_indices: ArrayLike,
    teacher_log_probs: ArrayLike,
    *,
    temperature: ArrayLike = 2.0,
    tail: str = "renormalize",
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""``sparse_distillation_loss`` on ``[N, V]`` logits, computed ``chunk_size`` rows at a time.

    .. math::
      \text{renormalize:}\quad \ell_n = T^2 \sum_{i \in I_n} \frac{a_{n,i}}{A_n}
        \log \frac{a_{n,i} / A_n}{p_{n,i}}, \qquad
      \text{bucket:}\quad \ell_n = T^2 \Big[\sum_{i \in I_n} a_{n,i}
        \log \frac{a_{n,i}}{p_{n,i}} + (1 - A_n) \log \frac{1 - A_n}{1 - P_n}\Big]

    with the teacher's top-k classes :math:`I_n`, their probabilities
    :math:`a_{n,i}`, their mass :math:`A_n`, the student's
    :math:`p_n = \operatorname{softmax}(s_n / T)` and :math:`P_n = \sum_{i \in I_n}
    p_{n,i}` (see ``sparse_distillation_loss``). The teacher is read as its
    ``[N, k]`` arrays; the temporaries are ``chunk_size x V``.

    Args:
      student_logits: the student's unnormalised scores ``[N, V]``.
      teacher_indices: the teacher's top-k classes ``[N, k]``, distinct per row.
      teacher_log_probs: their log-probabilities ``[N, k]`` (not differentiated).
      temperature: :math:`T > 0`.
      tail: ``"renormalize"`` or ``"bucket"``.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"`` (one loss per row), ``"mean"`` over the rows or ``"sum"``.

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> s = jnp.array([[1.0, 0.0, 0.0, -1.0]] * 3)
      >>> top, log_q = jnp.array([[0, 1]] * 3), jnp.log(jnp.array([[0.6, 0.3]] * 3))
      >>> loss = softxent.chunked_sparse_distillation_loss(
      ...     s, top, log_q, temperature=1.0, tail="bucket", chunk_size=2)
      >>> [round(float(x), 4) for x in loss]
      [0.0973, 0.0973, 0.0973]

    References:
      Hinton, Vinyals and Dean, Distilling the Knowledge in a Neural Network,
      arXiv:1503.02531, 2015.

      Anshumann et al., Sparse Logit Sampling: Accelerating Knowledge
      Distillation in LLMs, ACL 2025 (top-k teachers stored offline).
    """
    name = "chunked_sparse_distillation_loss"
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    student = jnp.asarray(student_logits)
    check_floating(name, "student_logits", student)
    indices, log_probs, tail_mode = _sparse_teacher(
        name, student.shape, teacher_indices, teacher_log_probs, temperature, tail,
        "student_logits")
    row_loss = _sparse_row_loss(tail_mode)

    def per_chunk(s: jax.Array, i: jax.Array, lq: jax.Array) -> jax.Array:
        return row_loss(s, (i, lq), jnp.asarray(temperature))

    return _reduce(_map_row_chunks(per_chunk, chunk_size, student, indices, log_probs),
                   reduction)


@export_loss((TEMPERATURE,), check=_check_linear_sparse_values)
def linear_sparse_distillation_loss(
    hidden: ArrayLike,
    weight: ArrayLike,
    teacher_indices: ArrayLike,
    teacher_log_probs: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    temperature: ArrayLike = 2.0,
    tail: str = "renormalize",
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Sparse-teacher distillation into ``hidden @ weight + bias``, never forming N x V.

    .. math::
      \text{renormalize:}\quad \ell_n = T^2 \sum_{i \in I_n} \frac{a_{n,i}}{A_n}
        \log \frac{a_{n,i} / A_n}{p_{n,i}}, \qquad
      \text{bucket:}\quad \ell_n = T^2 \Big[\sum_{i \in I_n} a_{n,i}
        \log \frac{a_{n,i}}{p_{n,i}} + (1 - A_n) \log \frac{1 - A_n}{1 - P_n}\Big],
      \qquad p_n = \operatorname{softmax}\big((h_n W + b) / T\big)

    (see ``sparse_distillation_loss`` for the two tails). The student's logits
    are formed ``chunk_size`` rows at a time and the teacher is its ``[N, k]``
    arrays, so memory is set by the chunk and :math:`O(N k)`, not by N x V.

    Args:
      hidden: the student's hidden states ``[N, D]``.
      weight: the student's output matrix ``[D, V]``.
      teacher_indices: the teacher's top-k classes ``[N, k]``, distinct per row.
      teacher_log_probs: their log-probabilities ``[N, k]`` (not differentiated).
      bias: the student's optional bias ``[V]``.
      temperature: :math:`T > 0`.
      tail: ``"renormalize"`` or ``"bucket"``.
      chunk_size: rows per chunk (a positive int).
      reduction: as in ``linear_softmax_cross_entropy`` (``"mean"``/``"sum"``
        form each chunk's logits once instead of twice).

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> h, w = jnp.ones((1, 1)), jnp.array([[1.0, 0.0, 0.0, -1.0]])
      >>> top, log_q = jnp.array([[0, 1]]), jnp.log(jnp.array([[0.6, 0.3]]))
      >>> loss = softxent.linear_sparse_distillation_loss(
      ...     h, w, top, log_q, temperature=1.0, reduction="sum")
      >>> round(float(loss), 4)
      0.3233

    References:
      Hinton, Vinyals and Dean, Distilling the Knowledge in a Neural Network,
      arXiv:1503.02531, 2015; Hsu et al., Liger Kernel, arXiv:2410.10989, 2024.

      Anshumann et al., Sparse Logit Sampling: Accelerating Knowledge
      Distillation in LLMs, ACL 2025 (top-k teachers stored offline).
    """
    name = "linear_sparse_distillation_loss"
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    weight, hidden = jnp.asarray(weight), jnp.asarray(hidden)
    check_floating(name, "hidden", hidden)
    check_floating(name, "weight", weight)
    if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[0]:
        raise ValueError(
            f"{name}: hidden [N, D] and weight [D, V] must agree on D, got shapes "
            f"{tuple(hidden.shape)} and {tuple(weight.shape)}"
        )
    bias = _check_bias(name, bias, weight)
    indices, log_probs, tail_mode = _sparse_teacher(
        name, (hidden.shape[0], weight.shape[1]), teacher_indices, teacher_log_probs,
        temperature, tail, "hidden @ weight")
    row_loss = _sparse_row_loss(tail_mode)
    if reduction != "none":
        return _reduced_linear_loss(row_loss, reduction, chunk_size, hidden, weight, bias,
                                    (indices, log_probs), jnp.asarray(temperature))
    return _map_row_chunks(
        lambda h, i, lq: row_loss(_linear_logits(h, weight, bias), (i, lq),
                                  jnp.asarray(temperature)),
        chunk_size, hidden, indices, log_probs,
    )


def _teacher_row_loss(row: Callable[..., jax.Array], squared: bool) -> Callable[..., jax.Array]:
    """``loss(s, t, (T, *options))``: ``row(s / T, t / T, *options)`` in the compute dtype,
    times ``T**2`` if ``squared``. The parameters are an argument, not a closure, so that
    the reduced linear form's custom_vjp can take them traced."""

    def loss(s: jax.Array, t: jax.Array, parameters: tuple) -> jax.Array:
        dtype = compute_dtype(s.dtype, t.dtype)
        temperature, *options = (p.astype(dtype) for p in parameters)
        value = row(s.astype(dtype) / temperature, t.astype(dtype) / temperature, *options)
        return temperature**2 * value if squared else value

    return loss


def _chunked_teacher_loss(name: str, row_loss, parameters: tuple, student_logits: ArrayLike,
                          teacher_logits: ArrayLike, chunk_size: int, reduction: str):
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    student, teacher = jnp.asarray(student_logits), jnp.asarray(teacher_logits)
    check_floating(name, "student_logits", student)
    check_floating(name, "teacher_logits", teacher)
    if student.ndim != 2 or teacher.shape != student.shape:
        raise ValueError(
            f"{name}: student_logits and teacher_logits must both be [N, V], got shapes "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    return _reduce(_map_row_chunks(lambda s, t: row_loss(s, t, parameters), chunk_size,
                                   student, teacher), reduction)


def _linear_teacher_loss(name: str, row_loss, parameters: tuple, hidden: ArrayLike,
                         weight: ArrayLike,
                         teacher_hidden: ArrayLike, teacher_weight: ArrayLike,
                         bias: ArrayLike | None, teacher_bias: ArrayLike | None,
                         chunk_size: int, reduction: str):
    chunk_size = _check_chunk(name, chunk_size)
    reduction = check_reduction(name, reduction)
    weight, teacher_weight = jnp.asarray(weight), jnp.asarray(teacher_weight)
    hidden, teacher_hidden = jnp.asarray(hidden), jnp.asarray(teacher_hidden)
    for arg, x in (("hidden", hidden), ("weight", weight), ("teacher_hidden", teacher_hidden),
                   ("teacher_weight", teacher_weight)):
        check_floating(name, arg, x)
        if x.ndim != 2:
            raise ValueError(f"{name}: {arg} must be 2-D, got shape {tuple(x.shape)}")
    shapes = (hidden.shape, weight.shape, teacher_hidden.shape, teacher_weight.shape)
    if (hidden.shape[1] != weight.shape[0] or teacher_hidden.shape[1] != teacher_weight.shape[0]
            or teacher_hidden.shape[0] != hidden.shape[0]
            or teacher_weight.shape[1] != weight.shape[1]):
        raise ValueError(
            f"{name}: hidden [N, D], weight [D, V], teacher_hidden [N, D_t] and teacher_weight "
            f"[D_t, V] must agree, got shapes {', '.join(str(tuple(x)) for x in shapes)}"
        )
    bias = _check_bias(name, bias, weight)
    teacher_bias = _check_bias(name, teacher_bias, teacher_weight)

    def row(logits: jax.Array, th: jax.Array, teacher: tuple) -> jax.Array:
        tw, tb, p = teacher
        return row_loss(logits, _linear_logits(th, tw, tb), p)

    teacher = (teacher_weight, teacher_bias, parameters)
    if reduction != "none":
        return _reduced_linear_loss(row, reduction, chunk_size, hidden, weight, bias,
                                    teacher_hidden, teacher)
    return _map_row_chunks(
        lambda h, th: row(_linear_logits(h, weight, bias), th, teacher),
        chunk_size, hidden, teacher_hidden,
    )


_GENERALIZED_JS = _teacher_row_loss(generalized_js_rows, squared=False)
_REVERSE_KL = _teacher_row_loss(reverse_kl_rows, squared=True)


@export_loss((BETA, _SOFTENING))
def chunked_generalized_js_divergence(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    beta: ArrayLike = 0.5,
    temperature: ArrayLike = 1.0,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Generalized Jensen-Shannon divergence of student from teacher, by row chunks.

    .. math::
      \mathrm{JSD}_\beta(P \,\|\, Q) = \beta\, \mathrm{KL}(P \,\|\, M)
        + (1 - \beta)\, \mathrm{KL}(Q \,\|\, M), \qquad M = \beta P + (1 - \beta) Q,

    with the teacher's :math:`P = \operatorname{softmax}(t / T)` and the
    student's :math:`Q = \operatorname{softmax}(s / T)`. At :math:`\beta = 1/2`
    it is ``js_divergence``. The formula is 0 at both ends; there, as in Liger
    Kernel's ``LigerFusedLinearJSD``, :math:`\beta = 0` gives the forward
    :math:`\mathrm{KL}(P \,\|\, Q)` (``kl_divergence``, mass-covering) and
    :math:`\beta = 1` the reverse :math:`\mathrm{KL}(Q \,\|\, P)`
    (``reverse_kl_divergence``, mode-seeking): the limits of
    :math:`\mathrm{JSD}_\beta / \beta` and :math:`\mathrm{JSD}_\beta / (1 - \beta)`.
    No :math:`T^2` factor is applied. The teacher is not differentiated.

    Args:
      student_logits: the student's unnormalised scores ``[N, V]``.
      teacher_logits: the teacher's, same shape (not differentiated).
      beta: :math:`\beta \in [0, 1]`, the teacher's weight in :math:`M` (not differentiated).
      temperature: :math:`T > 0`, dividing both logits.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"`` (one loss per row), ``"mean"`` over the rows or ``"sum"``.

    Returns:
      The divergence per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> s, t = jnp.array([[0.0, 1.0, 2.0]]), jnp.array([[2.0, 0.0, 0.0]])
      >>> [round(float(softxent.chunked_generalized_js_divergence(s, t, beta=b)[0]), 4)
      ...  for b in (0.0, 0.5, 1.0)]  # KL(P || Q), JS, KL(Q || P)
      [1.4225, 0.2854, 1.2271]

    References:
      Agarwal et al., On-Policy Distillation of Language Models: Learning from
      Self-Generated Mistakes (GKD), ICLR 2024.

      Hsu et al., Liger Kernel, arXiv:2410.10989, 2024 (``LigerFusedLinearJSD``).
    """
    name = "chunked_generalized_js_divergence"
    return _chunked_teacher_loss(name, _GENERALIZED_JS,
                                 (jnp.asarray(temperature), jnp.asarray(beta)),
                                 student_logits, teacher_logits, chunk_size, reduction)


@export_loss((BETA, _SOFTENING))
def linear_generalized_js_divergence(
    hidden: ArrayLike,
    weight: ArrayLike,
    teacher_hidden: ArrayLike,
    teacher_weight: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    teacher_bias: ArrayLike | None = None,
    beta: ArrayLike = 0.5,
    temperature: ArrayLike = 1.0,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Generalized JSD from ``teacher_hidden @ teacher_weight`` to ``hidden @ weight``, chunked.

    .. math::
      \mathrm{JSD}_\beta(P \,\|\, Q) = \beta\, \mathrm{KL}(P \,\|\, M)
        + (1 - \beta)\, \mathrm{KL}(Q \,\|\, M), \quad M = \beta P + (1 - \beta) Q,
      \quad P = \operatorname{softmax}\big((h^t W^t + b^t) / T\big), \quad
      Q = \operatorname{softmax}\big((h W + b) / T\big)

    As ``chunked_generalized_js_divergence`` (and Liger Kernel's
    ``LigerFusedLinearJSD``): :math:`\beta = 0` is the forward
    :math:`\mathrm{KL}(P \,\|\, Q)`, :math:`\beta = 1` the reverse
    :math:`\mathrm{KL}(Q \,\|\, P)`, :math:`\beta = 1/2` the symmetric JS
    divergence. Neither model's N x V logits are formed; the teacher is not
    differentiated.

    Args:
      hidden: the student's hidden states ``[N, D]``.
      weight: the student's output matrix ``[D, V]``.
      teacher_hidden: the teacher's hidden states ``[N, D_t]``.
      teacher_weight: the teacher's output matrix ``[D_t, V]``.
      bias: the student's optional bias ``[V]``.
      teacher_bias: the teacher's optional bias ``[V]``.
      beta: :math:`\beta \in [0, 1]` (not differentiated).
      temperature: :math:`T > 0`, dividing both logits.
      chunk_size: rows per chunk (a positive int).
      reduction: as in ``linear_softmax_cross_entropy`` (``"mean"``/``"sum"``
        form each chunk's logits once instead of twice).

    Returns:
      The divergence per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> h = jnp.ones((1, 1))
      >>> s, t = jnp.array([[0.0, 1.0, 2.0]]), jnp.array([[2.0, 0.0, 0.0]])
      >>> round(float(softxent.linear_generalized_js_divergence(h, s, h, t, reduction="sum")), 4)
      0.2854

    References:
      Agarwal et al., On-Policy Distillation of Language Models: Learning from
      Self-Generated Mistakes (GKD), ICLR 2024.

      Hsu et al., Liger Kernel, arXiv:2410.10989, 2024 (``LigerFusedLinearJSD``).
    """
    name = "linear_generalized_js_divergence"
    return _linear_teacher_loss(name, _GENERALIZED_JS,
                                (jnp.asarray(temperature), jnp.asarray(beta)), hidden, weight,
                                teacher_hidden, teacher_weight, bias, teacher_bias, chunk_size,
                                reduction)


@export_loss((TEMPERATURE,))
def chunked_reverse_kl_distillation_loss(
    student_logits: ArrayLike,
    teacher_logits: ArrayLike,
    *,
    temperature: ArrayLike = 2.0,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Reverse-KL distillation on ``[N, V]`` logits, computed ``chunk_size`` rows at a time.

    .. math::
      \ell_n = T^2 \, \mathrm{KL}\big(\operatorname{softmax}(s_n/T) \,\big\|\,
      \operatorname{softmax}(t_n/T)\big)

    The student's distribution first: mode-seeking, it is infinite where the
    student puts mass on a class the teacher gives probability 0. With
    :math:`T^2` as in ``distillation_loss``; the teacher is not differentiated.

    Args:
      student_logits: the student's unnormalised scores ``[N, V]``.
      teacher_logits: the teacher's, same shape (not differentiated).
      temperature: :math:`T > 0`.
      chunk_size: rows per chunk (a positive int).
      reduction: ``"none"`` (one loss per row), ``"mean"`` over the rows or ``"sum"``.

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> s, t = jnp.array([[0.0, 1.0, 2.0]]), jnp.array([[2.0, 0.0, 0.0]])
      >>> round(float(softxent.chunked_reverse_kl_distillation_loss(s, t, reduction="sum")), 4)
      1.3797

    References:
      Gu et al., MiniLLM: Knowledge Distillation of Large Language Models,
      ICLR 2024 (reverse KL for distillation).
    """
    name = "chunked_reverse_kl_distillation_loss"
    return _chunked_teacher_loss(name, _REVERSE_KL, (jnp.asarray(temperature),), student_logits,
                                 teacher_logits, chunk_size, reduction)


@export_loss((TEMPERATURE,))
def linear_reverse_kl_distillation_loss(
    hidden: ArrayLike,
    weight: ArrayLike,
    teacher_hidden: ArrayLike,
    teacher_weight: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    teacher_bias: ArrayLike | None = None,
    temperature: ArrayLike = 2.0,
    chunk_size: int = 1024,
    reduction: str = "none",
) -> jax.Array:
    r"""Reverse-KL distillation from ``teacher_hidden @ teacher_weight`` to ``hidden @ weight``.

    .. math::
      \ell_n = T^2 \, \mathrm{KL}\big(\operatorname{softmax}(s_n/T) \,\big\|\,
      \operatorname{softmax}(t_n/T)\big), \quad s_n = h_n W + b, \quad
      t_n = h^t_n W^t + b^t

    Mode-seeking (see ``chunked_reverse_kl_distillation_loss``). Neither
    model's N x V logits are formed; the teacher is not differentiated.

    Args:
      hidden: the student's hidden states ``[N, D]``.
      weight: the student's output matrix ``[D, V]``.
      teacher_hidden: the teacher's hidden states ``[N, D_t]``.
      teacher_weight: the teacher's output matrix ``[D_t, V]``.
      bias: the student's optional bias ``[V]``.
      teacher_bias: the teacher's optional bias ``[V]``.
      temperature: :math:`T > 0`.
      chunk_size: rows per chunk (a positive int).
      reduction: as in ``linear_softmax_cross_entropy`` (``"mean"``/``"sum"``
        form each chunk's logits once instead of twice).

    Returns:
      The loss per row ``[N]``, or its reduction, a scalar.

    Example:
      >>> import jax.numpy as jnp, softxent
      >>> h = jnp.ones((1, 1))
      >>> s, t = jnp.array([[0.0, 1.0, 2.0]]), jnp.array([[2.0, 0.0, 0.0]])
      >>> round(float(softxent.linear_reverse_kl_distillation_loss(
      ...     h, s, h, t, temperature=1.0, reduction="sum")), 4)
      1.2271

    References:
      Gu et al., MiniLLM: Knowledge Distillation of Large Language Models,
      ICLR 2024; Hsu et al., Liger Kernel, arXiv:2410.10989, 2024.
    """
    name = "linear_reverse_kl_distillation_loss"
    return _linear_teacher_loss(name, _REVERSE_KL, (jnp.asarray(temperature),), hidden, weight,
                                teacher_hidden, teacher_weight, bias, teacher_bias, chunk_size,
                                reduction)
