"""A loss as a symbolic expression: a user's own, or a registry loss's twin."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import sympy as sp

from ._parse import (
    KINDS,
    ExpressionError,
    adopt_expression,
    allowed_variables,
    highest_class,
    parameter_symbol,
    parse_expression,
)

DEFAULT_CLASSES = 3  # K for a separable loss when none is stated


@dataclasses.dataclass(frozen=True)
class SymbolicLoss:
    """A soft-target loss written as a formula.

    Attributes:
      name: what to call it in reports.
      expr: a SymPy expression or a string (read by a whitelist parser, never
        evaluated as Python). The variables depend on ``kind``:

        - ``"elementwise"``: ``p`` and ``q`` in (0, 1), one component (a sigmoid output);
        - ``"separable"``: ``p`` and ``q``; the loss is Σ_i f(p_i, q_i) with ``expr`` = f
          and p, q on the simplex;
        - ``"distribution"``: ``p1 .. pK`` and ``q1 .. qK`` for K = ``classes``.
      kind: one of the three above.
      params: the loss's parameters with their default values, ``{name: value}``.
      classes: K, required for a distribution loss unless the expression names
        ``pK`` or ``qK`` (then K is the largest index); for a separable loss, the
        number of classes the analysis uses (default 3).

    Example:
      >>> focal = SymbolicLoss("focal", "-q*(1 - p)**gamma*log(p)", "separable", {"gamma": 2})
    """

    name: str
    expr: Any
    kind: str
    params: Mapping[str, float] = dataclasses.field(default_factory=dict)
    classes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ExpressionError(f"name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ExpressionError(f"{self.name}: kind must be one of {', '.join(KINDS)}, "
                                  f"got {self.kind!r}")
        if not isinstance(self.params, Mapping):
            raise ExpressionError(f"{self.name}: params must be a mapping name -> default, "
                                  f"got {type(self.params).__name__}")
        for key, value in self.params.items():
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise ExpressionError(f"{self.name}: parameter {key!r} must have a finite "
                                      f"number as its default, got {value!r}")
        classes = self.classes
        if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int)
                                    or classes < 2):
            raise ExpressionError(f"{self.name}: classes must be an integer >= 2, "
                                  f"got {classes!r}")
        if self.kind == "distribution":
            named = highest_class(self.expr if isinstance(self.expr, str)
                                  else " ".join(map(str, getattr(self.expr, "free_symbols",
                                                                 ()))))
            if classes is None:
                if named < 2:
                    raise ExpressionError(f"{self.name}: a distribution loss needs K >= 2 "
                                          f"classes: state classes=K or use p1..pK, q1..qK")
                classes = named
            elif named > classes:
                raise ExpressionError(f"{self.name}: the expression uses index {named} but "
                                      f"K = {classes} classes (kind/K mismatch)")
        elif self.kind == "separable" and classes is None:
            classes = DEFAULT_CLASSES
        object.__setattr__(self, "classes", classes)
        reader = parse_expression if isinstance(self.expr, str) else adopt_expression
        try:
            parsed = reader(self.expr, kind=self.kind, classes=classes, params=self.params)
        except ExpressionError as err:
            raise ExpressionError(f"{self.name}: {err}") from None
        variables = allowed_variables(self.kind, classes)
        predicted = [s for n, s in variables.items() if n.startswith("p")]
        if not parsed.free_symbols & set(predicted):
            raise ExpressionError(f"{self.name}: the expression does not depend on the "
                                  f"prediction ({', '.join(n for n in variables if n[0] == 'p')})")
        object.__setattr__(self, "expression", parsed)

    expression: sp.Expr = dataclasses.field(init=False, repr=False, compare=False)

    def at(self, values: Mapping[str, float] | None = None) -> tuple[sp.Expr, dict[str, float]]:
        """The expression with the parameters set (defaults, overridden by ``values``)."""
        values = dict(values or {})
        unknown = set(values) - set(self.params)
        if unknown:
            raise ExpressionError(f"{self.name} has no parameter(s) {sorted(unknown)} "
                                  f"(parameters: {sorted(self.params) or 'none'})")
        merged = {**self.params, **values}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise ExpressionError(f"{self.name}: parameter {key!r} must be a finite "
                                      f"number, got {value!r}")
        substitution = {parameter_symbol(k): sp.nsimplify(v, rational=True)
                        for k, v in merged.items()}
        return self.expression.xreplace(substitution), {k: float(v) for k, v in merged.items()}


def registry_symbolic_loss(name: str, classes: int | None = None,
                           params: Mapping[str, Any] | None = None
                           ) -> tuple[SymbolicLoss, dict[str, Any]]:
    """The registry loss ``name`` as a :class:`SymbolicLoss` at the given parameters.

    A loss registered with its own ``SymbolicLoss`` uses it; a built-in loss is
    read from its SymPy twin, evaluated at the parameter values (optional
    parameters may be None, which a twin reads as absent). Returns the loss and
    the parameter values it was built at.
    """
    from .._registry import get_loss

    spec = get_loss(name, family="dense")
    own = getattr(spec, "symbolic", None)
    if own is not None:
        k = classes if own.kind == "separable" and classes is not None else own.classes
        loss = dataclasses.replace(own, classes=k) if k != own.classes else own
        _, shown = loss.at(params)
        return loss, shown
    from ._parse import P, Q, probability_symbols
    from ._twins import twin

    values = dict(params or {})
    for key, value in values.items():
        spec.param(key).validate(name, value)
    t = twin(name)
    # The registry parameters only: the twin's options (z_loss, soft_cap) act on the
    # logits, not on the probabilities this form is in.
    numbers = {k: v for k, v in t.parameters(values).items() if k in spec.defaults}
    shown = {k: None if v is None else float(v) for k, v in numbers.items()}
    if t.output == "per_component":
        expr = t.in_probabilities(P, Q, numbers)
        return SymbolicLoss(name, expr, "elementwise"), shown
    k = classes or DEFAULT_CLASSES
    expr = t.in_probabilities(probability_symbols("p", k), probability_symbols("q", k), numbers)
    return SymbolicLoss(name, expr, "distribution", classes=k), shown
