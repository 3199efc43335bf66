"""Knowledge distillation on real data: scikit-learn's bundled handwritten digits.

A teacher MLP is trained on the hard labels; its logits give soft targets at
temperature T. A smaller student is trained twice on the same split: with
``distillation_loss`` against the teacher (mixed with the hard-label
cross-entropy by ``hard_weight``, as Hinton et al. do) and on the hard labels
alone. Every seed (split and initialisation) trains at once under ``vmap``.
Reported on the held-out split, mean ± std over seeds: accuracy, negative
log-likelihood, expected calibration error (equal-width confidence bins) and
KL(student ‖ teacher). The digits ship with scikit-learn (the ``examples``
extra); nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._optional import require
from ._config import ConfigError, at_least, between, setting, table
from ._experiment import ExperimentConfig
from ._networks import mlp_init, mlp_logits
from ._results import Result

MODELS = ("teacher", "student_hard", "student_distilled")
MEASURES = ("accuracy", "nll", "ece", "kl_to_teacher")


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "expected >= 0"


@table
class DistillationConfig:
    """The ``[distillation]`` table: the teacher, the student and the seeds."""

    seeds: int = setting(5, at_least(1))
    """Independent splits and initialisations, all trained at once."""
    teacher_hidden: int = setting(128, at_least(1))
    """Hidden units of the teacher."""
    student_hidden: int = setting(8, at_least(1))
    """Hidden units of the students."""
    hard_weight: float = setting(0.1, between(0, 1))
    """The weight of the hard-label cross-entropy in the distilled student's loss."""
    test_fraction: float = setting(0.3, between(0, 1, open_interval=True))
    """The held-out share of the digits."""
    ece_bins: int = setting(15, at_least(2))
    """Equal-width confidence bins of the expected calibration error."""
    weight_decay: float = setting(1e-4, _non_negative)
    """adamw's weight decay (with ``optimizer.name = "adam"``)."""


@table
class DistillationExperiment(ExperimentConfig):
    """A ``kind = "distillation"`` config: the common keys and ``[distillation]``."""

    distillation: DistillationConfig = setting(DistillationConfig)
    """The ``[distillation]`` table."""


CONFIG = DistillationExperiment

_NEEDS_SKLEARN = "the distillation experiment (scikit-learn's bundled digits)"


def check(config: DistillationExperiment, source: str) -> None:
    """One ``distillation_loss`` entry, sgd or adam, at most the convergence figure."""
    # Before any work starts: a missing scikit-learn is one line, not a lost run.
    require("sklearn.datasets", "examples", _NEEDS_SKLEARN)
    losses = config.losses
    if len(losses) != 1 or losses[0].name != "distillation_loss":
        raise ConfigError(source, "losses", "expected exactly one [[losses]] entry with "
                          f"name = \"distillation_loss\", got {[e.name for e in losses]}")
    if config.optimizer.name == "lbfgs":
        raise ConfigError(source, "optimizer.name",
                          "expected 'sgd' or 'adam' for kind = \"distillation\", got 'lbfgs'")
    if set(config.figures) - {"convergence"}:
        raise ConfigError(source, "figures", "expected [] or [\"convergence\"] for kind = "
                          f"\"distillation\", got {list(config.figures)!r}")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8×8 digits bundled with scikit-learn, scaled to [0, 1]."""
    datasets = require("sklearn.datasets", "examples", _NEEDS_SKLEARN)
    digits = datasets.load_digits()
    return digits.data.astype(np.float64) / 16.0, digits.target.astype(np.int64)


def _ece(probs: jax.Array, labels: jax.Array, bins: int) -> jax.Array:
    confidence = jnp.max(probs, axis=-1)
    correct = (jnp.argmax(probs, axis=-1) == labels).astype(probs.dtype)
    which = jnp.clip((confidence * bins).astype(jnp.int32), 0, bins - 1)
    one_hot = jax.nn.one_hot(which, bins, dtype=probs.dtype)
    count = one_hot.sum(0)
    gap = jnp.abs(one_hot.T @ correct - one_hot.T @ confidence)
    return jnp.sum(gap) / labels.shape[0] * jnp.where(count.sum() > 0, 1, 0)


def _test_measures(logits, teacher_logits, labels, bins):
    import softxent

    log_p = jax.nn.log_softmax(logits)
    probs = jnp.exp(log_p)
    nll = -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=-1))
    kl = jnp.mean(softxent.kl_divergence(teacher_logits, probs))  # KL(student || teacher)
    return {
        "accuracy": jnp.mean((jnp.argmax(logits, -1) == labels).astype(logits.dtype)),
        "nll": nll, "ece": _ece(probs, labels, bins), "kl_to_teacher": kl,
    }


@dataclasses.dataclass(frozen=True)
class DistillationSetup:
    """The data, every seed's split and key, and the distillation temperature.

    Attributes:
      x, y: every digit (scaled pixels) and its label.
      train_idx, test_idx: each seed's split, shapes (seeds, train) and (seeds, test).
      keys: each seed's initialisation key.
      temperature: the distillation loss's temperature.
      devices: the devices the seeds train on (the first one).
      dtype: the compute dtype.
    """

    x: jax.Array
    y: jax.Array
    train_idx: np.ndarray
    test_idx: np.ndarray
    keys: jax.Array
    temperature: float
    devices: list[Any]
    dtype: Any


@dataclasses.dataclass(frozen=True)
class DistillationRun:
    """Every seed's test measures and accuracy curve per model, and the seconds it took."""

    measures: dict[str, dict[str, jax.Array]]
    curves: dict[str, jax.Array]
    seconds: float


