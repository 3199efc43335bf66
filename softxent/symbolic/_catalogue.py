"""Where each loss drives the prediction for a soft target, from the symbolic forms.

For every registry loss: the minimiser p* for a target q (closed form where one
exists, else the symbolic stationarity condition solved numerically), whether
the loss is strictly proper (p* = q for every q), the bias p* - q, the inverse
map from p* back to q where it exists, and convexity in p and in the logits.
Nothing here runs an optimiser on the JAX loss.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ._twins import SEPARABLE, twin

_P = sp.Symbol("p", positive=True)
_Q = sp.Symbol("q", positive=True)


# -- closed forms -------------------------------------------------------------


def _identity(q: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    return q


# Closed forms are plain arithmetic so that they take numbers or SymPy symbols.
def _smoothed_softmax(q: Any, params: Mapping[str, Any]) -> Any:
    a = params["label_smoothing"]
    return (1 - a) * q + a / len(q)


def _sigmoid_bce(q: Any, params: Mapping[str, Any]) -> Any:
    a = params["label_smoothing"]
    w = 1 if params.get("pos_weight") is None else params["pos_weight"]
    smoothed = (1 - a) * q + a / 2
    return w * smoothed / (w * smoothed + 1 - smoothed)


# Minimisers with a closed form; each is checked against the stationarity
# conditions in proofs/catalogue.py and in the tests.
CLOSED_FORMS: dict[str, tuple[Callable[[np.ndarray, Mapping[str, Any]], np.ndarray], str]] = {
    "binary_cross_entropy": (_identity, "p* = q"),
    "cross_entropy": (_identity, "p* = q (Gibbs' inequality)"),
    "softmax_cross_entropy": (_smoothed_softmax, "p* = (1 - α) q + α / K"),
    "sigmoid_binary_cross_entropy": (
        _sigmoid_bce, "p* = w q' / (w q' + 1 - q'), q' = (1-α) q + α/2"
    ),
    "kl_divergence": (_identity, "p* = q (Gibbs' inequality)"),
    "reverse_kl_divergence": (_identity, "p* = q (Gibbs' inequality on KL(p||q))"),
    "js_divergence": (_identity, "p* = q (JS is a metric squared: zero iff p = q)"),
    "brier_score": (_identity, "p* = q (quadratic: gradient 2(p - q))"),
    "distillation_loss": (_identity, "p* = q: the student matches the teacher at every T"),
}
"""The minimisers with a closed form: loss name -> ``(minimiser(q, params), formula)``, the
minimiser a NumPy function of the soft target ``q`` (class axis last) and the loss's
parameters. :func:`minimizer` uses it and solves the stationarity condition for the rest."""

INVERSE_MAPS: dict[str, str] = {
    "softmax_cross_entropy": "q = (p* - α/K) / (1 - α)",
    "sigmoid_binary_cross_entropy": "q' = p* / (w + p* - w p*), q = (q' - α/2) / (1 - α)",
    "focal_cross_entropy": "q ∝ 1 / φ'(p*), φ(p) = -(1-p)^γ log p (Charoenphakdee et al. 2021)",
    "poly1_cross_entropy": "q ∝ p* / (1 + ε p*)",
    "generalized_cross_entropy": "q ∝ p*^(1-k)",
    "distillation_loss": "q = p* (the student sees q^(1/T) / Σ q^(1/T) at temperature T)",
}
"""How to recover the soft target ``q`` from a loss's minimiser ``p*``, as a formula: loss name ->
text, for the losses whose minimiser is not ``q`` itself (and distillation's tempered view)."""


# -- numerical solution of the symbolic stationarity conditions ---------------


@functools.cache
def _phi_prime(name: str, param_items: tuple[tuple[str, Any], ...]) -> Callable[[float], float]:
    params = dict(param_items)
    phi = SEPARABLE[name](_P, params)
    return sp.lambdify(_P, sp.diff(phi, _P), "math")


def _bisect(f: Callable[[float], float], lo: float, hi: float, iterations: int = 200) -> float:
    """A root of an increasing ``f`` on [lo, hi] (clamped to an end without a sign change)."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo >= 0:
        return lo
    if f_hi <= 0:
        return hi
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-17:
            break
    return 0.5 * (lo + hi)


def _separable_minimizer(name: str, q: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Solve q_i φ'(p_i) = λ, Σ p_i = 1 (KKT of Σ q_i φ(p_i) on the simplex).

    Where φ is convex (the catalogue's convexity column says where SymPy proves
    it) φ' is increasing, each p_i(λ) is a unique 1-D root and Σ p_i(λ) is
    monotone in λ, so two nested bisections find the unique solution. The
    tests compare the result with an independent numerical minimisation.
    """
    dphi = _phi_prime(name, tuple(sorted((k, v) for k, v in params.items())))
    tiny = 1e-300

    def p_of(lam: float) -> np.ndarray:
        out = np.empty_like(q)
        for i, qi in enumerate(q):
            if qi <= 0:
                out[i] = 0.0
                continue
            out[i] = _bisect(lambda p, qi=qi: qi * dphi(p) - lam, tiny, 1.0 - 1e-16)
        return out

    # λ < 0; search s = log(-λ) so that Σ p_i(λ) = 1.
    def excess(s: float) -> float:
        return 1.0 - float(np.sum(p_of(-math.exp(s))))

    s = _bisect(excess, -60.0, 60.0, iterations=120)
    p = p_of(-math.exp(s))
    return p / p.sum()


@functools.cache
def _elementwise_derivative(name: str, param_items: tuple[tuple[str, Any], ...]):
    params = dict(param_items)
    expr = twin(name).in_probabilities(_P, _Q, params)
    return sp.lambdify((_P, _Q), sp.diff(expr, _P), "mpmath")


def _elementwise_minimizer(name: str, q: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Per component, the root in (0, 1) of the symbolic dℓ/dp."""
    import mpmath

    derivative = _elementwise_derivative(name, tuple(sorted(params.items(), key=str)))
    out = np.empty_like(q)
    for i, qi in enumerate(q):
        with mpmath.workdps(40):
            f = lambda p, qi=qi: float(derivative(mpmath.mpf(p), mpmath.mpf(float(qi))))
            out[i] = _bisect(f, 1e-15, 1 - 1e-15)
    return out


# -- the public API -----------------------------------------------------------


def _params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    return twin(name).parameters(params)


def _targets(name: str, target: Sequence[float]) -> np.ndarray:
    q = np.asarray(target, dtype=np.float64)
    if q.ndim != 1 or q.size < 1:
        raise ValueError(f"{name}: target must be a 1-D vector, got shape {q.shape}")
    if np.any(~np.isfinite(q)) or np.any(q < 0) or np.any(q > 1):
        raise ValueError(f"{name}: target entries must be in [0, 1], got {q.tolist()}")
    if twin(name).output == "per_example":
        if q.size < 2:
            raise ValueError(f"{name}: a class target needs at least 2 entries, got {q.tolist()}")
        if abs(q.sum() - 1) > 1e-9:
            raise ValueError(f"{name}: target must sum to 1, got sum {q.sum():.12g}")
    return q


def minimizer(loss: str, target: Sequence[float],
              params: Mapping[str, float] | None = None) -> np.ndarray:
    """The prediction p* that minimises ``loss`` for the soft target ``target``.

    For softmax and probability-vector losses, p* is a point of the simplex; for
    elementwise losses, one probability per component. Closed forms where they
    exist, otherwise the SymPy stationarity condition solved numerically.

    Example:
      >>> from softxent.symbolic import minimizer
      >>> minimizer("softmax_cross_entropy", [0.2, 0.3, 0.5], {"label_smoothing": 0.3}).round(3)
      array([0.24, 0.31, 0.45])
    """
    twin(loss)  # KeyError for an unknown loss
    q = _targets(loss, target)
    values = _params(loss, params)
    if loss in CLOSED_FORMS:
        numeric = {k: None if v is None else float(v) for k, v in values.items()}
        return np.asarray(CLOSED_FORMS[loss][0](q, numeric), dtype=np.float64)
    if loss in SEPARABLE:
        return _separable_minimizer(loss, q, values)
    return _elementwise_minimizer(loss, q, values)


def is_proper(loss: str, params: Mapping[str, float] | None = None) -> bool:
    """Whether ``loss`` is strictly proper: its minimiser is the target itself.

    Closed forms: decided by checking p*(q) - q ≡ 0 symbolically. Separable
    losses Σ q_i φ(p_i): the KKT condition at p = q reads q_i φ'(q_i) = λ for
    all i, which holds for every q exactly when q φ'(q) is constant in q.
    Elementwise losses without a closed form: dℓ/dp at p = q must vanish
    identically.
    """
    values = _params(loss, params)
    if loss in CLOSED_FORMS:
        q = sp.symbols("q1:4", positive=True)
        p_star = CLOSED_FORMS[loss][0](np.array(q, dtype=object), values)
        if twin(loss).output == "per_example":
            p_star = [sp.nsimplify(x) for x in p_star]
            # On the simplex, Σ q = 1: substitute q3 = 1 - q1 - q2.
            constraint = {q[2]: 1 - q[0] - q[1]}
            return all(sp.simplify((pi - qi).subs(constraint)) == 0
                       for pi, qi in zip(p_star, q, strict=True))
        return all(sp.simplify(pi - qi) == 0 for pi, qi in zip(p_star, q, strict=True))
    if loss in SEPARABLE:
        phi = SEPARABLE[loss](_P, values)
        product = sp.simplify(_Q * sp.diff(phi, _P).subs(_P, _Q))
        return sp.diff(product, _Q).equals(0) is True
    expr = twin(loss).in_probabilities(_P, _Q, values)
    return sp.simplify(sp.diff(expr, _P).subs(_P, _Q)) == 0


def stationarity(loss: str, params: Mapping[str, float] | None = None) -> str:
    """The stationarity condition the minimiser satisfies, as text."""
    values = _params(loss, params)
    if loss in SEPARABLE:
        dphi = sp.simplify(sp.diff(SEPARABLE[loss](_P, values), _P))
        return f"q_i · ({sp.sstr(dphi).replace('p', 'p_i')}) = λ for all i, Σ p_i = 1"
    t = twin(loss)
    if t.output == "per_component":
        expr = t.in_probabilities(_P, _Q, values)
        return f"{sp.sstr(sp.simplify(sp.diff(expr, _P)))} = 0"
    return "∂ℓ/∂p_i = λ for all i, Σ p_i = 1"


# -- convexity ----------------------------------------------------------------

_E = sp.Symbol("e", positive=True)  # e = exp(x) > 0


def _second_derivative_sign(expr: sp.Expr, var: sp.Symbol, domain: dict[sp.Symbol, sp.Expr],
                            grid: Callable[[], tuple[np.ndarray, ...]],
                            args: tuple[sp.Symbol, ...]) -> str:
    """'yes', 'no (counterexample …)' or 'not established' for d²expr/dvar² ≥ 0."""
    import mpmath

    second = sp.diff(expr, var, 2)
    substituted = sp.simplify(second.subs(domain, simultaneous=True))
    if substituted.is_nonnegative is True or sp.factor(substituted).is_nonnegative is True:
        return "yes (SymPy: second derivative ≥ 0)"
    numeric = sp.lambdify(args, second, "numpy")
    with np.errstate(all="ignore"):
        points = grid()
        values = np.asarray(numeric(*points), dtype=np.float64)
    values = np.where(np.isfinite(values), values, 0.0)
    worst = int(np.argmin(values))
    if values.flat[worst] < -1e-9:
        at = [float(pt.flat[worst]) for pt in points]
        exact = sp.lambdify(args, second, "mpmath")
        with mpmath.workdps(50):
            confirmed = exact(*map(mpmath.mpf, at)) < 0
        if confirmed:
            shown = ", ".join(f"{s}={v:.4g}" for s, v in zip(args, at, strict=True))
            return f"no (second derivative < 0 at {shown}, confirmed at 50 digits)"
    return "not established (no counterexample on a grid, no symbolic proof)"


def _unit_grid() -> tuple[np.ndarray, np.ndarray]:
    axis = np.linspace(0.005, 0.995, 199)
    return tuple(np.meshgrid(axis, axis, indexing="ij"))  # type: ignore[return-value]


def _logit_grid() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-20, 20, 401)
    qs = np.linspace(0.01, 0.99, 99)
    return tuple(np.meshgrid(x, qs, indexing="ij"))  # type: ignore[return-value]


@functools.cache
def _convexity(loss: str, param_items: tuple[tuple[str, Any], ...]) -> dict[str, str]:
    t = twin(loss)
    params = dict(param_items)
    x = sp.Symbol("x", real=True)
    a, b = sp.symbols("a b", positive=True)
    unit = {_P: 1 / (1 + b), _Q: 1 / (1 + a)}
    if t.output == "per_component":
        in_p = t.in_probabilities(_P, _Q, params)
        in_z = t.in_logits(x, _Q, params) if t.input == "logits" else None
    else:
        # Along the simplex for K = 2: p = (p, 1 - p), q = (q, 1 - q); logits (x, 0).
        in_p = t.in_probabilities([_P, 1 - _P], [_Q, 1 - _Q], params)
        if t.targets == "logits":
            teacher = [sp.log(_Q), sp.log(1 - _Q)]
            in_z = t.in_logits([x, sp.Integer(0)], teacher, params)
        elif t.input == "logits":
            in_z = t.in_logits([x, sp.Integer(0)], [_Q, 1 - _Q], params)
        else:
            in_z = None
    result = {"in_p": _second_derivative_sign(in_p, _P, unit, _unit_grid, (_P, _Q))}
    if in_z is None:
        result["in_z"] = "n/a (takes probabilities)"
    else:
        result["in_z"] = _second_derivative_sign(in_z, x, {x: sp.log(_E), **unit},
                                                 _logit_grid, (x, _Q))
    if t.output == "per_example":
        result = {k: v + " [K = 2]" for k, v in result.items()}
    return result


def convexity(loss: str, params: Mapping[str, float] | None = None) -> dict[str, str]:
    """Convexity of ``loss`` in p and in the logits (K = 2 for class losses)."""
    values = _params(loss, params)
    return _convexity(loss, tuple(sorted(values.items(), key=str)))


def inverse_map(loss: str, p_star: np.ndarray, params: Mapping[str, float] | None = None
                ) -> np.ndarray | None:
    """The target q recovered from a minimiser p*, where the inverse exists."""
    values = {k: None if v is None else float(v) for k, v in _params(loss, params).items()}
    p_star = np.asarray(p_star, dtype=np.float64)
    if loss in ("softmax_cross_entropy",):
        a = values["label_smoothing"]
        return None if a >= 1 else (p_star - a / len(p_star)) / (1 - a)
    if loss == "sigmoid_binary_cross_entropy":
        a = values["label_smoothing"]
        w = 1.0 if values.get("pos_weight") is None else values["pos_weight"]
        if a >= 1:
            return None
        smoothed = p_star / (w + p_star - w * p_star)
        return (smoothed - a / 2) / (1 - a)
    if loss in SEPARABLE:
        dphi = _phi_prime(loss, tuple(sorted(_params(loss, params).items())))
        weights = np.array([1.0 / dphi(float(pi)) for pi in p_star])
        return weights / weights.sum()
    if loss in CLOSED_FORMS and CLOSED_FORMS[loss][0] is _identity:
        return p_star
    return None


def entry(loss: str, target: Sequence[float],
          params: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One catalogue row: everything the catalogue states about ``loss`` for ``target``."""
    values = _params(loss, params)
    q = _targets(loss, target)
    p_star = minimizer(loss, q, params)
    recovered = inverse_map(loss, p_star, params)
    shown = {k: (None if v is None else float(v)) for k, v in values.items()}
    return {
        "loss": loss,
        "params": shown,
        "target": q.tolist(),
        "proper": is_proper(loss, params),
        "minimizer": p_star.tolist(),
        "bias": (p_star - q).tolist(),
        "method": "closed form: " + CLOSED_FORMS[loss][1] if loss in CLOSED_FORMS
        else "stationarity condition solved numerically: " + stationarity(loss, params),
        "inverse": INVERSE_MAPS.get(loss, "q = p*" if loss in CLOSED_FORMS else None),
        "inverse_error": None if recovered is None
        else float(np.max(np.abs(recovered - q))),
        **{f"convex_{k}": v for k, v in convexity(loss, params).items()},
    }
