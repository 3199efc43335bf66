"""A small engine for derivations whose every step SymPy checks.

A :class:`Derivation` is a titled list of steps. Each step states a claim and
carries the check that establishes it: an identity that simplifies to 0, a
solution substituted back, a sign established under the domain assumptions, or
a lemma that is itself a checked derivation. Steps are checked when they are
added, and a step that does not check raises :class:`StepFailed`, so nothing is
rendered as proved that SymPy did not confirm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import sympy as sp


class StepFailed(AssertionError):
    """A derivation step whose check SymPy could not confirm."""


@dataclasses.dataclass(frozen=True)
class Step:
    """One checked claim: ``lhs relation rhs`` with how it was checked."""

    claim: str
    lhs: sp.Basic | None
    relation: str
    rhs: sp.Basic | None
    how: str


def proves_zero(expr: sp.Basic) -> bool:
    """True only if SymPy proves ``expr == 0``: the cheap rewritings first (rational
    functions, expanded logarithms, powers), ``simplify`` last."""
    for transform in (sp.cancel, sp.together, lambda e: sp.expand(sp.expand_log(e, force=True)),
                      sp.powsimp, sp.simplify):
        try:
            reduced = transform(expr)
        except (TypeError, ValueError, NotImplementedError):
            continue
        if reduced == 0 or reduced.is_zero is True:
            return True
    return False


class Derivation:
    """A sequence of checked steps, rendered as text, LaTeX or Markdown."""

    def __init__(self, title: str, assumptions: str = "") -> None:
        self.title = title
        self.assumptions = assumptions
        self.steps: list[Step | Derivation] = []

    # -- steps ---------------------------------------------------------------

    def define(self, claim: str, name: sp.Basic, expr: sp.Basic) -> sp.Basic:
        """A definition needs no check; it is recorded so the text reads in order."""
        self.steps.append(Step(claim, name, "=", expr, "definition"))
        return expr

    def identity(self, claim: str, lhs: sp.Basic, rhs: sp.Basic, how: str = "") -> sp.Basic:
        """``lhs == rhs``, checked by reducing ``lhs - rhs`` to 0."""
        if not proves_zero(lhs - rhs):
            raise StepFailed(f"{self.title}: {claim}: SymPy could not reduce "
                             f"({sp.sstr(lhs)}) - ({sp.sstr(rhs)}) to 0")
        self.steps.append(Step(claim, lhs, "=", rhs, how or "lhs - rhs simplifies to 0"))
        return rhs

    def derivative(self, claim: str, expr: sp.Basic, var: sp.Symbol, claimed: sp.Basic,
                   order: int = 1, of: str = "ℓ") -> sp.Basic:
        """d^order expr / d var^order equals ``claimed``, checked by differentiating."""
        computed = sp.diff(expr, var, order)
        if not proves_zero(computed - claimed):
            raise StepFailed(f"{self.title}: {claim}: d/d{var} gives {sp.sstr(computed)}, "
                             f"not {sp.sstr(claimed)}")
        lhs = sp.Derivative(sp.Symbol(of), var, order)
        self.steps.append(Step(claim, lhs, "=", claimed, "differentiated by SymPy"))
        return claimed

    def solution(self, claim: str, equation: sp.Basic, var: sp.Symbol,
                 expected: Sequence[sp.Basic]) -> list[sp.Basic]:
        """The solutions of ``equation == 0`` in ``var`` are exactly ``expected``.

        Checked two ways: ``sympy.solve`` returns that set, and each solution
        substituted back makes the equation vanish.
        """
        found = sp.solve(sp.Eq(equation, 0), var, dict=False)
        found_set = {sp.simplify(s) for s in found}
        expected_set = {sp.simplify(s) for s in expected}
        if found_set != expected_set:
            raise StepFailed(f"{self.title}: {claim}: solve gives {found}, expected "
                             f"{list(expected)}")
        for s in expected:
            if not proves_zero(equation.subs(var, s)):
                raise StepFailed(f"{self.title}: {claim}: {var} = {s} does not satisfy it")
        self.steps.append(Step(claim, equation, "= 0 ⇔", sp.Eq(var, expected[0])
                               if len(expected) == 1 else sp.FiniteSet(*expected),
                               "sympy.solve, each root substituted back"))
        return list(expected)

    def no_solution(self, claim: str, equation: sp.Basic, var: sp.Symbol) -> None:
        """``equation == 0`` has no solution in ``var`` (under its assumptions)."""
        found = sp.solve(sp.Eq(equation, 0), var)
        if found:
            raise StepFailed(f"{self.title}: {claim}: solve found {found}")
        self.steps.append(Step(claim, equation, "≠", sp.Integer(0),
                               "sympy.solve finds no root under the assumptions"))

    def sign(self, claim: str, expr: sp.Basic, sign: str,
             substitution: dict[sp.Symbol, sp.Basic] | None = None, how: str = "") -> None:
        """``expr`` is positive / negative / nonnegative / nonpositive.

        ``substitution`` re-expresses variables through positive symbols that
        encode the domain (e.g. p = q / (1 + u), u > 0, for 0 < p < q), so that
        SymPy's assumption system can decide the sign.
        """
        attribute = {"positive": "is_positive", "negative": "is_negative",
                     "nonnegative": "is_nonnegative", "nonpositive": "is_nonpositive"}[sign]
        raw = expr.subs(substitution or {}, simultaneous=True)
        # The form as written first (a sum of squares stays one), then simplified.
        for target in (raw, sp.factor(sp.simplify(raw))):
            if getattr(target, attribute) is True:
                break
        else:
            raise StepFailed(f"{self.title}: {claim}: SymPy cannot establish that "
                             f"{sp.sstr(target)} is {sign}")
        relation = {"positive": ">", "negative": "<", "nonnegative": "≥",
                    "nonpositive": "≤"}[sign]
        self.steps.append(Step(claim, expr, relation, sp.Integer(0),
                               how or "sign decided by SymPy's assumptions"))

    def holds(self, claim: str, check: Callable[[], bool], lhs: sp.Basic | None = None,
              relation: str = "", rhs: sp.Basic | None = None, how: str = "") -> None:
        """A claim established by a check function (e.g. a matrix identity)."""
        try:
            passed = bool(check())  # SymPy relations give BooleanTrue, not True
        except TypeError as undecided:
            raise StepFailed(f"{self.title}: {claim}: undecidable: {undecided}") from None
        if not passed:
            raise StepFailed(f"{self.title}: {claim}: the check failed")
        self.steps.append(Step(claim, lhs, relation, rhs, how))

    def lemma(self, derivation: Derivation) -> Derivation:
        """A lemma is a checked derivation of its own, included in full."""
        self.steps.append(derivation)
        return derivation

    def conclude(self, claim: str) -> None:
        """A conclusion that follows from the checked steps above it."""
        self.steps.append(Step(claim, None, "", None, "from the steps above"))

    # -- rendering -----------------------------------------------------------

    def render(self, fmt: str = "text") -> str:
        if fmt not in ("text", "latex", "markdown"):
            raise ValueError(f"format must be 'text', 'latex' or 'markdown', got {fmt!r}")
        return "\n".join(self._lines(fmt, depth=0)) + "\n"

    def _lines(self, fmt: str, depth: int) -> list[str]:
        lines: list[str] = []
        if fmt == "text":
            bar = "=" if depth == 0 else "-"
            head = f"{'  ' * depth}{self.title}"
            lines += [head, f"{'  ' * depth}{bar * len(self.title)}"]
            if self.assumptions:
                lines.append(f"{'  ' * depth}Assumptions: {self.assumptions}")
        elif fmt == "markdown":
            lines.append(f"{'#' * (depth + 2)} {self.title}")
            if self.assumptions:
                lines.append(f"*Assumptions:* {self.assumptions}\n")
        else:
            lines.append(("\\section*{" if depth == 0 else "\\subsection*{") + self.title + "}")
            if self.assumptions:
                lines.append(f"\\textit{{Assumptions:}} {self.assumptions}\n")
        for number, step in enumerate(self.steps, start=1):
            if isinstance(step, Derivation):
                lines += ([""] if fmt != "latex" else []) + step._lines(fmt, depth + 1)
                continue
            lines += _render_step(number, step, fmt, depth)
        return lines


def _render_step(number: int, step: Step, fmt: str, depth: int) -> list[str]:
    indent = "  " * depth
    has_math = step.lhs is not None
    if fmt == "text":
        lines = [f"{indent}{number}. {step.claim}  [{step.how}]"]
        if has_math:
            relation = _RELATIONS.get(step.relation)
            if relation is not None and step.rhs is not None:
                # SymPy's own relational printing keeps both sides on one baseline.
                block = sp.pretty(relation(step.lhs, step.rhs, evaluate=False),
                                  use_unicode=True)
            else:
                rhs = "" if step.rhs is None else sp.pretty(step.rhs, use_unicode=True)
                block = _side_by_side(sp.pretty(step.lhs, use_unicode=True),
                                      f" {step.relation} ", rhs)
            lines += [f"{indent}     {row}" for row in block.splitlines()]
        return lines
    if fmt == "markdown":
        line = f"{number}. {step.claim} *({step.how})*"
        if has_math:
            rhs = "" if step.rhs is None else sp.latex(step.rhs)
            line += f"\n\n   $$ {sp.latex(step.lhs)} {_latex_relation(step.relation)} {rhs} $$\n"
        return [line]
    line = f"\\paragraph{{{number}.}} {step.claim} (\\emph{{{step.how}}})"
    if has_math:
        rhs = "" if step.rhs is None else sp.latex(step.rhs)
        line += f"\n\\[ {sp.latex(step.lhs)} {_latex_relation(step.relation)} {rhs} \\]"
    return [line]


_RELATIONS = {"=": sp.Eq, "<": sp.Lt, ">": sp.Gt, "≥": sp.Ge, "≤": sp.Le, "≠": sp.Ne}


def _latex_relation(relation: str) -> str:
    return {"≥": "\\geq", "≤": "\\leq", "≠": "\\neq", "= 0 ⇔": "= 0 \\iff"}.get(relation, relation)


def _side_by_side(left: str, middle: str, right: str) -> str:
    """Join multi-line pretty-printed blocks horizontally, centred vertically."""
    blocks = [left.splitlines() or [""], [middle], right.splitlines() or [""]]
    height = max(len(b) for b in blocks)
    padded = []
    for block in blocks:
        width = max(len(r) for r in block)
        top = (height - len(block)) // 2
        rows = [""] * top + block + [""] * (height - len(block) - top)
        padded.append([r.ljust(width) for r in rows])
    return "\n".join("".join(parts).rstrip() for parts in zip(*padded, strict=True))
