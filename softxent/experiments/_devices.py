"""Device choice and sharding a batch of independent runs over local devices.

Runs are independent, so the batch axis is split over a 1-D mesh of every local
device (``NamedSharding`` with ``P("runs")``); XLA keeps each run on its device.
On several hosts, call ``jax.distributed.initialize()`` before the run; the mesh
then spans ``jax.devices()`` of all processes (see the README, untested here).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def select(device: str) -> list[jax.Device]:
    """Devices for ``"auto"`` (the default backend) or a named platform."""
    if device == "auto":
        return jax.devices()
    try:
        return jax.devices(device)
    except RuntimeError as e:
        raise RuntimeError(f"device = {device!r} is not available here: {e}") from None


def use_dtype(name: str) -> Any:
    """The jnp dtype for ``"float64"``/``"float32"``; float64 needs (and turns on) x64."""
    import jax.numpy as jnp

    if name == "float64":
        # A float64 config must compute in float64, not silently in float32.
        jax.config.update("jax_enable_x64", True)
        return jnp.float64
    return jnp.float32


def pad(batch: np.ndarray, multiple: int) -> np.ndarray:
    """Repeat the last row so the leading axis is a multiple of ``multiple``."""
    extra = (-batch.shape[0]) % multiple
    if not extra:
        return batch
    return np.concatenate([batch, np.repeat(batch[-1:], extra, axis=0)])


def shard_runs(devices: list[jax.Device], *arrays: np.ndarray) -> tuple[Any, ...]:
    """Place each array's leading (runs) axis across ``devices``.

    Every process holds the whole (seeded, identical) host array and hands each of
    its own devices its slice, which also works when the mesh spans several hosts.
    """
    mesh = Mesh(np.asarray(devices), ("runs",))
    sharding = NamedSharding(mesh, PartitionSpec("runs"))
    placed = []
    for a in arrays:
        full = pad(a, len(devices))
        placed.append(jax.make_array_from_callback(full.shape, sharding,
                                                   lambda index, full=full: full[index]))
    return tuple(placed)


def gather(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) sharded result as one host array."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
