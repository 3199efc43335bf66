"""Benchmark of soft-target losses: softxent against optax and a naive implementation.

Each case times ``jit(value_and_grad(mean loss))`` in the logits, reads XLA's
compiled temp memory, and relates the time to a memory-bandwidth bound: a fused
loss must read the logits and the targets once and write the gradient once,
``3 * N * V * itemsize`` bytes (``2 * N * V`` for integer labels), at the copy
bandwidth measured in the same run. Two copies are measured: an allocating
``x + 1`` (a fresh output each call, page faults included, as a step's gradient
buffer is) and one into warm, reused memory (the input donated), the hardware's
nearer limit; each step's fraction of both is reported, so that the first does
not flatter the distance to the hardware.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

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
    "softmax_cross_entropy_with_integer_labels",
)
INTEGER_LABELS = "softmax_cross_entropy_with_integer_labels"
# the integer-label case's options: what optax's loss does not have
LABEL_SMOOTHING, IGNORE_INDEX = 0.1, -100
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
    warm_bound_fraction: float


def _naive(loss: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    def f32(x: jax.Array) -> jax.Array:
        return x.astype(jnp.float32)

    if loss == "softmax_cross_entropy":
        return lambda z, q: -jnp.sum(f32(q) * jax.nn.log_softmax(f32(z)), axis=-1)
    if loss == INTEGER_LABELS:
        def smoothed_one_hot(z: jax.Array, y: jax.Array) -> jax.Array:
            v = z.shape[-1]
            one_hot = jax.nn.one_hot(y, v, dtype=jnp.float32)
            q = (1 - LABEL_SMOOTHING) * one_hot + LABEL_SMOOTHING / v
            ce = -jnp.sum(q * jax.nn.log_softmax(f32(z)), axis=-1)
            return jnp.where(y == IGNORE_INDEX, 0, ce)

        return smoothed_one_hot
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
    from .._optional import require

    optax = require("optax", "bench", "the optax baseline")

    def f32(x: jax.Array) -> jax.Array:
        return x.astype(jnp.float32)

    if loss == "softmax_cross_entropy":
        return lambda z, q: optax.softmax_cross_entropy(f32(z), f32(q))
    if loss == INTEGER_LABELS:  # without smoothing or ignore_index, which it lacks
        return lambda z, y: optax.softmax_cross_entropy_with_integer_labels(
            f32(z), jnp.maximum(y, 0))
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

    if loss == INTEGER_LABELS:
        return lambda z, y: softxent.softmax_cross_entropy_with_integer_labels(
            z, y, label_smoothing=LABEL_SMOOTHING, ignore_index=IGNORE_INDEX)
    fn = softxent.get_loss(loss).fn
    if loss == "distillation_loss":
        return lambda s, t: fn(s, t, temperature=TEMPERATURE)
    return fn


def impls_of(loss: str) -> tuple[str, ...]:
    """The implementations timed for ``loss``: all of ``IMPLS`` for the losses in
    ``LOSSES`` (which optax has), softxent's alone for any other registry loss,
    a user's own included."""
    return IMPLS if loss in LOSSES else ("softxent",)


def check_losses(losses: tuple[str, ...]) -> None:
    """ValueError naming the first of ``losses`` that cannot be benchmarked."""
    import softxent

    for loss in losses:
        if loss == INTEGER_LABELS:
            continue
        spec = softxent.get_loss(loss)  # KeyError with the known names
        if spec.family != "dense":
            raise ValueError(f"--loss {loss}: expected a loss on whole logit arrays "
                             f"(family 'dense'), got family {spec.family!r}; its "
                             "large-vocabulary timing is `softxent bench --large-vocab`")


