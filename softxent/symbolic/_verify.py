r"""Check the shipped JAX losses against their SymPy twins: values, gradients, Hessians.

For every registry loss, at its defaults and at one non-default setting, in
float32 and float64, three orders are compared with the SymPy twin evaluated by
mpmath:

- order 0, the value;
- order 1, ``jax.grad`` in the predictions;
- order 2, a Hessian-vector product, forward over reverse (``jax.jvp`` of
  ``jax.grad``) along a random direction ``v``.

Families. Every family is checked, each loss against its twin (see
:mod:`softxent.symbolic._twins`): the integer-label losses at one-hot label rows
(the peak class in some rows, another class in the rest), the top-k teacher's at
a teacher's log-probabilities with k < K in some rows and k = K in others (its
classes in a shuffled order), the chunked forms ``CHUNK_ROWS`` rows at a time
(so the points make several chunks and a partial last one), and the linear forms
at the output matrix ``W`` a permutation matrix with no bias, hidden states the
logits permuted (a teacher's too), which gives the logits exactly: the check
covers the loss in the logits and the product's gradient, not a general ``W``
or a bias. A chunked or linear form and its plain form share a twin; at the same
parameters and dtype they share the points (drawn from a seed of the twin's form)
and one reference, which each of them is compared with. ``VARIANTS`` adds
settings per form; the static options ``z_loss`` and ``soft_cap`` are among
them, for each function that takes them.

Points. Each row is drawn from one of these regions, in the dtype: moderate
logits (normal, scale 3); saturated logits, out to 1.2 times the log of the
largest float (past where exp overflows: about 88.7 in float32 and 709.8 in
float64); logits within a relative 1e-3 of that overflow point; huge logits, out
to the largest finite float for the elementwise losses and to half of it in a
softmax row (so that the row's logit differences stay finite); rows that mix
these scales. Probabilities run to one ulp of 1 (``1 - eps/2``) and to the
smallest normal float (XLA flushes subnormal inputs to 0 on the CPU, so below
it the loss sees 0); targets include exact 0 and exact 1 (one-hot rows, a zero
class). The JAX function and the reference see the same rounded inputs.

Reference. The twin's value, gradient and Hessian (so ``H v``) are lambdified
for mpmath and evaluated with digits to spare beyond the cancellation the row
allows (30 + 2 max|z| / ln 10 digits, the exponent capped at e^-760, below every
float64): ``1 - p`` is written as the sum of the other classes' probabilities
(softmax) or as ``sigmoid(-x)`` (sigmoid), so that nothing cancels at huge
logits. A zero target is the limit from above (evaluated at 1e-(digits + 40));
where that limit diverges the exact value is infinite (reverse KL).

Error measure. At a point, with exact order-k quantity ``r`` (the value, or the
vector over the classes) and computed ``c``::

    e = ||c - r||_inf / max(u ||r||_inf, phi, tiny)

with ``u`` the dtype's unit roundoff (2^-24, 2^-53), ``tiny`` its smallest
normal number, and ``phi`` the resolution floor: how far ``r`` itself moves
when each input that rounds (the predictions and the targets, not labels or a
top-k mask) moves by one unit roundoff of its own, in whichever direction moves
``r`` most, to first order::

    phi = u * sum_a |a dr/da|

(exactly, by mpmath: one directional derivative per input). That is the
componentwise condition of ``r``: inputs known to their dtype's resolution
determine ``r`` to no better than that. A single direction would miss some:
random signs leave the difference of a pair of logits unmoved half the time (for
[-709, 710] in float64 that rounding alone is 250 units of ``u`` in
``e^(z_0 - z_1)``), and a scaling of every logit leaves two equal logits equal.
So ``e`` counts units of roundoff: a relative error in units of ``u`` where ``r`` is well
determined by the inputs, and an absolute error in units of ``phi`` where the
rounding of the inputs alone already moves ``r`` by more than ``u |r|`` (near a
cancellation, such as the gradient at a minimiser). A loss passes an order in a
dtype if ``e <= TOLERANCE`` at every point where the exact value is finite in the
dtype; where an exact derivative exceeds the largest float / ``OVERFLOW_MARGIN``
(16: an intermediate such as 1/p^2 may overflow first) the computed one must not
be NaN, and where the exact value overflows the computed value must be inf. Where
a zero target's limit diverges (reverse KL: p log(p / q) with q -> 0) the exact
value is inf; the computed one may be finite where p underflows in the dtype,
and must not be NaN; derivatives are not compared there.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import inspect
import math
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .._files import atomic_file
from .._registry import LossSpec, list_losses
from ._twins import Twin, has_twin, symbols, twin

K = 3  # classes for the class losses
ORDERS = (0, 1, 2)
DTYPES = ("float32", "float64")
# The largest error, in units of roundoff (see the module docstring), that passes.
TOLERANCE = 64.0
# The absolute floor, in units of the dtype's smallest normal number (see the docstring).
TINY_FLOOR = 2.0**20
# An exact derivative above the largest float / OVERFLOW_MARGIN may come out inf.
OVERFLOW_MARGIN = 16.0
ORDER_NAMES = {0: "value", 1: "gradient", 2: "Hessian-vector product"}

# Non-default settings per twin form (see Twin.form), so the parameters and options are
# verified too; a setting applies to each loss of the form whose function takes all of it.
# A soft cap of 30 saturates within the saturated rows (|z| up to 106 in float32); the
# z-loss weight of PaLM's 1e-4 order, larger so that its term is not lost in the rest.
Z_LOSS = {"z_loss": 1e-3}
SOFT_CAP = {"soft_cap": 30.0}
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "softmax_cross_entropy": [{"label_smoothing": 0.1}, Z_LOSS, SOFT_CAP],
    "sigmoid_binary_cross_entropy": [{"pos_weight": 2.5, "label_smoothing": 0.2}],
    "sigmoid_focal_loss": [{"gamma": 1.5, "alpha": 0.25}],
    "focal_cross_entropy": [{"gamma": 0.5}],
    "poly1_cross_entropy": [{"epsilon": -0.5}],
    "generalized_cross_entropy": [{"k": 0.3}],
    "kl_divergence": [Z_LOSS, SOFT_CAP],
    "distillation_loss": [{"temperature": 4.0}, Z_LOSS, SOFT_CAP],
    # ignore_index 1 (a class): a one-hot row cannot hold PyTorch's -100.
    "softmax_cross_entropy_with_integer_labels": [
        {"label_smoothing": 0.1, "class_weights": (0.5, 2.0, 1.0), "ignore_index": 1,
         **Z_LOSS},
        {"example_weights": 0.75, **SOFT_CAP},
    ],
    "sparse_distillation_loss": [{"tail": "bucket", "temperature": 0.5}],
    "generalized_js_divergence": [{"beta": 0.0, "temperature": 2.0}, {"beta": 1.0}],
    "reverse_kl_distillation_loss": [{"temperature": 0.5}],
}
CHUNK_ROWS = 3  # rows per chunk of the chunked and linear forms

_STEP_DIGITS = 20  # the directional derivative's step, 10^-20 relative
_EXTRA_DIGITS = 25  # digits added for the perturbed evaluation


@dataclasses.dataclass(frozen=True)
class Result:
    """The worst error of one loss setting, at one order, in one dtype."""

    loss: str
    params: dict[str, Any]
    order: int
    dtype: str
    points: int  # points where the order was compared
    max_err: float  # in units of roundoff (see the module docstring)
    worst: dict[str, Any]  # the worst point: inputs, exact and computed
    failures: list[str]  # points where the computed result is NaN or wrongly infinite

    @property
    def passed(self) -> bool:
        return not self.failures and self.max_err <= TOLERANCE

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}

    def describe(self) -> str:
        """One line naming the loss, order, dtype and the worst point."""
        params = format_params(self.params)
        text = (f"{self.loss} ({params}), order {self.order} ({ORDER_NAMES[self.order]}), "
                f"{self.dtype}: error {self.max_err:.3g} units of roundoff")
        if self.worst:
            w = self.worst
            text += (f" at predictions={w['predictions']}, targets={w['targets']}"
                     + (f", v={w['direction']}" if self.order == 2 else "")
                     + f" (exact {w['exact']}, computed {w['computed']})")
        if self.failures:
            text += f"; {len(self.failures)} non-finite: {self.failures[0]}"
        return text


def format_params(params: Mapping[str, Any]) -> str:
    """``k=v, ...`` for a setting (numbers with ``:g``), or ``defaults``."""
    def shown(v: Any) -> str:
        if isinstance(v, list | tuple):
            return "(" + ", ".join(shown(x) for x in v) + ")"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    return ", ".join(f"{k}={shown(v)}" for k, v in params.items()) or "defaults"


# -- points -------------------------------------------------------------------------


def _logit_rows(rng: np.random.Generator, n: int, width: int, dtype: np.dtype,
                limit: float) -> np.ndarray:
    info = np.finfo(dtype)
    overflow = float(np.log(info.max))
    region = rng.integers(0, 5, size=(n, 1))
    x = rng.normal(0, 3, size=(n, width))
    sign = rng.choice([-1.0, 1.0], size=(n, width))
    saturated = rng.uniform(-1.2 * overflow, 1.2 * overflow, size=(n, width))
    edge = sign * overflow * (1 + rng.uniform(-1e-3, 1e-3, size=(n, width)))
    huge = sign * 10 ** rng.uniform(math.log10(overflow), math.log10(limit), size=(n, width))
    huge[rng.random((n, width)) < 0.1] = 1.0  # a few rows reach +-limit exactly
    huge = np.where(huge == 1.0, sign * limit, huge)
    choices = np.stack([x, saturated, edge, huge])
    mixed = np.take_along_axis(
        choices, rng.integers(0, 4, size=(1, n, width)), axis=0
    )[0]
    x = np.select([region == 1, region == 2, region == 3, region == 4],
                  [saturated, edge, huge, mixed], x)
    return x.astype(dtype)


def _probability_rows(rng: np.random.Generator, n: int, width: int,
                      dtype: np.dtype) -> np.ndarray:
    info = np.finfo(dtype)
    u = float(info.eps) / 2
    region = rng.integers(0, 4, size=(n, width))
    uniform = rng.random((n, width))
    near_zero = float(info.tiny) * rng.integers(1, 5, size=(n, width))
    near_one = 1 - u * rng.integers(1, 5, size=(n, width))
    log_spread = 10 ** rng.uniform(math.log10(float(info.tiny)), 0, size=(n, width))
    p = np.select([region == 1, region == 2, region == 3],
                  [near_zero, near_one, log_spread], uniform)
    if width > 1:  # a probability vector; not renormalised (cross_entropy takes it as given)
        p = np.where(region == 2, p / width, p)
        soft = rng.dirichlet(np.ones(width), size=n)
        p = np.where(rng.random((n, 1)) < 0.3, soft, p)
    return p.astype(dtype)


def _label_rows(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """One-hot label rows: the peak class in about 40% of the rows, a random class else."""
    n, width = x.shape
    labels = np.where(rng.random(n) < 0.4, np.argmax(x, axis=1), rng.integers(0, width, n))
    return np.eye(width)[labels]


def _top_k_rows(rng: np.random.Generator, n: int, width: int, dtype: np.dtype) -> np.ndarray:
    """A teacher's top k as ``[log-probabilities, mask]`` rows (see ``_twins``): its
    logits from every region, a third of the rows with k = K, the rest k < K."""
    # A quarter of the largest float: the log-softmax in float64 stays finite.
    t = _logit_rows(rng, n, width, dtype, float(np.finfo(dtype).max) / 4).astype(np.float64)
    peak = np.max(t, axis=1, keepdims=True)
    log_probs = t - peak - np.log(np.sum(np.exp(t - peak), axis=1, keepdims=True))
    log_probs = np.minimum(log_probs.astype(dtype).astype(np.float64), 0.0)
    k = rng.integers(1, width + 1, size=n)
    ranks = np.argsort(np.argsort(-t, axis=1, kind="stable"), axis=1)
    mask = (ranks < k[:, None]).astype(np.float64)
    return np.concatenate([np.where(mask > 0, log_probs, 0.0), mask], axis=1)


def _target_rows(spec: LossSpec, rng: np.random.Generator, n: int, width: int,
                 dtype: np.dtype, x: np.ndarray | None = None) -> np.ndarray:
    if spec.targets in ("logits", "hidden"):
        return _logit_rows(rng, n, width, dtype, float(np.finfo(dtype).max) / 2)
    if spec.targets == "labels":
        assert x is not None
        return _label_rows(rng, x)
    if spec.targets == "top_k":
        return _top_k_rows(rng, n, width, dtype)
    if width == 1:
        t = rng.random((n, 1))
        kind = rng.integers(0, 4, size=(n, 1))
        return np.select([kind == 1, kind == 2], [0.0, 1.0], t).astype(dtype)
    t = rng.dirichlet(np.ones(width), size=n)
    kind = rng.integers(0, 4, size=n)
    t[kind == 1] = np.eye(width)[0]
    t[kind == 2, 1] = 0.0
    t = t / t.sum(axis=1, keepdims=True)
    return t.astype(dtype)


def sample(spec: LossSpec, n: int, rng: np.random.Generator,
           dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions, targets and Hessian directions for ``spec``: ``n`` rows in ``dtype``.

    Returned in float64, holding values exactly representable in ``dtype``. The
    predictions of a linear form are its logits (see ``_jax_arguments``); labels are
    one-hot rows and a top-k teacher ``2K`` numbers per row (see ``_twins``).
    """
    np_dtype = np.dtype(dtype)
    width = K if spec.output == "per_example" else 1
    if spec.input == "probabilities":
        x = _probability_rows(rng, n, width, np_dtype)
    else:
        limit = float(np.finfo(np_dtype).max) / (2 if spec.output == "per_example" else 1)
        x = _logit_rows(rng, n, width, np_dtype, limit)
    t = _target_rows(spec, rng, n, width, np_dtype, x)
    v = rng.normal(0, 1, size=(n, width)).astype(np_dtype)
    return x.astype(np.float64), t.astype(np.float64), v.astype(np.float64)