def setup(config: DistillationExperiment) -> DistillationSetup:
    """The digits, a seeded split per seed, the seeds' keys, the devices and dtype."""
    from . import _devices

    cfg = config.distillation
    dtype = _devices.use_dtype(config.dtype)
    devices = _devices.select(config.device)
    x_all, y_all = load_digits()
    n = len(y_all)
    n_test = int(round(cfg.test_fraction * n))
    rng = np.random.default_rng(config.seed)
    orders = np.stack([rng.permutation(n) for _ in range(cfg.seeds)])
    return DistillationSetup(
        x=jnp.asarray(x_all, dtype), y=jnp.asarray(y_all),
        train_idx=orders[:, n_test:], test_idx=orders[:, :n_test],
        keys=jax.random.split(jax.random.key(config.seed), cfg.seeds),
        temperature=float(config.losses[0].params.get("temperature", 2.0)),
        devices=devices, dtype=dtype)


def _fitter(config: DistillationExperiment, dtype: Any):
    """``(params, objective, x_test, y_test) -> (params, test accuracy after each block)``."""
    optax = require("optax", "experiments", "the distillation experiment")
    from . import _optim

    opt, cfg = config.optimizer, config.distillation

    def fit(params, objective, x_test, y_test):
        if opt.name == "sgd":
            tx = optax.sgd(opt.learning_rate)
        else:
            tx = optax.adamw(opt.learning_rate, weight_decay=cfg.weight_decay)

        def accuracy(params, _value):
            return jnp.mean((jnp.argmax(mlp_logits(params, x_test), -1) == y_test).astype(dtype))

        step = _optim.step_fn(tx, objective, lbfgs=False)
        return _optim.run_in_blocks(step, params, tx.init(params), block=opt.log_every,
                                    blocks=opt.blocks, log=accuracy)

    return fit


def _distilled(x_train, hot, teacher_logits, hard_weight: float, temperature: float):
    """The distilled student's objective: the hard labels' cross-entropy weighted by
    ``hard_weight`` plus the distillation loss against the teacher."""
    import softxent

    def distilled(params):
        logits = mlp_logits(params, x_train)
        soft = softxent.distillation_loss(logits, teacher_logits, temperature=temperature)
        return (hard_weight * jnp.mean(softxent.softmax_cross_entropy(logits, hot))
                + (1 - hard_weight) * jnp.mean(soft))

    return distilled


def _one_seed(config: DistillationExperiment, state: DistillationSetup):
    """``(key, train_rows, test_rows) -> (measures, curves)``: the teacher and both students
    of one seed."""
    import softxent

    cfg, x, y, dtype, classes = config.distillation, state.x, state.y, state.dtype, 10
    fit = _fitter(config, dtype)

    def one_seed(key, train_rows, test_rows):
        x_train, y_train = x[train_rows], y[train_rows]
        x_test, y_test = x[test_rows], y[test_rows]
        hot = jax.nn.one_hot(y_train, classes, dtype=dtype)
        k_teacher, k_student, _ = jax.random.split(key, 3)

        def hard(params):
            return jnp.mean(softxent.softmax_cross_entropy(mlp_logits(params, x_train), hot))

        teacher, teacher_curve = fit(
            mlp_init(k_teacher, [x.shape[1], cfg.teacher_hidden, classes], dtype), hard,
            x_test, y_test)
        teacher_train = jax.lax.stop_gradient(mlp_logits(teacher, x_train))

        distilled = _distilled(x_train, hot, teacher_train, cfg.hard_weight, state.temperature)
        student_sizes = [x.shape[1], cfg.student_hidden, classes]
        student_hard, hard_curve = fit(mlp_init(k_student, student_sizes, dtype), hard,
                                       x_test, y_test)
        # The same initialisation for both students, so only the targets differ.
        student_kd, kd_curve = fit(mlp_init(k_student, student_sizes, dtype), distilled,
                                   x_test, y_test)
        teacher_test = mlp_logits(teacher, x_test)
        trained = (teacher, student_hard, student_kd)
        return ({name: _test_measures(mlp_logits(p, x_test), teacher_test, y_test, cfg.ece_bins)
                 for name, p in zip(MODELS, trained, strict=True)},
                dict(zip(MODELS, (teacher_curve, hard_curve, kd_curve), strict=True)))

    return one_seed


