"""Fixed-point runs: free parameters driven by one loss towards a soft target.

For each loss in the config, a batch of runs (every target times
``inits_per_target`` random initialisations) is optimised at once: the steps of
one run are a ``lax.scan``, the runs are a ``vmap``, and the batch is sharded
over all local devices. The final ``p`` is compared with the symbolic minimiser
``softxent.symbolic.minimizer`` of that loss for that target.

Parametrisation (``fixed_point.parametrization``):

* ``"logits"`` (default): free logits ``z``; ``p = softmax(z)`` for softmax-link
  losses and ``p = sigmoid(z)`` per component for sigmoid-link losses. The
  probability-input losses get ``p`` the same way: ``cross_entropy`` takes
  ``softmax(z)``, ``binary_cross_entropy`` takes ``sigmoid(z)``. The
  distillation loss is given teacher logits ``log q`` (so its optimum is
  ``softmax(z) = q`` for a proper loss).
* ``"probabilities"``: the note's setting, ``p`` itself is the parameter (only
  for the probability-input losses, with sgd or adam). After each step ``p`` is
  projected back: clipped to ``[clip, 1 - clip]`` per component for
  ``binary_cross_entropy``, and Euclidean-projected onto the simplex then
  floored at ``clip`` and renormalised for ``cross_entropy``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._config import ConfigError, at_least, one_of, positive, setting, table
from ._experiment import ExperimentConfig, LossEntry
from ._progress import progress as show_progress
from ._results import Measures, Result, collect


@table
class FixedPointConfig:
    """The ``[fixed_point]`` table: the targets and the runs started for each."""

    classes: int = setting(check=at_least(1))
    """K, the length of p (1 for a single binary probability)."""
    targets: tuple[tuple[float, ...], ...] = setting(())
    """Explicit targets, each an array of K numbers in [0, 1]."""
    num_targets: int = setting(0, at_least(0))
    """Seeded random targets added to ``targets`` (Dirichlet, or uniform per component)."""
    concentration: float = setting(1.0, positive)
    """The Dirichlet parameter of the random targets."""
    inits_per_target: int = setting(1, at_least(1))
    """Random initialisations per target; every (target, initialisation) pair is a run."""
    init_scale: float = setting(1.0, positive)
    """The standard deviation of the initial logits."""
    parametrization: str = setting("logits", one_of("logits", "probabilities"))
    """``"logits"`` (free logits) or ``"probabilities"`` (p itself, projected after each
    step)."""
    clip: float = setting(1e-6, positive)
    """The projection margin of ``parametrization = "probabilities"``."""
    trajectories: int = setting(8, at_least(0))
    """Runs whose trajectories are kept for the simplex figure."""
    chunk_runs: int = setting(0, at_least(0))
    """Runs per compiled call; 0: every run at once. With more runs than this, the sweep
    runs a chunk at a time: memory is set by the chunk, each run's final numbers are
    written to ``runs/<loss>.npy`` as its chunk completes, and the per-step statistics
    are exact over all runs."""


@table
class FixedPointExperiment(ExperimentConfig):
    """A ``kind = "fixed_point"`` config: the common keys and ``[fixed_point]``."""

    fixed_point: FixedPointConfig = setting()
    """The ``[fixed_point]`` table."""


CONFIG = FixedPointExperiment


def check(config: FixedPointExperiment, source: str) -> None:
    """The checks across keys: targets against ``classes`` and the losses, the
    parametrisation against the losses and the optimiser, the figures against K."""
    specs = [entry.spec() for entry in config.losses]
    class_losses = [s.name for s in specs if s.output == "per_example"]
    k = config.fixed_point.classes
    if class_losses and k < 2:
        raise ConfigError(source, "fixed_point.classes",
                          f"expected >= 2 for {class_losses[0]} (a distribution over classes), "
                          f"got {k}")
    _check_targets(config.fixed_point, class_losses[0] if class_losses else None, source)
    if config.fixed_point.parametrization == "probabilities":
        _check_probability_runs(config, specs, source)
    if "simplex" in config.figures and k != 3:
        raise ConfigError(source, "figures",
                          f"expected classes = 3 for the 'simplex' figure, got classes = {k}")


def _check_targets(fp: FixedPointConfig, class_loss: str | None, source: str) -> None:
    if not fp.targets and not fp.num_targets:
        raise ConfigError(source, "fixed_point.targets",
                          "expected at least one target (targets = [[...]] or num_targets > 0), "
                          "got none")
    for i, target in enumerate(map(list, fp.targets)):
        path = f"fixed_point.targets[{i}]"
        if len(target) != fp.classes:
            raise ConfigError(source, path, f"expected a list of {fp.classes} numbers, "
                              f"got {target!r}")
        if any(not 0 <= v <= 1 for v in target):
            raise ConfigError(source, path, f"expected every entry in [0, 1], got {target!r}")
        if class_loss and abs(sum(target) - 1) > 1e-9:
            raise ConfigError(source, path, f"expected a target summing to 1 (for "
                              f"{class_loss}), got {target!r} summing to {sum(target):.6g}")


def _check_probability_runs(config: FixedPointExperiment, specs: list[Any], source: str) -> None:
    for i, spec in enumerate(specs):
        if spec.input != "probabilities":
            raise ConfigError(source, f"losses[{i}].name",
                              "expected a probability-input loss (binary_cross_entropy, "
                              "cross_entropy) with parametrization = \"probabilities\", "
                              f"got {spec.name}")
    if config.optimizer.name == "lbfgs":
        raise ConfigError(source, "optimizer.name", "expected sgd or adam with "
                          "parametrization = \"probabilities\" (projected steps), got 'lbfgs'")


def make_targets(config: FixedPointExperiment) -> np.ndarray:
    """The explicit targets followed by ``num_targets`` seeded random ones."""
    fp = config.fixed_point
    k = fp.classes
    rng = np.random.default_rng(config.seed)
    elementwise = all(entry.spec().output == "per_component" for entry in config.losses)
    if elementwise:
        random = rng.uniform(0.02, 0.98, size=(fp.num_targets, k))
    else:
        random = rng.dirichlet(np.full(k, fp.concentration), size=fp.num_targets)
    explicit = np.asarray(fp.targets, dtype=np.float64).reshape(-1, k)
    return np.concatenate([explicit, random])


def _link(spec) -> Any:
    if spec.link == "softmax" or (spec.link == "none" and spec.output == "per_example"):
        return jax.nn.softmax
    return jax.nn.sigmoid


def _project_simplex(v: jax.Array, clip: float) -> jax.Array:
    # Euclidean projection onto the simplex (sort-based), then a floor at `clip`.
    u = jnp.sort(v)[::-1]
    css = jnp.cumsum(u) - 1
    ind = jnp.arange(1, v.shape[0] + 1, dtype=v.dtype)
    rho = jnp.sum(u - css / ind > 0)
    theta = css[rho - 1] / rho.astype(v.dtype)
    w = jnp.maximum(v - theta, clip)
    return w / jnp.sum(w)


def _projection(spec, clip: float):
    """The map back into the domain after a step on p itself."""
    if spec.output == "per_example":
        return lambda p: _project_simplex(p, clip)
    return lambda p: jnp.clip(p, clip, 1 - clip)


def _objective(spec, params: dict[str, float], to_p, q):
    """The summed loss of the free parameters ``w`` against the target ``q``."""
    if spec.targets == "logits":  # distillation: teacher logits log q
        teacher = jnp.log(jnp.maximum(q, jnp.finfo(q.dtype).tiny))
        return lambda w: jnp.sum(spec.fn(w, teacher, **params))
    if spec.input == "probabilities":
        return lambda w: jnp.sum(spec.fn(to_p(w), q, **params))
    return lambda w: jnp.sum(spec.fn(w, q, **params))


def solver(spec, params: dict[str, float], config: FixedPointExperiment):
    """A function ``(w0, q) -> (p_log, value_log)`` for one run, logged every ``log_every``."""
    from . import _optim

    opt = config.optimizer
    link = _link(spec)
    direct = config.fixed_point.parametrization == "probabilities"
    project = _projection(spec, config.fixed_point.clip) if direct else None
    optimizer = _optim.make(opt.name, opt.learning_rate, opt.schedule, opt.steps)

    def to_p(w):
        return w if direct else link(w)

    def run_one(w0, q):
        objective = _objective(spec, params, to_p, q)
        step = _optim.step_fn(optimizer, objective, opt.name == "lbfgs", project)
        w0 = project(link(w0)) if direct else w0  # start inside the domain

        _, (ps, values) = _optim.run_in_blocks(
            step, w0, optimizer.init(w0), block=opt.log_every, blocks=opt.blocks,
            log=lambda w, value: (to_p(w), value))
        p0 = to_p(w0)[None]
        v0 = objective(w0)[None]
        return jnp.concatenate([p0, ps]), jnp.concatenate([v0, values])

    return run_one


def minimizers(spec, params: dict[str, float], targets: np.ndarray) -> np.ndarray | None:
    """p* for each target from the symbolic catalogue, or None when it is not installed."""
    try:
        from ..symbolic import minimizer
    except ImportError:
        return None
    return np.stack([np.asarray(minimizer(spec.name, list(map(float, q)), params or None),
                             dtype=np.float64).reshape(q.shape) for q in targets])


@dataclasses.dataclass(frozen=True)
class FixedPointSetup:
    """What every loss of a fixed-point config shares.

    Attributes:
      targets: the distinct targets, shape (targets, K).
      target_index: which target each run has, shape (runs,).
      steps: the logged steps, 0 first.
      devices: the devices the runs are sharded over.
      dtype: the compute dtype.
      seed: the seed of the initial logits' stream.
      init_scale: their standard deviation.
    """

    targets: np.ndarray
    target_index: np.ndarray
    steps: np.ndarray
    devices: list[Any]
    dtype: Any
    seed: int
    init_scale: float

    @functools.cached_property
    def runs_q(self) -> np.ndarray:
        """Each run's target, shape (runs, K) (made once, for the runs of one call)."""
        return self.targets[self.target_index]

    @functools.cached_property
    def w0(self) -> np.ndarray:
        """Each run's initial logits, shape (runs, K) (made once, for the runs of one call)."""
        return next(self.chunks(len(self.target_index)))[1]

    def chunks(self, size: int):
        """``(start, w0, q)`` for consecutive runs, ``size`` at a time: the initial
        logits drawn in order from one seeded stream, so any chunking gives every
        run the same start."""
        rng = np.random.default_rng([self.seed, 1])
        runs, k = len(self.target_index), self.targets.shape[1]
        for start in range(0, runs, size):
            stop = min(start + size, runs)
            w0 = rng.standard_normal((stop - start, k)) * self.init_scale
            yield start, w0, self.targets[self.target_index[start:stop]]


