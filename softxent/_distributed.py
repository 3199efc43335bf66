"""One command across several processes with ``jax.distributed``.

``--coordinator HOST:PORT --num-processes N --process-id I`` start the JAX
distributed runtime before any JAX computation; without the flags,
``jax.distributed.initialize()`` detects SLURM, Open MPI and the other clusters
JAX knows (or reads ``JAX_COORDINATOR_ADDRESS``) where their variables are set.
On the CPU the processes exchange arrays over gloo. The devices of every
process then form one mesh (``jax.devices()``), the work is sharded over it
(``softxent run``) or dealt out (``softxent ldl --data-dir``: whole datasets,
their results passed to process 0 with :func:`share` and :func:`receive`), and
only process 0 writes results.

A process that dies would leave the others waiting inside a collective until
JAX's own heartbeat check aborts them. Each process therefore beats in JAX's
key-value store once a second; a peer silent for ``--peer-timeout`` seconds (or
a coordinator that stopped answering) ends this process with one line naming
it and exit status 1, and no results folder (see ``softxent._exit.leave``).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

# Where jax.distributed.initialize() finds its settings without arguments.
CLUSTER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri")


class DistributedError(ValueError):
    """Inconsistent multi-process flags (a user's mistake: one line, exit status 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "several processes (jax.distributed; without these flags, SLURM and Open MPI "
        "are detected from their variables)")
    group.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                       help="address of process 0's coordination service")
    group.add_argument("--num-processes", type=int, metavar="N", default=None)
    group.add_argument("--process-id", type=int, metavar="I", default=None,
                       help="this process's index, 0 to N - 1")
    group.add_argument("--peer-timeout", type=float, metavar="S", default=60.0,
                       help="end the run when a process is silent this long (default 60)")


def settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """Keyword arguments for ``jax.distributed.initialize``, or None for one process.

    Raises :class:`DistributedError` naming the flag for inconsistent flags.
    """
    given = {"--coordinator": args.coordinator, "--num-processes": args.num_processes,
             "--process-id": args.process_id}
    if not args.peer_timeout > 0:
        raise DistributedError(f"--peer-timeout must be > 0, got {args.peer_timeout}")
    if all(v is None for v in given.values()):
        if any(os.environ.get(v) for v in CLUSTER_VARIABLES) and _cluster_has_peers():
            return {}  # jax detects the cluster from its variables
        return None
    missing = [flag for flag, v in given.items() if v is None]
    if missing:
        raise DistributedError(f"{', '.join(missing)} missing: give --coordinator, "
                               "--num-processes and --process-id together")
    host, sep, port = args.coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"--coordinator must be HOST:PORT, got {args.coordinator!r}")
    if args.num_processes < 1:
        raise DistributedError(f"--num-processes must be >= 1, got {args.num_processes}")
    if not 0 <= args.process_id < args.num_processes:
        raise DistributedError(f"--process-id must be in [0, {args.num_processes - 1}], "
                               f"got {args.process_id}")
    return {"coordinator_address": args.coordinator, "num_processes": args.num_processes,
            "process_id": args.process_id}


def _cluster_has_peers() -> bool:
    """A SLURM allocation of one task needs no coordinator; everything else is asked."""
    tasks = os.environ.get("SLURM_NTASKS")
    return tasks is None or not tasks.isdigit() or int(tasks) > 1


def start(args: argparse.Namespace, command: str) -> bool:
    """Join the other processes when asked to (flags or a detected cluster).

    Returns whether this process writes results (process 0, or the only one).
    Call before anything initialises a JAX backend.
    """
    kwargs = settings(args)
    if kwargs is None:
        return True
    import jax

    # CPU collectives need an implementation; GPUs and TPUs bring their own.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeout = args.peer_timeout
    jax.distributed.initialize(**kwargs, initialization_timeout=max(int(timeout), 1) * 5,
                               # JAX's check stays behind ours, which says what happened.
                               heartbeat_timeout_seconds=max(int(timeout), 1) * 2 + 10)
    if jax.process_count() > 1:
        _Heartbeat(command, jax.process_index(), jax.process_count(), timeout).start()
    return jax.process_index() == 0


def share(key: str, value: str) -> None:
    """Publish ``value`` under ``key`` to every process (JAX's key-value store)."""
    _Heartbeat._client().key_value_set(f"softxent/shared/{key}", value)


def receive(key: str) -> str:
    """The value another process shares under ``key``, waiting for it; a process that
    dies first is reported by the heartbeat, which ends this one."""
    day_ms = 24 * 3600 * 1000
    return _Heartbeat._client().blocking_key_value_get(f"softxent/shared/{key}", day_ms)


def finish() -> None:
    """Tell the other processes that this one is done (its silence is then no failure)."""
    beat = _Heartbeat.running
    if beat is not None:
        beat.finish()


class _Heartbeat(threading.Thread):
    running: _Heartbeat | None = None
    PERIOD_S = 1.0

    def __init__(self, command: str, index: int, count: int, timeout: float):
        super().__init__(daemon=True, name="softxent-heartbeat")
        self.command, self.index, self.count, self.timeout = command, index, count, timeout
        self.stopped = threading.Event()

    def start(self) -> None:
        _Heartbeat.running = self
        super().start()

    def finish(self) -> None:
        self.stopped.set()
        try:
            self._client().key_value_set(f"softxent/done/{self.index}", "1",
                                         allow_overwrite=True)
        except Exception:  # the others may already be gone; nothing to tell them
            pass

    @staticmethod
    def _client() -> Any:
        # JAX's key-value store has no public API; the client lives here.
        from jax._src import distributed

        return distributed.global_state.client

    def _fail(self, why: str) -> None:
        from ._exit import leave

        leave(1, f"softxent {self.command}: {why}; stopping, no results written")

    def run(self) -> None:
        client = self._client()
        beat = 0
        seen: dict[int, tuple[str | None, float]] = {}
        unreachable_since = None
        while not self.stopped.wait(self.PERIOD_S):
            beat += 1
            now = time.monotonic()
            try:
                client.key_value_set(f"softxent/alive/{self.index}", str(beat),
                                     allow_overwrite=True)
                values = {i: self._get(client, f"softxent/alive/{i}")
                          for i in range(self.count) if i != self.index}
                done = {i for i in values if self._get(client, f"softxent/done/{i}")}
                unreachable_since = None
            except Exception as error:
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.timeout:
                    self._fail(f"the coordinator (process 0) stopped answering for "
                               f"{now - unreachable_since:.0f} s ({type(error).__name__})")
                continue
            for i, value in values.items():
                if i in done:
                    continue
                last, since = seen.get(i, (None, now))
                if value != last:
                    seen[i] = (value, now)
                elif now - since > self.timeout:
                    self._fail(f"process {i} of {self.count} stopped responding "
                               f"(silent for {now - since:.0f} s)")

    @staticmethod
    def _get(client: Any, key: str) -> str | None:
        try:
            return client.key_value_try_get(key)
        except Exception as error:
            if "NOT_FOUND" in str(error):
                return None
            raise
