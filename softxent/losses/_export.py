"""How a loss is exported: hyperparameter domains checked eagerly, then one jit.

A loss is written as a plain pure function (``ArrayLike`` in, ``jax.Array``
out) that takes ``axis``, ``where`` and ``reduction`` and documents every
argument. :func:`export_loss` wraps it for users: concrete hyperparameters are
checked against their :class:`Param` domains before any work (a traced value
inside a user's ``jit`` or ``vmap`` cannot be inspected and passes through), a
Python list becomes an array, and the function runs under one ``jax.jit`` with
``axis`` and ``reduction`` static. This module knows nothing of the registry,
so the loss modules use it without importing the registry.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import check_reduction

# ignore_index: a label to compare; chunk_size: a loop's shape; tail: a choice of formula;
# z_loss and soft_cap: whether (and how) the fused passes add a term.
STATIC_OPTIONS = ("axis", "reduction", "ignore_index", "chunk_size", "tail", "z_loss",
                  "soft_cap")


@dataclasses.dataclass(frozen=True)
class Param:
    """A scalar hyperparameter of a loss and the interval it must lie in."""

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    doc: str = ""

    def domain(self) -> str:
        """The allowed interval in mathematical notation, for error messages."""
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        text = f"{left}{lo}, {hi}{right}"
        return text + " or None" if self.optional else text

    def validate(self, loss_name: str, value: Any) -> None:
        """Raise ``ValueError`` if a concrete ``value`` lies outside the domain.

        Traced values (inside a user's ``jit`` or ``vmap``) cannot be inspected
        and pass through unchecked.
        """
        if value is None:
            if self.optional:
                return
            raise ValueError(f"{loss_name}: {self.name} must be in {self.domain()}, got None")
        if isinstance(value, jax.core.Tracer):
            return
        try:
            values = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{loss_name}: {self.name} must be a real number in {self.domain()}, "
                f"got {value!r} of type {type(value).__name__}"
            ) from None
        bad = ~np.isfinite(values) if values.size else np.zeros((0,), bool)
        if self.low is not None:
            bad |= values <= self.low if self.low_open else values < self.low
        if self.high is not None:
            bad |= values >= self.high if self.high_open else values > self.high
        if np.any(bad):
            shown = values.reshape(-1)[np.argmax(bad.reshape(-1))]
            raise ValueError(
                f"{loss_name}: {self.name} must be in {self.domain()}, got {shown:g}"
            )


def apply_reduction(
    name: str, values: jax.Array, reduction: str, kept: jax.Array | None = None
) -> jax.Array:
    """``values`` as they are (``"none"``), or their mean or sum (a scalar).

    ``kept`` (the shape of ``values``) marks the entries a ``where`` mask keeps:
    the mean is over those only (a masked entry is 0 and adds nothing to the sum).
    The mean of no values is 0. Each loss reduces its per-example output rather
    than forming its gradient together with a reduced value: that was measured
    on the CPU and gained nothing (the gradient buffer's first write cost what
    the second read of the logits saved).
    """
    check_reduction(name, reduction)  # static under jit: checked when traced
    if reduction == "none":
        return values
    total = jnp.sum(values)
    if reduction == "sum":
        return total
    if kept is None:
        return total / max(values.size, 1)
    count = jnp.sum(jnp.broadcast_to(kept, values.shape)).astype(total.dtype)
    return total / jnp.maximum(count, 1)


def _as_array(x: Any) -> Any:
    # Python sequences must become arrays before jit, which would otherwise treat
    # a list as a pytree of separate scalar arguments.
    if isinstance(x, list | tuple):
        return np.asarray(x)
    return x


def is_exported(fn: Any) -> bool:
    """Whether ``fn`` was made by :func:`export_loss`."""
    return callable(fn) and isinstance(getattr(fn, "params", None), tuple) and hasattr(
        fn, "jitted"
    )


def export_loss(
    params: Sequence[Param] = (),
    *,
    check: Callable[..., None] | None = None,
) -> Callable[[Callable[..., jax.Array]], Callable[..., jax.Array]]:
    """Decorate a pure loss function into softxent's exported form.

    The returned function checks concrete values of ``params`` and of
    ``reduction`` (before ``jit`` hashes it, so a list gets the same message as
    any bad value), runs ``check(*arrays, **options)`` if given (for checks of
    argument values, which ``jit`` would hide behind tracers), turns Python
    lists into arrays, and calls ``jax.jit(fn)`` with ``axis``, ``reduction``
    and any of ``STATIC_OPTIONS`` it takes static. Inside a user's own
    ``jit``, ``vmap`` or ``grad`` it inlines. It keeps ``fn``'s name, signature
    and docstring, and carries ``params``, ``jitted`` (the compiled function,
    which checks ``reduction`` when traced) and ``lower``.
    """
    params = tuple(params)
    for p in params:
        if not isinstance(p, Param):
            raise TypeError(f"export_loss: params must be Param objects, got {p!r}")

    def decorate(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
        name = fn.__name__
        accepted = inspect.signature(fn).parameters
        static = tuple(option for option in STATIC_OPTIONS if option in accepted)
        jitted = jax.jit(fn, static_argnames=static)

        @functools.wraps(fn)
        def loss(*arrays: Any, **options: Any) -> jax.Array:
            if "reduction" in options:
                check_reduction(name, options["reduction"])
            for p in params:
                if p.name in options:
                    p.validate(name, options[p.name])
            if "where" in options:
                options["where"] = _as_array(options["where"])
            arrays = tuple(_as_array(a) for a in arrays)
            if check is not None:
                check(*arrays, **options)
            return jitted(*arrays, **options)

        loss.params = params  # type: ignore[attr-defined]
        loss.jitted = jitted  # type: ignore[attr-defined]
        loss.lower = jitted.lower  # type: ignore[attr-defined]
        return loss

    return decorate


__all__ = ["Param", "apply_reduction", "export_loss", "is_exported"]
