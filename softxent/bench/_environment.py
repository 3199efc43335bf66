"""Where and when a benchmark ran: the record its ``--json`` output carries."""

from __future__ import annotations

import datetime
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES: tuple[str, ...] = ("jax", "jaxlib", "numpy", "optax", "scipy", "softxent")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def environment(command: str | None = None) -> dict[str, Any]:
    """The machine, the versions, the date and the load a benchmark runs under.

    A benchmark's ``--json`` output carries this beside its rows, so a saved result says
    where it came from: on a shared machine the load average tells whether the times are
    noisy.

    Args:
      command: the command line that ran, recorded as given.

    Returns:
      A JSON-ready dict: ``date`` (UTC, ISO 8601), ``machine`` (CPU model, logical cores,
      operating system), ``load_average`` (1, 5 and 15 minutes, where the platform has one),
      ``versions`` (Python and the packages in ``PACKAGES``), ``devices`` (JAX's) and
      ``command``.

    Example:
      >>> from softxent.bench import environment
      >>> record = environment("softxent bench --quick")
      >>> sorted(record["versions"])[:3]
      ['jax', 'jaxlib', 'numpy']
    """
    import jax

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not every platform has one
        load = None
    record: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                    "system": f"{platform.system()} {platform.release()}"},
        "load_average": load,
        "versions": {"python": platform.python_version(),
                     **{name: _version(name) for name in PACKAGES}},
        "devices": [str(device) for device in jax.devices()],
    }
    if command is not None:
        record["command"] = command
    return record
