"""Input checks shared by every loss, and the eager target validator.

Shapes and dtypes are static under ``jit``, so these checks run at trace time
and raise before any computation, also inside a user's own ``jit``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

_LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def compute_dtype(*dtypes: jnp.dtype) -> jnp.dtype:
    """The dtype a loss computes in: at least float32, never below any input.

    bfloat16 and float16 inputs are computed in float32, and targets keep their
    own precision: a float32 target next to bfloat16 logits is not quantised.
    """
    result = jnp.dtype(jnp.float32)
    for d in dtypes:
        d = jnp.dtype(d)
        # Chosen by width, not jnp.promote_types, which strict promotion forbids.
        if jnp.issubdtype(d, jnp.floating) and d.itemsize > result.itemsize:
            result = d
    return result


def check_floating(fn: str, name: str, x: jax.Array) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: {name} must have a floating dtype (float16, bfloat16, float32 or "
            f"float64), got {x.dtype}"
        )


def check_targets_dtype(fn: str, name: str, x: jax.Array) -> None:
    if not (
        jnp.issubdtype(x.dtype, jnp.floating)
        or jnp.issubdtype(x.dtype, jnp.integer)
        or x.dtype == jnp.bool_
    ):
        raise TypeError(f"{fn}: {name} must be real-valued, got dtype {x.dtype}")


def check_same_shape(fn: str, a_name: str, a: jax.Array, b_name: str, b: jax.Array) -> None:
    if a.shape != b.shape:
        hint = ""
        if b.ndim == a.ndim - 1 or (b.ndim == a.ndim and b.shape[-1:] == (1,)):
            hint = " (class-index labels? convert them with jax.nn.one_hot first)"
        raise ValueError(
            f"{fn}: {b_name} shape {tuple(b.shape)} must equal {a_name} shape "
            f"{tuple(a.shape)}; softxent never broadcasts targets{hint}"
        )


def check_axis(fn: str, axis: int, ndim: int) -> int:
    if not isinstance(axis, int | np.integer) or isinstance(axis, bool):
        raise TypeError(f"{fn}: axis must be an int, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{fn}: logits must have at least one (class) axis, got a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{fn}: axis must be in [{-ndim}, {ndim - 1}] for {ndim}-d input, got {axis}"
        )
    return int(axis) % ndim


REDUCTIONS = ("none", "mean", "sum")


def check_reduction(fn: str, reduction: object) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_where(fn: str, where: jax.Array | None, shape: tuple[int, ...]) -> None:
    if where is None:
        return
    if where.dtype != jnp.bool_:
        raise TypeError(f"{fn}: where must be a boolean mask, got dtype {where.dtype}")
    check_broadcasts_to(fn, "where", where.shape, shape)


def check_broadcasts_to(
    fn: str, name: str, arg_shape: tuple[int, ...], shape: tuple[int, ...]
) -> None:
    """An argument may broadcast to the logits' shape, never enlarge it."""
    try:
        if np.broadcast_shapes(arg_shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{fn}: {name} shape {tuple(arg_shape)} must broadcast to the logits shape "
            f"{tuple(shape)}"
        ) from None


def check_targets(
    targets: ArrayLike,
    *,
    axis: int = -1,
    kind: Literal["distribution", "multilabel"] = "distribution",
    atol: float = 1e-6,
) -> np.ndarray:
    """Validate soft targets eagerly and report the first bad row.

    Args:
      targets: an array of soft targets.
      axis: the class axis.
      kind: ``"distribution"``: each row along ``axis`` is a probability vector
        (entries in [0, 1] that sum to 1 within ``atol``); ``"multilabel"``:
        every entry is an independent probability in [0, 1].
      atol: tolerance on the row sums.

    Returns:
      The targets as a NumPy array, unchanged, so the call can be used inline.

    Raises:
      ValueError: naming the first offending row (its index, its values and its
        sum) and what is wrong with it.

    Example:
      >>> import softxent
      >>> softxent.check_targets([[0.3, 0.5, 0.2]]).shape
      (1, 3)
    """
    if kind not in ("distribution", "multilabel"):
        raise ValueError(
            f"check_targets: kind must be 'distribution' or 'multilabel', got {kind!r}"
        )
    if not atol >= 0:
        raise ValueError(f"check_targets: atol must be >= 0, got {atol!r}")
    arr = np.asarray(targets)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        if arr.dtype != np.bool_:
            raise TypeError(f"check_targets: targets must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("check_targets: targets must have at least one (class) axis, got a scalar")
    ax = check_axis("check_targets", axis, arr.ndim)
    rows = np.moveaxis(arr.astype(np.float64), ax, -1).reshape(-1, arr.shape[ax])
    index_shape = tuple(np.delete(np.array(arr.shape), ax))
    sums = rows.sum(axis=-1)

    problems = [
        (~np.isfinite(rows)).any(axis=-1),
        ((rows < 0) | (rows > 1)).any(axis=-1),
    ]
    reasons = ["non-finite entries", "entries outside [0, 1]"]
    if kind == "distribution":
        problems.append(~(np.abs(sums - 1.0) <= atol))
        reasons.append(f"does not sum to 1 (tolerance {atol:g})")
    for bad, reason in zip(problems, reasons, strict=True):
        if bad.any():
            first = int(np.argmax(bad))
            index = np.unravel_index(first, index_shape) if index_shape else ()
            where_text = f"row {tuple(int(i) for i in index)}" if index_shape else "the row"
            raise ValueError(
                f"check_targets: {where_text} has {reason}: values {rows[first].tolist()}, "
                f"sum {sums[first]:.9g} ({int(bad.sum())} bad row(s) of {len(rows)})"
            )
    return arr
