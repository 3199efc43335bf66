"""The loss registry: one place that lists every loss softxent ships.

Proofs, verification, experiments, benchmarks and the CLI all enumerate losses
from here, so adding a loss means writing one function and decorating it with
:func:`register_loss`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import check_reduction

InputKind = Literal["logits", "probabilities"]
Link = Literal["softmax", "sigmoid", "none"]
Reduction = Literal["class", "elementwise"]


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


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """What the rest of softxent needs to know about one loss.

    Attributes:
      name: the public function name, e.g. ``"softmax_cross_entropy"``.
      fn: the exported, jit-compiled loss.
      input: whether the first argument is ``"logits"`` or ``"probabilities"``.
      targets: whether the second argument is target ``"probabilities"`` or
        (for distillation) teacher ``"logits"``.
      link: how logits become probabilities: ``"softmax"`` over the class axis,
        ``"sigmoid"`` per component, or ``"none"`` for probability inputs.
      reduction: ``"class"`` sums over the class axis (one value per example);
        ``"elementwise"`` returns one value per component.
      params: hyperparameters with their defaults and domains.
      summary: a one-line description.
      references: citations for the docstring and the catalogue.
    """

    name: str
    fn: Callable[..., jax.Array]
    input: InputKind
    targets: InputKind
    link: Link
    reduction: Reduction
    params: tuple[Param, ...]
    summary: str
    references: tuple[str, ...] = ()

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise KeyError(f"{self.name} has no parameter {name!r} (parameters: {known})")


_REGISTRY: dict[str, LossSpec] = {}


def _as_array(x: Any) -> Any:
    # Python sequences must become arrays before jit, which would otherwise treat
    # a list as a pytree of separate scalar arguments.
    if isinstance(x, list | tuple):
        return np.asarray(x)
    return x


_REDUCTION_DOC = """\
      reduction: ``"none"`` returns the loss as described under Returns;
        ``"mean"`` or ``"sum"`` returns the mean or the sum of it, a scalar
        (the mean of no values is 0).
"""


def _with_reduction(impl: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """``impl`` with the ``reduction`` option: its output, or the mean or sum of it.

    A loss that made its gradient with its value when reduced was tried and was no
    faster on the CPU (the gradient buffer's initial write cost what the second
    read of the logits saved), so every loss reduces its per-example output.
    """

    @functools.wraps(impl)
    def reduced(*args: Any, reduction: str = "none", **options: Any) -> jax.Array:
        check_reduction(impl.__name__, reduction)  # static: checked when traced
        output = impl(*args, **options)
        if reduction == "none":
            return output
        total = jnp.sum(output)
        return total / max(output.size, 1) if reduction == "mean" else total

    signature = inspect.signature(impl)
    option = inspect.Parameter(
        "reduction", inspect.Parameter.KEYWORD_ONLY, default="none", annotation="str"
    )
    reduced.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), option]
    )
    return reduced


def _documented(doc: str | None, name: str) -> str | None:
    """The docstring with ``reduction`` listed last under Args."""
    if doc is None:
        return None
    at = doc.find("\n    Returns:")
    if at < 0:
        raise ValueError(f"loss {name!r}: its docstring needs a 'Returns:' section")
    return doc[:at].rstrip("\n") + "\n" + _REDUCTION_DOC + doc[at:]


def register_loss(
    *,
    input: InputKind,
    link: Link,
    reduction: Reduction,
    params: tuple[Param, ...] = (),
    summary: str,
    targets: InputKind = "probabilities",
    references: tuple[str, ...] = (),
) -> Callable[[Callable[..., jax.Array]], Callable[..., jax.Array]]:
    """Register a loss and export it jit-compiled.

    The returned function validates concrete hyperparameters (a clear
    ``ValueError`` before any work), then calls ``jax.jit(fn)`` with ``axis``
    and ``reduction`` static. Inside a user's own ``jit``, ``vmap`` or ``grad``
    it simply inlines. Every loss takes ``reduction`` (``"none"``, ``"mean"`` or
    ``"sum"``, added here, and listed in its docstring's Args).
    """

    def decorate(impl: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
        name = impl.__name__
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} is already registered")
        reducible = _with_reduction(impl)
        jitted = jax.jit(reducible, static_argnames=("axis", "reduction"))

        @functools.wraps(reducible)
        def loss(predictions: Any, targets: Any, /, **options: Any) -> jax.Array:
            if "reduction" in options:  # before jit hashes it: a list gets this message too
                check_reduction(name, options["reduction"])
            for p in params:
                if p.name in options:
                    p.validate(name, options[p.name])
            if "where" in options:
                options["where"] = _as_array(options["where"])
            return jitted(_as_array(predictions), _as_array(targets), **options)

        loss.__doc__ = _documented(impl.__doc__, name)
        loss.jitted = jitted  # type: ignore[attr-defined]
        loss.lower = jitted.lower  # type: ignore[attr-defined]
        spec = LossSpec(
            name=name,
            fn=loss,
            input=input,
            targets=targets,
            link=link,
            reduction=reduction,
            params=params,
            summary=summary,
            references=references,
        )
        loss.spec = spec  # type: ignore[attr-defined]
        _REGISTRY[name] = spec
        return loss

    return decorate


def _ensure_loaded() -> None:
    # The loss modules register themselves on import.
    from . import losses  # noqa: F401


def list_losses(
    *,
    input: InputKind | None = None,
    link: Link | None = None,
    reduction: Reduction | None = None,
) -> list[LossSpec]:
    """Every registered loss, in registration order, optionally filtered."""
    _ensure_loaded()
    return [
        s
        for s in _REGISTRY.values()
        if (input is None or s.input == input)
        and (link is None or s.link == link)
        and (reduction is None or s.reduction == reduction)
    ]


def get_loss(name: str) -> LossSpec:
    """The registry entry for ``name``; a ``KeyError`` suggests close names."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown loss {name!r}{hint} (known: {', '.join(_REGISTRY)})"
        ) from None


def loss_names() -> list[str]:
    """The names of every registered loss."""
    return [s.name for s in list_losses()]


__all__ = [
    "LossSpec",
    "Param",
    "get_loss",
    "list_losses",
    "loss_names",
    "register_loss",
]
