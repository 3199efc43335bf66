"""Experiments: optax runs described by TOML configs.

Flax-examples style: a config file names a *kind*; each kind is one module with

* ``CONFIG`` -- its config class: :class:`ExperimentConfig` extended by the kind's own
  table (a frozen dataclass whose fields are the keys, see :mod:`._config`),
* ``check(config, source)`` -- checks across keys after the fields' own (may be a no-op),
* ``setup(config)``, ``run(config, state, ...)`` and ``measures(config, state, run)`` --
  the shared state (data, targets, devices), the optimisation and the numbers it reports,
* ``train(config, progress=False) -> Result`` -- the importable entry point composing them, and
* ``figures(result, folder) -> list[str]`` -- the figures it writes.

Adding a kind (for example distillation on real data) is one module with those
names plus one line in :data:`KINDS` mapping the kind's name to the module
path. Modules are imported only when a config asks for them, so a kind may import
heavy dependencies at module level.

Usage::

    from softxent import experiments
    config = experiments.load("experiments/configs/binary_note.toml")
    config.optimizer.steps                      # 2000: typed, validated, defaults filled in
    result = experiments.get_kind(config.kind).train(config)

or ``softxent run CONFIG [--out DIR] [--set key=value ...]`` on the command line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._config import ConfigError as ConfigError
from ._config import as_dict as as_dict
from ._experiment import ExperimentConfig as ExperimentConfig
from ._experiment import LossEntry as LossEntry
from ._experiment import OptimizerConfig as OptimizerConfig
from ._load import load as load
from ._results import Result as Result

KINDS: dict[str, str] = {
    "fixed_point": "softxent.experiments.fixed_point",
    "model": "softxent.experiments.model",
    "distillation": "softxent.experiments.distillation",
}
"""Kind name -> the module implementing it; one line per kind (the extension point)."""


def get_kind(name: str) -> ModuleType:
    """The module implementing kind ``name``."""
    return importlib.import_module(KINDS[name])


__all__ = ["KINDS", "ConfigError", "ExperimentConfig", "LossEntry", "OptimizerConfig", "Result",
           "as_dict", "get_kind", "load"]