def run(config: DistillationExperiment, state: DistillationSetup) -> DistillationRun:
    """Every seed's teacher and students, trained at once under ``vmap`` in one compiled call."""
    train_idx, test_idx = jnp.asarray(state.train_idx), jnp.asarray(state.test_idx)
    start = time.perf_counter()
    # optax's internals are not clean under strict dtype promotion; the losses are.
    with jax.numpy_dtype_promotion("standard"):
        compiled = jax.jit(jax.vmap(_one_seed(config, state))).lower(
            state.keys, train_idx, test_idx).compile()
    measured, curves = jax.block_until_ready(compiled(state.keys, train_idx, test_idx))
    return DistillationRun(measures=measured, curves=curves,
                           seconds=time.perf_counter() - start)


def measures(config: DistillationExperiment, state: DistillationSetup,
             done: DistillationRun) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The summary (mean and std over seeds per model and measure, and the setting) and one
    metric row per model and seed."""
    cfg = config.distillation
    summary: dict[str, dict[str, Any]] = {}
    metrics: list[dict[str, Any]] = []
    for model in MODELS:
        values = {m: np.asarray(done.measures[model][m], dtype=np.float64) for m in MEASURES}
        summary[model] = {m: {"mean": float(v.mean()), "std": float(v.std())}
                          for m, v in values.items()}
        summary[model]["seconds_all_models"] = round(done.seconds, 3)
        metrics += [{"model": model, "seed": s, **{m: float(values[m][s]) for m in MEASURES}}
                    for s in range(cfg.seeds)]
    summary["setting"] = {"temperature": state.temperature, "hard_weight": cfg.hard_weight,
                          "seeds": cfg.seeds, "train_size": state.train_idx.shape[1],
                          "test_size": state.test_idx.shape[1],
                          "teacher_hidden": cfg.teacher_hidden,
                          "student_hidden": cfg.student_hidden}
    return summary, metrics


def train(config: DistillationExperiment, progress: bool = False) -> Result:
    """Train every seed's teacher and students; return the measures, the summary and the
    accuracy curves."""
    state = setup(config)
    done = run(config, state)
    summary, metrics = measures(config, state, done)
    opt = config.optimizer
    arrays = {"steps": np.arange(opt.log_every, opt.steps + 1, opt.log_every),
              "curves": {k: np.asarray(v, dtype=np.float64) for k, v in done.curves.items()},
              "summary": summary}
    return Result(config=config, metrics=metrics, summary=summary, arrays=arrays,
                  devices=[str(state.devices[0])])


def figures(result: Result, folder) -> list[str]:
    from .figures import pyplot

    plt = pyplot()

    steps, curves, summary = (result.arrays[k] for k in ("steps", "curves", "summary"))
    fig, axes = plt.subplots(1, 1 + len(MEASURES), figsize=(4 * (1 + len(MEASURES)), 3.4))
    colours = {"teacher": "tab:gray", "student_hard": "tab:orange",
               "student_distilled": "tab:blue"}
    for model in MODELS:
        mean, std = curves[model].mean(0), curves[model].std(0)
        axes[0].plot(steps, mean, label=model.replace("_", " "), color=colours[model])
        axes[0].fill_between(steps, mean - std, mean + std, alpha=0.2, color=colours[model])
    axes[0].set(xlabel="step", ylabel="test accuracy", title="training")
    axes[0].legend(fontsize=8)
    for ax, measure in zip(axes[1:], MEASURES, strict=True):
        means = [summary[m][measure]["mean"] for m in MODELS]
        stds = [summary[m][measure]["std"] for m in MODELS]
        ax.bar(range(len(MODELS)), means, yerr=stds, color=[colours[m] for m in MODELS])
        ax.set_xticks(range(len(MODELS)), ["teacher", "hard", "distilled"])
        ax.set_title(measure.replace("_", " "))
    setting = summary["setting"]
    fig.suptitle(f"Distillation on sklearn digits (T = {setting['temperature']:g}, "
                 f"{setting['seeds']} seeds, student {setting['student_hidden']} hidden units)")
    fig.tight_layout()
    path = folder / "distillation.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path.name]
