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

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._optional import require
from ._config import ConfigError, Field, at_least
from ._networks import mlp_init, mlp_logits
from ._results import Result

MODELS = ("teacher", "student_hard", "student_distilled")
MEASURES = ("accuracy", "nll", "ece", "kl_to_teacher")

SCHEMA: dict[str, Any] = {
    "distillation": {
        "seeds": Field((int,), 5, at_least(1), "independent splits and initialisations"),
        "teacher_hidden": Field((int,), 128, at_least(1)),
        "student_hidden": Field((int,), 8, at_least(1)),
        "hard_weight": Field((float,), 0.1, lambda v: None if 0 <= v <= 1 else
                             "expected a number in [0, 1]", "weight of the hard-label loss"),
        "test_fraction": Field((float,), 0.3, lambda v: None if 0 < v < 1 else
                               "expected a number in (0, 1)"),
        "ece_bins": Field((int,), 15, at_least(2)),
        "weight_decay": Field((float,), 1e-4, lambda v: None if v >= 0 else "expected >= 0"),
    }
}


_NEEDS_SKLEARN = "the distillation experiment (scikit-learn's bundled digits)"


def check(config: dict[str, Any], source: str) -> None:
    # Before any work starts: a missing scikit-learn is one line, not a lost run.
    require("sklearn.datasets", "examples", _NEEDS_SKLEARN)
    losses = config["losses"]
    if len(losses) != 1 or losses[0]["name"] != "distillation_loss":
        raise ConfigError(source, "losses", "expected exactly one [[losses]] entry with "
                          f"name = \"distillation_loss\", got {[e['name'] for e in losses]}")
    if config["optimizer"]["name"] == "lbfgs":
        raise ConfigError(source, "optimizer.name",
                          "expected 'sgd' or 'adam' for kind = \"distillation\", got 'lbfgs'")
    if set(config["figures"]) - {"convergence"}:
        raise ConfigError(source, "figures", "expected [] or [\"convergence\"] for kind = "
                          f"\"distillation\", got {config['figures']!r}")


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


def _measures(logits, teacher_logits, labels, bins):
    import softxent

    log_p = jax.nn.log_softmax(logits)
    probs = jnp.exp(log_p)
    nll = -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=-1))
    kl = jnp.mean(softxent.kl_divergence(teacher_logits, probs))  # KL(student || teacher)
    return {
        "accuracy": jnp.mean((jnp.argmax(logits, -1) == labels).astype(logits.dtype)),
        "nll": nll, "ece": _ece(probs, labels, bins), "kl_to_teacher": kl,
    }


