"""The small tanh networks the model and distillation experiments train and sample from."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Params = list[tuple[jax.Array, jax.Array]]


def mlp_init(key: jax.Array, sizes: list[int], dtype: jnp.dtype) -> Params:
    """Weights ``N(0, 1/fan_in)`` and zero biases for layers of the given ``sizes``."""
    params = []
    for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:], strict=False),
                         strict=True):
        w = jax.random.normal(k, (m, n), dtype=dtype) / jnp.sqrt(jnp.asarray(m, dtype=dtype))
        params.append((w, jnp.zeros((n,), dtype=dtype)))
    return params


def mlp_logits(params: Params, x: jax.Array) -> jax.Array:
    """tanh hidden layers, then a linear output layer (one layer: a linear model)."""
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = params[-1]
    return x @ w + b
