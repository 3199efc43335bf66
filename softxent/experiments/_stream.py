"""A sweep too large to hold at once: per-step statistics in memory, per-run results on disk.

A chunk of runs arrives as its logged errors and objectives, shape (runs, logs),
and final predictions. :class:`StepStatistics` keeps, per logged step, the sum
of the objective and the largest error (exact over all chunks), and spills the
errors to a float32 file laid out step-major, so the median of each step is read
back one step (one row of all runs) at a time (a median of float32 copies: within
a relative 6e-8 of the float64 median). :class:`RunFile` writes each run's
target index, final prediction, final error and final objective into a ``.npy``
file as its chunk completes. Memory is then set by the chunk, not by the sweep.

Both live in a spill folder that softxent removes if the process is interrupted
(``softxent._unfinished``) or the result is dropped; writing the results moves
the run files into ``runs/`` of the results folder.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .._unfinished import hold, release


class SpillFolder:
    """A temporary folder for one sweep's files, removed when it is no longer wanted."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="softxent-sweep-"))
        hold(self.path)
        self._finalizer = weakref.finalize(self, SpillFolder._remove, self.path)

    @staticmethod
    def _remove(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        release(path)

    def remove(self) -> None:
        self._finalizer()


class StepStatistics:
    """Per logged step: the objective's mean and the error's median and maximum over
    every run, accumulated a chunk at a time."""

    def __init__(self, folder: Path, name: str, runs: int, logs: int) -> None:
        self.runs, self.logs = runs, logs
        self.objective_sum = np.zeros(logs)
        self.err_max = np.full(logs, -np.inf)
        self._errors = np.lib.format.open_memmap(folder / f"{name}.errors.npy", mode="w+",
                                                 dtype=np.float32, shape=(logs, runs))

    def add(self, start: int, err: np.ndarray, objective: np.ndarray) -> None:
        """The errors and objectives of runs ``start ...``, each shape (chunk, logs)."""
        self.objective_sum += objective.sum(axis=0)
        self.err_max = np.fmax(self.err_max, err.max(axis=0))
        self._errors[:, start:start + err.shape[0]] = err.T

    def objective_mean(self) -> np.ndarray:
        return self.objective_sum / self.runs

    def err_median(self) -> np.ndarray:
        """The median error of each step, read one step at a time; the spilled errors are
        removed after."""
        self._errors.flush()
        medians = np.array([np.median(self._errors[j]) for j in range(self.logs)])
        path = Path(self._errors.filename)
        del self._errors
        path.unlink()
        return medians


def run_dtype(classes: int) -> np.dtype:
    """The record of one run in ``runs/<label>.npy``."""
    return np.dtype([("target", np.int64), ("final_p", np.float64, (classes,)),
                     ("final_err", np.float64), ("final_objective", np.float64)])


class RunFile:
    """``runs/<label>.npy``: one record per run (see :func:`run_dtype`), written as chunks
    complete."""

    def __init__(self, folder: Path, name: str, runs: int, classes: int) -> None:
        self.path = folder / f"{name}.npy"
        self._records = np.lib.format.open_memmap(self.path, mode="w+", dtype=run_dtype(classes),
                                                  shape=(runs,))

    def add(self, start: int, **fields: Any) -> None:
        stop = start + len(next(iter(fields.values())))
        for key, value in fields.items():
            self._records[key][start:stop] = value

    def close(self) -> np.ndarray:
        """The records, read back from disk (memory-mapped: paged in as they are read)."""
        self._records.flush()
        del self._records
        return np.load(self.path, mmap_mode="r")
