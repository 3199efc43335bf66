"""``check_gradient``: a hand-written JAX loss against its formula, at high precision.

The method of ``softxent verify``, for a user's own loss: the value, ``jax.grad``
and a Hessian-vector product (``jax.jvp`` of the gradient) of the JAX function in
float64 are compared with the SymPy expression's value, gradient and Hessian
times the same vector, evaluated by mpmath at 50 digits, at points of which a
third lie in the boundary regions (logits up to |z| = 50, or probabilities within
1e-6 of 0 and 1).

Errors are normwise per point: |a − b| / |b| for the value, ‖a − b‖∞ / ‖b‖∞ for
the gradient, and for the Hessian-vector product ‖a − b‖∞ over the largest of
‖Hv‖∞, ‖H|v|‖∞ and ‖∇ℓ‖∞‖v‖∞ (Hv may cancel, or be far below the gradient it
differentiates); absolute where the reference is 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ._loss import SymbolicLoss
from ._parse import P, Q, parameter_symbol, probability_symbols

TOLERANCE = 1e-10
QUANTITIES = ("value", "gradient", "hvp")


@dataclasses.dataclass(frozen=True)
class GradientCheck:
    """The outcome of :func:`check_gradient`.

    ``errors`` maps "value", "gradient" and "hvp" to (max abs error, max rel
    error); ``worst`` is the point with the largest relative error: its inputs,
    targets, the quantity and the error.
    """

    loss: str
    points: int
    tolerance: float
    errors: dict[str, tuple[float, float]]
    worst: dict[str, Any]

    @property
    def max_abs_err(self) -> float:
        return max(a for a, _ in self.errors.values())

    @property
    def max_rel_err(self) -> float:
        return max(r for _, r in self.errors.values())

    @property
    def passed(self) -> bool:
        return bool(self.max_rel_err <= self.tolerance)

    def summary(self) -> str:
        rows = ", ".join(f"{q}: abs {a:.2e}, rel {r:.2e}" for q, (a, r) in self.errors.items())
        verdict = "PASSED" if self.passed else "FAILED"
        text = f"{self.loss}: {verdict} at tolerance {self.tolerance:g} over {self.points} " \
               f"points ({rows})"
        if not self.passed:
            w = self.worst
            text += (f"; worst: {w['quantity']} rel err {w['rel_err']:.3g} at inputs "
                     f"{w['inputs']}, targets {w['targets']}")
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "points": self.points, "tolerance": self.tolerance,
                "passed": self.passed, "max_abs_err": self.max_abs_err,
                "max_rel_err": self.max_rel_err,
                "errors": {q: {"max_abs_err": a, "max_rel_err": r}
                           for q, (a, r) in self.errors.items()}, "worst": self.worst}


def _sample(kind: str, k: int, n: int, input: str, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    boundary = rng.random(n) < 1 / 3
    if input == "probabilities":
        if kind == "elementwise":
            x = rng.random((n, 1))
            near = 1e-6 * rng.random(n)
            flip = rng.random(n) < 0.5
            x[boundary, 0] = np.where(flip, near, 1 - near)[boundary]
        else:
            x = rng.dirichlet(np.ones(k), size=n)
            edge = rng.integers(0, k, size=n)
            x[boundary, edge[boundary]] = 1e-6 * rng.random(boundary.sum())
            x = x / x.sum(axis=1, keepdims=True)
    else:
        width = 1 if kind == "elementwise" else k
        x = rng.normal(0, 3, size=(n, width))
        x[boundary] = rng.uniform(-50, 50, size=(boundary.sum(), width))
    if kind == "elementwise":
        t = rng.random((n, 1))
    else:
        t = np.clip(rng.dirichlet(np.ones(k), size=n), 1e-4, None)
        t = t / t.sum(axis=1, keepdims=True)
    return x, t


def _reference(loss: SymbolicLoss, values: Mapping[str, float], input: str
               ) -> tuple[Callable[..., Any], int]:
    """A function of (inputs, targets, v) giving the value, gradient and Hessian-vector
    product at 50 digits, and K.

    The expression is differentiated in p (small expressions); the link's
    derivatives are applied at 50 digits by the chain rule: for softmax,
    J = diag(p) − p pᵀ, ∇_z ℓ = J ∇_p ℓ and ∇²_z ℓ v = J ∇²_p ℓ J v + Σ_i ∂ℓ/∂p_i ∇²p_i v
    with (∇²p_i v)_j = p_i (δ_ij − p_j)(v_i − p·v) − p_i p_j (v_j − p·v); for the
    sigmoid, p' = p(1 − p) and p'' = p(1 − p)(1 − 2p).
    """
    expr = loss.expression.xreplace({parameter_symbol(n): sp.nsimplify(v, rational=True)
                                     for n, v in values.items()})
    if loss.kind == "elementwise":
        k = 1
        p, q = [P], [Q]
    else:
        k = loss.classes or 3
        p, q = probability_symbols("p", k), probability_symbols("q", k)
        if loss.kind == "separable":
            expr = sp.Add(*[expr.xreplace({P: pi, Q: qi}) for pi, qi in zip(p, q, strict=True)])
    gradient = [sp.diff(expr, pi) for pi in p]
    hessian = [[sp.diff(g, pj) for pj in p] for g in gradient]
    in_p = sp.lambdify([*p, *q], [expr, gradient, hessian], "mpmath", cse=True)

    def evaluate(x: list[Any], t: list[Any], v: list[Any]) -> tuple[Any, list[Any], list[Any]]:
        if input == "probabilities":
            value, g, h = in_p(*x, *t)
            return value, list(g), [sum(h[a][b] * v[b] for b in range(k)) for a in range(k)]
        if loss.kind == "elementwise":
            prob = 1 / (1 + mpmath.exp(-x[0]))
            value, g, h = in_p(prob, *t)
            d1 = prob * (1 - prob)
            d2 = d1 * (1 - 2 * prob)
            return value, [g[0] * d1], [(h[0][0] * d1 * d1 + g[0] * d2) * v[0]]
        top = max(x)
        exps = [mpmath.exp(xi - top) for xi in x]
        total = sum(exps)
        prob = [e / total for e in exps]
        value, g, h = in_p(*prob, *t)
        pv = sum(pi * vi for pi, vi in zip(prob, v, strict=True))
        pg = sum(pi * gi for pi, gi in zip(prob, g, strict=True))
        grad_z = [prob[j] * (g[j] - pg) for j in range(k)]  # J is symmetric
        jv = [prob[j] * (v[j] - pv) for j in range(k)]
        hjv = [sum(h[a][b] * jv[b] for b in range(k)) for a in range(k)]
        phjv = sum(pi * w for pi, w in zip(prob, hjv, strict=True))
        first = [prob[j] * (hjv[j] - phjv) for j in range(k)]
        second = [sum(g[i] * (prob[i] * ((1 if i == j else 0) - prob[j]) * (v[i] - pv)
                              - prob[i] * prob[j] * (v[j] - pv)) for i in range(k))
                  for j in range(k)]
        return value, grad_z, [a + b for a, b in zip(first, second, strict=True)]

    return evaluate, k


def check_gradient(fn: Callable[..., Any], symbolic_loss: SymbolicLoss, *,
                   params: Mapping[str, float] | None = None, points: int = 10_000,
                   input: str = "logits", seed: int = 0,
                   tolerance: float = TOLERANCE) -> GradientCheck:
    """Compare a hand-written JAX loss with ``symbolic_loss`` at high precision.

    Args:
      fn: the JAX loss, called as ``fn(inputs, targets, **params)``: inputs of shape
        (n, K) for a class loss (n,) for an elementwise one, one value per row
        (per component for an elementwise loss).
      symbolic_loss: the formula it should compute.
      params: parameter values passed to ``fn`` and set in the formula (defaults
        otherwise).
      points: how many points (a third in the boundary regions).
      input: whether ``fn`` takes ``"logits"`` (softmax / sigmoid link) or
        ``"probabilities"``.

    Returns:
      A :class:`GradientCheck`; ``.passed`` is whether every relative error is
      within ``tolerance``, ``.summary()`` says which quantity failed and where.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from softxent.symbolic import SymbolicLoss, check_gradient
      >>> ce = SymbolicLoss("ce", "-q*log(p)", "separable")
      >>> mine = lambda z, q: -jnp.sum(q * jax.nn.log_softmax(z), axis=-1)
      >>> check_gradient(mine, ce, points=200).passed
      True
    """
    import jax
    import jax.numpy as jnp

    if not isinstance(symbolic_loss, SymbolicLoss):
        raise TypeError(f"check_gradient: symbolic_loss must be a SymbolicLoss, got "
                        f"{type(symbolic_loss).__name__}")
    if not callable(fn):
        raise TypeError(f"check_gradient: fn must be callable, got {type(fn).__name__}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"check_gradient: points must be an integer >= 1, got {points!r}")
    if input not in ("logits", "probabilities"):
        raise ValueError(f"check_gradient: input must be 'logits' or 'probabilities', "
                         f"got {input!r}")
    _, values = symbolic_loss.at(params)
    jax.config.update("jax_enable_x64", True)  # float64 is needed to check to 1e-10
    reference, k = _reference(symbolic_loss, values, input)
    elementwise = symbolic_loss.kind == "elementwise"
    rng = np.random.default_rng(seed)
    x, t = _sample(symbolic_loss.kind, k, points, input, rng)
    v = rng.normal(size=x.shape)
    options = dict(params or {})

    def total(inputs: Any, targets: Any) -> Any:
        shaped = inputs[:, 0] if elementwise else inputs
        shaped_t = targets[:, 0] if elementwise else targets
        return jnp.sum(fn(shaped, shaped_t, **options))

    def per_row(inputs: Any, targets: Any) -> Any:
        shaped = inputs[:, 0] if elementwise else inputs
        shaped_t = targets[:, 0] if elementwise else targets
        return fn(shaped, shaped_t, **options)

    grad = jax.grad(total)
    xs, ts, vs = jnp.asarray(x), jnp.asarray(t), jnp.asarray(v)
    ours_value = np.asarray(per_row(xs, ts), dtype=np.float64).reshape(points)
    ours_grad = np.asarray(grad(xs, ts), dtype=np.float64)
    ours_hvp = np.asarray(jax.jvp(lambda a: grad(a, ts), (xs,), (vs,))[1], dtype=np.float64)
    ref_value = np.empty(points)
    ref_grad = np.empty_like(x)
    ref_hvp = np.empty_like(x)
    hvp_scale = np.empty(points)
    with mpmath.workdps(50):
        for i in range(points):
            value, g, hv = reference([mpmath.mpf(a) for a in x[i]],
                                     [mpmath.mpf(a) for a in t[i]],
                                     [mpmath.mpf(a) for a in v[i]])
            ref_value[i] = float(value)
            ref_grad[i] = [float(gi) for gi in g]
            ref_hvp[i] = [float(h) for h in hv]
            # The HVP's scale: the same product with |v|, or the gradient times |v|
            # where the Hessian is far smaller than the gradient (the Hessian-vector
            # product is the gradient's derivative, and float64 rounds it at the
            # gradient's scale: at z = (-40, 43, -43) focal's Hv is 1e-36 while
            # its gradient is 0.2).
            _, _, hv_abs = reference([mpmath.mpf(a) for a in x[i]],
                                     [mpmath.mpf(a) for a in t[i]],
                                     [mpmath.mpf(abs(a)) for a in v[i]])
            hvp_scale[i] = max(float(max(abs(h) for h in hv_abs)),
                               float(max(abs(h) for h in hv)),
                               float(max(abs(gi) for gi in g)) * float(np.max(np.abs(v[i]))))
    errors: dict[str, tuple[float, float]] = {}
    relative: dict[str, np.ndarray] = {}
    for name, ours, ref in (("value", ours_value[:, None], ref_value[:, None]),
                            ("gradient", ours_grad, ref_grad), ("hvp", ours_hvp, ref_hvp)):
        with np.errstate(invalid="ignore"):
            diff = np.max(np.abs(ours - ref), axis=1)
        diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN from the JAX side is a failure
        scale = np.max(np.abs(ref), axis=1) if name != "hvp" else hvp_scale
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), diff)
        relative[name] = rel
        errors[name] = (float(diff.max()), float(rel.max()))
    quantity = max(relative, key=lambda q: relative[q].max())
    i = int(np.argmax(relative[quantity]))
    worst = {"quantity": quantity, "rel_err": float(relative[quantity][i]),
             "inputs": x[i].tolist() if not elementwise else float(x[i, 0]),
             "targets": t[i].tolist() if not elementwise else float(t[i, 0])}
    return GradientCheck(symbolic_loss.name, points, tolerance, errors, worst)
