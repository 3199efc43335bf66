"""Argument preparation shared by every loss."""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from .._validation import (
    check_axis,
    check_floating,
    check_same_shape,
    check_targets_dtype,
    compute_dtype,
)
from ._export import Param
from ._fused import Regularisers

# Hyperparameters that several losses (dense, chunked, linear, sparse) take alike.
LABEL_SMOOTHING = Param(
    "label_smoothing", 0.0, 0.0, 1.0, doc="mass spread uniformly over the kept classes"
)
TEMPERATURE = Param("temperature", 2.0, 0.0, None, low_open=True, doc="softening temperature T")


def prepare(
    fn: str,
    predictions: Any,
    targets: Any,
    axis: int | None,
    where: Any,
    *,
    predictions_name: str = "logits",
    targets_name: str = "targets",
    targets_floating: bool = False,
    cast: bool = True,
) -> tuple[jax.Array, jax.Array, int | None, jax.Array | None, jnp.dtype]:
    """Check and cast a loss's arguments; return them in the compute dtype.

    ``axis=None`` marks an elementwise loss (no class axis to check). With
    ``cast=False`` the arrays keep their own dtypes, for a loss that casts
    them where it reads them (a cast here would be an array of its own).
    """
    predictions = jnp.asarray(predictions)
    targets = jnp.asarray(targets)
    check_floating(fn, predictions_name, predictions)
    if targets_floating:
        check_floating(fn, targets_name, targets)
    else:
        check_targets_dtype(fn, targets_name, targets)
    check_same_shape(fn, predictions_name, predictions, targets_name, targets)
    if axis is not None:
        axis = check_axis(fn, axis, predictions.ndim)
    dtype = compute_dtype(predictions.dtype, targets.dtype)
    if cast:
        predictions, targets = predictions.astype(dtype), targets.astype(dtype)
    if where is not None:
        where = where_mask(fn, jnp.asarray(where), predictions.shape, axis)
        # Masked entries must not reach the loss at all: a discarded branch that
        # holds an infinity still turns a zero cotangent into NaN (0 * inf).
        targets = jnp.where(where, targets, 0)
        if axis is None:
            predictions = jnp.where(where, predictions, 0)
    return predictions, targets, axis, where, dtype


def where_mask(fn: str, where: jax.Array, shape: tuple[int, ...], axis: int | None) -> jax.Array:
    """``where`` as a mask of the logits' shape; it may have that shape or be per example.

    A class loss (``axis`` given) takes a class mask of the logits' shape, or a
    per-example mask with the class axis of size 1, which keeps or drops every
    class of its example. An elementwise loss (``axis=None``) takes a mask of the
    logits' shape, or one whose last axis has size 1: a per-example mask over
    the leading axes that keeps or drops every component (label) of its
    example. Any other shape is an error: softxent never broadcasts a mask
    silently, because optax's ``where`` of shape ``[batch]`` masks examples
    while a ``[K]``-shaped class mask would broadcast over the rows.
    """
    if where.dtype != jnp.bool_:
        raise TypeError(f"{fn}: where must be a boolean mask, got dtype {where.dtype}")
    shape = tuple(shape)
    if where.shape == shape:
        return where
    if shape:
        single = axis % len(shape) if axis is not None else len(shape) - 1
        per_example = shape[:single] + (1,) + shape[single + 1:]
        if where.shape == per_example:
            return jnp.broadcast_to(where, shape)
    else:
        per_example = shape
    what, whats = ("class", "classes") if axis is not None else ("component", "components")
    raise ValueError(
        f"{fn}: where shape {where.shape} is neither a {what} mask of the logits' shape "
        f"{shape} nor a per-example mask of shape {per_example} (the {what} axis of size "
        f"1). optax's where of shape [batch] masks examples; softxent's masks {whats} and "
        f"never broadcasts silently. Broadcast explicitly: "
        f"jnp.broadcast_to(mask, {shape}) for a {what} mask shared by every example, or "
        f"mask.reshape({per_example}) to keep or drop whole examples."
    )


def kept_examples(where: jax.Array | None, axis: int | None) -> jax.Array | None:
    """The examples (or components, for ``axis=None``) that ``reduction="mean"`` averages.

    An example counts when any of its classes is kept: a fully masked row gives 0
    and is left out of the mean, as a per-example mask's dropped rows are.
    """
    if where is None or axis is None:
        return where
    return jnp.any(where, axis=axis)


def as_param(value: Any, dtype: jnp.dtype) -> jax.Array:
    return jnp.asarray(value).astype(dtype)


def check_regularisers(fn: str, z_loss: Any, soft_cap: Any) -> Regularisers:
    """The z-loss weight (a number >= 0) and the soft cap (None or a number > 0), as Python
    floats: they decide which terms the compiled passes hold, so they cannot be traced."""
    for name, value, low in (("z_loss", z_loss, ">= 0"), ("soft_cap", soft_cap, "> 0")):
        if value is None and name == "soft_cap":
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"{fn}: {name} must be a Python number {low}"
                            f"{' or None' if name == 'soft_cap' else ''}, got {value!r}")
        bad = value < 0 if name == "z_loss" else value <= 0
        if bad or not math.isfinite(value):
            raise ValueError(f"{fn}: {name} must be a finite number {low}, got {value!r}")
    return Regularisers(float(z_loss), None if soft_cap is None else float(soft_cap))