def loss_fn(loss: str, impl: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The per-example loss of ``impl`` (one of ``IMPLS``) for ``loss``."""
    return {"softxent": _softxent, "optax": _optax, "naive": _naive}[impl](loss)


def make_inputs(
    loss: str, n: int, v: int, dtype: str, seed: int = 0
) -> tuple[jax.Array, jax.Array]:
    """Predictions and targets for ``loss`` as its registry entry describes them:
    logits (or probabilities, for a probability-input loss), and soft rows,
    Bernoulli probabilities, teacher logits, or class indices with one row in
    eight ignored."""
    import softxent

    kz, kq = jax.random.split(jax.random.key(seed))
    logits = 2 * jax.random.normal(kz, (n, v), jnp.float32)
    if loss == INTEGER_LABELS:
        return logits.astype(dtype), jax.random.randint(kq, (n,), 0, v).at[::8].set(IGNORE_INDEX)
    spec = softxent.get_loss(loss)
    per_component = spec.output == "per_component"
    if spec.input == "probabilities":
        logits = jax.nn.sigmoid(logits) if per_component else jax.nn.softmax(logits, axis=-1)
    if per_component:
        targets = jax.random.uniform(kq, (n, v), jnp.float32)
    elif spec.targets == "logits":
        targets = 2 * jax.random.normal(kq, (n, v), jnp.float32)
    else:
        targets = jax.nn.softmax(2 * jax.random.normal(kq, (n, v), jnp.float32), axis=-1)
    return logits.astype(dtype), targets.astype(dtype)


def _calls_per_sample(fn: Callable[[], object], min_sample_s: float) -> int:
    """After a warm-up (and compilation, if any): how many back-to-back calls last
    ``min_sample_s`` (one for anything slower). On a GPU a single call of a few
    hundred microseconds would otherwise be measured with its dispatch and
    synchronisation latency, which pipelined calls in a training loop hide."""
    jax.block_until_ready(fn())
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return max(1, min(1000, int(min_sample_s / max(time.perf_counter() - start, 1e-9))))


def _sample(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``calls`` back-to-back calls, after one untimed call.

    The untimed call absorbs what the previous function left behind. On the CPU
    a step sampled right after one that had freed large temporaries ran up to
    1.3x slower: the same compiled sigmoid BCE step at 4096x32000 took 495 ms
    right after optax's and 382 ms right after itself. Without it that cost
    falls on whichever implementation comes next in the round.
    """
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(calls):
        output = fn()
    jax.block_until_ready(output)  # calls run in order: the last one done means all are
    return (time.perf_counter() - start) / calls


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, min_sample_s: float = 5e-3
) -> dict[str, float]:
    """Median seconds per call of each function over ``repeats`` samples, taken in
    turn (one sample of each, then the next round), so that a disturbance on a
    shared machine falls on all of them alike rather than on one."""
    calls = {name: _calls_per_sample(fn, min_sample_s) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_sample(fn, calls[name]))
    return {name: statistics.median(samples) for name, samples in times.items()}


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds per call over ``repeats`` samples, after a warm-up."""
    return interleaved_medians({"": fn}, repeats)[""]


def copy_bandwidth(n_bytes: int = 1 << 28, repeats: int = 7) -> float:
    """Memory-copy bandwidth in bytes/s: a jitted ``x + 1`` reads and writes ``n_bytes``
    into a freshly allocated output (its first touch, page faults, included)."""
    x = jax.random.uniform(jax.random.key(0), (n_bytes // 4,), jnp.float32)
    add = jax.jit(lambda a: a + 1)
    return 2 * n_bytes / _median_time(lambda: add(x), repeats)


def warm_copy_bandwidth(n_bytes: int = 1 << 28, repeats: int = 7) -> float:
    """Copy bandwidth in bytes/s into warm, reused memory: ``x + 1`` with ``x`` donated,
    so each call writes into the buffer the previous one freed."""
    state = [jax.random.uniform(jax.random.key(0), (n_bytes // 4,), jnp.float32)]
    add = jax.jit(lambda a: a + 1, donate_argnums=0)

    def step() -> jax.Array:
        state[0] = add(state[0])
        return state[0]

    return 2 * n_bytes / _median_time(step, repeats)


@dataclass(frozen=True)
class Bandwidths:
    """The two copy bandwidths a run's bounds are taken at, in bytes/s."""

    allocating: float
    warm: float


def run_case(
    loss: str, n: int, v: int, dtype: str, repeats: int, bandwidth: Bandwidths,
    impls: tuple[str, ...] | None = None,
) -> list[Result]:
    """One ``Result`` per implementation of ``loss`` at N x V (default: those of
    :func:`impls_of`), timed in turn."""
    impls = impls_of(loss) if impls is None else impls
    logits, targets = make_inputs(loss, n, v, dtype)
    compiled, temp = {}, {}
    for impl in impls:
        fn = loss_fn(loss, impl)
        step = jax.jit(jax.value_and_grad(lambda z, t, fn=fn: jnp.mean(fn(z, t))))
        compiled[impl] = step.lower(logits, targets).compile()
        analysis = compiled[impl].memory_analysis()
        temp[impl] = int(analysis.temp_size_in_bytes) if analysis is not None else -1
    medians = interleaved_medians(
        {impl: (lambda c=c: c(logits, targets)) for impl, c in compiled.items()}, repeats
    )
    streams = 2 if loss == INTEGER_LABELS else 3  # labels are N integers, not N x V
    moved = streams * n * v * np.dtype(jnp.dtype(dtype)).itemsize
    bound, warm = moved / bandwidth.allocating, moved / bandwidth.warm
    return [
        Result(loss, impl, n, v, dtype, medians[impl], temp[impl], bound / medians[impl],
               warm / medians[impl])
        for impl in impls
    ]


