"""The SymPy twin of every registry loss.

Each twin writes the loss as a SymPy expression in the predicted probabilities p
and the targets q (``in_probabilities``) and, for losses that take logits, in
the logits z (``in_logits``), with its parameters as symbols or values. The
twins mirror the shipped JAX formulas term for term; ``softxent verify`` checks
the JAX values, gradients and Hessian-vector products against them.

Every family has its twins, keyed by registry name (``twin(name)``). A chunked
form computes its plain form by row chunks and shares that form's twin
(``Twin.form`` names it). A linear form takes hidden states ``h`` and an output
matrix ``W`` and shares the twin of its plain form in the logits
``z = h W + b``: the twin says nothing about ``W`` or ``b``, and ``softxent
verify`` checks a linear form at ``W`` a permutation matrix and ``b = 0`` only,
where each logit is one hidden entry exactly and the gradient in ``h`` is the
gradient in ``z`` permuted.

Targets that are not probability vectors are written as numbers too:

- an integer label as its one-hot row ``e``; the smoothed, weighted target is
  then ``q_c = r ((1 - alpha) w_c e_c + alpha w_c / K)``, with ``r = 0`` for a
  label equal to ``ignore_index`` (an index in ``[0, K)``: a label outside the
  classes has no one-hot row);
- a teacher's top k as ``2K`` numbers, the log-probabilities ``l`` (any value
  outside the top k) and the mask ``m`` of the top k (1 in, 0 out): the
  teacher's probabilities are ``a_i = m_i exp(l_i)``.

Options of the JAX functions that are not registry parameters (``z_loss``,
``soft_cap``, ``tail``, ``ignore_index``, ``class_weights``,
``example_weights``) are parameters of the twin where the function takes them.
Soft-capping, ``z -> c tanh(z / c)`` before the softmax, and the z-loss,
``lambda Q (log Z)^2`` with ``Q`` the target mass and ``log Z`` the
log-normaliser of the capped logits, are the same for every softmax twin; the
distillation twin caps the student's logits only and takes the z-loss inside
the ``T^2`` factor, on the tempered student: ``T^2 lambda (log sum e^(s / T))^2``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from .._registry import Family, get_loss, list_losses

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
    "beta": sp.Symbol("beta", nonnegative=True),
    "z_loss": sp.Symbol("lambda", nonnegative=True),
    "soft_cap": sp.Symbol("c", positive=True),
    "example_weights": sp.Symbol("r", nonnegative=True),
}


def softmax(z: Sequence[Expr]) -> list[Expr]:
    exps = [sp.exp(zi) for zi in z]
    total = sp.Add(*exps)
    return [e / total for e in exps]


def sigmoid(x: Expr) -> Expr:
    return 1 / (1 + sp.exp(-x))


def _cross_entropy(p: Sequence[Expr], q: Sequence[Expr]) -> Expr:
    return -sp.Add(*[qi * sp.log(pi) for pi, qi in zip(p, q, strict=True)])


def _smoothed(q: Sequence[Expr], P: Mapping[str, Any]) -> list[Expr]:
    a, k = P["label_smoothing"], len(q)
    return [(1 - a) * qi + a / k for qi in q]


def _softmax_ce(p, q, P):
    return _cross_entropy(p, _smoothed(q, P))


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


def _tempered_divergence(divergence):
    """``T^2 divergence(student at T, teacher at T)``, in probabilities (the student's own
    T = 1 distribution and the teacher's) and in logits."""

    def in_probabilities(p, q, P):
        t = P["temperature"]
        return t**2 * divergence(_tempered(p, t), _tempered(q, t), P)

    def in_logits(s, t_logits, P):
        t = P["temperature"]
        student = softmax([si / t for si in s])
        teacher = softmax([ti / t for ti in t_logits])
        return t**2 * divergence(student, teacher, P)

    return in_probabilities, in_logits


_distillation, _distillation_logits = _tempered_divergence(_kl)
_reverse_kl_distillation, _reverse_kl_distillation_logits = _tempered_divergence(_reverse_kl)


def _generalized_js_of(student: Sequence[Expr], teacher: Sequence[Expr], beta: Any) -> Expr:
    """``JSD_beta(P || Q)`` of the teacher's P from the student's Q, with the JAX loss's
    ends: the forward ``KL(P || Q)`` at beta = 0 and the reverse ``KL(Q || P)`` at 1."""
    if beta == 0:
        return _kl(student, teacher, {})
    if beta == 1:
        return _reverse_kl(student, teacher, {})
    mixture = [beta * pi + (1 - beta) * qi for pi, qi in zip(teacher, student, strict=True)]
    return (beta * sp.Add(*[pi * sp.log(pi / mi) for pi, mi in zip(teacher, mixture, strict=True)])
            + (1 - beta) * sp.Add(*[qi * sp.log(qi / mi)
                                    for qi, mi in zip(student, mixture, strict=True)]))


def _generalized_js(p, q, P):
    # No T**2 factor: the JAX loss (as Liger Kernel's) applies none.
    t = P["temperature"]
    return _generalized_js_of(_tempered(p, t), _tempered(q, t), P["beta"])


def _generalized_js_logits(s, t_logits, P):
    t = P["temperature"]
    return _generalized_js_of(softmax([si / t for si in s]), softmax([ti / t for ti in t_logits]),
                              P["beta"])


def _label_targets(e: Sequence[Expr], P: Mapping[str, Any]) -> list[Expr]:
    """``q_c = r ((1 - alpha) w_c e_c + alpha w_c / K)`` for the one-hot row ``e`` of a label:
    ``w_y [c = y] = w_c e_c``, and ``r`` is 0 where the label is ``ignore_index``."""
    k = len(e)
    a = P["label_smoothing"]
    weights = P.get("class_weights")
    weights = [1] * k if weights is None else list(weights)
    if len(weights) != k:
        raise ValueError(f"class_weights must have {k} entries (one per class), "
                         f"got {len(weights)}")
    r = 1 if P.get("example_weights") is None else P["example_weights"]
    ignored = P.get("ignore_index")
    if ignored is not None and 0 <= ignored < k:
        r = r * (1 - e[ignored])
    return [r * ((1 - a) * w * ec + a * w / k) for w, ec in zip(weights, e, strict=True)]


def _integer_ce(p, e, P):
    return _cross_entropy(p, _label_targets(e, P))


def _sparse_kl(masses: Sequence[Expr], teacher: Sequence[Expr], P: Mapping[str, Any]) -> Expr:
    """The sparse teacher's KL from the student, with ``masses`` the student's unnormalised
    probabilities (``exp(s_i / T)``) and ``teacher`` its log-probabilities and top-k mask.

    ``renormalize``: ``sum_i (a_i / A) (l_i - log A - log p_i)``. ``bucket``:
    ``sum_i a_i (l_i - log p_i) + R log(R / (1 - P_I))`` with ``R = 1 - A``, taken as 0
    where the top k is every class or ``A >= 1`` (as the JAX loss takes it), and
    ``1 - P_I = sum_{j not in I} p_j``, written without cancellation.
    """
    k = len(masses)
    if len(teacher) != 2 * k:
        raise ValueError(f"a top-k teacher is {2 * k} numbers (log-probabilities, mask), "
                         f"got {len(teacher)}")
    logs, mask = teacher[:k], teacher[k:]
    total = sp.Add(*masses)
    log_p = [sp.log(e) - sp.log(total) for e in masses]
    a = [m * sp.exp(lq) for m, lq in zip(mask, logs, strict=True)]
    mass = sp.Add(*a)
    if P["tail"] == "renormalize":
        return sp.Add(*[ai / mass * (lq - sp.log(mass) - lp)
                        for ai, lq, lp in zip(a, logs, log_p, strict=True)])
    if P["tail"] != "bucket":
        raise ValueError(f"tail must be 'renormalize' or 'bucket', got {P['tail']!r}")
    kl = sp.Add(*[ai * (lq - lp) for ai, lq, lp in zip(a, logs, log_p, strict=True)])
    rest = 1 - mass
    # The product of the mask is 1 only where the top k is every class: it keeps the
    # student's (then empty) tail away from log 0 in the branch that is not taken.
    outside = sp.Add(*[(1 - m) * e for m, e in zip(mask, masses, strict=True)]) + sp.Mul(*mask)
    tail = rest * (sp.log(rest) - sp.log(outside) + sp.log(total))
    return kl + sp.Piecewise((0, sp.Or(sp.Add(*mask) >= k, rest <= 0)), (tail, True))


def _sparse_distillation(p, teacher, P):
    # p: the student's own (T = 1) distribution.
    t = P["temperature"]
    return t**2 * _sparse_kl([pi ** (1 / t) for pi in p], teacher, P)


def _sparse_distillation_logits(s, teacher, P):
    t = P["temperature"]
    return t**2 * _sparse_kl([sp.exp(si / t) for si in s], teacher, P)


def _log_normaliser(z: Sequence[Expr]) -> Expr:
    return sp.log(sp.Add(*[sp.exp(zi) for zi in z]))


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
    "softmax_cross_entropy_with_integer_labels": _integer_ce,
    "sparse_distillation_loss": _sparse_distillation,
    "generalized_js_divergence": _generalized_js,
    "reverse_kl_distillation_loss": _reverse_kl_distillation,
}