@dataclasses.dataclass(frozen=True)
class FixedPointRun:
    """One loss's runs: its entry, p and the objective at every logged step, and times.

    Attributes:
      entry: the loss.
      p: p of every run at every logged step, shape (runs, logs, K); of the kept
        trajectories only when the runs went in chunks.
      values: the objective of every run at every logged step, shape (runs, logs);
        None when the runs went in chunks.
      compile_s: seconds to compile the batched solver.
      time_s: seconds to run it.
      chunked: the statistics of a sweep run in chunks, else None.
    """

    entry: LossEntry
    p: np.ndarray
    values: np.ndarray | None
    compile_s: float
    time_s: float
    chunked: ChunkedSweep | None = None


@dataclasses.dataclass(frozen=True)
class ChunkedSweep:
    """What a sweep run in chunks keeps: exact statistics, and its runs on disk.

    Attributes:
      objective_mean, err_median, err_max: per logged step, over every run
        (the errors None without the symbolic minimiser).
      records: every run's target, final p, final error and objective, memory-mapped
        from the spill file (``softxent.experiments._stream.run_dtype``).
      spill: the folder holding the file until the results are written.
      max_abs_p_minus_q: the largest |p - q| of a final p.
      p_star: the symbolic minimiser of each target, or None.
    """

    objective_mean: np.ndarray
    err_median: np.ndarray | None
    err_max: np.ndarray | None
    records: np.ndarray
    spill: Any
    max_abs_p_minus_q: float
    p_star: np.ndarray | None


