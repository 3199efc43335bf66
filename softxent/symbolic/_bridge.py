"""From a symbolic loss to a JAX loss, for prototyping: ``to_jax``.

The expression is turned into JAX code by ``sympy.lambdify``. Every ``log p``
(and ``log(1 − p)`` for an elementwise loss) is read from ``log_softmax`` or
``log_sigmoid`` of the logits rather than from the log of a rounded
probability, so the loss stays finite where a probability underflows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from ._loss import SymbolicLoss
from ._parse import P, Q, parameter_symbol, probability_symbols


def _logs_as_symbols(expr: sp.Expr, p: list[sp.Symbol], with_complement: bool
                     ) -> tuple[sp.Expr, list[sp.Symbol], list[sp.Symbol]]:
    """``expr`` with log(p_i) -> L_i (and log(1 − p_i) -> M_i), and those symbols."""
    logs = [sp.Symbol(f"log_{s.name}", real=True) for s in p]
    complements = [sp.Symbol(f"log1m_{s.name}", real=True) for s in p]
    replaced = sp.expand_log(expr, force=True)
    mapping: dict[sp.Basic, sp.Basic] = {sp.log(s): L for s, L in zip(p, logs, strict=True)}
    if with_complement:
        mapping.update({sp.log(1 - s): M for s, M in zip(p, complements, strict=True)})
    return replaced.xreplace(mapping), logs, complements


def to_jax(loss: SymbolicLoss, *, input: str = "logits") -> Callable[..., Any]:
    """A jit-, grad- and vmap-able JAX loss computing ``loss``'s expression.

    The calling convention is the shipped losses': ``fn(predictions, targets, /,
    *, axis=-1, where=None, reduction="none", **params)``, with ``predictions``
    logits (``input="logits"``: softmax over ``axis`` for class losses, a sigmoid
    per component for elementwise ones) or probabilities (``input="probabilities"``).
    Class losses return one value per example, elementwise losses one per
    component. Parameters default to the loss's own.

    Example:
      >>> import jax.numpy as jnp
      >>> from softxent.symbolic import SymbolicLoss, to_jax
      >>> ce = to_jax(SymbolicLoss("ce", "-q*log(p)", "separable"))
      >>> float(ce(jnp.zeros(2), jnp.array([0.5, 0.5])))  # log 2
      0.6931471805599453
    """
    import jax
    import jax.numpy as jnp

    if not isinstance(loss, SymbolicLoss):
        raise TypeError(f"to_jax: loss must be a SymbolicLoss, got {type(loss).__name__}")
    if input not in ("logits", "probabilities"):
        raise ValueError(f"to_jax: input must be 'logits' or 'probabilities', got {input!r}")
    names = list(loss.params)
    param_symbols = [parameter_symbol(n) for n in names]
    kind = loss.kind
    if kind == "distribution":
        k = loss.classes
        assert k is not None
        p, q = probability_symbols("p", k), probability_symbols("q", k)
    else:
        p, q = [P], [Q]
    expr, logs, complements = _logs_as_symbols(loss.expression, p, kind == "elementwise")
    args = [*p, *logs, *complements, *q, *param_symbols]
    compiled = sp.lambdify(args, expr, modules="jax")

    def evaluate(predictions: Any, targets: Any, axis: int, values: list[Any]) -> jax.Array:
        if kind == "elementwise":
            if input == "logits":
                log_p, log_1mp = jax.nn.log_sigmoid(predictions), jax.nn.log_sigmoid(-predictions)
            else:
                log_p, log_1mp = jnp.log(predictions), jnp.log1p(-predictions)
            prob = jnp.exp(log_p)
            return compiled(prob, log_p, log_1mp, targets, *values)
        if input == "logits":
            log_p = jax.nn.log_softmax(predictions, axis=axis)
        else:
            log_p = jnp.log(predictions)
        prob = jnp.exp(log_p)
        if kind == "separable":
            terms = compiled(prob, log_p, jnp.zeros_like(prob), targets, *values)
            return jnp.sum(jnp.broadcast_to(terms, prob.shape), axis=axis)
        parts = [jnp.take(prob, i, axis=axis) for i in range(k)]
        log_parts = [jnp.take(log_p, i, axis=axis) for i in range(k)]
        target_parts = [jnp.take(targets, i, axis=axis) for i in range(k)]
        zeros = [jnp.zeros_like(x) for x in parts]
        return compiled(*parts, *log_parts, *zeros, *target_parts, *values) \
            * jnp.ones_like(parts[0])

    def fn(predictions: Any, targets: Any, /, *, axis: int = -1, where: Any = None,
           reduction: str = "none", **options: Any) -> jax.Array:
        unknown = set(options) - set(names)
        if unknown:
            raise TypeError(f"{loss.name}: unknown parameter(s) {sorted(unknown)} "
                            f"(parameters: {names or 'none'})")
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"{loss.name}: reduction must be 'none', 'mean' or 'sum', "
                             f"got {reduction!r}")
        predictions = jnp.asarray(predictions)
        targets = jnp.asarray(targets, dtype=predictions.dtype)
        if kind == "distribution" and predictions.shape[axis] != loss.classes:
            raise ValueError(f"{loss.name}: expects K = {loss.classes} classes on axis "
                             f"{axis}, got shape {predictions.shape}")
        values = [options.get(n, loss.params[n]) for n in names]
        out = evaluate(predictions, targets, axis, values)
        if where is not None:
            mask = jnp.asarray(where)
            if kind != "elementwise" and mask.ndim == predictions.ndim:
                mask = jnp.all(mask, axis=axis)
            out = jnp.where(mask, out, 0)
        if reduction == "none":
            return out
        total = jnp.sum(out)
        return total / max(out.size, 1) if reduction == "mean" else total

    fn.__name__ = loss.name if loss.name.isidentifier() else "symbolic_loss"
    fn.__doc__ = f"{loss.name}: the {kind} loss {sp.sstr(loss.expression)} (from to_jax)."
    return fn
