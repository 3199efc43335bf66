"""The SymPy twin of every registry loss.

Each twin writes the loss as a SymPy expression in the predicted probabilities p
and the targets q (``in_probabilities``) and, for losses that take logits, in
the logits z (``in_logits``), with its parameters as symbols or values. The
twins mirror the shipped JAX formulas term for term; ``softxent verify`` checks
the JAX gradients against them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp

from .._registry import get_loss, list_losses

Expr = sp.Expr
ProbabilityForm = Callable[[Sequence[Expr], Sequence[Expr], Mapping[str, Any]], Expr]

# Symbols for the parameters, one per registry parameter name.
PARAMETER_SYMBOLS: dict[str, sp.Symbol] = {
    "label_smoothing": sp.Symbol("alpha", nonnegative=True),
    "gamma": sp.Symbol("gamma", nonnegative=True),
    "epsilon": sp.Symbol("epsilon", real=True),
    "k": sp.Symbol("k", positive=True),
    "temperature": sp.Symbol("T", positive=True),
    "pos_weight": sp.Symbol("w", positive=True),
    "alpha": sp.Symbol("a", positive=True),
}


def softmax(z: Sequence[Expr]) -> list[Expr]:
    exps = [sp.exp(zi) for zi in z]
    total = sp.Add(*exps)
    return [e / total for e in exps]


def sigmoid(x: Expr) -> Expr:
    return 1 / (1 + sp.exp(-x))


def _cross_entropy(p: Sequence[Expr], q: Sequence[Expr]) -> Expr:
    return -sp.Add(*[qi * sp.log(pi) for pi, qi in zip(p, q, strict=True)])


def _softmax_ce(p, q, P):
    a, k = P["label_smoothing"], len(p)
    return _cross_entropy(p, [(1 - a) * qi + a / k for qi in q])


def _sigmoid_bce(p, q, P):
    a = P["label_smoothing"]
    w = 1 if P.get("pos_weight") is None else P["pos_weight"]
    smoothed = (1 - a) * q + a / 2
    return -(w * smoothed * sp.log(p) + (1 - smoothed) * sp.log(1 - p))


def _sigmoid_focal(p, q, P):
    ce = -(q * sp.log(p) + (1 - q) * sp.log(1 - p))
    miss = q * (1 - p) + (1 - q) * p  # 1 - p_t, as the JAX loss forms it
    loss = ce * miss ** P["gamma"]
    if P.get("alpha") is not None:
        loss = (P["alpha"] * q + (1 - P["alpha"]) * (1 - q)) * loss
    return loss


def _kl(p, q, P):
    return sp.Add(*[qi * sp.log(qi / pi) for pi, qi in zip(p, q, strict=True)])


def _reverse_kl(p, q, P):
    return sp.Add(*[pi * sp.log(pi / qi) for pi, qi in zip(p, q, strict=True)])


def _js(p, q, P):
    terms = [
        qi * sp.log(2 * qi / (pi + qi)) + pi * sp.log(2 * pi / (pi + qi))
        for pi, qi in zip(p, q, strict=True)
    ]
    return sp.Rational(1, 2) * sp.Add(*terms)


def _brier(p, q, P):
    return sp.Add(*[(pi - qi) ** 2 for pi, qi in zip(p, q, strict=True)])


def _focal(p, q, P):
    g = P["gamma"]
    return -sp.Add(*[qi * (1 - pi) ** g * sp.log(pi) for pi, qi in zip(p, q, strict=True)])


def _poly1(p, q, P):
    e = P["epsilon"]
    return _cross_entropy(p, q) + e * sp.Add(*[qi * (1 - pi) for pi, qi in zip(p, q, strict=True)])


def _gce(p, q, P):
    k = P["k"]
    return sp.Add(*[qi * (1 - pi**k) / k for pi, qi in zip(p, q, strict=True)])


def _tempered(p: Sequence[Expr], temperature: Expr) -> list[Expr]:
    """softmax(log p / T): a distribution seen at temperature T."""
    powered = [pi ** (1 / temperature) for pi in p]
    total = sp.Add(*powered)
    return [x / total for x in powered]


def _distillation(p, q, P):
    # p: the student's own (T = 1) distribution; q: the teacher's.
    t = P["temperature"]
    return t**2 * _kl(_tempered(p, t), _tempered(q, t), P)


def _distillation_logits(s, t_logits, P):
    t = P["temperature"]
    student = softmax([si / t for si in s])
    teacher = softmax([ti / t for ti in t_logits])
    return t**2 * _kl(student, teacher, P)


def _binary_ce(p, q, P):
    return -(q * sp.log(p) + (1 - q) * sp.log(1 - p))


def _categorical_ce(p, q, P):
    return _cross_entropy(p, q)


_FORMS: dict[str, ProbabilityForm] = {
    "binary_cross_entropy": _binary_ce,
    "cross_entropy": _categorical_ce,
    "sigmoid_binary_cross_entropy": _sigmoid_bce,
    "sigmoid_focal_loss": _sigmoid_focal,
    "softmax_cross_entropy": _softmax_ce,
    "kl_divergence": _kl,
    "reverse_kl_divergence": _reverse_kl,
    "js_divergence": _js,
    "brier_score": _brier,
    "focal_cross_entropy": _focal,
    "poly1_cross_entropy": _poly1,
    "generalized_cross_entropy": _gce,
    "distillation_loss": _distillation,
}

# Losses whose value is sum_i q_i phi(p_i): the minimiser solves q_i phi'(p_i) = lambda.
SEPARABLE: dict[str, Callable[[Expr, Mapping[str, Any]], Expr]] = {
    "cross_entropy": lambda p, P: -sp.log(p),
    "focal_cross_entropy": lambda p, P: -((1 - p) ** P["gamma"]) * sp.log(p),
    "poly1_cross_entropy": lambda p, P: -sp.log(p) + P["epsilon"] * (1 - p),
    "generalized_cross_entropy": lambda p, P: (1 - p ** P["k"]) / P["k"],
}
"""The separable losses ``sum_i q_i phi(p_i)``: loss name -> ``phi(p, params)`` as a SymPy
expression. Their minimiser solves ``q_i phi'(p_i) = lambda`` for every class, which gives the
inverse map ``q ∝ 1 / phi'(p*)`` in closed form."""


