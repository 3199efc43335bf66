"""Model runs: a linear-softmax model or an MLP fitted to soft targets from a known generator.

Inputs ``x ~ N(0, I_d)``; the generator's distribution is
``q(x) = softmax(g(x) / temperature)`` with ``g`` a random linear map or a random
one-hidden-layer tanh network (seeded). The model (``linear``: ``xW + b``;
``mlp``: one tanh hidden layer) is trained full-batch with optax on the mean loss
over ``train_size`` examples. Logged: mean train KL(q || p) and mean test
KL(q || p) on ``test_size`` fresh inputs from the same generator. For a proper
loss and a model that can represent the generator, train KL -> 0.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._config import ConfigError, at_least, one_of, positive, setting, table
from ._experiment import ExperimentConfig, LossEntry
from ._networks import Params, mlp_init, mlp_logits
from ._progress import progress as show_progress
from ._results import Measures, Result, collect


@table
class ModelConfig:
    """The ``[model]`` table: the model, the generator of its soft targets and the data."""

    architecture: str = setting("linear", one_of("linear", "mlp"))
    """The model: ``"linear"`` (``xW + b``) or ``"mlp"`` (one tanh hidden layer)."""
    hidden: int = setting(32, at_least(1))
    """Hidden units of the mlp model."""
    generator: str = setting("linear", one_of("linear", "mlp"))
    """The generator of the targets: a random ``"linear"`` map or tanh ``"mlp"``."""
    generator_hidden: int = setting(8, at_least(1))
    """Hidden units of the mlp generator."""
    temperature: float = setting(1.0, positive)
    """The softness of the generator's targets, ``softmax(g(x) / temperature)``."""
    classes: int = setting(3, at_least(2))
    """K, the number of classes."""
    inputs: int = setting(5, at_least(1))
    """The input dimension d."""
    train_size: int = setting(512, at_least(1))
    """Training examples (full batch)."""
    test_size: int = setting(2048, at_least(1))
    """Fresh test examples from the same generator."""


@table
class ModelExperiment(ExperimentConfig):
    """A ``kind = "model"`` config: the common keys and ``[model]``."""

    model: ModelConfig = setting(ModelConfig)
    """The ``[model]`` table."""


CONFIG = ModelExperiment


def check(config: ModelExperiment, source: str) -> None:
    """Every loss is over classes; only the convergence figure applies."""
    for i, entry in enumerate(config.losses):
        spec = entry.spec()
        if spec.output != "per_example":
            raise ConfigError(source, f"losses[{i}].name", "expected a loss over classes "
                              f"(softmax link or cross_entropy), got {spec.name}")
    if config.figures and set(config.figures) - {"convergence"}:
        raise ConfigError(source, "figures", "expected only 'convergence' for kind = \"model\", "
                          f"got {list(config.figures)!r}")


def _kl(q, logits):
    log_p = jax.nn.log_softmax(logits, axis=-1)
    terms = jnp.where(q > 0, q * (jnp.log(jnp.where(q > 0, q, 1)) - log_p), 0)
    return jnp.mean(jnp.sum(terms, axis=-1))


@dataclasses.dataclass(frozen=True)
class ModelSetup:
    """What every loss of a model config shares: the data, its targets and the initial model.

    Attributes:
      x_train, x_test: inputs, shapes (train_size, d) and (test_size, d).
      q_train, q_test: the generator's soft targets for them, shape (..., K).
      init: the model's initial parameters (the same for every loss).
      steps: the logged steps, 0 first.
      devices: the devices the model trains on (the first one).
      dtype: the compute dtype.
    """

    x_train: jax.Array
    x_test: jax.Array
    q_train: jax.Array
    q_test: jax.Array
    init: Params
    steps: np.ndarray
    devices: list[Any]
    dtype: Any


@dataclasses.dataclass(frozen=True)
class ModelRun:
    """One loss's fit: the objective and train and test KL at every logged step, and times."""

    entry: LossEntry
    values: np.ndarray
    train_kl: np.ndarray
    test_kl: np.ndarray
    compile_s: float
    time_s: float


