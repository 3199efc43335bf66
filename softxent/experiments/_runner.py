"""Run a validated config and write its results folder."""

from __future__ import annotations

from pathlib import Path

from . import _results, get_kind
from ._experiment import ExperimentConfig


def run(config: ExperimentConfig, out: str | Path = "results", progress: bool = False):
    """Train the config's kind, write ``<out>/<name>-<timestamp>/``; return (path, result)."""
    import jax

    kind = get_kind(config.kind)
    result = kind.train(config, progress=progress)
    if jax.process_index() != 0:  # on several hosts, the first one writes the results
        return None, result
    path = _results.write(result, out, kind.figures)
    return path, result
