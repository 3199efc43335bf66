"""The six standard LDL measures of Geng (IEEE TKDE 2016), per example.

Zero entries are handled as PyLDL does: Clark, Canberra and Kullback-Leibler
clip both distributions to [eps, 1] (eps = float64 machine epsilon) before
evaluating, so a 0 in the truth or the prediction gives a large but finite
term; Chebyshev, Cosine and Intersection use the values as they are.
Intersection is Σ min(u, v), computed as 1 − ½ Σ |u − v| (equal on the simplex).
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float64).eps)

# name -> whether larger is better
MEASURES: dict[str, bool] = {
    "chebyshev": False,
    "clark": False,
    "canberra": False,
    "kl": False,
    "cosine": True,
    "intersection": True,
}
"""The six LDL measures (Geng 2016), each mapped to whether higher is better."""


def _clipped(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.clip(u, EPS, 1.0), np.clip(v, EPS, 1.0)


def chebyshev(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.max(np.abs(u - v), axis=1)


def clark(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, v = _clipped(u, v)
    return np.sqrt(np.sum((u - v) ** 2 / (u + v) ** 2, axis=1))


def canberra(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, v = _clipped(u, v)
    return np.sum(np.abs(u - v) / (u + v), axis=1)


def kl(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, v = _clipped(u, v)
    return np.sum(u * (np.log(u) - np.log(v)), axis=1)


def cosine(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
    return np.sum(u * v, axis=1) / np.where(norms > 0, norms, 1.0)


def intersection(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return 1.0 - 0.5 * np.sum(np.abs(u - v), axis=1)


def score(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The mean of each measure over the rows."""
    functions = {"chebyshev": chebyshev, "clark": clark, "canberra": canberra, "kl": kl,
                 "cosine": cosine, "intersection": intersection}
    return {name: float(np.mean(functions[name](truth, predicted))) for name in MEASURES}
