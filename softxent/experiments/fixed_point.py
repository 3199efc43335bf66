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

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._config import ConfigError, Field, at_least, one_of, positive
from ._progress import progress as show_progress
from ._results import Result

SCHEMA: dict[str, Any] = {
    "fixed_point": {
        "classes": Field((int,), check=at_least(1), doc="K, the length of p"),
        "targets": Field((list,), [], doc="explicit targets, each a list of K numbers"),
        "num_targets": Field((int,), 0, at_least(0), "random targets added to `targets`"),
        "concentration": Field((float,), 1.0, positive, "Dirichlet parameter of random targets"),
        "inits_per_target": Field((int,), 1, at_least(1)),
        "init_scale": Field((float,), 1.0, positive, "std of the initial logits"),
        "parametrization": Field((str,), "logits", one_of("logits", "probabilities")),
        "clip": Field((float,), 1e-6, positive, "projection margin for probabilities"),
        "trajectories": Field((int,), 8, at_least(0), "runs kept for the simplex figure"),
    }
}


def check(config: dict[str, Any], source: str) -> None:
    from .. import get_loss

    fp = config["fixed_point"]
    k = fp["classes"]
    specs = [get_loss(e["name"]) for e in config["losses"]]
    class_losses = [s.name for s in specs if s.output == "per_example"]
    if class_losses and k < 2:
        raise ConfigError(source, "fixed_point.classes",
                          f"expected >= 2 for {class_losses[0]} (a distribution over classes), "
                          f"got {k}")
    if not fp["targets"] and not fp["num_targets"]:
        raise ConfigError(source, "fixed_point.targets",
                          "expected at least one target (targets = [[...]] or num_targets > 0), "
                          "got none")
    for i, target in enumerate(fp["targets"]):
        path = f"fixed_point.targets[{i}]"
        if not isinstance(target, list) or len(target) != k or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in target
        ):
            raise ConfigError(source, path, f"expected a list of {k} numbers, got {target!r}")
        if any(not 0 <= v <= 1 for v in target):
            raise ConfigError(source, path, f"expected every entry in [0, 1], got {target!r}")
        if class_losses and abs(sum(target) - 1) > 1e-9:
            raise ConfigError(source, path, f"expected a target summing to 1 (for "
                              f"{class_losses[0]}), got {target!r} summing to {sum(target):.6g}")
    fp["targets"] = [[float(v) for v in t] for t in fp["targets"]]
    if fp["parametrization"] == "probabilities":
        for i, spec in enumerate(specs):
            if spec.input != "probabilities":
                raise ConfigError(source, f"losses[{i}].name",
                                  "expected a probability-input loss (binary_cross_entropy, "
                                  "cross_entropy) with parametrization = \"probabilities\", "
                                  f"got {spec.name}")
        if config["optimizer"]["name"] == "lbfgs":
            raise ConfigError(source, "optimizer.name", "expected sgd or adam with "
                              "parametrization = \"probabilities\" (projected steps), got 'lbfgs'")
    if "simplex" in config["figures"] and k != 3:
        raise ConfigError(source, "figures",
                          f"expected classes = 3 for the 'simplex' figure, got classes = {k}")


def make_targets(config: dict[str, Any]) -> np.ndarray:
    """The explicit targets followed by ``num_targets`` seeded random ones."""
    from .. import get_loss

    fp = config["fixed_point"]
    k = fp["classes"]
    rng = np.random.default_rng(config["seed"])
    elementwise = all(get_loss(e["name"]).output == "per_component" for e in config["losses"])
    if elementwise:
        random = rng.uniform(0.02, 0.98, size=(fp["num_targets"], k))
    else:
        random = rng.dirichlet(np.full(k, fp["concentration"]), size=fp["num_targets"])
    explicit = np.asarray(fp["targets"], dtype=np.float64).reshape(-1, k)
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