def train(config: dict[str, Any], progress: bool = False) -> Result:
    from .._optional import require

    optax = require("optax", "experiments", "the distillation experiment")

    import softxent

    from . import _devices, _optim

    cfg, opt = config["distillation"], config["optimizer"]
    dtype = _devices.use_dtype(config["dtype"])
    devices = _devices.select(config["device"])
    temperature = float(config["losses"][0]["params"].get("temperature", 2.0))
    x_all, y_all = load_digits()
    n, classes = len(y_all), 10
    n_test = int(round(cfg["test_fraction"] * n))
    seeds = cfg["seeds"]
    rng = np.random.default_rng(config["seed"])
    orders = np.stack([rng.permutation(n) for _ in range(seeds)])
    test_idx, train_idx = orders[:, :n_test], orders[:, n_test:]
    x = jnp.asarray(x_all, dtype)
    y = jnp.asarray(y_all)
    hard_weight = cfg["hard_weight"]
    blocks, block = opt["steps"] // opt["log_every"], opt["log_every"]
    steps = np.arange(opt["steps"] // blocks, opt["steps"] + 1, block)

    def optimizer():
        if opt["name"] == "sgd":
            return optax.sgd(opt["learning_rate"])
        return optax.adamw(opt["learning_rate"], weight_decay=cfg["weight_decay"])

    def fit(params, objective, x_test, y_test):
        tx = optimizer()

        def accuracy(params, _value):
            return jnp.mean((jnp.argmax(mlp_logits(params, x_test), -1) == y_test).astype(dtype))

        step = _optim.step_fn(tx, objective, lbfgs=False)
        return _optim.run_in_blocks(step, params, tx.init(params), block=block, blocks=blocks,
                                    log=accuracy)

    def one_seed(key, train_rows, test_rows):
        x_train, y_train = x[train_rows], y[train_rows]
        x_test, y_test = x[test_rows], y[test_rows]
        hot = jax.nn.one_hot(y_train, classes, dtype=dtype)
        k_teacher, k_student_hard, k_student_kd = jax.random.split(key, 3)
        teacher_sizes = [x.shape[1], cfg["teacher_hidden"], classes]
        student_sizes = [x.shape[1], cfg["student_hidden"], classes]

        def hard(params):
            return jnp.mean(softxent.softmax_cross_entropy(mlp_logits(params, x_train), hot))

        teacher_init = mlp_init(k_teacher, teacher_sizes, dtype)
        teacher, teacher_curve = fit(teacher_init, hard, x_test, y_test)
        teacher_train = jax.lax.stop_gradient(mlp_logits(teacher, x_train))

        def distilled(params):
            logits = mlp_logits(params, x_train)
            soft = softxent.distillation_loss(logits, teacher_train, temperature=temperature)
            return (hard_weight * jnp.mean(softxent.softmax_cross_entropy(logits, hot))
                    + (1 - hard_weight) * jnp.mean(soft))

        student_hard, hard_curve = fit(mlp_init(k_student_hard, student_sizes, dtype), hard,
                                       x_test, y_test)
        # The same initialisation for both students, so only the targets differ.
        student_kd, kd_curve = fit(mlp_init(k_student_hard, student_sizes, dtype), distilled,
                                   x_test, y_test)
        del k_student_kd
        teacher_test = mlp_logits(teacher, x_test)
        measures = {
            name: _measures(mlp_logits(p, x_test), teacher_test, y_test, cfg["ece_bins"])
            for name, p in zip(MODELS, (teacher, student_hard, student_kd), strict=True)
        }
        curves = {"teacher": teacher_curve, "student_hard": hard_curve,
                  "student_distilled": kd_curve}
        return measures, curves

    keys = jax.random.split(jax.random.key(config["seed"]), seeds)
    start = time.perf_counter()
    # optax's internals are not clean under strict dtype promotion; the losses are.
    with jax.numpy_dtype_promotion("standard"):
        compiled = jax.jit(jax.vmap(one_seed)).lower(
            keys, jnp.asarray(train_idx), jnp.asarray(test_idx)).compile()
    measures, curves = jax.block_until_ready(
        compiled(keys, jnp.asarray(train_idx), jnp.asarray(test_idx)))
    seconds = time.perf_counter() - start

    summary: dict[str, dict[str, Any]] = {}
    metrics: list[dict[str, Any]] = []
    for model in MODELS:
        values = {m: np.asarray(measures[model][m], dtype=np.float64) for m in MEASURES}
        summary[model] = {m: {"mean": float(v.mean()), "std": float(v.std())}
                          for m, v in values.items()}
        summary[model]["seconds_all_models"] = round(seconds, 3)
        for s in range(seeds):
            metrics.append({"model": model, "seed": s, **{m: float(values[m][s])
                                                          for m in MEASURES}})
    summary["setting"] = {"temperature": temperature, "hard_weight": hard_weight,
                          "seeds": seeds, "train_size": int(n - n_test), "test_size": n_test,
                          "teacher_hidden": cfg["teacher_hidden"],
                          "student_hidden": cfg["student_hidden"]}
    arrays = {"steps": steps,
              "curves": {k: np.asarray(v, dtype=np.float64) for k, v in curves.items()},
              "summary": summary}
    return Result(config=config, metrics=metrics, summary=summary, arrays=arrays,
                  devices=[str(devices[0])])


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