# -- the reference ------------------------------------------------------------------


def _complements(twin_: Twin, xs: Sequence[sp.Symbol]) -> tuple[list[sp.Expr], list[sp.Expr]]:
    """The predicted probabilities in the logits and 1 - p written without cancellation."""
    if twin_.link == "sigmoid":
        (x,) = xs
        return [1 / (1 + sp.exp(-x))], [1 / (1 + sp.exp(x))]
    exps = [sp.exp(x) for x in xs]
    total = sp.Add(*exps)
    rest = [sp.Add(*[e for j, e in enumerate(exps) if j != i]) / total for i in range(len(xs))]
    return [e / total for e in exps], rest


def _exact(value: Any) -> Any:
    """A parameter as the reference takes it: a float exactly as given (see
    rounded_parameters), not as the nearby simple rational that nsimplify makes of it."""
    if isinstance(value, float):
        return sp.Rational(value)
    if isinstance(value, tuple) and all(isinstance(v, float) for v in value):
        return tuple(sp.Rational(v) for v in value)
    return None


def target_width(t: Twin) -> int:
    """How many numbers one row's targets are (see ``_twins``)."""
    width = K if t.output == "per_example" else 1
    return 2 * width if t.targets == "top_k" else width


def _expression(name: str, param_items: tuple[tuple[str, Any], ...]):
    t = twin(name)
    values = dict(param_items)
    params = {k: v if _exact(values.get(k)) is None else _exact(values[k])
              for k, v in t.parameters(values).items()}
    width = K if t.output == "per_example" else 1
    xs = symbols("x", width, real=True)
    ts = symbols("t", target_width(t), real=True)
    arg_t = ts if t.output == "per_example" else ts[0]
    if t.input == "probabilities":
        expr = t.in_probabilities(xs if t.output == "per_example" else xs[0], arg_t, params)
    elif t.direct_logits:
        expr = t.in_logits(xs, ts, params)
    else:
        # The probability form with 1 - p replaced by its cancellation-free expression.
        ps = symbols("P", width, positive=True)
        expr = t.in_probabilities(ps if t.output == "per_example" else ps[0], arg_t, params)
        capped = t.capped(xs, params) if t.link == "softmax" else xs
        probs, rest = _complements(t, capped)
        expr = expr.xreplace({1 - p: c for p, c in zip(ps, rest, strict=True)})
        expr = expr.xreplace(dict(zip(ps, probs, strict=True)))
        if t.link == "softmax":
            expr = expr + t.z_term(capped, ts, params)
    leftover = expr.free_symbols - set(xs) - set(ts)
    if leftover:
        held = sorted(map(str, leftover))
        raise ValueError(f"{name}: the twin in the logits still holds {held}")
    return expr, xs, ts


