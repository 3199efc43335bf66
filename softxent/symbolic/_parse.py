"""A user's loss expression, read with a whitelist and never evaluated as Python.

The text is parsed by Python's ``ast`` into a syntax tree, and the tree is
walked node by node: numbers, the whitelisted names (the probabilities and
targets of the loss's kind and its declared parameters), the whitelisted
functions, and + - * / ** (``^`` is read as ``**``). Anything else (attribute
access, subscripts, strings, keywords, comparisons, an unknown name) is refused
with a message naming it and its column, before anything is evaluated.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping

import sympy as sp

KINDS = ("elementwise", "separable", "distribution")

FUNCTIONS: dict[str, object] = {
    "log": sp.log, "exp": sp.exp, "sqrt": sp.sqrt, "Abs": sp.Abs, "abs": sp.Abs,
    "Max": sp.Max, "Min": sp.Min, "max": sp.Max, "min": sp.Min,
    "tanh": sp.tanh, "sinh": sp.sinh, "cosh": sp.cosh, "sin": sp.sin, "cos": sp.cos,
    "atan": sp.atan, "log1p": lambda x: sp.log(1 + x), "expm1": lambda x: sp.exp(x) - 1,
    "sigmoid": lambda x: 1 / (1 + sp.exp(-x)),
}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_INDEXED = re.compile(r"^([pq])([1-9][0-9]*)$")


class ExpressionError(ValueError):
    """A loss expression that is not allowed; the message names what and where."""


def probability_symbols(prefix: str, k: int) -> list[sp.Symbol]:
    """``prefix1 .. prefixK`` as positive symbols (probabilities are > 0 where analysed)."""
    return [sp.Symbol(f"{prefix}{i}", positive=True) for i in range(1, k + 1)]


P = sp.Symbol("p", positive=True)
Q = sp.Symbol("q", positive=True)


def parameter_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def check_parameter_names(names: Iterable[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ExpressionError(f"parameter names must be identifiers, got {name!r}")
        if name in FUNCTIONS or name in CONSTANTS or name in ("p", "q") or _INDEXED.match(name):
            raise ExpressionError(f"parameter name {name!r} is taken by a variable, "
                                  f"function or constant")


def allowed_variables(kind: str, classes: int | None) -> dict[str, sp.Symbol]:
    """The variables a loss of ``kind`` may use, by name."""
    if kind in ("elementwise", "separable"):
        return {"p": P, "q": Q}
    if kind == "distribution":
        if classes is None:
            raise ExpressionError("a distribution loss needs the number of classes K")
        return {s.name: s for s in probability_symbols("p", classes) + probability_symbols(
            "q", classes)}
    raise ExpressionError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def _where(node: ast.AST) -> str:
    return f"at column {getattr(node, 'col_offset', 0) + 1}"


def _describe_variables(kind: str, classes: int | None) -> str:
    if kind == "distribution":
        return f"p1..p{classes}, q1..q{classes}"
    return "p, q"


class _Reader:
    def __init__(self, text: str, kind: str, classes: int | None,
                 params: Mapping[str, sp.Symbol]) -> None:
        self.text = text
        self.kind = kind
        self.classes = classes
        self.variables = allowed_variables(kind, classes)
        self.params = dict(params)

    def fail(self, message: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(f"expression {self.text!r}: {message} {_where(node)}")

    def name(self, node: ast.Name) -> sp.Expr:
        name = node.id
        if name in self.variables:
            return self.variables[name]
        if name in self.params:
            return self.params[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise self.fail(f"function {name!r} is used without arguments", node)
        indexed = _INDEXED.match(name)
        if indexed and self.kind == "distribution":
            raise self.fail(f"{name!r} is beyond K = {self.classes} classes (variables: "
                            f"{_describe_variables(self.kind, self.classes)})", node)
        if indexed or (name in ("p", "q") and self.kind == "distribution"):
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise self.fail(f"{name!r} is not a variable of {article} {self.kind} loss (variables: "
                            f"{_describe_variables(self.kind, self.classes)})", node)
        known = ", ".join(sorted(self.params)) or "none declared"
        raise self.fail(f"unknown symbol {name!r} (variables: "
                        f"{_describe_variables(self.kind, self.classes)}; parameters: "
                        f"{known})", node)

    def read(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Expression):
            return self.read(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise self.fail(f"constant {node.value!r} is not a number", node)
            return sp.nsimplify(node.value, rational=True) if isinstance(node.value, float) \
                else sp.Integer(node.value)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.read(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            operators = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul,
                         ast.Div: lambda a, b: a / b, ast.Pow: sp.Pow}
            for kind, combine in operators.items():
                if isinstance(node.op, kind):
                    return combine(self.read(node.left), self.read(node.right))
            raise self.fail(f"operator {type(node.op).__name__} is not allowed "
                            f"(allowed: + - * / ** ^)", node)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.read(node.func)  # names what is wrong with it (an attribute, ...)
                raise self.fail("only named functions can be called", node)
            name = node.func.id
            if name not in FUNCTIONS:
                raise self.fail(f"unknown function {name!r} (allowed: "
                                f"{', '.join(sorted(FUNCTIONS))})", node)
            if node.keywords:
                raise self.fail(f"{name}() takes no keyword arguments", node)
            if not node.args:
                raise self.fail(f"{name}() needs an argument", node)
            args = [self.read(a) for a in node.args]
            try:
                return FUNCTIONS[name](*args)  # type: ignore[operator]
            except TypeError:
                raise self.fail(f"{name}() does not take {len(args)} argument(s)",
                                node) from None
        if isinstance(node, ast.Attribute):
            raise self.fail("attribute access is not allowed", node)
        if isinstance(node, ast.Subscript):
            raise self.fail("subscripts are not allowed (write p1, q2, ...)", node)
        raise self.fail(f"{type(node).__name__} is not allowed in a loss expression", node)


def parse_expression(text: str, *, kind: str, classes: int | None = None,
                     params: Iterable[str] = ()) -> sp.Expr:
    """The SymPy expression of the loss ``text`` (ExpressionError if anything is not allowed).

    Example:
      >>> parse_expression("-q*log(p) + eps*q*(1 - p)", kind="separable", params=["eps"])
      eps*q*(1 - p) - q*log(p)
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be a string, got {type(text).__name__}")
    names = list(params)
    check_parameter_names(names)
    if kind not in KINDS:
        raise ExpressionError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        # ^ is a power, as in SymPy's parser (Python's ^ would bind looser than *).
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as err:
        column = f" at column {err.offset}" if err.offset else ""
        raise ExpressionError(f"expression {text!r} is not a formula{column}: "
                              f"{err.msg}") from None
    reader = _Reader(text, kind, classes, {n: parameter_symbol(n) for n in names})
    return reader.read(tree)


