"""The outcome of a run and writing it to ``<out>/<name>-<timestamp>/`` atomically."""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._unfinished import unfinished
from ._config import as_dict, dumps
from ._experiment import ExperimentConfig


@dataclasses.dataclass
class Result:
    """What a kind's ``train`` returns.

    Attributes:
      config: the validated config that produced it.
      metrics: rows of ``metrics.csv`` (one dict per loss and logged step).
      summary: per loss label, the final numbers (``summary.json``).
      arrays: whatever the kind's ``figures`` needs (trajectories, targets, ...).
      devices: the devices the work ran on.
      files: files the run already wrote (a chunked sweep's runs), by their path in
        the results folder; writing the results moves them there.
      keep_alive: what must live as long as those files (their spill folders).
    """

    config: ExperimentConfig
    metrics: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    arrays: dict[str, Any] = dataclasses.field(default_factory=dict)
    devices: list[str] = dataclasses.field(default_factory=list)
    files: dict[str, Path] = dataclasses.field(default_factory=dict)
    keep_alive: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Measures:
    """What a kind's ``measures`` makes of one loss's run.

    Attributes:
      label: the loss's label (its key in the summary).
      summary: its row of ``summary.json``.
      metrics: its rows of ``metrics.csv``, one per logged step.
      arrays: what the figures need of it (``Result.arrays["losses"][label]``).
      files: files already written for it (see ``Result.files``).
      keep_alive: what must live as long as those files.
    """

    label: str
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    arrays: dict[str, Any]
    files: dict[str, Path] = dataclasses.field(default_factory=dict)
    keep_alive: Any = None


def collect(config: ExperimentConfig, measured: list[Measures], arrays: dict[str, Any],
            devices: list[Any]) -> Result:
    """One :class:`Result` of the losses' :class:`Measures`, in the config's order."""
    return Result(config=config, metrics=[row for m in measured for row in m.metrics],
                  summary={m.label: m.summary for m in measured},
                  arrays={**arrays, "losses": {m.label: m.arrays for m in measured}},
                  devices=[str(d) for d in devices],
                  files={path: source for m in measured for path, source in m.files.items()},
                  keep_alive=[m.keep_alive for m in measured if m.keep_alive is not None])


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def metadata(result: Result) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import jax

    import softxent

    from ..bench import environment

    machine = environment()

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "softxent": softxent.__version__,
        "jax": jax.__version__,
        "jaxlib": ver("jaxlib"),
        "optax": ver("optax"),
        "devices": result.devices,
        "backend": jax.default_backend(),
        "seed": result.config.seed,
        "git_commit": _git_commit(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine["machine"],
        "load_average_at_end": machine["load_average"],
        "peak_rss_mib": _peak_rss_mib(),
    }


def _peak_rss_mib() -> float | None:
    """This process's peak resident memory so far, or None where the OS does not say."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)  # bytes / KiB


def write(result: Result, out: str | Path,
          figures: Callable[[Result, Path], list[str]] | None = None) -> Path:
    """Write everything to a temporary sibling folder, then rename it into place.

    A failure at any point removes the temporary folder, and so does an
    interrupted CLI (it is registered with ``softxent._unfinished``), so no
    folder that looks complete is ever left behind.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    final = out / f"{result.config.name}-{stamp}"
    n = 1
    while final.exists():
        n += 1
        final = out / f"{result.config.name}-{stamp}-{n}"
    # Registered before it exists, so an interrupt at any moment finds it.
    tmp = out / f".{final.name}.{os.getpid()}.partial"
    with unfinished(tmp):
        try:
            tmp.mkdir()
            (tmp / "config.toml").write_text(dumps(as_dict(result.config)))
            (tmp / "metadata.json").write_text(json.dumps(metadata(result), indent=2) + "\n")
            _write_csv(tmp / "metrics.csv", result.metrics)
            (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")
            for name, source in result.files.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, tmp / name)
            if figures is not None and result.config.figures:
                (tmp / "figures").mkdir()
                figures(result, tmp / "figures")
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
