"""Experiments: optax runs described by TOML configs.

Flax-examples style: a config file names a *kind*; each kind is one module with

* ``SCHEMA`` -- the keys of its own config table (see :mod:`._config`),
* ``check(config, source)`` -- cross-field checks after the schema (may be a no-op),
* ``train(config) -> Result`` -- the importable entry point, and
* ``figures(result, folder) -> list[str]`` -- the figures it writes.

Adding a kind (for example distillation on real data) is one module with those
four names plus one line in :data:`KINDS` mapping the kind's name to the module
path. Modules are imported only when a config asks for them, so a kind may import
heavy dependencies at module level.

Usage::

    from softxent import experiments
    config = experiments.load("experiments/configs/binary_note.toml")
    result = experiments.get_kind(config["kind"]).train(config)

or ``softxent run CONFIG [--out DIR] [--set key=value ...]`` on the command line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ._config import ConfigError as ConfigError
from ._load import load as load
from ._results import Result as Result

# kind name -> module path. One line per kind (the extension point).
KINDS: dict[str, str] = {
    "fixed_point": "softxent.experiments.fixed_point",
    "model": "softxent.experiments.model",
    "distillation": "softxent.experiments.distillation",
}


def get_kind(name: str) -> ModuleType:
    """The module implementing kind ``name``."""
    return importlib.import_module(KINDS[name])


__all__ = ["KINDS", "ConfigError", "Result", "get_kind", "load"]
