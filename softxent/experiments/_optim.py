"""Optax optimisers by name and one training step that works for all of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._optional import require

optax = require("optax", "experiments", "softxent.experiments")


def make(name: str, learning_rate: float, schedule: str = "constant",
         steps: int = 1) -> optax.GradientTransformation:
    """sgd, adam (constant or cosine-decayed step size) or lbfgs by name."""
    lr: Any = learning_rate
    if schedule == "cosine" and name != "lbfgs":
        lr = optax.cosine_decay_schedule(learning_rate, steps, alpha=1e-3)
    if name == "sgd":
        return optax.sgd(lr)
    if name == "adam":
        return optax.adam(lr)
    if name == "lbfgs":
        # The zoom line search picks the step; learning_rate scales it (1 = plain L-BFGS).
        return optax.lbfgs(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r} (expected sgd, adam or lbfgs)")


def step_fn(
    optimizer: optax.GradientTransformation,
    objective: Callable[[Any], jax.Array],
    lbfgs: bool,
    project: Callable[[Any], Any] | None = None,
) -> Callable[[Any, Any], tuple[Any, Any, jax.Array]]:
    """``(params, state) -> (params, state, value)``; L-BFGS reuses the line search's value."""
    if lbfgs:
        value_and_grad = optax.value_and_grad_from_state(objective)

        def step(params, state):
            value, grad = value_and_grad(params, state=state)
            new_updates, new_state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=objective
            )
            # Once converged, L-BFGS's curvature pairs are rounding noise and a later line
            # search can throw the iterate far away; stop where the gradient has vanished.
            leaves = jax.tree.leaves(grad)
            size = max(jnp.finfo(leaf.dtype).eps for leaf in leaves) ** 0.75
            done = jnp.all(jnp.asarray([jnp.max(jnp.abs(g)) <= size for g in leaves]))
            keep = lambda old, new: jnp.where(done, old, new)  # noqa: E731
            state = jax.tree.map(keep, state, new_state)
            updates = jax.tree.map(lambda u: jnp.where(done, jnp.zeros_like(u), u), new_updates)
            return optax.apply_updates(params, updates), state, value
    else:
        def step(params, state):
            value, grad = jax.value_and_grad(objective)(params)
            updates, state = optimizer.update(grad, state, params)
            params = optax.apply_updates(params, updates)
            return (project(params) if project else params), state, value

    return step


def run_in_blocks(
    step: Callable[[Any, Any], tuple[Any, Any, jax.Array]],
    params: Any,
    state: Any,
    *,
    block: int,
    blocks: int,
    log: Callable[[Any, jax.Array], Any],
) -> tuple[Any, Any]:
    """``blocks * block`` steps in two nested ``lax.scan``; ``log(params, value)`` after each block.

    Returns the final params and the stacked logs (``value`` is the block's last objective).
    """

    def inner(carry, _):
        params, state = carry
        params, state, value = step(params, state)
        return (params, state), value

    def outer(carry, _):
        carry, values = jax.lax.scan(inner, carry, length=block)
        return carry, log(carry[0], values[-1])

    (params, _), logs = jax.lax.scan(outer, (params, state), length=blocks)
    return params, logs
