"""Benchmark of soft-target losses: softxent against optax and a naive implementation.

Each case times ``jit(value_and_grad(mean loss))`` in the logits, reads XLA's
compiled temp memory, and relates the time to a memory-bandwidth bound: a fused
loss must read the logits and the targets once and write the gradient once,
``3 * N * V * itemsize`` bytes, at the copy bandwidth measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

FULL_SHAPES: tuple[tuple[int, int], ...] = ((256, 1000), (4096, 1000), (1024, 32000), (4096, 32000))
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((64, 100), (256, 1000))
DTYPES: tuple[str, ...] = ("float32", "bfloat16")
LOSSES: tuple[str, ...] = (
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "kl_divergence",
    "distillation_loss",
)
IMPLS: tuple[str, ...] = ("optax", "softxent", "naive")
TEMPERATURE = 2.0


@dataclass(frozen=True)
class Result:
    loss: str
    impl: str
    n: int
    v: int
    dtype: str
    median_s: float
    temp_bytes: int
    bound_fraction: float


def _naive(loss: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    def f32(x: jax.Array) -> jax.Array:
        return x.astype(jnp.float32)

    if loss == "softmax_cross_entropy":
        return lambda z, q: -jnp.sum(f32(q) * jax.nn.log_softmax(f32(z)), axis=-1)
    if loss == "kl_divergence":
        return lambda z, q: jnp.sum(
            jax.scipy.special.xlogy(f32(q), f32(q)) - f32(q) * jax.nn.log_softmax(f32(z)), axis=-1
        )
    if loss == "sigmoid_binary_cross_entropy":
        return lambda z, q: (
            -(f32(q) * jax.nn.log_sigmoid(f32(z)) + (1 - f32(q)) * jax.nn.log_sigmoid(-f32(z)))
        )

    def distill(s: jax.Array, t: jax.Array) -> jax.Array:
        log_q = jax.nn.log_softmax(jax.lax.stop_gradient(f32(t)) / TEMPERATURE)
        log_p = jax.nn.log_softmax(f32(s) / TEMPERATURE)
        return TEMPERATURE**2 * jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1)

    return distill


def _optax(loss: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    import optax

    def f32(x: jax.Array) -> jax.Array:
        return x.astype(jnp.float32)

    if loss == "softmax_cross_entropy":
        return lambda z, q: optax.softmax_cross_entropy(f32(z), f32(q))
    if loss == "kl_divergence":
        return lambda z, q: optax.kl_divergence(jax.nn.log_softmax(f32(z)), f32(q))
    if loss == "sigmoid_binary_cross_entropy":
        return lambda z, q: optax.sigmoid_binary_cross_entropy(f32(z), f32(q))

    def distill(s: jax.Array, t: jax.Array) -> jax.Array:
        q = jax.nn.softmax(jax.lax.stop_gradient(f32(t)) / TEMPERATURE)
        return TEMPERATURE**2 * optax.kl_divergence(jax.nn.log_softmax(f32(s) / TEMPERATURE), q)

    return distill


def _softxent(loss: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    import softxent

    fn = softxent.get_loss(loss).fn
    if loss == "distillation_loss":
        return lambda s, t: fn(s, t, temperature=TEMPERATURE)
    return fn


def loss_fn(loss: str, impl: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The per-example loss of ``impl`` (one of ``IMPLS``) for ``loss``."""
    return {"softxent": _softxent, "optax": _optax, "naive": _naive}[impl](loss)


def make_inputs(
    loss: str, n: int, v: int, dtype: str, seed: int = 0
) -> tuple[jax.Array, jax.Array]:
    """Logits and targets (soft rows, Bernoulli probabilities or teacher logits)."""
    kz, kq = jax.random.split(jax.random.key(seed))
    logits = (2 * jax.random.normal(kz, (n, v), jnp.float32)).astype(dtype)
    if loss == "sigmoid_binary_cross_entropy":
        targets = jax.random.uniform(kq, (n, v), jnp.float32)
    elif loss == "distillation_loss":
        targets = 2 * jax.random.normal(kq, (n, v), jnp.float32)
    else:
        targets = jax.nn.softmax(2 * jax.random.normal(kq, (n, v), jnp.float32), axis=-1)
    return logits, targets.astype(dtype)


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    jax.block_until_ready(fn())  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(n_bytes: int = 1 << 28, repeats: int = 7) -> float:
    """Memory-copy bandwidth in bytes/s: a jitted ``x + 1`` reads and writes ``n_bytes``."""
    x = jnp.zeros(n_bytes // 4, jnp.float32)
    add = jax.jit(lambda a: a + 1)
    return 2 * n_bytes / _median_time(lambda: add(x), repeats)


def run_case(
    loss: str, impl: str, n: int, v: int, dtype: str, repeats: int, bandwidth: float
) -> Result:
    fn = loss_fn(loss, impl)
    step = jax.jit(jax.value_and_grad(lambda z, t: jnp.mean(fn(z, t))))
    logits, targets = make_inputs(loss, n, v, dtype)
    compiled = step.lower(logits, targets).compile()
    analysis = compiled.memory_analysis()
    temp = int(analysis.temp_size_in_bytes) if analysis is not None else -1
    median = _median_time(lambda: compiled(logits, targets), repeats)
    bound = 3 * n * v * np.dtype(jnp.dtype(dtype)).itemsize / bandwidth
    return Result(loss, impl, n, v, dtype, median, temp, bound / median)


def run_bench(
    shapes: tuple[tuple[int, int], ...] = FULL_SHAPES,
    dtypes: tuple[str, ...] | None = None,
    losses: tuple[str, ...] | None = None,
    repeats: int = 7,
) -> Iterator[Result | float]:
    """Yield the measured copy bandwidth (bytes/s), then one ``Result`` per case."""
    dtypes = DTYPES if dtypes is None else dtypes
    losses = LOSSES if losses is None else losses
    bandwidth = copy_bandwidth()
    yield bandwidth
    for n, v in shapes:
        for dtype in dtypes:
            for loss in losses:
                for impl in IMPLS:
                    yield run_case(loss, impl, n, v, dtype, repeats, bandwidth)


def as_dict(result: Result) -> dict[str, object]:
    return asdict(result)
