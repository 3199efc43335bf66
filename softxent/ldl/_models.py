"""LDL models trained with softxent's losses, every cross-validation fold in one call.

All folds share the data matrix; each fold is a 0/1 weight on the rows (its
training set), so one jitted call trains them all without copying the data:
the MLP under ``vmap`` (its steps have no branches), maxent's L-BFGS with
``lax.map`` (see ``fit_maxent``). Features are standardised with each fold's
training statistics, folded into the weights. Maxent reads a feature matrix under
``SPARSE_BELOW`` nonzero (Movie's bag of words) as BCOO: the weights absorb the
standardisation, so the matrix stays sparse and each loss evaluation of every
fold touches only its nonzeros.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import sparse

from .._optional import require
from .._registry import LossSpec

optax = require("optax", "ldl", "softxent.ldl")

# optax's L-BFGS and Adam mix int32 and int64 counters internally, which strict
# dtype promotion (the test suite's setting) rejects; only their updates are
# traced with standard promotion, the losses stay strict.
_OPTAX_PROMOTION = jax.numpy_dtype_promotion("standard")

def _weighted_loss(spec: LossSpec, logits: jax.Array, targets: jax.Array,
                   weights: jax.Array) -> jax.Array:
    per_row = spec.fn(logits, targets)
    return jnp.sum(weights * per_row) / jnp.sum(weights)


# Sparse pays below this nonzero fraction. One loss-and-gradient evaluation on a
# 7755 × 1869 matrix (Movie's shape, K = 5, float64, 2-core CPU) takes 19–20 ms
# dense whatever the density, and as BCOO 2.9 ms at 1 % nonzero, 12.4 ms at 5 %,
# 36.9 ms at 10 %: the break-even is near 7 % (random matrices; near 8 % at
# 2000 × 250, 12 % at 300 × 150). 5 % keeps a margin on every shape measured.
SPARSE_BELOW = 0.05


def nonzero_fraction(features: np.ndarray) -> float:
    return float(np.count_nonzero(features)) / max(features.size, 1)


def sparse_pays(features: np.ndarray) -> bool:
    """Whether maxent should read ``features`` as BCOO: under ``SPARSE_BELOW`` nonzero."""
    return nonzero_fraction(features) < SPARSE_BELOW


def bcoo_features(features: np.ndarray, dtype: str) -> sparse.BCOO:
    """``features`` as a BCOO matrix, built from its nonzeros without a dense device copy.

    BCOO rather than a hand-written COO ``segment_sum``: on CPU both lower to the
    same gather and scatter-add, and measured alike on Movie (2.96 against 3.04 ms
    per loss-and-gradient evaluation), so the library's type wins on simplicity.
    """
    # np.nonzero lists entries row by row, so the indices are sorted and unique.
    rows, cols = np.nonzero(features)
    indices = np.stack([rows, cols], axis=1).astype(np.int32)  # BCOO.fromdense's index type
    return sparse.BCOO((jnp.asarray(features[rows, cols], dtype), jnp.asarray(indices)),
                       shape=features.shape, indices_sorted=True, unique_indices=True)


def maxent_logits(params: dict[str, jax.Array], x: jax.Array | sparse.BCOO, mean: jax.Array,
                  scale: jax.Array) -> jax.Array:
    """Geng's maximum-entropy model, softmax((x − mean)/scale · w + b), as logits.

    The standardisation goes into the weights, never into ``x``, so a sparse
    ``x`` stays sparse.
    """
    w = params["w"] / scale[:, None]
    return x @ w + (params["b"] - mean @ w)


# SciPy's L-BFGS-B default ftol: factr 1e7 times float64's machine epsilon.
SCIPY_FTOL = 1e7 * 2.220446049250313e-16


def fit_maxent(spec: LossSpec, x: jax.Array | sparse.BCOO, targets: jax.Array, train: jax.Array,
               mean: jax.Array, scale: jax.Array, *, max_iter: int, gtol: float,
               ftol: float = SCIPY_FTOL, l2: float | jax.Array = 0.0,
               return_iterations: bool = False
               ) -> dict[str, jax.Array] | tuple[dict[str, jax.Array], jax.Array]:
    """Fit the linear softmax model of every fold with optax L-BFGS.

    Stops a fold as SciPy's L-BFGS-B does: when the largest gradient entry of
    the summed loss falls to ``gtol``, when an iteration reduces the summed loss
    f by no more than ``ftol · max(|f|, |f_prev|, 1)``, or after ``max_iter``
    iterations. ``l2`` adds l2/2 · ‖w‖² per training example (0: Geng's
    unregularised model): one value for every fold, or one per fold. With
    ``return_iterations``, also each fold's iteration count (``max_iter``
    where a fold stopped at the cap).
    """
    d, k, dtype = mean.shape[-1], targets.shape[1], targets.dtype

    def one_fold(weights, mean, scale, l2):
        def objective(params):
            fit = _weighted_loss(spec, maxent_logits(params, x, mean, scale), targets, weights)
            return fit + 0.5 * l2 * jnp.sum(jnp.square(params["w"]))

        optimizer = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(objective)
        # SciPy works on the summed loss: the mean's value and gradient times the
        # training-set size.
        size = jnp.sum(weights)

        def keep_going(carry):
            _, _, iteration, largest, previous, value = carry
            reduction = (previous - value) / jnp.maximum(
                jnp.maximum(jnp.abs(previous), jnp.abs(value)), 1)
            stalled = (iteration > 1) & (reduction <= ftol)
            return (iteration < max_iter) & (largest > gtol) & ~stalled

        def step(carry):
            params, state, iteration, _, _, previous = carry
            value, grad = value_and_grad(params, state=state)
            with _OPTAX_PROMOTION:
                updates, state = optimizer.update(grad, state, params, value=value, grad=grad,
                                                  value_fn=objective)
            largest = size * jnp.max(
                jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grad)]))
            return (optax.apply_updates(params, updates), state, iteration + 1, largest,
                    previous, size * value)

        params = {"w": jnp.zeros((d, k), dtype), "b": jnp.zeros((k,), dtype)}
        with _OPTAX_PROMOTION:
            state = optimizer.init(params)
        inf = jnp.asarray(jnp.inf, dtype)
        carry = (params, state, jnp.zeros((), jnp.int32), inf, inf, inf)
        params, _, iterations, *_ = lax.while_loop(keep_going, step, carry)
        return params, iterations

    # One fold after another inside the compiled program, not vmap: the zoom
    # line search branches on each fold's own state, and under vmap every branch
    # runs for every fold until the slowest fold is done (about 20 loss
    # evaluations per iteration on Movie instead of 1 or 2).
    l2 = jnp.broadcast_to(jnp.asarray(l2, dtype), train.shape[:1])
    params, iterations = lax.map(lambda fold: one_fold(*fold), (train, mean, scale, l2))
    return (params, iterations) if return_iterations else params


def mlp_logits(params: dict[str, jax.Array], x: jax.Array, mean: jax.Array,
               scale: jax.Array) -> jax.Array:
    hidden = jnp.tanh(((x - mean) / scale) @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def fit_mlp(spec: LossSpec, x: jax.Array, targets: jax.Array, train: jax.Array,
            mean: jax.Array, scale: jax.Array, *, key: jax.Array, hidden: int = 64,
            steps: int = 500, learning_rate: float = 1e-2, weight_decay: float = 1e-4
            ) -> dict[str, jax.Array]:
    """A one-hidden-layer tanh network per fold, trained full-batch with AdamW.

    ``key`` is split into one key per fold (a row of ``train``), or is already one
    key per fold (shape ``[folds]``), as a part of the folds fitted apart needs.
    """
    d, k = x.shape[1], targets.shape[1]

    def one_fold(weights, mean, scale, key):
        k1, k2 = jax.random.split(key)
        params = {
            "w1": jax.random.normal(k1, (d, hidden), x.dtype) / jnp.sqrt(jnp.asarray(d, x.dtype)),
            "b1": jnp.zeros((hidden,), x.dtype),
            "w2": jax.random.normal(k2, (hidden, k), x.dtype) / jnp.sqrt(
                jnp.asarray(hidden, x.dtype)),
            "b2": jnp.zeros((k,), x.dtype),
        }
        optimizer = optax.adamw(learning_rate, weight_decay=weight_decay)

        def objective(params):
            return _weighted_loss(spec, mlp_logits(params, x, mean, scale), targets, weights)

        def step(carry, _):
            params, state = carry
            grads = jax.grad(objective)(params)
            with _OPTAX_PROMOTION:
                updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        with _OPTAX_PROMOTION:
            state = optimizer.init(params)
        (params, _), _ = lax.scan(step, (params, state), length=steps)
        return params

    keys = key if key.ndim == 1 else jax.random.split(key, train.shape[0])
    if keys.shape != (train.shape[0],):
        raise ValueError(f"key: expected one key or {train.shape[0]} (one per fold), "
                         f"got shape {keys.shape}")
    return jax.vmap(one_fold)(train, mean, scale, keys)


MODELS: dict[str, Callable[..., jax.Array]] = {"maxent": maxent_logits, "mlp": mlp_logits}