# Forms written directly in the logits (a teacher's logits or log-probabilities), not
# through in_probabilities.
_LOGIT_FORMS: dict[str, Callable[[Sequence[Expr], Sequence[Expr], Mapping[str, Any]], Expr]] = {
    "distillation_loss": _distillation_logits,
    "sparse_distillation_loss": _sparse_distillation_logits,
    "generalized_js_divergence": _generalized_js_logits,
    "reverse_kl_distillation_loss": _reverse_kl_distillation_logits,
}

# The z-loss's weight per form: lambda times this is added (z the capped logits).
_Z_LOSS: dict[str, Callable[[Sequence[Expr], Sequence[Expr], Mapping[str, Any]], Expr]] = {
    "softmax_cross_entropy": lambda z, q, P: sp.Add(*_smoothed(q, P)) * _log_normaliser(z) ** 2,
    "kl_divergence": lambda z, q, P: sp.Add(*q) * _log_normaliser(z) ** 2,
    "softmax_cross_entropy_with_integer_labels":
        lambda z, e, P: sp.Add(*_label_targets(e, P)) * _log_normaliser(z) ** 2,
    # Inside the T**2 factor, on the tempered student; the teacher's mass is 1.
    "distillation_loss": lambda z, t, P: P["temperature"] ** 2 * _log_normaliser(
        [zi / P["temperature"] for zi in z]) ** 2,
}

