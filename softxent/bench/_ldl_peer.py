"""The peer softxent is measured against: SA-BFGS as PyLDL runs it.

SciPy's L-BFGS-B on the summed KL divergence of a linear softmax model, with the
analytic gradient Xᵀ(P − D), gtol 1e-7 and at most 500 iterations, random
initial weights in [0, 1), one fold at a time, on the features as given and
without a bias: PyLDL's ``SA_BFGS.fit``.
"""

from __future__ import annotations

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_sa_bfgs(x: np.ndarray, d: np.ndarray, *, seed: int, max_iter: int = 500,
                gtol: float = 1e-7) -> np.ndarray:
    """Weights (features × K) of the linear softmax model, as PyLDL fits them."""
    import scipy.optimize

    eps = np.finfo(np.float64).eps
    design = x
    k = d.shape[1]
    clipped = np.clip(d, eps, 1)

    def objective(flat):
        w = flat.reshape(design.shape[1], k)
        p = _softmax(design @ w)
        loss = np.sum(clipped * (np.log(clipped) - np.log(np.clip(p, eps, 1))))
        return loss, (design.T @ (p - d)).reshape(-1)

    w0 = np.random.default_rng(seed).random(design.shape[1] * k)
    result = scipy.optimize.minimize(objective, w0, method="L-BFGS-B", jac=True,
                                     options={"gtol": gtol, "maxiter": max_iter})
    return result.x.reshape(design.shape[1], k)


def predict_sa_bfgs(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _softmax(x @ weights)