def setup(config: FixedPointExperiment) -> FixedPointSetup:
    """The targets, every run's target and seeded initial logits, the devices and dtype."""
    from . import _devices

    fp, opt = config.fixed_point, config.optimizer
    dtype = _devices.use_dtype(config.dtype)
    targets = make_targets(config)
    # Initial logits come from their own seeded stream (independent of the targets').
    return FixedPointSetup(
        targets=targets,
        target_index=np.repeat(np.arange(targets.shape[0]), fp.inits_per_target),
        steps=np.arange(0, opt.steps + 1, opt.log_every),
        devices=_devices.select(config.device), dtype=dtype, seed=config.seed,
        init_scale=fp.init_scale)


def run(config: FixedPointExperiment, state: FixedPointSetup, entry: LossEntry) -> FixedPointRun:
    """Every run of one loss in one compiled call, sharded over the devices (or a
    chunk of runs per call: ``fixed_point.chunk_runs``)."""
    from . import _devices

    chunk = config.fixed_point.chunk_runs
    if chunk and len(state.target_index) > chunk:
        return _run_in_chunks(config, state, entry, chunk)
    spec = entry.spec()
    batched = jax.jit(jax.vmap(solver(spec, dict(entry.params), config)))
    w_dev, q_dev = _devices.shard_runs(state.devices, state.w0.astype(state.dtype),
                                       state.runs_q.astype(state.dtype))
    compiled, compile_s = _compile(batched, w_dev, q_dev)
    t1 = time.perf_counter()
    p_log, v_log = jax.block_until_ready(compiled(w_dev, q_dev))
    t2 = time.perf_counter()
    n_runs = state.runs_q.shape[0]
    return FixedPointRun(entry=entry,
                         p=_devices.gather(p_log).astype(np.float64)[:n_runs],
                         values=_devices.gather(v_log).astype(np.float64)[:n_runs],
                         compile_s=compile_s, time_s=t2 - t1)