def setup(config: ModelExperiment) -> ModelSetup:
    """The seeded generator, train and test inputs with their soft targets, the initial model."""
    from . import _devices

    m, opt = config.model, config.optimizer
    dtype = _devices.use_dtype(config.dtype)
    devices = _devices.select(config.device)
    k_gen, k_train, k_test, k_init = jax.random.split(jax.random.PRNGKey(config.seed), 4)
    d, k = m.inputs, m.classes
    gen_sizes = [d, k] if m.generator == "linear" else [d, m.generator_hidden, k]
    generator = mlp_init(k_gen, gen_sizes, dtype)
    generator = [(2.0 * w, b) for w, b in generator]  # sharper than the init scale
    x_train = jax.random.normal(k_train, (m.train_size, d), dtype=dtype)
    x_test = jax.random.normal(k_test, (m.test_size, d), dtype=dtype)
    temp = jnp.asarray(m.temperature, dtype=dtype)
    sizes = [d, k] if m.architecture == "linear" else [d, m.hidden, k]
    return ModelSetup(
        x_train=x_train, x_test=x_test,
        q_train=jax.nn.softmax(mlp_logits(generator, x_train) / temp),
        q_test=jax.nn.softmax(mlp_logits(generator, x_test) / temp),
        init=mlp_init(k_init, sizes, dtype), steps=np.arange(0, opt.steps + 1, opt.log_every),
        devices=devices, dtype=dtype)


def _objective(spec, params: dict[str, float], state: ModelSetup):
    """The mean loss of the model ``theta`` on the training set."""
    def objective(theta):
        logits = mlp_logits(theta, state.x_train)
        if spec.targets == "logits":
            teacher = jnp.log(jnp.maximum(state.q_train, jnp.finfo(state.dtype).tiny))
            return jnp.mean(spec.fn(logits, teacher, **params))
        if spec.input == "probabilities":
            return jnp.mean(spec.fn(jax.nn.softmax(logits), state.q_train, **params))
        return jnp.mean(spec.fn(logits, state.q_train, **params))

    return objective


def _fitter(config: ModelExperiment, state: ModelSetup, objective):
    """``theta -> (objective, train KL, test KL)`` at step 0 and after every logged block."""
    from . import _optim

    opt = config.optimizer
    optimizer = _optim.make(opt.name, opt.learning_rate, opt.schedule, opt.steps)
    step = _optim.step_fn(optimizer, objective, opt.name == "lbfgs")

    def log(theta, value):
        train_kl = _kl(state.q_train, mlp_logits(theta, state.x_train))
        return value, train_kl, _kl(state.q_test, mlp_logits(theta, state.x_test))

    def fit(theta):
        first = log(theta, objective(theta))
        _, logs = _optim.run_in_blocks(step, theta, optimizer.init(theta), block=opt.log_every,
                                       blocks=opt.blocks, log=log)
        return tuple(jnp.concatenate([f[None], g]) for f, g in zip(first, logs, strict=True))

    return fit


def run(config: ModelExperiment, state: ModelSetup, entry: LossEntry) -> ModelRun:
    """Fit the model with one loss in one compiled call."""
    fit = _fitter(config, state, _objective(entry.spec(), dict(entry.params), state))
    t0 = time.perf_counter()
    # optax's own internals (adam's bias correction: float ** int32) are not
    # clean under strict dtype promotion; our code and the losses are.
    with jax.numpy_dtype_promotion("standard"):
        compiled = jax.jit(fit).lower(state.init).compile()
    t1 = time.perf_counter()
    values, train_kl, test_kl = (np.asarray(a, dtype=np.float64)
                                 for a in jax.block_until_ready(compiled(state.init)))
    t2 = time.perf_counter()
    return ModelRun(entry=entry, values=values, train_kl=train_kl, test_kl=test_kl,
                    compile_s=t1 - t0, time_s=t2 - t1)


def measures(config: ModelExperiment, state: ModelSetup, done: ModelRun) -> Measures:
    """One loss's summary row (final train and test KL) and metric rows."""
    m, opt = config.model, config.optimizer
    summary = {
        "loss": done.entry.name, "params": dict(done.entry.params),
        "architecture": m.architecture, "generator": m.generator, "steps": opt.steps,
        "optimizer": opt.name, "train_kl": float(done.train_kl[-1]),
        "test_kl": float(done.test_kl[-1]), "compile_s": round(done.compile_s, 4),
        "time_s": round(done.time_s, 4),
        "converged": bool(np.isfinite(done.train_kl[-1])
                          and done.train_kl[-1] <= config.tolerance),
    }
    metrics = [{"loss": done.entry.label, "step": int(s),
                "objective_mean": float(done.values[j]), "train_kl": float(done.train_kl[j]),
                "test_kl": float(done.test_kl[j])} for j, s in enumerate(state.steps)]
    return Measures(label=done.entry.label, summary=summary, metrics=metrics,
                    arrays={"err_median": done.train_kl, "err_max": done.test_kl})


def train(config: ModelExperiment, progress: bool = False) -> Result:
    """Fit the model with every loss of the config; return metrics, summary and KL curves."""
    state = setup(config)
    measured = [measures(config, state, run(config, state, entry))
                for entry in show_progress(config.losses, progress)]
    return collect(config, measured, {"steps": state.steps, "kl": True}, state.devices[:1])


def figures(result: Result, folder) -> list[str]:
    from . import figures as fig

    return fig.draw(result, folder)
