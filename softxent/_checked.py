"""A loss whose target values are checked inside ``jit``, with ``jax.experimental.checkify``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import jax

from ._registry import get_loss, loss_names
from ._validation import check_targets


def checked(
    loss: Callable[..., jax.Array],
    *,
    kind: Literal["distribution", "multilabel"] | None = None,
    atol: float = 1e-6,
) -> Callable[..., tuple[Any, jax.Array]]:
    """``loss`` with :func:`check_targets` on its targets, in checked mode (``checkify``).

    The result is ``checkify.checkify`` of ``loss`` preceded by the target
    checks (non-finite, negative, above 1, and for distributions a row sum
    away from 1 by more than ``atol``) along the loss's ``axis`` keyword
    (default -1). Called, eagerly or under ``jit``/``vmap``/``grad``, it returns
    ``(error, value)``: ``error.get()`` is None or the message of the first
    failed check, naming the row, its values and sum and the count of bad
    rows; ``error.throw()`` raises it. The checks cost one pass over the
    targets; the plain loss has none (it checks only shapes and dtypes, at
    trace time).

    Args:
      loss: a softxent loss taking ``(predictions, targets, ...)``.
      kind: ``"distribution"`` or ``"multilabel"``; default from the registry:
        ``"multilabel"`` for the per-component (sigmoid and binary) losses,
        ``"distribution"`` for the others.
      atol: tolerance on the row sums.

    Returns:
      A function with ``loss``'s arguments returning ``(error, value)``.

    Raises:
      ValueError: if ``loss`` takes teacher logits as targets (distillation)
        or is not a registry loss and ``kind`` is not given.

    Example:
      >>> import jax, jax.numpy as jnp, softxent
      >>> step = jax.jit(softxent.checked(softxent.softmax_cross_entropy))
      >>> error, value = step(jnp.zeros((2, 3)), jnp.array([[0.2, 0.3, 0.5], [0.5, 0.6, 0.2]]))
      >>> print(error.get().split(":")[1].strip())
      row (1,) does not sum to 1 (tolerance 1e-06)
    """
    from jax.experimental import checkify

    name = getattr(loss, "__name__", None)
    if name in loss_names():
        spec = get_loss(name)
        if spec.targets != "probabilities":
            raise ValueError(f"checked: {name} takes teacher logits as targets, which have no "
                             "range to check")
        if kind is None:
            kind = "multilabel" if spec.output == "per_component" else "distribution"
    elif kind is None:
        raise ValueError(f"checked: {name or loss!r} is not a registry loss; give kind="
                         "'distribution' or 'multilabel'")

    @functools.wraps(loss)
    def with_checks(predictions, targets, *args, **kwargs):
        check_targets(targets, axis=kwargs.get("axis", -1), kind=kind, atol=atol)
        return loss(predictions, targets, *args, **kwargs)

    return checkify.checkify(with_checks, errors=checkify.user_checks)