# The twin of each registry loss that is not its own form: the chunked and linear forms
# share their plain form's.
_SHARED_FORM: dict[str, str] = {
    "chunked_softmax_cross_entropy": "softmax_cross_entropy",
    "linear_softmax_cross_entropy": "softmax_cross_entropy",
    "chunked_distillation_loss": "distillation_loss",
    "linear_distillation_loss": "distillation_loss",
    "chunked_softmax_cross_entropy_with_integer_labels":
        "softmax_cross_entropy_with_integer_labels",
    "linear_softmax_cross_entropy_with_integer_labels":
        "softmax_cross_entropy_with_integer_labels",
    "chunked_sparse_distillation_loss": "sparse_distillation_loss",
    "linear_sparse_distillation_loss": "sparse_distillation_loss",
    "chunked_generalized_js_divergence": "generalized_js_divergence",
    "linear_generalized_js_divergence": "generalized_js_divergence",
    "chunked_reverse_kl_distillation_loss": "reverse_kl_distillation_loss",
    "linear_reverse_kl_distillation_loss": "reverse_kl_distillation_loss",
}

# Options of the JAX functions (not registry parameters) that a twin reads, where the
# function takes them: per form, or for every softmax form.
_SOFTMAX_OPTIONS = ("soft_cap",)
_FORM_OPTIONS: dict[str, tuple[str, ...]] = {
    "softmax_cross_entropy_with_integer_labels":
        ("ignore_index", "class_weights", "example_weights"),
    "sparse_distillation_loss": ("tail",),
}
# Options that are not numbers, kept as given.
_KEPT_AS_GIVEN = ("tail", "ignore_index")