def run_bench(
    shapes: tuple[tuple[int, int], ...] = FULL_SHAPES,
    dtypes: tuple[str, ...] | None = None,
    losses: tuple[str, ...] | None = None,
    repeats: int = 7,
) -> Iterator[Result | Bandwidths]:
    """Yield the measured copy ``Bandwidths``, then one ``Result`` per case.

    ``losses`` defaults to ``LOSSES``; any dense registry loss may be named.
    """
    dtypes = DTYPES if dtypes is None else dtypes
    losses = LOSSES if losses is None else losses
    check_losses(losses)
    bandwidth = Bandwidths(copy_bandwidth(), warm_copy_bandwidth())
    yield bandwidth
    for n, v in shapes:
        for dtype in dtypes:
            for loss in losses:
                yield from run_case(loss, n, v, dtype, repeats, bandwidth)


def as_dict(result: Result | LargeVocabResult) -> dict[str, object]:
    return asdict(result)


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.0f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README's table of a run: one line per loss, shape and dtype, the
    implementations side by side (``rows`` as ``as_dict`` or ``--json`` gives them)."""
    cases: dict[tuple[object, ...], dict[str, dict[str, Any]]] = {}
    for row in rows:
        case = (row["loss"], row["n"], row["v"], row["dtype"])
        cases.setdefault(case, {})[row["impl"]] = row
    lines = [
        "| loss | N x V | dtype | optax ms | softxent ms | naive ms | x optax "
        "| temp MiB optax / softxent | softxent bound % | softxent warm bound % |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (loss, n, v, dtype), impls in cases.items():
        ms = {impl: f"{impls[impl]['median_s'] * 1e3:.1f}" if impl in impls else ""
              for impl in IMPLS}
        if "optax" in impls and "softxent" in impls:
            ratio = f"{impls['optax']['median_s'] / impls['softxent']['median_s']:.2f}"
            temp = f"{_mib(impls['optax']['temp_bytes'])} / {_mib(impls['softxent']['temp_bytes'])}"
        else:
            ratio = temp = ""
        ours = impls.get("softxent")
        bound = f"{100 * ours['bound_fraction']:.0f}" if ours else ""
        # a saved run without the warm copy's bound leaves its cell empty
        warm_fraction = ours.get("warm_bound_fraction") if ours else None
        warm = "" if warm_fraction is None else f"{100 * warm_fraction:.0f}"
        lines.append(f"| {loss} | {n}x{v} | {dtype} | {ms['optax']} | {ms['softxent']} "
                     f"| {ms['naive']} | {ratio} | {temp} | {bound} | {warm} |")
    return "\n".join(lines)


def large_vocab_markdown(rows: list[dict[str, Any]]) -> str:
    """The README's table of a ``--large-vocab`` run: one line per loss, dtype and
    implementation, with its time relative to forming the logits."""
    unfused = {(r["loss"], r["dtype"]): r["median_s"] for r in rows if r["impl"] == "unfused"}
    dense_peak = {r["dtype"]: r["peak_bytes"] for r in rows
                  if r["impl"] == "unfused" and r["loss"] == "distillation_loss"}
    lines = [
        "| loss | dtype | N x D x V | chunk | impl | ms | x unfused | temp MiB | peak MiB "
        "| peak / dense distillation's |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = unfused.get((r["loss"], r["dtype"]))
        timed = r["median_s"] is not None
        speed = f"{base / r['median_s']:.2f}" if base and timed else ""
        dense = dense_peak.get(r["dtype"])
        share = f"{r['peak_bytes'] / dense:.3f}" if dense and r["peak_bytes"] >= 0 else ""
        ms = f"{r['median_s'] * 1e3:.1f}" if timed else "not run"
        lines.append(
            f"| {r['loss']} | {r['dtype']} | {r['n']}x{r['d']}x{r['v']} | {r['chunk_size']} "
            f"| {r['impl']} | {ms} | {speed} | {_mib(r['temp_bytes'])} "
            f"| {_mib(r['peak_bytes'])} | {share} |")
    return "\n".join(lines)


# Large vocabulary: hidden states [N, D] times an output matrix [D, V], then the
# loss, differentiated in both. "unfused" forms the N x V logits (the usual
# model code); "linear" is softxent's chunked linear form that never does, with
# per-example output (the backward pass recomputes each chunk's logits), and
# "linear_mean" the same with reduction="mean" (gradients made in the forward pass).
GENERALIZED_JSD, REVERSE_KL = "generalized_js_divergence", "reverse_kl_distillation_loss"
LARGE_VOCAB_LOSSES: tuple[str, ...] = ("softmax_cross_entropy", "distillation_loss",
                                       INTEGER_LABELS, "sparse_distillation_loss",
                                       GENERALIZED_JSD, REVERSE_KL)
# The teacher divergences have no whole-array function: "unfused" is their chunked form
# on h @ w with every row in one chunk, so the N x V logits are formed as model code would.
TEACHER_DIVERGENCES = {GENERALIZED_JSD: ("chunked_generalized_js_divergence",
                                         "linear_generalized_js_divergence"),
                       REVERSE_KL: ("chunked_reverse_kl_distillation_loss",
                                    "linear_reverse_kl_distillation_loss")}
# The sparse teacher's classes per row (at most V / 2, so a tail is left), holding
# SPARSE_MASS of the teacher's probability.
SPARSE_TOP_K, SPARSE_MASS = 64, 0.9
LARGE_VOCAB_IMPLS: tuple[str, ...] = ("unfused", "linear", "linear_mean")
LARGE_VOCAB_SHAPE: tuple[int, int, int] = (2048, 256, 32000)


@dataclass(frozen=True)
class LargeVocabResult:
    loss: str
    impl: str
    n: int
    d: int
    v: int
    dtype: str
    chunk_size: int
    median_s: float | None  # None: compiled for its memory only, not run
    temp_bytes: int
    peak_bytes: int  # arguments + outputs + temp of the compiled step: its memory high-water mark


def large_vocab_fn(loss: str, impl: str, chunk_size: int) -> Callable[..., jax.Array]:
    """Mean loss of ``(hidden, weight, other)``; ``other`` is the soft targets, the
    teacher's hidden states (the teacher's output matrix is the student's: distillation,
    the generalized JSD at beta 1/2 and reverse-KL distillation), the class indices
    (smoothing and ignore_index as in the dense case) or a top-k teacher's
    ``(indices, log_probs)`` (the tail bucket)."""
    import softxent

    if impl not in LARGE_VOCAB_IMPLS:
        raise ValueError(f"impl must be one of {LARGE_VOCAB_IMPLS}, got {impl!r}")
    reduction = "mean" if impl == "linear_mean" else "none"
    if loss == "softmax_cross_entropy":
        if impl == "unfused":
            return lambda h, w, q: jnp.mean(softxent.softmax_cross_entropy(h @ w, q))
        return lambda h, w, q: jnp.mean(softxent.linear_softmax_cross_entropy(
            h, w, q, chunk_size=chunk_size, reduction=reduction))
    if loss == "distillation_loss":
        if impl == "unfused":
            return lambda h, w, th: jnp.mean(softxent.distillation_loss(
                h @ w, jax.lax.stop_gradient(th @ w), temperature=TEMPERATURE))
        return lambda h, w, th: jnp.mean(softxent.linear_distillation_loss(
            h, w, th, jax.lax.stop_gradient(w), temperature=TEMPERATURE, chunk_size=chunk_size,
            reduction=reduction))
    if loss == INTEGER_LABELS:
        options = {"label_smoothing": LABEL_SMOOTHING, "ignore_index": IGNORE_INDEX}
        if impl == "unfused":
            return lambda h, w, y: jnp.mean(softxent.softmax_cross_entropy_with_integer_labels(
                h @ w, y, **options))
        # the mean over every row, as the others: the reduced path's sum over N
        summed = "sum" if impl == "linear_mean" else "none"
        return lambda h, w, y: jnp.sum(softxent.linear_softmax_cross_entropy_with_integer_labels(
            h, w, y, chunk_size=chunk_size, reduction=summed, **options)) / h.shape[0]
    if loss == "sparse_distillation_loss":
        options = {"temperature": TEMPERATURE, "tail": "bucket"}
        if impl == "unfused":
            return lambda h, w, top: jnp.mean(softxent.sparse_distillation_loss(
                h @ w, *top, **options))
        return lambda h, w, top: jnp.mean(softxent.linear_sparse_distillation_loss(
            h, w, *top, chunk_size=chunk_size, reduction=reduction, **options))
    if loss in TEACHER_DIVERGENCES:
        chunked, linear = (getattr(softxent, f) for f in TEACHER_DIVERGENCES[loss])
        options = {} if loss == GENERALIZED_JSD else {"temperature": TEMPERATURE}
        if impl == "unfused":
            return lambda h, w, th: jnp.mean(chunked(
                h @ w, jax.lax.stop_gradient(th @ w), chunk_size=h.shape[0], **options))
        return lambda h, w, th: jnp.mean(linear(
            h, w, th, jax.lax.stop_gradient(w), chunk_size=chunk_size, reduction=reduction,
            **options))
    raise ValueError(f"loss must be one of {LARGE_VOCAB_LOSSES}, got {loss!r}")


def sparse_teacher(key: jax.Array, n: int, v: int) -> tuple[jax.Array, jax.Array]:
    """A top-k teacher made in O(N k): distinct classes per row (a run of k from a random
    start) and log-probabilities holding ``SPARSE_MASS``."""
    k = min(SPARSE_TOP_K, max(1, v // 2))
    key_start, key_mass = jax.random.split(key)
    start = jax.random.randint(key_start, (n, 1), 0, v)
    indices = (start + jnp.arange(k)) % v
    log_probs = jax.nn.log_softmax(2 * jax.random.normal(key_mass, (n, k)), axis=-1)
    return indices, log_probs + jnp.log(SPARSE_MASS)


def large_vocab_inputs(loss: str, n: int, d: int, v: int, dtype: str) -> tuple:
    """``(hidden, weight, other)`` for ``large_vocab_fn(loss, ...)``, from a fixed key."""
    kh, kw, ko = jax.random.split(jax.random.key(0), 3)
    hidden = jax.random.normal(kh, (n, d), jnp.float32).astype(dtype)
    weight = (jax.random.normal(kw, (d, v), jnp.float32) * d**-0.5).astype(dtype)
    if loss == INTEGER_LABELS:
        other = jax.random.randint(ko, (n,), 0, v).at[::8].set(IGNORE_INDEX)
    elif loss == "sparse_distillation_loss":
        indices, log_probs = sparse_teacher(ko, n, v)
        other = (indices, log_probs.astype(dtype))
    elif loss == "softmax_cross_entropy":
        other = jax.nn.softmax(2 * jax.random.normal(ko, (n, v), jnp.float32), axis=-1)
    else:
        other = jax.random.normal(ko, (n, d), jnp.float32)
    if loss not in (INTEGER_LABELS, "sparse_distillation_loss"):
        other = other.astype(dtype)
    return hidden, weight, other


def run_large_vocab_case(loss: str, n: int, d: int, v: int, dtype: str, chunk_size: int,
                         repeats: int, impls: tuple[str, ...] = LARGE_VOCAB_IMPLS,
                         memory_only: bool = False) -> list[LargeVocabResult]:
    """Time value_and_grad in (hidden, weight) of each implementation, sampled in turn,
    and read each compiled step's memory. ``memory_only`` compiles the steps from the
    inputs' shapes alone, allocating nothing (for shapes whose N x V arrays would not
    fit), and times nothing."""
    if memory_only:
        arguments = jax.eval_shape(lambda: large_vocab_inputs(loss, n, d, v, dtype))
    else:
        arguments = large_vocab_inputs(loss, n, d, v, dtype)
    compiled, temp, peak = {}, {}, {}
    for impl in impls:
        step = jax.jit(jax.value_and_grad(large_vocab_fn(loss, impl, chunk_size), argnums=(0, 1)))
        compiled[impl] = step.lower(*arguments).compile()
        analysis = compiled[impl].memory_analysis()
        if analysis is None:
            temp[impl] = peak[impl] = -1
        else:
            temp[impl] = int(analysis.temp_size_in_bytes)
            peak[impl] = (temp[impl] + int(analysis.argument_size_in_bytes)
                          + int(analysis.output_size_in_bytes))
    if memory_only:
        medians: dict[str, float | None] = dict.fromkeys(impls)
    else:
        medians = interleaved_medians(
            {impl: (lambda c=c: c(*arguments)) for impl, c in compiled.items()}, repeats)
    return [
        LargeVocabResult(loss, impl, n, d, v, dtype, chunk_size, medians[impl], temp[impl],
                         peak[impl])
        for impl in impls
    ]


def run_large_vocab(shape: tuple[int, int, int] = LARGE_VOCAB_SHAPE,
                    dtypes: tuple[str, ...] = ("float32",), chunk_size: int = 1024,
                    repeats: int = 7, losses: tuple[str, ...] = LARGE_VOCAB_LOSSES,
                    memory_only: bool = False) -> Iterator[LargeVocabResult]:
    """One ``LargeVocabResult`` per loss, dtype and implementation."""
    n, d, v = shape
    for dtype in dtypes:
        for loss in losses:
            yield from run_large_vocab_case(loss, n, d, v, dtype, chunk_size, repeats,
                                            memory_only=memory_only)
