"""Where each registry loss drives the prediction for a soft target: a client of ``analyze``.

Every row comes from the analysis of the loss's SymPy twin (``analyze``): the
minimiser p* for a target (closed form where SymPy derives one, else the KKT
conditions solved numerically), whether the loss is strictly proper, the bias
p* − q, the inverse map back to q where one exists, and convexity in p and in
the logits. Nothing is typed in beside the twins, and nothing here runs an
optimiser on the JAX loss: changing a twin changes the catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._analysis import Analysis, analyze


def _analysis(loss: str, params: Mapping[str, float] | None, target: Sequence[float] | None,
              classes: int | None = None) -> Analysis:
    return analyze(loss, params=params, target=target, classes=classes)


def minimizer(loss: str, target: Sequence[float],
              params: Mapping[str, float] | None = None) -> np.ndarray:
    """The prediction p* that minimises ``loss`` for the soft target ``target``.

    For softmax and probability-vector losses, p* is a point of the simplex; for
    elementwise losses, one probability per component.

    Example:
      >>> from softxent.symbolic import minimizer
      >>> minimizer("softmax_cross_entropy", [0.2, 0.3, 0.5], {"label_smoothing": 0.3}).round(3)
      array([0.24, 0.31, 0.45])
    """
    result = _analysis(loss, params, target)
    assert result.minimizer is not None
    return np.asarray(result.minimizer, dtype=np.float64)


def is_proper(loss: str, params: Mapping[str, float] | None = None) -> bool | None:
    """Whether ``loss`` is strictly proper (K = 3 for class losses); None if undecided."""
    return _analysis(loss, params, None).proper


def stationarity(loss: str, params: Mapping[str, float] | None = None) -> str:
    """The stationarity (KKT) condition the minimiser satisfies, as text."""
    return _analysis(loss, params, None).stationarity


def convexity(loss: str, params: Mapping[str, float] | None = None,
              classes: int | None = None) -> dict[str, str]:
    """Convexity in p and in the logits: "yes", "no (…)" or "unknown (…)"."""
    a = _analysis(loss, params, None, classes)
    return {"in_p": _verdict(a.convex_in_p, a.convex_in_p_reason),
            "in_z": _verdict(a.convex_in_logits, a.convex_in_logits_reason)}


def _verdict(verdict: str, reason: str) -> str:
    return f"{verdict} ({reason})"


def inverse_map(loss: str, p_star: Any, params: Mapping[str, float] | None = None
                ) -> np.ndarray | None:
    """The target q recovered from a minimiser p*, where the analysis found an inverse."""
    p_star = np.asarray(p_star, dtype=np.float64)
    classes = p_star.shape[-1] if p_star.ndim else None
    a = _analysis(loss, params, None, classes if a_class_loss(loss) else None)
    return a.invert(p_star)


def a_class_loss(loss: str) -> bool:
    from .._registry import get_loss

    return get_loss(loss, family="dense").output == "per_example"


def entry(loss: str, target: Sequence[float],
          params: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One catalogue row: everything the analysis states about ``loss`` for ``target``."""
    a = _analysis(loss, params, target)
    assert a.minimizer is not None and a.target is not None
    p_star = np.asarray(a.minimizer)
    q = np.asarray(a.target)
    recovered = a.invert(p_star)
    if a.closed_form:
        method = f"closed form: {a.closed_form}"
    else:
        method = f"{a.minimizer_method}: {a.stationarity}"
    return {
        "loss": loss,
        "params": a.params,
        "target": a.target,
        "proper": a.proper,
        "proper_reason": a.proper_reason,
        "minimizer": a.minimizer,
        "bias": (p_star - q).tolist(),
        "method": method,
        "inverse": a.inverse_map,
        "inverse_error": None if recovered is None
        else float(np.max(np.abs(recovered - q))),
        "convex_in_p": _verdict(a.convex_in_p, a.convex_in_p_reason),
        "convex_in_z": _verdict(a.convex_in_logits, a.convex_in_logits_reason),
    }