def adopt_expression(expr: sp.Basic, *, kind: str, classes: int | None = None,
                     params: Iterable[str] = ()) -> sp.Expr:
    """A user's SymPy expression with its symbols renamed onto softxent's, checked by name."""
    if not isinstance(expr, sp.Expr):
        raise ExpressionError(f"expression must be a SymPy expression or a string, got "
                              f"{type(expr).__name__}")
    names = list(params)
    check_parameter_names(names)
    variables = allowed_variables(kind, classes)
    replacements = {}
    for symbol in expr.free_symbols:
        name = str(symbol)
        if name in variables:
            replacements[symbol] = variables[name]
        elif name in names:
            replacements[symbol] = parameter_symbol(name)
        else:
            known = ", ".join(sorted(names)) or "none declared"
            raise ExpressionError(f"expression {sp.sstr(expr)!r}: unknown symbol {name!r} "
                                  f"(variables: {_describe_variables(kind, classes)}; "
                                  f"parameters: {known})")
    undefined = [f for f in expr.atoms(sp.Function) if isinstance(f, sp.core.function.AppliedUndef)]
    if undefined:
        raise ExpressionError(f"expression {sp.sstr(expr)!r}: unknown function "
                              f"{undefined[0].func.__name__!r}")
    return expr.xreplace(replacements)


def highest_class(text: str) -> int:
    """The largest index K in p1..pK, q1..qK that ``text`` names (0 if none)."""
    found = [int(m.group(2)) for m in re.finditer(r"\b([pq])([1-9][0-9]*)\b", text)]
    return max(found, default=0)