def solver(spec, params: dict[str, float], config: dict[str, Any]):
    """A function ``(w0, q) -> (p_log, value_log)`` for one run, logged every ``log_every``."""
    from . import _optim

    fp, opt = config["fixed_point"], config["optimizer"]
    link = _link(spec)
    direct = fp["parametrization"] == "probabilities"
    clip = fp["clip"]
    optimizer = _optim.make(opt["name"], opt["learning_rate"], opt["schedule"], opt["steps"])
    blocks, block = opt["steps"] // opt["log_every"], opt["log_every"]

    def to_p(w):
        return w if direct else link(w)

    def objective_for(q):
        if spec.targets == "logits":  # distillation: teacher logits log q
            teacher = jnp.log(jnp.maximum(q, jnp.finfo(q.dtype).tiny))
            return lambda w: jnp.sum(spec.fn(w, teacher, **params))
        if spec.input == "probabilities":
            return lambda w: jnp.sum(spec.fn(to_p(w), q, **params))
        return lambda w: jnp.sum(spec.fn(w, q, **params))

    project = None
    if direct:
        if spec.output == "per_example":
            project = lambda p: _project_simplex(p, clip)  # noqa: E731
        else:
            project = lambda p: jnp.clip(p, clip, 1 - clip)  # noqa: E731

    def run_one(w0, q):
        objective = objective_for(q)
        step = _optim.step_fn(optimizer, objective, opt["name"] == "lbfgs", project)
        w0 = project(link(w0)) if direct else w0  # start inside the domain

        _, (ps, values) = _optim.run_in_blocks(
            step, w0, optimizer.init(w0), block=block, blocks=blocks,
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


def train(config: dict[str, Any], progress: bool = False) -> Result:
    """Run every loss of a fixed-point config; return metrics, summary and trajectories."""
    from .. import get_loss
    from . import _devices

    fp, opt = config["fixed_point"], config["optimizer"]
    dtype = _devices.use_dtype(config["dtype"])
    devices = _devices.select(config["device"])
    targets = make_targets(config)
    n_targets, k = targets.shape
    reps = fp["inits_per_target"]
    runs_q = np.repeat(targets, reps, axis=0)
    target_index = np.repeat(np.arange(n_targets), reps)
    n_runs = runs_q.shape[0]
    # Initial logits from their own seeded stream (independent of the targets').
    rng = np.random.default_rng([config["seed"], 1])
    w0 = rng.standard_normal((n_runs, k)) * fp["init_scale"]
    steps = np.arange(0, opt["steps"] + 1, opt["log_every"])

    metrics: list[dict[str, Any]] = []
    summary: dict[str, dict[str, Any]] = {}
    arrays: dict[str, Any] = {"targets": targets, "steps": steps, "losses": {}}
    entries = config["losses"]
    bar = show_progress(entries, progress)
    for entry in bar:
        spec = get_loss(entry["name"])
        params = {k_: float(v) for k_, v in entry["params"].items()}
        run_one = solver(spec, params, config)
        batched = jax.jit(jax.vmap(run_one))
        w_dev, q_dev = _devices.shard_runs(devices, w0.astype(dtype), runs_q.astype(dtype))
        t0 = time.perf_counter()
        # optax's own internals (adam's bias correction: float ** int32) are not
        # clean under strict dtype promotion; our code and the losses are.
        with jax.numpy_dtype_promotion("standard"):
            compiled = batched.lower(w_dev, q_dev).compile()
        t1 = time.perf_counter()
        p_log, v_log = jax.block_until_ready(compiled(w_dev, q_dev))
        t2 = time.perf_counter()
        p_log = _devices.gather(p_log).astype(np.float64)[:n_runs]  # (runs, logs, K)
        v_log = _devices.gather(v_log).astype(np.float64)[:n_runs]
        p_star = minimizers(spec, params, targets)
        label = entry["label"]
        row: dict[str, Any] = {"loss": spec.name, "params": params, "runs": n_runs,
                               "steps": opt["steps"], "optimizer": opt["name"],
                               "compile_s": round(t1 - t0, 4), "time_s": round(t2 - t1, 4)}
        err = None
        if p_star is not None:
            err = np.max(np.abs(p_log - p_star[target_index][:, None, :]), axis=-1)  # (runs, logs)
            final = err[:, -1]
            row.update(max_abs_p_minus_pstar=float(np.max(final)),
                       median_abs_p_minus_pstar=float(np.median(final)),
                       fraction_within_tolerance=float(np.mean(final <= config["tolerance"])),
                       nonfinite_runs=int(np.sum(~np.isfinite(final))),
                       converged=bool(np.all(np.isfinite(final))
                                      and np.max(final) <= config["tolerance"]),
                       minimizer="softxent.symbolic.minimizer")
        else:
            row.update(max_abs_p_minus_pstar=None, converged=None,
                       minimizer="unavailable: softxent.symbolic is not installed")
        row["max_abs_p_minus_q"] = float(np.max(np.abs(p_log[:, -1] - runs_q)))
        summary[label] = row
        for j, s in enumerate(steps):
            metrics.append({
                "loss": label, "step": int(s), "objective_mean": float(np.mean(v_log[:, j])),
                "err_median": None if err is None else float(np.median(err[:, j])),
                "err_max": None if err is None else float(np.max(err[:, j])),
            })
        keep = min(fp["trajectories"], n_runs)
        arrays["losses"][label] = {
            "p": p_log[:keep], "q": runs_q[:keep],
            "p_star": None if p_star is None else p_star[target_index][:keep],
            "err_median": None if err is None else np.median(err, axis=0),
            "err_max": None if err is None else np.max(err, axis=0),
            "final_p": p_log[:, -1],
        }
    return Result(config=config, metrics=metrics, summary=summary, arrays=arrays,
                  devices=[str(d) for d in devices])


def figures(result: Result, folder) -> list[str]:
    from . import figures as fig

    return fig.draw(result, folder)
