"""Input checks shared by every loss, and the target validator.

Shapes and dtypes are static under ``jit``, so the losses' checks run at trace
time and raise before any computation, also inside a user's own ``jit``. Target
values are not static: :func:`check_targets` checks them eagerly on a concrete
array and as ``jax.experimental.checkify`` checks on a traced one.
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
) -> ArrayLike:
    """Validate soft targets and report the first bad row, eagerly or inside ``jit``.

    Checks, in this order: non-finite entries (NaN, inf), negative entries,
    entries above 1 and, for ``kind="distribution"``, rows that do not sum to 1
    within ``atol``.

    Where the checks happen:

    * On a concrete array (NumPy, a list, a JAX array outside ``jit``) they run
      at once and raise ``ValueError``.
    * On a traced array (inside ``jit``, ``grad``, ``vmap``) they become
      ``jax.experimental.checkify`` checks: functionalise the caller with
      ``checkify.checkify`` (or use :func:`softxent.checked`), and the returned
      error, raised with ``error.throw()``, names the same row, values and
      counts from inside the compiled step. Without ``checkify`` JAX refuses
      to trace the check.
    * The losses themselves check only what is static under ``jit``: shapes,
      dtypes, the class axis and the ``where`` mask, at trace time. They never
      look at the target values; validate them here.

    Args:
      targets: an array of soft targets.
      axis: the class axis.
      kind: ``"distribution"``: each row along ``axis`` is a probability vector
        (entries in [0, 1] that sum to 1 within ``atol``); ``"multilabel"``:
        every entry is an independent probability in [0, 1].
      atol: tolerance on the row sums.

    Returns:
      The targets, unchanged (a NumPy array when they were concrete), so the
      call can be used inline.

    Raises:
      ValueError: naming the first offending row (its index, its values and its
        sum, at the targets' own precision) and what is wrong with it.

    Example:
      >>> import softxent
      >>> softxent.check_targets([[0.3, 0.5, 0.2]]).shape
      (1, 3)
      >>> try:
      ...     softxent.check_targets([[0.3, 0.3, 0.3]])
      ... except ValueError as error:
      ...     print(str(error).split(": ", 1)[1])
      row (0,) does not sum to 1 (tolerance 1e-06): values [0.3, 0.3, 0.3], sum 0.9 (1 bad row of 1)
    """
    if kind not in ("distribution", "multilabel"):
        raise ValueError(
            f"check_targets: kind must be 'distribution' or 'multilabel', got {kind!r}"
        )
    if not atol >= 0:
        raise ValueError(f"check_targets: atol must be >= 0, got {atol!r}")
    if isinstance(targets, jax.core.Tracer):
        return _check_traced_targets(targets, axis, kind, atol)
    arr = np.asarray(targets)
    if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"check_targets: targets must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("check_targets: targets must have at least one (class) axis, got a scalar")
    ax = check_axis("check_targets", axis, arr.ndim)
    rows = np.moveaxis(arr, ax, -1).reshape(-1, arr.shape[ax])
    index_shape = tuple(np.delete(np.array(arr.shape), ax))
    wide = rows.astype(np.float64)
    sums = wide.sum(axis=-1)
    digits = _digits(arr.dtype)
    for bad, reason in _problems(np, wide, sums, kind, atol):
        if bad.any():
            first = int(np.argmax(bad))
            index = tuple(int(i) for i in np.unravel_index(first, index_shape)) if index_shape \
                else None
            values = ", ".join(f"{v:.{digits}g}" for v in wide[first])
            count = int(bad.sum())
            raise ValueError(
                f"check_targets: {_row_name(index)} {reason}: values [{values}], "
                f"sum {sums[first]:.{digits}g} ({count} bad {_rows(count)} of {len(rows)})"
            )
    return arr


def _digits(dtype: np.dtype) -> int:
    """Significant digits the dtype carries (float32: 6), so values print without noise."""
    return np.finfo(dtype).precision if np.issubdtype(dtype, np.floating) else 15


def _rows(count: int) -> str:
    return "row" if count == 1 else "rows"


def _row_name(index: tuple[int, ...] | None) -> str:
    return "the row" if index is None else f"row {index}"


def _problems(xp, rows, sums, kind: str, atol: float):
    """(bad-row mask, what is wrong) for each check, with ``xp`` NumPy or jax.numpy."""
    problems = [
        (~xp.isfinite(rows).all(axis=-1), "has non-finite entries"),
        ((rows < 0).any(axis=-1), "has negative entries"),
        ((rows > 1).any(axis=-1), "has entries above 1"),
    ]
    if kind == "distribution":
        problems.append((~(xp.abs(sums - 1) <= atol), f"does not sum to 1 (tolerance {atol:g})"))
    return problems


def _check_traced_targets(targets: jax.Array, axis: int, kind: str, atol: float) -> jax.Array:
    """The checks of :func:`check_targets` as ``checkify`` checks on a traced array."""
    from jax.experimental import checkify

    if targets.ndim == 0:
        raise ValueError("check_targets: targets must have at least one (class) axis, got a scalar")
    ax = check_axis("check_targets", axis, targets.ndim)
    rows = jnp.moveaxis(targets, ax, -1)
    index_shape = rows.shape[:-1]
    rows = rows.reshape(-1, targets.shape[ax])
    wide = rows.astype(compute_dtype(targets.dtype)) if jnp.issubdtype(
        targets.dtype, jnp.floating) else rows.astype(jnp.float32)
    sums = jnp.sum(wide, axis=-1)
    # Rounded to the digits the dtype carries, as the eager message prints them.
    decimals = _digits(np.dtype(wide.dtype))
    for bad, reason in _problems(jnp, wide, sums, kind, atol):
        first = jnp.argmax(bad)
        if index_shape:
            index = jnp.unravel_index(first, index_shape)
            names = [f"i{j}" for j in range(len(index_shape))]
            where = "row (" + ", ".join("{" + n + "}" for n in names) + \
                ("," if len(names) == 1 else "") + ")"
            index_args = dict(zip(names, index, strict=True))
        else:
            where, index_args = "the row", {}
        checkify.check(
            ~jnp.any(bad),
            f"check_targets: {where} {reason}: values {{values}}, sum {{total}} "
            f"({{count}} bad row(s) of {rows.shape[0]})",
            # The sum as a 1-element array: checkify prints a scalar as a Python float,
            # float32 noise included.
            values=jnp.round(wide[first], decimals),
            total=jnp.round(sums[first], decimals)[None],
            count=jnp.sum(bad), **index_args,
        )
    return targets