def _without_cancellation(expr: sp.Expr) -> sp.Expr:
    """``1 - tanh(u)^2`` (a soft cap's derivative) as ``sech(u)^2``: at |u| = 40 the
    difference needs 35 digits to show at all, and it is far below every float beyond."""
    squares = {h**2: 1 - sp.sech(h.args[0]) ** 2 for h in expr.atoms(sp.tanh)}
    return expr.subs(squares) if squares else expr


@functools.cache
def _reference_function(name: str, param_items: tuple[tuple[str, Any], ...],
                        orders: tuple[int, ...]):
    """mpmath function of (x..., t..., v...) giving [value, gradient..., H v...]."""
    expr, xs, ts = _expression(name, param_items)
    vs = symbols("v", len(xs), real=True)
    outputs = [expr]
    if 1 in orders or 2 in orders:
        gradient = [sp.diff(expr, x) for x in xs]
        outputs += gradient
    if 2 in orders:
        outputs += [sp.Add(*[sp.diff(g, x) * v for x, v in zip(xs, vs, strict=True)])
                    for g in gradient]
    outputs = [_without_cancellation(o) for o in outputs]
    return sp.lambdify([*xs, *ts, *vs], outputs, "mpmath", cse=True)


@functools.cache
def _value_function(name: str, param_items: tuple[tuple[str, Any], ...]):
    expr, xs, ts = _expression(name, param_items)
    return sp.lambdify([*xs, *ts], expr, "mpmath")


