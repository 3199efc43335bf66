"""Loading label-distribution-learning datasets from MATLAB files.

A file holds ``features`` (n × d) and ``labels`` (n × K, each row a label
distribution), the format of Geng's LDL benchmark and PyLDL. Any file of that
format works; nothing here depends on where the benchmark files live.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

ROW_SUM_TOLERANCE = 1e-5  # files stored in float32 (SCUT_FBP) deviate by ~3e-6


class LDLDataError(ValueError):
    """A dataset file that cannot be used as it is; the message names file and row."""


@dataclasses.dataclass(frozen=True)
class LDLData:
    """One label-distribution dataset, as :func:`load_mat` reads it.

    Attributes:
      name: the file's stem, e.g. ``"SJAFFE"``.
      features: n x d, float64.
      labels: n x K, float64, every row on the simplex.
      renormalized_rows: how many label rows ``normalize=True`` rescaled.
    """

    name: str
    features: np.ndarray  # n × d, float64
    labels: np.ndarray  # n × K, float64, rows on the simplex
    renormalized_rows: int = 0

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    @property
    def d(self) -> int:
        return int(self.features.shape[1])

    @property
    def k(self) -> int:
        return int(self.labels.shape[1])


def _row(values: np.ndarray) -> str:
    shown = np.array2string(values[:8], precision=4, separator=", ")
    return shown if len(values) <= 8 else shown[:-1] + ", ...]"


def load_mat(path: str | Path, *, normalize: bool = False,
             atol: float = ROW_SUM_TOLERANCE) -> LDLData:
    """Read and validate an LDL ``.mat`` file.

    Args:
      path: the file.
      normalize: renormalise rows that do not sum to 1 (instead of failing);
        the count of changed rows is kept in ``renormalized_rows``.
      atol: tolerance on the row sums.

    Raises:
      LDLDataError: naming the file, the problem and the first offending row.
    """
    from .._optional import require

    scipy_io = require("scipy.io", "ldl", "reading LDL .mat files")

    path = Path(path)
    name = path.stem
    if path.is_dir():
        raise LDLDataError(f"{path}: is a folder, not a .mat file (--data-dir reads a folder)")
    if not path.is_file():
        raise LDLDataError(f"{path}: no such file")
    try:
        contents = scipy_io.loadmat(str(path))
    except NotImplementedError:
        raise LDLDataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; "
                           "save it with -v7 or scipy.io.savemat") from None
    except PermissionError as err:
        raise LDLDataError(f"{path}: cannot be read ({err.strerror})") from None
    except Exception as err:  # scipy's MatReadError, zlib.error, OSError, ValueError, ...
        # An empty or cut-off file fails in many ways inside scipy; each is this one line.
        size = path.stat().st_size
        raise LDLDataError(f"{path}: not a readable MATLAB file, {size} bytes "
                           f"({' '.join(str(err).split())})") from None
    missing = [key for key in ("features", "labels") if key not in contents]
    if missing:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise LDLDataError(f"{path}: missing {' and '.join(repr(m) for m in missing)} "
                           f"(found keys: {found})")
    features = np.asarray(contents["features"])
    labels = np.asarray(contents["labels"])
    for key, array in (("features", features), ("labels", labels)):
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise LDLDataError(f"{path}: {key!r} must be a 2-D numeric array, got shape "
                               f"{array.shape} of {array.dtype}")
    features = features.astype(np.float64)
    labels = labels.astype(np.float64)
    if features.shape[0] != labels.shape[0]:
        raise LDLDataError(f"{path}: 'features' has {features.shape[0]} rows but 'labels' has "
                           f"{labels.shape[0]}")
    if labels.shape[1] < 2:
        raise LDLDataError(f"{path}: 'labels' needs at least 2 columns, got {labels.shape[1]}")
    for key, array in (("features", features), ("labels", labels)):
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise LDLDataError(f"{path}: {key!r} row {i} has non-finite values: {_row(array[i])}")
    negative = (labels < 0).any(axis=1)
    if negative.any():
        i = int(np.argmax(negative))
        raise LDLDataError(f"{path}: 'labels' row {i} has negative entries: {_row(labels[i])}")
    sums = labels.sum(axis=1)
    off = np.abs(sums - 1) > atol
    changed = 0
    if off.any():
        i = int(np.argmax(off))
        if not normalize:
            raise LDLDataError(
                f"{path}: 'labels' row {i} sums to {sums[i]:.6g}, not 1 (tolerance {atol:g}); "
                f"{int(off.sum())} of {len(sums)} rows are off; pass --normalize to renormalise")
        if (sums[off] <= 0).any():
            j = int(np.flatnonzero(off & (sums <= 0))[0])
            raise LDLDataError(f"{path}: 'labels' row {j} sums to 0 and cannot be renormalised")
        labels = labels.copy()
        labels[off] /= sums[off, None]
        changed = int(off.sum())
    return LDLData(name, features, labels, changed)
