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

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._config import ConfigError, Field, at_least, one_of, positive
from ._networks import mlp_init, mlp_logits
from ._progress import progress as show_progress
from ._results import Result

SCHEMA: dict[str, Any] = {
    "model": {
        "architecture": Field((str,), "linear", one_of("linear", "mlp")),
        "hidden": Field((int,), 32, at_least(1), "hidden units of the mlp"),
        "generator": Field((str,), "linear", one_of("linear", "mlp")),
        "generator_hidden": Field((int,), 8, at_least(1)),
        "temperature": Field((float,), 1.0, positive, "softness of the generator's targets"),
        "classes": Field((int,), 3, at_least(2)),
        "inputs": Field((int,), 5, at_least(1), "input dimension d"),
        "train_size": Field((int,), 512, at_least(1)),
        "test_size": Field((int,), 2048, at_least(1)),
    }
}


def check(config: dict[str, Any], source: str) -> None:
    from .. import get_loss

    for i, entry in enumerate(config["losses"]):
        spec = get_loss(entry["name"])
        if spec.output != "per_example":
            raise ConfigError(source, f"losses[{i}].name", "expected a loss over classes "
                              f"(softmax link or cross_entropy), got {spec.name}")
    if config["figures"] and set(config["figures"]) - {"convergence"}:
        raise ConfigError(source, "figures", "expected only 'convergence' for kind = \"model\", "
                          f"got {config['figures']!r}")


def _kl(q, logits):
    log_p = jax.nn.log_softmax(logits, axis=-1)
    terms = jnp.where(q > 0, q * (jnp.log(jnp.where(q > 0, q, 1)) - log_p), 0)
    return jnp.mean(jnp.sum(terms, axis=-1))


def train(config: dict[str, Any], progress: bool = False) -> Result:
    from .. import get_loss
    from . import _devices, _optim


    m, opt = config["model"], config["optimizer"]
    dtype = _devices.use_dtype(config["dtype"])
    devices = _devices.select(config["device"])
    key = jax.random.PRNGKey(config["seed"])
    k_gen, k_train, k_test, k_init = jax.random.split(key, 4)
    d, k = m["inputs"], m["classes"]
    gen_sizes = [d, k] if m["generator"] == "linear" else [d, m["generator_hidden"], k]
    generator = mlp_init(k_gen, gen_sizes, dtype)
    generator = [(2.0 * w, b) for w, b in generator]  # sharper than the init scale
    x_train = jax.random.normal(k_train, (m["train_size"], d), dtype=dtype)
    x_test = jax.random.normal(k_test, (m["test_size"], d), dtype=dtype)
    temp = jnp.asarray(m["temperature"], dtype=dtype)
    q_train = jax.nn.softmax(mlp_logits(generator, x_train) / temp)
    q_test = jax.nn.softmax(mlp_logits(generator, x_test) / temp)
    sizes = [d, k] if m["architecture"] == "linear" else [d, m["hidden"], k]
    init = mlp_init(k_init, sizes, dtype)
    blocks, block = opt["steps"] // opt["log_every"], opt["log_every"]
    steps = np.arange(0, opt["steps"] + 1, opt["log_every"])

    metrics, summary, curves = [], {}, {}
    for entry in show_progress(config["losses"], progress):
        spec = get_loss(entry["name"])
        params = {a: float(b) for a, b in entry["params"].items()}

        def objective(theta, spec=spec, params=params):
            logits = mlp_logits(theta, x_train)
            if spec.targets == "logits":
                teacher = jnp.log(jnp.maximum(q_train, jnp.finfo(dtype).tiny))
                return jnp.mean(spec.fn(logits, teacher, **params))
            if spec.input == "probabilities":
                return jnp.mean(spec.fn(jax.nn.softmax(logits), q_train, **params))
            return jnp.mean(spec.fn(logits, q_train, **params))

        optimizer = _optim.make(opt["name"], opt["learning_rate"], opt["schedule"], opt["steps"])
        step = _optim.step_fn(optimizer, objective, opt["name"] == "lbfgs")

        def fit(theta, step=step, objective=objective, optimizer=optimizer):
            def log(th, value):
                train_kl = _kl(q_train, mlp_logits(th, x_train))
                return value, train_kl, _kl(q_test, mlp_logits(th, x_test))

            first = log(theta, objective(theta))
            _, logs = _optim.run_in_blocks(step, theta, optimizer.init(theta), block=block,
                                           blocks=blocks, log=log)
            return tuple(jnp.concatenate([f[None], g]) for f, g in zip(first, logs, strict=True))

        t0 = time.perf_counter()
        # optax's own internals (adam's bias correction: float ** int32) are not
        # clean under strict dtype promotion; our code and the losses are.
        with jax.numpy_dtype_promotion("standard"):
            compiled = jax.jit(fit).lower(init).compile()
        t1 = time.perf_counter()
        values, train_kl, test_kl = (np.asarray(a, dtype=np.float64)
                                     for a in jax.block_until_ready(compiled(init)))
        t2 = time.perf_counter()
        label = entry["label"]
        summary[label] = {
            "loss": spec.name, "params": params, "architecture": m["architecture"],
            "generator": m["generator"], "steps": opt["steps"], "optimizer": opt["name"],
            "train_kl": float(train_kl[-1]), "test_kl": float(test_kl[-1]),
            "compile_s": round(t1 - t0, 4), "time_s": round(t2 - t1, 4),
            "converged": bool(np.isfinite(train_kl[-1]) and train_kl[-1] <= config["tolerance"]),
        }
        curves[label] = {"err_median": train_kl, "err_max": test_kl}
        for j, s in enumerate(steps):
            metrics.append({"loss": label, "step": int(s), "objective_mean": float(values[j]),
                            "train_kl": float(train_kl[j]), "test_kl": float(test_kl[j])})
    return Result(config=config, metrics=metrics, summary=summary,
                  arrays={"steps": steps, "losses": curves, "kl": True},
                  devices=[str(devices[0])])


def figures(result: Result, folder) -> list[str]:
    from . import figures as fig

    return fig.draw(result, folder)