@dataclasses.dataclass(frozen=True)
class Twin:
    """The SymPy form of one registry loss."""

    name: str
    output: str
    link: str
    input: str
    targets: str

    def parameters(self, values: Mapping[str, Any] | None = None,
                   symbolic: bool = False) -> dict[str, Any]:
        """Parameter values as SymPy numbers (defaults filled in), or all as symbols.

        With ``symbolic=True`` every parameter is a symbol, optional ones too, so
        a check made with them covers every value.
        """
        spec = get_loss(self.name, family="dense")
        merged = {**spec.defaults, **(values or {})}
        unknown = set(merged) - set(spec.defaults)
        if unknown:
            raise KeyError(f"{self.name} has no parameter(s) {sorted(unknown)} "
                           f"(parameters: {sorted(spec.defaults) or 'none'})")
        result: dict[str, Any] = {}
        for name, value in merged.items():
            if symbolic:
                result[name] = PARAMETER_SYMBOLS[name]
            elif value is None:
                result[name] = None
            else:
                result[name] = sp.nsimplify(value, rational=True)
        return result

    def in_probabilities(self, p: Any, q: Any, params: Mapping[str, Any]) -> Expr:
        """The loss in the predicted probabilities (vectors for class losses)."""
        return _FORMS[self.name](p, q, params)

    def in_logits(self, z: Any, targets: Any, params: Mapping[str, Any]) -> Expr:
        """The loss in the logits, as the JAX function computes it."""
        if self.input == "probabilities":
            raise ValueError(f"{self.name} takes probabilities, not logits")
        if self.targets == "logits":
            return _distillation_logits(z, targets, params)
        if self.link == "sigmoid":
            return self.in_probabilities(sigmoid(z), targets, params)
        return self.in_probabilities(softmax(z), targets, params)


def twin(name: str) -> Twin:
    """The SymPy twin of the registry loss ``name`` (KeyError if unknown)."""
    spec = get_loss(name, family="dense")
    if name not in _FORMS:
        raise KeyError(f"loss {name!r} has no SymPy twin yet; add one to softxent/symbolic")
    return Twin(spec.name, spec.output, spec.link, spec.input, spec.targets)


def all_twins() -> list[Twin]:
    """The twin of every registry loss, in the registry's order."""
    return [twin(spec.name) for spec in list_losses()]


def symbols(prefix: str, k: int, **assumptions: bool) -> list[sp.Symbol]:
    return list(sp.symbols(f"{prefix}1:{k + 1}", **assumptions))