def _digits(x: np.ndarray, t: np.ndarray, logits_targets: bool, probabilities: bool) -> int:
    size = float(np.max(np.abs(x)))
    if logits_targets:
        size = max(size, float(np.max(np.abs(t))))
    if probabilities:  # 1 - p for p near 0 needs as many digits as p has leading zeros
        smallest = float(np.min(np.abs(x[x != 0]))) if np.any(x != 0) else 1.0
        return 30 + math.ceil(-math.log10(min(smallest, 1.0)))
    return 30 + math.ceil(min(2 * size, 760) / math.log(10)) + math.ceil(math.log10(1 + size))


def reference(name: str, param_items: tuple[tuple[str, Any], ...], orders: tuple[int, ...],
              x: np.ndarray, t: np.ndarray, v: np.ndarray,
              logits_targets: bool, probabilities: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """Exact [value, gradient, H v] per row and the change under a one-ulp move.

    Returns ``(exact, moved)``: ``exact`` rounded to float64 (inf where it
    overflows), ``moved`` per output the sum over the inputs ``a`` that round (the
    predictions and the targets that are not labels or a mask) of
    ``|a d(output)/da|``, so that ``u * moved`` is the floor phi.
    """
    f = _reference_function(name, param_items, orders)
    value = _value_function(name, param_items)
    kind = twin(name).targets
    # Labels and a top-k teacher's mask are exact: they neither move nor stand for a limit.
    exact_targets = kind in ("labels", "top_k")
    logits_targets = logits_targets or kind in ("logits", "hidden", "top_k")
    width = x.shape[1]
    movable = np.ones(t.shape[1])
    if kind == "labels":
        movable[:] = 0
    elif kind == "top_k":
        movable[width:] = 0
    # Capped logits lie in (-c, c): the digits their softmax needs are set by c (the cap's
    # own derivative is written without cancellation, see _without_cancellation).
    cap = dict(param_items).get("soft_cap")
    outputs = 1 + (width if (1 in orders or 2 in orders) else 0) + (width if 2 in orders else 0)
    exact = np.empty((len(x), outputs))
    moved = np.empty((len(x), outputs))
    step = mpmath.mpf(10) ** -_STEP_DIGITS
    for i in range(len(x)):
        seen = x[i] if cap is None else np.minimum(np.abs(x[i]), cap)
        digits = _digits(seen, t[i], logits_targets, probabilities)
        with mpmath.workdps(digits + _EXTRA_DIGITS):
            # Far below every term that it meets: for probability inputs, below
            # q / p^3 (the Hessian's 1/p^2 times a zero target's limit).
            # and below 1 / |x|^2, so that zero * x stays far below every float.
            smallest = min(1.0, float(np.min(np.abs(x[i])))) if not logits_targets else 1.0
            size = 1 + mpmath.mpf(float(np.max(np.abs(x[i]))))
            zero = mpmath.mpf(10) ** -(digits + 40) / size**2
            if probabilities and smallest > 0:
                zero *= mpmath.mpf(smallest) ** 3
            if exact_targets:
                targets = [mpmath.mpf(a) for a in t[i]]
            else:
                targets = [mpmath.mpf(a) if a else zero for a in t[i]]
            xs = list(map(mpmath.mpf, x[i]))
            vs = list(map(mpmath.mpf, v[i]))
            base = f(*xs, *targets, *vs)
            changes = []
            # One input at a time, each by a relative step: the sum of the changes'
            # magnitudes bounds every pattern of roundings at once, to first order.
            for j in range(width + t.shape[1]):
                if j >= width and not movable[j - width]:
                    continue
                xm, tm = list(xs), list(targets)
                if j < width:
                    xm[j] = xm[j] * (1 + step)
                else:
                    # A target of 1 moves down, so that 1 - t stays a probability.
                    down = t[i, j - width] == 1 and kind == "probabilities"
                    tm[j - width] = tm[j - width] * (1 - step if down else 1 + step)
                shifted = f(*xm, *tm, *vs)
                changes.append([abs(b - a) / step for a, b in zip(base, shifted, strict=True)])
            diverges = False
            if not exact_targets and np.any(t[i] == 0):
                # If the value grows as the zero target shrinks (a log of it with a weight
                # that does not vanish: reverse KL), its limit is infinite. At
                # e^-(10^(digits + 50)) a growth like p log(1/q) shows for any p > 0.
                far = mpmath.exp(-mpmath.mpf(10) ** (digits + 50))
                smaller = value(*map(mpmath.mpf, x[i]),
                                *[mpmath.mpf(a) if a else far for a in t[i]])
                diverges = abs(smaller) > 2 * abs(base[0]) + 1
            for j, a in enumerate(base):
                exact[i, j] = _to_float(a)
                moved[i, j] = _to_float(sum(change[j] for change in changes))
            if diverges:
                exact[i, :] = math.nan  # marked: compared as a diverging value only
                exact[i, 0] = math.inf
    return exact, moved


@functools.cache
def _reference_sources() -> bytes:
    """The code a reference depends on: every module of this package (the twins, the
    reference's digits and limits), with the versions of SymPy and mpmath; read once
    per process."""
    folder = Path(__file__).parent
    parts = [f.read_bytes() for f in sorted(folder.glob("*.py"))]
    return b"\0".join([*parts, sp.__version__.encode(), mpmath.__version__.encode()])


def reference_cache_key(name: str, param_items: tuple[tuple[str, Any], ...],
                        orders: tuple[int, ...], arrays: Sequence[np.ndarray],
                        logits_targets: bool, probabilities: bool) -> str:
    """A digest of everything ``reference`` reads: the twin's form, its parameters, the
    orders, the points themselves (so a change of the sampler changes the key) and the
    code and versions of :func:`_reference_sources`."""
    digest = hashlib.sha256(_reference_sources())
    digest.update(repr((twin(name).form, param_items, orders, logits_targets,
                        probabilities)).encode())
    for a in arrays:
        digest.update(repr(a.shape).encode())
        digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where ``softxent verify`` keeps its references: ``$XDG_CACHE_HOME/softxent/verify``
    (``~/.cache/softxent/verify`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "softxent" / "verify"


def _load_reference(cache: Path, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(cache / f"{key}.npz") as stored:
            return stored["exact"], stored["moved"]
    except (OSError, KeyError, ValueError):  # absent, or unreadable: computed again
        return None


def _store_reference(cache: Path, key: str, exact: np.ndarray, moved: np.ndarray) -> None:
    """Written whole or not at all (an interrupted run leaves no partial entry); a cache
    that cannot be written is skipped."""
    try:
        with atomic_file(cache / f"{key}.npz", "wb") as out:
            np.savez(out, exact=exact, moved=moved)
    except OSError:
        return


def _to_float(a: Any) -> float:
    """``a`` rounded to the nearest float64 (inf only where that rounding overflows)."""
    a = mpmath.mpf(a)
    if mpmath.isnan(a):
        return math.nan
    return float(a)


# -- the JAX side -------------------------------------------------------------------


def _jax_outputs(spec: LossSpec, params: Mapping[str, Any], orders: tuple[int, ...],
                 dtype: str, x: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[value, gradient, H v] per row from the shipped loss, in ``dtype``, as float64."""
    import jax
    import jax.numpy as jnp

    def row_loss(x, t):
        return jnp.sum(spec.fn(x, t, **params))

    gradient = jax.grad(row_loss)

    def row(x, t, v):
        parts = [row_loss(x, t)[None]]
        if 1 in orders or 2 in orders:
            parts.append(gradient(x, t))
        if 2 in orders:
            parts.append(jax.jvp(lambda x: gradient(x, t), (x,), (v,))[1])
        return jnp.concatenate(parts)

    if spec.family != "dense":
        return _batch_outputs(spec, params, orders, dtype, x, t, v)
    arrays = [jnp.asarray(a, dtype=dtype) for a in (x, t, v)]
    return np.asarray(jax.jit(jax.vmap(row))(*arrays), dtype=np.float64)


def _permutation(width: int) -> np.ndarray:
    """The column order of a linear form's hidden states: ``h = z[:, order]`` and
    ``W[j, order[j]] = 1``, so that ``h @ W = z`` exactly (each logit one hidden entry)."""
    return np.roll(np.arange(width), 1)


def _options(spec: LossSpec, params: Mapping[str, Any], dtype: str) -> dict[str, Any]:
    """The keyword arguments of one call: the setting, weights as arrays in ``dtype``,
    and the chunk size of a chunked or linear form."""
    import jax.numpy as jnp

    options = {k: jnp.asarray(v, dtype=dtype) if k in ("class_weights", "example_weights")
               and v is not None else v for k, v in params.items()}
    if spec.family in ("chunked", "linear"):
        options["chunk_size"] = CHUNK_ROWS
    return options


def _jax_arguments(spec: LossSpec, dtype: str, t: np.ndarray, order: np.ndarray
                   ) -> list[tuple[np.ndarray, tuple]]:
    """``(rows, arguments)``: the rows of one call and its positional arguments after the
    predictions (and a linear form's output matrix), from the sampled targets ``t``. A
    top-k teacher's rows go in one call per k, its classes in a shuffled order."""
    import jax.numpy as jnp

    width = len(order)
    every = np.arange(len(t))
    if spec.targets == "labels":
        return [(every, (jnp.asarray(np.argmax(t, axis=1), dtype=jnp.int32),))]
    if spec.targets == "hidden":
        weight = jnp.asarray(np.eye(width)[:, np.argsort(order)], dtype=dtype)
        return [(every, (jnp.asarray(t[:, order], dtype=dtype), weight))]
    if spec.targets != "top_k":
        return [(every, (jnp.asarray(t, dtype=dtype),))]
    logs, mask = t[:, :width], t[:, width:]
    ks = mask.sum(axis=1).astype(int)
    rng = np.random.default_rng(width)
    calls = []
    for k in np.unique(ks):
        rows = np.flatnonzero(ks == k)
        indices = np.array([rng.permutation(np.flatnonzero(mask[r])) for r in rows])
        log_probs = np.take_along_axis(logs[rows], indices, axis=1)
        calls.append((rows, (jnp.asarray(indices, dtype=jnp.int32),
                             jnp.asarray(log_probs, dtype=dtype))))
    return calls


def _batch_outputs(spec: LossSpec, params: Mapping[str, Any], orders: tuple[int, ...],
                   dtype: str, x: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[value, gradient, H v] per row of a sparse, chunked or linear form, from one call
    on the rows (one per k for a top-k teacher) with ``reduction="none"``: the rows are
    independent, so the gradient of their sum holds each row's gradient."""
    import jax
    import jax.numpy as jnp

    width = x.shape[1]
    linear = spec.input == "hidden"
    order = _permutation(width) if linear else np.arange(width)
    back = np.argsort(order)
    options = _options(spec, params, dtype)
    weight = jnp.asarray(np.eye(width)[:, back], dtype=dtype)
    parts = _slices(width, orders)
    out = np.full((len(x), parts[max(parts)].stop), np.nan)
    for rows, arguments in _jax_arguments(spec, dtype, t, order):
        def losses(h, arguments=arguments):
            head = (h, weight) if linear else (h,)
            return spec.fn(*head, *arguments, **options)

        def total(h, losses=losses):
            values = losses(h)
            return jnp.sum(values), values

        def run(h, d, losses=losses, total=total):
            # One trace for every order (compiling the chunk loop is the cost here): the
            # gradient's jvp carries the values and the gradient as its primal output.
            if 2 in orders:
                (values, gradient), (_, product) = jax.jvp(
                    lambda h: jax.grad(total, has_aux=True)(h)[::-1], (h,), (d,))
                return jnp.concatenate([values[:, None], gradient, product], axis=1)
            if 1 in orders:
                gradient, values = jax.grad(total, has_aux=True)(h)
                return jnp.concatenate([values[:, None], gradient], axis=1)
            return losses(h)[:, None]

        h = jnp.asarray(x[rows][:, order], dtype=dtype)
        d = jnp.asarray(v[rows][:, order], dtype=dtype)
        block = np.array(jax.jit(run)(h, d), dtype=np.float64)
        for o, part in parts.items():  # the hidden states' columns back in the logits' order
            block[:, part] = block[:, part][:, back] if o else block[:, part]
        out[rows] = block
    return out


# -- errors -------------------------------------------------------------------------


def _slices(width: int, orders: tuple[int, ...]) -> dict[int, slice]:
    out = {0: slice(0, 1)}
    if 1 in orders or 2 in orders:
        out[1] = slice(1, 1 + width)
    if 2 in orders:
        out[2] = slice(1 + width, 1 + 2 * width)
    return out


def _fmt(a: np.ndarray) -> list[float] | float:
    values = [float(f"{float(b):.10g}") for b in np.ravel(a)]
    return values[0] if len(values) == 1 else values


def compare(spec: LossSpec, params: Mapping[str, Any], order: int, dtype: str,
            x: np.ndarray, t: np.ndarray, v: np.ndarray, exact: np.ndarray,
            moved: np.ndarray, computed: np.ndarray, orders: tuple[int, ...]) -> Result:
    """The error measure of the module docstring at every point, and the worst one."""
    info = np.finfo(np.dtype(dtype))
    u, top = float(info.eps) / 2, float(info.max)
    floor = TINY_FLOOR * float(info.tiny)
    part = _slices(x.shape[1], orders)[order]
    r, c, m = exact[:, part], computed[:, part], moved[:, part]
    # A value rounds to inf in the dtype from the largest float plus half an ulp (in
    # float64 that sum is inf itself: the exact values are already rounded to float64).
    below_max = np.nextafter(np.array(top, dtype=dtype), np.array(0, dtype=dtype))
    overflows_at = top + (top - float(below_max)) / 2
    value_finite = np.abs(exact[:, 0]) < overflows_at
    # A diverging zero-target limit (see reference) leaves NaN in the derivatives' places.
    diverging = np.isinf(exact[:, 0]) & np.isnan(exact[:, -1])
    failures = []
    if order == 0:
        overflow = ~value_finite & ~np.isnan(exact[:, 0]) & ~diverging
        wrong = overflow & ~(np.isinf(c[:, 0]) & (np.sign(c[:, 0]) == np.sign(r[:, 0])))
        failures += [f"row {i}: exact value {r[i, 0]:g} overflows {dtype}, computed {c[i, 0]:g}"
                     for i in np.flatnonzero(wrong)]
        # Infinite exactly; finite only where the probability under log(1/q) underflows.
        failures += [f"row {i}: exact value inf (a zero target's log), computed NaN"
                     for i in np.flatnonzero(diverging & np.isnan(c[:, 0]))]
    # Within a factor 16 of the largest float an intermediate (1/p^2) may overflow.
    fits = np.all(np.abs(r) <= top / OVERFLOW_MARGIN, axis=1)
    live = value_finite & ~np.any(np.isnan(r), axis=1)
    # An exact derivative beyond the dtype's range: the computed one must be inf, not NaN.
    wide = live & ~fits
    bad_wide = wide & np.any(np.isnan(c), axis=1)
    failures += [f"row {i}: NaN where the exact {ORDER_NAMES[order]} overflows {dtype}"
                 for i in np.flatnonzero(bad_wide)]
    checked = live & fits
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.max(np.abs(c - r), axis=1)
        diff = np.where(np.all(np.isfinite(c), axis=1), diff, np.inf)
        scale = np.maximum.reduce([u * np.max(np.abs(r), axis=1), u * np.max(np.abs(m), axis=1),
                                   np.full(len(r), floor)])
        err = np.where(checked, diff / scale, 0.0)
    err = np.where(np.isnan(err), np.inf, err)
    failures += [f"row {i}: computed {_fmt(c[i])}, exact {_fmt(r[i])}"
                 for i in np.flatnonzero(checked & ~np.all(np.isfinite(c), axis=1))]
    worst: dict[str, Any] = {}
    if checked.any():
        i = int(np.argmax(np.where(checked, err, -1)))
        worst = {"predictions": _fmt(x[i]), "targets": _fmt(t[i]), "direction": _fmt(v[i]),
                 "exact": _fmt(r[i]), "computed": _fmt(c[i])}
    return Result(spec.name, dict(params), order, dtype, int(checked.sum()),
                  float(err.max()) if len(err) else 0.0, worst, failures)


def rounded_parameters(spec: LossSpec, params: Mapping[str, Any],
                       dtype: str) -> tuple[tuple[str, Any], ...]:
    """Every parameter of ``spec`` (defaults filled in) rounded to ``dtype``, as the loss
    holds it. The reference takes these exact values: k = 0.3 is 0.3 + 1.2e-8 in
    float32, and p^k at log p = -177 moves by 2e-6 relative (35 units of roundoff)
    between the two, a difference of inputs that no computation in the dtype can see.
    Options of the setting (``z_loss``, ``soft_cap``, class weights) are rounded alike;
    ``tail`` and ``ignore_index`` are kept as given."""
    def held(v: Any) -> Any:
        if v is None or isinstance(v, str | bool | int):
            return v
        if isinstance(v, list | tuple):
            return tuple(float(np.asarray(x, dtype=dtype)) for x in v)
        return float(np.asarray(v, dtype=dtype))

    merged = {**spec.defaults, **params}
    return tuple(sorted((k, held(v)) for k, v in merged.items()))


def takes(spec: LossSpec, setting: Mapping[str, Any]) -> bool:
    """Whether ``spec``'s function takes every parameter and option of ``setting``."""
    accepted = inspect.signature(spec.fn).parameters
    return all(k in accepted for k in setting)


def reference_key(spec: LossSpec, params: Mapping[str, Any], dtype: str) -> tuple:
    """What a reference depends on: the twin's form, the parameters as the dtype holds
    them, and the dtype (the points are drawn from a seed of the form and dtype)."""
    return (twin(spec.name).form, rounded_parameters(spec, params, dtype), dtype)


def _tasks(losses: list[str] | None) -> list[tuple[LossSpec, dict[str, Any]]]:
    """Every registry loss with a twin (or those of ``losses``), of every family, at its
    defaults and at each setting of ``VARIANTS`` for its form that its function takes."""
    tasks = []
    for spec in list_losses(family=None):
        if (losses is not None and spec.name not in losses) or not has_twin(spec.name):
            continue
        tasks.append((spec, {}))
        for setting in VARIANTS.get(twin(spec.name).form, ()):
            if takes(spec, setting):
                tasks.append((spec, dict(setting)))
    return tasks


# XLA programs built ("programs") and loaded from the persistent cache ("loaded"), counted
# while _counting_programs is active (in a worker process: from its first call on).
_PROGRAMS: collections.Counter[str] = collections.Counter()
_PROGRAM_EVENTS = {"/jax/core/compile/backend_compile_duration": "programs",
                   "/jax/compilation_cache/cache_hits": "loaded"}
_WORKER_READY: list[bool] = []


def _count_program(event: str, *args: Any, **kwargs: Any) -> None:
    if event in _PROGRAM_EVENTS:
        _PROGRAMS[_PROGRAM_EVENTS[event]] += 1


def _listen_for_programs() -> None:
    import jax

    jax.monitoring.register_event_listener(_count_program)
    jax.monitoring.register_event_duration_secs_listener(_count_program)


@contextlib.contextmanager
def _counting_programs() -> Iterator[None]:
    import jax

    _listen_for_programs()
    try:
        yield
    finally:
        jax.monitoring.unregister_event_listener(_count_program)
        jax.monitoring.unregister_event_duration_listener(_count_program)


def _counted_outputs(spec: LossSpec, params: Mapping[str, Any], orders: tuple[int, ...],
                     dtype: str, x: np.ndarray, t: np.ndarray, v: np.ndarray
                     ) -> tuple[np.ndarray, collections.Counter[str]]:
    """``_jax_outputs``, and how many programs it compiled and how many it loaded."""
    before = collections.Counter(_PROGRAMS)
    out = _jax_outputs(spec, params, orders, dtype, x, t, v)
    made = collections.Counter(_PROGRAMS)
    made.subtract(before)
    return out, collections.Counter(compiled=made["programs"] - made["loaded"],
                                    loaded=made["loaded"])


def _outputs_in_worker(name: str, params: Mapping[str, Any], orders: tuple[int, ...],
                       dtype: str, x: np.ndarray, t: np.ndarray, v: np.ndarray,
                       compiled: str | None) -> tuple[np.ndarray, collections.Counter[str]]:
    """``_counted_outputs`` of the registry loss ``name`` in a worker process (tracing
    is Python and holds its lock, so settings are traced in parallel only across
    processes), with JAX's persistent compilation cache in the folder ``compiled``
    (None: no such cache)."""
    import jax

    from .._registry import get_loss

    if not _WORKER_READY:
        jax.config.update("jax_enable_x64", True)
        if compiled is not None and not jax.config.jax_compilation_cache_dir:
            _use_compilation_cache(compiled)
        _listen_for_programs()
        _WORKER_READY.append(True)
    return _counted_outputs(get_loss(name), params, orders, dtype, x, t, v)


def _in_the_registry(spec: LossSpec) -> bool:
    """Whether a worker process finds ``spec`` by its name (a stand-in made in this
    process, as the tests make, is run here)."""
    from .._registry import get_loss

    try:
        return get_loss(spec.name) is spec
    except KeyError:
        return False


def _use_compilation_cache(folder: str) -> None:
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", folder)
    # Every setting, however fast it compiled: there are over a hundred of them.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()


@contextlib.contextmanager
def _compilation_cache(folder: Path | None) -> Iterator[None]:
    """JAX's persistent compilation cache in ``folder`` for the duration, unless the
    user has configured one: a second run loads each compiled setting instead of
    compiling it again (the programs are those of the shipped losses, bit for bit:
    JAX keys an entry by the lowered program, the jaxlib version and the device)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if folder is None or jax.config.jax_compilation_cache_dir:
        yield
        return
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {name: getattr(jax.config, name) for name in names}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a cache that cannot be written is skipped
        yield
        return
    _use_compilation_cache(str(folder))
    try:
        yield
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


def verify(points: int = 1000, seed: int = 0, losses: list[str] | None = None,
           orders: Sequence[int] = ORDERS, dtypes: Sequence[str] = DTYPES,
           workers: int | None = None, cache: str | os.PathLike | None = None,
           counts: collections.Counter[str] | None = None) -> list[Result]:
    """Verify every registry loss (or ``losses``) at its defaults and its variants.

    One :class:`Result` per loss setting, order and dtype. The mpmath
    references are spread over ``workers`` processes (default: one per CPU), and
    the JAX side (each setting traced, compiled and run) over as many more; with
    one worker, or for a loss that is not the registry's own (a stand-in made in
    this process), the JAX side runs in this process.
    Losses of one twin form at the same parameters and dtype (a plain form and its
    chunked and linear forms) share their points and one reference. With
    ``cache`` (a folder), each reference is kept there under a digest of its
    points, parameters and the code and versions it was computed with
    (:func:`reference_cache_key`), and taken from there when the same reference is
    asked for again; the compiled JAX programs are kept in its ``compiled``
    subfolder (JAX's persistent compilation cache, unless one is configured
    already), so the JAX side runs without compiling again. ``counts``, if
    given, counts what was done and what was taken from the cache: the XLA
    programs ``"compiled"`` and ``"loaded"``, the ``"references computed"`` and
    the ``"references loaded"``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import jax

    from .._progress import bar

    if points < 1:
        raise ValueError(f"verify: points must be >= 1, got {points}")
    orders = tuple(sorted(set(orders)))
    for order in orders:
        if order not in ORDERS:
            raise ValueError(f"verify: orders must be among {ORDERS}, got {order}")
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"verify: dtypes must be among {DTYPES}, got {dtype!r}")
    jax.config.update("jax_enable_x64", True)  # float64 needs it; float32 is unaffected
    workers = workers or os.cpu_count() or 1
    chunk = max(1, -(-points // workers))
    context = multiprocessing.get_context("spawn")  # forking a JAX process can deadlock
    jobs = []
    settings = [(spec, params, dtype) for spec, params in _tasks(losses) for dtype in dtypes]
    shared: dict[tuple, tuple] = {}  # (form, parameters, dtype) -> points and reference
    references: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    digests: dict[tuple, str] = {}  # references to keep in the cache once computed
    folder = None if cache is None else Path(cache)
    compiled = None if folder is None else folder / "compiled"
    # Two pools, so that the JAX side runs beside references still being evaluated.
    with (ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool,
          ProcessPoolExecutor(max_workers=workers, mp_context=context) as tracing,
          _compilation_cache(compiled), _counting_programs()):
        for spec, params, dtype in settings:
            items = rounded_parameters(spec, params, dtype)
            form = twin(spec.name).form
            key = reference_key(spec, params, dtype)
            if key not in shared:
                rng = np.random.default_rng([seed, zlib.crc32(f"{form}/{dtype}".encode())])
                x, t, v = sample(spec, points, rng, dtype)
                flags = (spec.targets in ("logits", "hidden"), spec.input == "probabilities")
                digest = (None if folder is None else
                          reference_cache_key(spec.name, items, orders, (x, t, v), *flags))
                stored = None if digest is None else _load_reference(folder, digest)
                futures = [] if stored is not None else [
                    pool.submit(reference, spec.name, items, orders, x[i:i + chunk],
                                t[i:i + chunk], v[i:i + chunk], *flags)
                    for i in range(0, points, chunk)
                ]
                shared[key] = (x, t, v, futures)
                if counts is not None:
                    counts["references computed" if stored is None else "references loaded"] += 1
                if stored is not None:
                    references[key] = stored
                elif digest is not None:
                    digests[key] = digest
            x, t, v, _ = shared[key]
            if workers > 1 and _in_the_registry(spec):
                computed = tracing.submit(_outputs_in_worker, spec.name, params, orders, dtype,
                                          x, t, v, None if compiled is None else str(compiled))
            else:
                computed = _counted_outputs(spec, params, orders, dtype, x, t, v)
            jobs.append((spec, params, dtype, key, computed))
        outputs = []
        for *_, computed in bar(jobs, "verify: JAX", unit="setting"):
            computed, programs = computed if isinstance(computed, tuple) else computed.result()
            if counts is not None:
                counts.update(programs)
            outputs.append(computed)
        results = []
        for (spec, params, dtype, key, _), computed in zip(
                bar(jobs, "verify: mpmath", unit="setting"), outputs, strict=True):
            x, t, v, futures = shared[key]
            if key not in references:
                parts = [f.result() for f in futures]
                references[key] = tuple(np.concatenate([p[k] for p in parts])
                                        for k in range(2))
                if key in digests:
                    _store_reference(folder, digests[key], *references[key])
            exact, moved = references[key]
            for order in orders:
                results.append(compare(spec, params, order, dtype, x, t, v, exact, moved,
                                       computed, orders))
    return results
