"""The keys every experiment config has, whatever its kind: the typed config objects."""

from __future__ import annotations

import difflib
from typing import Any

from ._config import at_least, one_of, positive, setting, table

OPTIMIZERS = ("sgd", "adam", "lbfgs")
FIGURES = ("convergence", "simplex", "gradients", "surface")


def _figure_names(value: tuple[str, ...]) -> str | None:
    for v in value:
        if v not in FIGURES:
            close = difflib.get_close_matches(v, FIGURES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"expected figure names from {', '.join(map(repr, FIGURES))}{hint}"
    return None


def _plugin_paths(value: tuple[str, ...]) -> str | None:
    return "expected module names or .py paths, not an empty string" if "" in value else None


def _loss_entries(value: tuple[Any, ...]) -> str | None:
    return None if value else "expected at least one [[losses]] entry"


@table
class OptimizerConfig:
    """The ``[optimizer]`` table: an optax optimiser and how long it runs."""

    name: str = setting("adam", one_of(*OPTIMIZERS))
    """``"sgd"``, ``"adam"`` or ``"lbfgs"`` (``optax.lbfgs`` with its zoom line search)."""
    learning_rate: float = setting(0.05, positive)
    """The sgd/adam step size; for lbfgs, the scale of the line search's step."""
    schedule: str = setting("constant", one_of("constant", "cosine"))
    """``"cosine"`` decays the sgd/adam step size to 1e-3 of ``learning_rate``."""
    steps: int = setting(1000, at_least(1))
    """Optimisation steps of every run."""
    log_every: int = setting(10, at_least(1))
    """Steps between logged values; a divisor of ``steps``."""

    @property
    def blocks(self) -> int:
        """How many times a run is logged (``steps // log_every``)."""
        return self.steps // self.log_every


@table
class LossEntry:
    """One ``[[losses]]`` entry: a registered loss, its parameters and its label."""

    name: str = setting()
    """A name from the loss registry (``softxent losses`` lists them)."""
    params: dict[str, float] = setting({})
    """The loss's parameters, each within its domain, e.g. ``{ gamma = 2.0 }``."""
    label: str = setting("")
    """The loss's name in results; by default the name and the parameters,
    ``focal_cross_entropy,gamma=2``."""

    def spec(self) -> Any:
        """The loss's :class:`softxent.LossSpec` from the registry."""
        from .. import get_loss

        return get_loss(self.name, family="dense")


@table
class ExperimentConfig:
    """The keys every config has. Each kind extends it with its own table (for example
    ``[fixed_point]``); :func:`softxent.experiments.load` returns that kind's class."""

    name: str = setting()
    """Results go to ``<out>/<name>-<timestamp>/``."""
    kind: str = setting()
    """The experiment kind, a key of :data:`softxent.experiments.KINDS`."""
    description: str = setting("")
    """One line printed when the run starts."""
    seed: int = setting(0, at_least(0))
    """Seeds targets, initialisations, data splits and models."""
    device: str = setting("auto", one_of("auto", "cpu", "gpu", "tpu"))
    """``"auto"`` (JAX's default backend) or a platform that must be available."""
    dtype: str = setting("float64", one_of("float64", "float32"))
    """The compute dtype; ``"float64"`` turns on ``jax_enable_x64``."""
    tolerance: float = setting(1e-4, positive)
    """A run has converged when its final error is at most this."""
    figures: tuple[str, ...] = setting((), _figure_names)
    """Figures to write, from ``"convergence"``, ``"simplex"``, ``"gradients"``,
    ``"surface"``."""
    optimizer: OptimizerConfig = setting(OptimizerConfig)
    """The ``[optimizer]`` table."""
    plugins: tuple[str, ...] = setting((), _plugin_paths)
    """Modules or ``.py`` files (relative to the config) imported first: the losses they
    register can be named in ``[[losses]]``."""
    losses: tuple[LossEntry, ...] = setting(check=_loss_entries)
    """The ``[[losses]]`` entries, at least one."""