def _compile(batched: Any, *args: Any) -> tuple[Any, float]:
    """``batched`` compiled for ``args``, and the seconds that took."""
    start = time.perf_counter()
    # optax's own internals (adam's bias correction: float ** int32) are not
    # clean under strict dtype promotion; our code and the losses are.
    with jax.numpy_dtype_promotion("standard"):
        compiled = batched.lower(*args).compile()
    return compiled, time.perf_counter() - start


def _run_in_chunks(config: FixedPointExperiment, state: FixedPointSetup, entry: LossEntry,
                   chunk: int) -> FixedPointRun:
    """The runs ``chunk`` at a time through one compiled call, each chunk reduced to
    per-step statistics and written to disk before the next (see ``_stream``)."""
    from .._progress import bar
    from . import _devices
    from ._stream import RunFile, SpillFolder, StepStatistics

    spec, params = entry.spec(), dict(entry.params)
    runs, k = state.target_index.shape[0], state.targets.shape[1]
    p_star = minimizers(spec, params, state.targets)
    spill = SpillFolder()
    name = file_name(entry.label)
    statistics = StepStatistics(spill.path, name, runs, len(state.steps))
    records = RunFile(spill.path, name, runs, k)
    batched = jax.jit(jax.vmap(solver(spec, params, config)))
    size = chunk + (-chunk) % len(state.devices)  # one executable: every call this many runs
    keep = min(config.fixed_point.trajectories, runs)
    kept: list[np.ndarray] = []
    compiled, compile_s, farthest = None, 0.0, 0.0
    t0 = time.perf_counter()
    for start, w0, q in bar(state.chunks(chunk), f"{entry.label} runs", unit="chunk",
                            total=-(-runs // chunk)):
        n = w0.shape[0]
        w_dev, q_dev = _devices.shard_runs(state.devices,
                                           _devices.pad(w0, size).astype(state.dtype),
                                           _devices.pad(q, size).astype(state.dtype))
        if compiled is None:
            compiled, compile_s = _compile(batched, w_dev, q_dev)
        p_log, v_log = compiled(w_dev, q_dev)
        p_log = _devices.gather(p_log).astype(np.float64)[:n]
        v_log = _devices.gather(v_log).astype(np.float64)[:n]
        if start < keep:  # a copy: a view would keep the whole chunk alive
            kept.append(p_log[:keep - start].copy())
        index = state.target_index[start:start + n]
        err = (np.full(v_log.shape, np.nan) if p_star is None
               else np.max(np.abs(p_log - p_star[index][:, None, :]), axis=-1))
        statistics.add(start, err, v_log)
        records.add(start, target=index, final_p=p_log[:, -1], final_err=err[:, -1],
                    final_objective=v_log[:, -1])
        farthest = max(farthest, float(np.max(np.abs(p_log[:, -1] - q))))
    seconds = time.perf_counter() - t0 - compile_s
    medians = statistics.err_median()
    swept = ChunkedSweep(
        objective_mean=statistics.objective_mean(),
        err_median=None if p_star is None else medians,
        err_max=None if p_star is None else statistics.err_max,
        records=records.close(), spill=spill, max_abs_p_minus_q=farthest, p_star=p_star)
    kept_p = np.concatenate(kept) if kept else np.empty((0, len(state.steps), k))
    return FixedPointRun(entry=entry, p=kept_p, values=None,
                         compile_s=compile_s, time_s=seconds, chunked=swept)


def file_name(label: str) -> str:
    """A loss label as a file name: letters, digits and ``._=-`` kept, the rest ``_``."""
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in label)


def _chunked_measures(config: FixedPointExperiment, state: FixedPointSetup,
                      done: FixedPointRun) -> Measures:
    swept, entry = done.chunked, done.entry
    assert swept is not None
    metrics = _metric_rows(entry.label, state.steps, swept.objective_mean, swept.err_median,
                           swept.err_max)
    keep, p_star = done.p.shape[0], swept.p_star
    kept_index = state.target_index[:keep]
    arrays = {
        "p": done.p, "q": state.targets[kept_index],
        "p_star": None if p_star is None else p_star[kept_index],
        "err_median": swept.err_median, "err_max": swept.err_max,
        "final_p": swept.records["final_p"],
    }
    final_err = None if swept.err_median is None else np.asarray(swept.records["final_err"])
    summary = _summary_row(config, done, len(swept.records), final_err,
                           swept.max_abs_p_minus_q)
    summary.update(chunk_runs=config.fixed_point.chunk_runs,
                   runs_per_s=round(len(swept.records) / done.time_s, 1),
                   runs_file=f"runs/{file_name(entry.label)}.npy")
    return Measures(label=entry.label, summary=summary, metrics=metrics, arrays=arrays,
                    files={summary["runs_file"]: Path(swept.records.filename)},
                    keep_alive=swept.spill)


def measures(config: FixedPointExperiment, state: FixedPointSetup, done: FixedPointRun) -> Measures:
    """One loss's summary row, metric rows and kept trajectories, against the symbolic p*."""
    if done.chunked is not None:
        return _chunked_measures(config, state, done)
    entry = done.entry
    p_star = minimizers(entry.spec(), dict(entry.params), state.targets)
    p_star_runs = None if p_star is None else p_star[state.target_index]
    # max_k |p - p*| of every run at every logged step, shape (runs, logs)
    err = None if p_star_runs is None else np.max(np.abs(done.p - p_star_runs[:, None, :]),
                                                  axis=-1)
    err_median = None if err is None else np.median(err, axis=0)
    err_max = None if err is None else np.max(err, axis=0)
    objective_mean = np.array([np.mean(done.values[:, j]) for j in range(len(state.steps))])
    metrics = _metric_rows(entry.label, state.steps, objective_mean, err_median, err_max)
    keep = min(config.fixed_point.trajectories, done.p.shape[0])
    arrays = {
        "p": done.p[:keep], "q": state.runs_q[:keep],
        "p_star": None if p_star_runs is None else p_star_runs[:keep],
        "err_median": err_median, "err_max": err_max, "final_p": done.p[:, -1],
    }
    summary = _summary_row(config, done, done.p.shape[0], None if err is None else err[:, -1],
                           float(np.max(np.abs(done.p[:, -1] - state.runs_q))))
    return Measures(label=entry.label, summary=summary, metrics=metrics, arrays=arrays)


def _metric_rows(label: str, steps: np.ndarray, objective_mean: np.ndarray,
                 err_median: np.ndarray | None, err_max: np.ndarray | None
                 ) -> list[dict[str, Any]]:
    """The rows of ``metrics.csv`` for one loss, one per logged step."""
    return [{"loss": label, "step": int(s), "objective_mean": float(objective_mean[j]),
             "err_median": None if err_median is None else float(err_median[j]),
             "err_max": None if err_max is None else float(err_max[j])}
            for j, s in enumerate(steps)]


def _summary_row(config: FixedPointExperiment, done: FixedPointRun, runs: int,
                 final: np.ndarray | None, max_abs_p_minus_q: float) -> dict[str, Any]:
    row: dict[str, Any] = {"loss": done.entry.name, "params": dict(done.entry.params),
                           "runs": runs, "steps": config.optimizer.steps,
                           "optimizer": config.optimizer.name,
                           "compile_s": round(done.compile_s, 4), "time_s": round(done.time_s, 4)}
    if final is not None:
        row.update(max_abs_p_minus_pstar=float(np.max(final)),
                   median_abs_p_minus_pstar=float(np.median(final)),
                   fraction_within_tolerance=float(np.mean(final <= config.tolerance)),
                   nonfinite_runs=int(np.sum(~np.isfinite(final))),
                   converged=bool(np.all(np.isfinite(final))
                                  and np.max(final) <= config.tolerance),
                   minimizer="softxent.symbolic.minimizer")
    else:
        row.update(max_abs_p_minus_pstar=None, converged=None,
                   minimizer="unavailable: softxent.symbolic is not installed")
    row["max_abs_p_minus_q"] = max_abs_p_minus_q
    return row


def train(config: FixedPointExperiment, progress: bool = False) -> Result:
    """Run every loss of a fixed-point config; return metrics, summary and trajectories."""
    state = setup(config)
    measured = [measures(config, state, run(config, state, entry))
                for entry in show_progress(config.losses, progress)]
    return collect(config, measured, {"targets": state.targets, "steps": state.steps},
                   state.devices)


def figures(result: Result, folder) -> list[str]:
    from . import figures as fig

    return fig.draw(result, folder)