def _number(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(sp.nsimplify(v, rational=True) for v in np.ravel(value).tolist())
    return sp.nsimplify(value, rational=True)


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
    """The SymPy form of one registry loss.

    ``form`` names the formula (the plain loss's registry name, or for the chunked
    generalized JSD and reverse-KL distillation, which have no plain form, the loss
    without the ``chunked_``): every loss of a form has the same twin.
    """

    name: str
    output: str
    link: str
    input: str
    targets: str
    form: str = ""
    family: str = "dense"

    def options(self) -> dict[str, Any]:
        """The twin's options that the JAX function takes, with the function's defaults."""
        signature = inspect.signature(get_loss(self.name).fn).parameters
        names = list(_FORM_OPTIONS.get(self.form, ()))
        if self.link == "softmax":
            names += list(_SOFTMAX_OPTIONS)
            if self.form in _Z_LOSS:
                names.append("z_loss")
        return {n: signature[n].default for n in names if n in signature}

    def parameters(self, values: Mapping[str, Any] | None = None,
                   symbolic: bool = False) -> dict[str, Any]:
        """Parameter values as SymPy numbers (defaults filled in), or all as symbols.

        The registry parameters and the options of :meth:`options`. With
        ``symbolic=True`` every numeric parameter is a symbol, optional ones too,
        so a check made with them covers every value; ``tail``, ``ignore_index``
        and ``class_weights`` stay as given.
        """
        spec = get_loss(self.name)
        defaults = {**spec.defaults, **self.options()}
        merged = {**defaults, **(values or {})}
        unknown = set(merged) - set(defaults)
        if unknown:
            raise KeyError(f"{self.name} has no parameter(s) {sorted(unknown)} "
                           f"(parameters: {sorted(defaults) or 'none'})")
        result: dict[str, Any] = {}
        for name, value in merged.items():
            if name in _KEPT_AS_GIVEN:
                result[name] = value
            elif symbolic and name in PARAMETER_SYMBOLS:
                result[name] = PARAMETER_SYMBOLS[name]
            else:
                result[name] = _number(value)
        return result

    def capped(self, z: Sequence[Expr], params: Mapping[str, Any]) -> list[Expr]:
        """The logits the softmax sees: ``c tanh(z / c)`` with ``soft_cap`` c, else z."""
        cap = params.get("soft_cap")
        return list(z) if cap is None else [cap * sp.tanh(zi / cap) for zi in z]

    def z_term(self, z: Sequence[Expr], targets: Any, params: Mapping[str, Any]) -> Expr:
        """The z-loss term in the (capped) logits ``z``; 0 without one."""
        weight = params.get("z_loss")
        if weight is None or weight == 0:
            return sp.Integer(0)
        if self.form not in _Z_LOSS:
            raise ValueError(f"{self.name}: its twin has no z-loss")
        return weight * _Z_LOSS[self.form](z, targets, params)

    def in_probabilities(self, p: Any, q: Any, params: Mapping[str, Any]) -> Expr:
        """The loss in the predicted probabilities (vectors for class losses). The z-loss
        is not a function of them (it depends on the logits' shift, see :meth:`z_term`),
        and a soft cap only limits which probabilities the logits reach."""
        return _FORMS[self.form](p, q, params)

    def in_logits(self, z: Any, targets: Any, params: Mapping[str, Any]) -> Expr:
        """The loss in the logits, as the JAX function computes it."""
        if self.input == "probabilities":
            raise ValueError(f"{self.name} takes probabilities, not logits")
        if self.link == "sigmoid":
            return self.in_probabilities(sigmoid(z), targets, params)
        capped = self.capped(z, params)
        if self.form in _LOGIT_FORMS:
            loss = _LOGIT_FORMS[self.form](capped, targets, params)
        else:
            loss = self.in_probabilities(softmax(capped), targets, params)
        return loss + self.z_term(capped, targets, params)

    @property
    def direct_logits(self) -> bool:
        """Whether the form is written in the logits, not through the probabilities."""
        return self.form in _LOGIT_FORMS


def has_twin(name: str) -> bool:
    """Whether the registry loss ``name`` has a SymPy twin."""
    try:
        twin(name)
    except KeyError:
        return False
    return True


def twin(name: str) -> Twin:
    """The SymPy twin of the registry loss ``name``, of any family (KeyError if unknown)."""
    spec = get_loss(name)
    form = _SHARED_FORM.get(name, name)
    if form not in _FORMS:
        raise KeyError(f"loss {name!r} has no SymPy twin yet; add one to softxent/symbolic")
    return Twin(spec.name, spec.output, spec.link, spec.input, spec.targets, form, spec.family)


def all_twins(family: Family | None = "dense") -> list[Twin]:
    """The twin of every registry loss of ``family`` (every family for None), in the
    registry's order."""
    return [twin(spec.name) for spec in list_losses(family=family)]


def symbols(prefix: str, k: int, **assumptions: bool) -> list[sp.Symbol]:
    return list(sp.symbols(f"{prefix}1:{k + 1}", **assumptions))
