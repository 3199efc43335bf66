"""The edge-case grid: inputs where optax and PyTorch produce NaN or inf.

Rows are built as the product of prediction rows, target rows and masks so one
compiled call per (loss, dtype) covers the whole grid.
"""

from __future__ import annotations

import itertools

import numpy as np

INF = np.inf
K = 4

CLASS_LOGITS = {
    "finite": [0.5, -1.2, 2.0, 0.1],
    "large": [1e4, -1e4, 0.0, 5.0],
    "huge": [1e30, -1e30, 0.0, 1.0],
    "neg_inf": [1.0, -INF, 0.5, 2.0],
    "pos_inf": [INF, 0.0, 1.0, -1.0],
    "two_neg_inf": [-INF, 3.0, -INF, 0.0],
    # Where exp(-z) underflows and exp(z) overflows: float32 near 88.7, float64 near 709.8.
    "saturated_30": [30.0, 0.0, -30.0, 1.0],
    "exp_edge_f32": [87.0, 0.0, -88.5, 1.0],
    "exp_edge_f64": [708.0, 0.0, -709.5, 1.0],
    # Far past every exp range, with a loss near 1e37.
    "huge_f32": [1e37, -1e37, 0.0, 1.0],
    # Near half the largest float (the largest whose differences stay finite): a
    # cross-entropy term q |log p| near the largest float, so gamma times it
    # overflows (focal_cross_entropy's reverse pass, where p underflows to 0).
    "half_max_f32": [1.6e38, -1.6e38, 0.0, 1.0],
    "half_max_f64": [8.98e307, -8.98e307, 0.0, 1.0],
}
# Targets that put zero mass where the logit rows above have -inf, and one-hot rows.
CLASS_TARGETS = {
    "soft": [0.1, 0.2, 0.3, 0.4],
    "zero_at_1": [0.5, 0.0, 0.25, 0.25],
    "zero_at_0_2": [0.0, 0.6, 0.0, 0.4],
    "one_hot_0": [1.0, 0.0, 0.0, 0.0],
    "one_hot_2": [0.0, 0.0, 1.0, 0.0],
}
MASKS = {
    "none": [True] * K,
    "mask_1": [True, False, True, True],
    "mask_0_2": [False, True, False, True],
    "all": [False] * K,
}

ELEMENT_LOGITS = [0.3, -2.0, 40.0, -40.0, 50.0, -50.0, 87.0, -87.0, 400.0, -400.0, 700.0,
                  -700.0, 1e4, -1e4, 1e30, -1e30, 3.4e38, -3.4e38, INF, -INF]
ELEMENT_TARGETS = [0.0, 1.0, 0.5, 0.2]
# Within one ulp of 1 (float32, float64) and at the smallest normal floats.
PROBS = [0.0, 2.2250738585072014e-308, 1.1754944e-38, 1e-30, 1e-6, 0.5, 1 - 1e-6,
         1 - 2**-24, 1 - 2**-53, 1.0]


def class_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rows = list(itertools.product(CLASS_LOGITS.items(), CLASS_TARGETS.items(), MASKS.items()))
    logits = np.array([z for (_, z), _, _ in rows], dtype=np.float64)
    targets = np.array([q for _, (_, q), _ in rows], dtype=np.float64)
    masks = np.array([m for _, _, (_, m) in rows], dtype=bool)
    labels = [f"logits={a}, targets={b}, where={c}" for (a, _), (b, _), (c, _) in rows]
    return logits, targets, masks, labels


def element_grid(predictions: list[float]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows = list(itertools.product(predictions, ELEMENT_TARGETS))
    x = np.array([[a] for a, _ in rows], dtype=np.float64)
    y = np.array([[b] for _, b in rows], dtype=np.float64)
    labels = [f"prediction={a}, target={b}" for a, b in rows]
    return x, y, labels
