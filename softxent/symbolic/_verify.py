"""Check the shipped JAX losses against their SymPy twins with ``jax.grad``.

For every registry loss (at its defaults and at one non-default setting), the
gradient of the JAX loss in float64 is compared with the SymPy gradient of the
twin, evaluated by mpmath at 30 significant digits, on points that include the
boundary regions: probabilities within 1e-6 of 0 or 1 and logits up to |z| = 50.

The error at a point is normwise: ‖g_jax − g_sym‖∞ / ‖g_sym‖∞ (relative) and
‖g_jax − g_sym‖∞ (absolute). A loss fails if any point's relative error
exceeds the tolerance (1e-10 by default).
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from collections.abc import Mapping
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .._registry import LossSpec, list_losses
from ._twins import Twin, symbols, twin

K = 3  # classes for the class losses
TOLERANCE = 1e-10

# One non-default setting per loss with parameters, so the parameters are verified too.
VARIANTS: dict[str, dict[str, float]] = {
    "softmax_cross_entropy": {"label_smoothing": 0.1},
    "sigmoid_binary_cross_entropy": {"pos_weight": 2.5, "label_smoothing": 0.2},
    "sigmoid_focal_loss": {"gamma": 1.5, "alpha": 0.25},
    "focal_cross_entropy": {"gamma": 0.5},
    "poly1_cross_entropy": {"epsilon": -0.5},
    "generalized_cross_entropy": {"k": 0.3},
    "distillation_loss": {"temperature": 4.0},
}


@dataclasses.dataclass(frozen=True)
class Result:
    loss: str
    params: dict[str, Any]
    points: int
    max_abs_err: float
    max_rel_err: float

    @property
    def passed(self) -> bool:
        return self.max_rel_err <= TOLERANCE

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


def _sample(spec: LossSpec, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets, a third of them in the boundary regions."""
    boundary = rng.random(n) < 1 / 3
    width = K if spec.output == "per_example" else 1
    if spec.input == "probabilities":
        if spec.output == "per_example":
            x = rng.dirichlet(np.ones(K), size=n)
            edge = rng.integers(0, K, size=n)
            x[boundary, edge[boundary]] = 1e-6 * rng.random(boundary.sum())
            x = x / x.sum(axis=1, keepdims=True)
        else:
            x = rng.random((n, 1))
            near = 1e-6 * rng.random(n)
            x[boundary, 0] = np.where(rng.random(boundary.sum()) < 0.5, near[boundary],
                                      1 - near[boundary])
    else:
        x = rng.normal(0, 3, size=(n, width))
        x[boundary] = rng.uniform(-50, 50, size=(boundary.sum(), width))
    if spec.targets == "logits":
        t = rng.normal(0, 3, size=(n, width))
    elif spec.output == "per_example":
        t = np.clip(rng.dirichlet(np.ones(K), size=n), 1e-4, None)
        t = t / t.sum(axis=1, keepdims=True)
    else:
        t = rng.random((n, 1))
    return x, t


@functools.cache
def _symbolic_gradient(name: str, param_items: tuple[tuple[str, Any], ...]):
    t: Twin = twin(name)
    params = t.parameters(dict(param_items))
    width = K if t.output == "per_example" else 1
    xs = symbols("x", width, real=True)
    ts = symbols("t", width, real=True)
    args_x = xs if t.output == "per_example" else xs[0]
    args_t = ts if t.output == "per_example" else ts[0]
    if t.input == "probabilities":
        expr = t.in_probabilities(args_x, args_t, params)
    else:
        expr = t.in_logits(args_x, args_t, params)
    gradient = [sp.diff(expr, xi) for xi in xs]
    return sp.lambdify([*xs, *ts], gradient, "mpmath", cse=True)


def _jax_gradient(spec: LossSpec, params: Mapping[str, Any], x: np.ndarray, t: np.ndarray):
    import jax
    import jax.numpy as jnp

    def total(x, t):
        return jnp.sum(spec.fn(x, t, **params))

    return np.asarray(jax.jit(jax.grad(total))(jnp.asarray(x), jnp.asarray(t)))


def _reference(name: str, param_items: tuple[tuple[str, Any], ...], x: np.ndarray,
               t: np.ndarray) -> np.ndarray:
    """The SymPy gradient at each point, evaluated by mpmath at 50 digits.

    50 digits leave over 25 correct digits after the worst cancellation the
    sampled region allows (1 − σ(50) ≈ 2e-22), far beyond float64.
    """
    gradient = _symbolic_gradient(name, param_items)
    out = np.empty(x.shape, dtype=np.float64)
    with mpmath.workdps(50):
        for i in range(len(x)):
            row = gradient(*map(mpmath.mpf, x[i]), *map(mpmath.mpf, t[i]))
            out[i] = [float(v) for v in row]
    return out


def _tasks(losses: list[str] | None) -> list[tuple[LossSpec, dict[str, Any]]]:
    tasks = []
    for spec in list_losses():
        if losses is not None and spec.name not in losses:
            continue
        tasks.append((spec, {}))
        if spec.name in VARIANTS:
            tasks.append((spec, VARIANTS[spec.name]))
    return tasks


def verify(points: int = 10_000, seed: int = 0, losses: list[str] | None = None,
           workers: int | None = None) -> list[Result]:
    """Verify every registry loss (or ``losses``) at its defaults and its variant.

    The JAX gradients run in this process; the mpmath references, the slow part,
    are spread over ``workers`` processes (default: one per CPU).
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    import jax

    if points < 1:
        raise ValueError(f"verify: points must be >= 1, got {points}")
    # float64 is needed to check to 1e-10; it is switched on for this process.
    jax.config.update("jax_enable_x64", True)
    workers = workers or os.cpu_count() or 1
    chunk = max(1, -(-points // workers))
    jobs = []
    # Fresh worker processes: forking a process that runs JAX's threads can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for spec, params in _tasks(losses):
            rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
            x, t = _sample(spec, points, rng)
            ours = _jax_gradient(spec, params, x, t)
            items = tuple(sorted(params.items()))
            futures = [pool.submit(_reference, spec.name, items, x[i : i + chunk],
                                   t[i : i + chunk]) for i in range(0, points, chunk)]
            jobs.append((spec, params, ours, futures))
        results = []
        for spec, params, ours, futures in jobs:
            reference = np.concatenate([f.result() for f in futures])
            diff = np.max(np.abs(ours - reference), axis=1)
            scale = np.max(np.abs(reference), axis=1)
            rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), diff)
            results.append(Result(spec.name, dict(params), points, float(diff.max()),
                                  float(rel.max())))
    return results
