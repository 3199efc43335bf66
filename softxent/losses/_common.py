"""Argument preparation shared by every loss."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .._validation import (
    check_axis,
    check_floating,
    check_same_shape,
    check_targets_dtype,
    check_where,
    compute_dtype,
)


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
        where = jnp.asarray(where)
        check_where(fn, where, predictions.shape)
        # Masked entries must not reach the loss at all: a discarded branch that
        # holds an infinity still turns a zero cotangent into NaN (0 * inf).
        targets = jnp.where(where, targets, 0)
        if axis is None:
            predictions = jnp.where(where, predictions, 0)
    return predictions, targets, axis, where, dtype


def as_param(value: Any, dtype: jnp.dtype) -> jax.Array:
    return jnp.asarray(value).astype(dtype)
