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


# -- the logit options of softmax_cross_entropy ---------------------------------------
#
# The z-loss and soft-capping act on the logits, not on p, so the analysis of the twin in p
# does not see them. Each row below takes the cross-entropy's analysis where it still holds
# and adds what a checked derivation states about the option; anything not checked is left
# out or marked unknown.

DIGITS = 50  # mpmath precision of the numerical checks below


def z_loss_entry(target: Sequence[float], z_loss: float,
                 params: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The catalogue row of ``softmax_cross_entropy`` with the z-loss ``z_loss``.

    Derived: ``softxent prove z_loss`` (checked by SymPy, K = 3, Σ q = 1) shows that on
    each line ``z = log p + s·1`` the z-loss is ``λ Q s²`` (``log Z = s``), so p* is the
    cross-entropy's and the shift is pinned at ``log Z = 0``: ``z* = log p*``. Convexity
    in z: a counterexample where ``log Z < −1/(2λ)``, confirmed by mpmath.
    """
    import mpmath
    import sympy as sp

    from ._proofs import z_loss as z_loss_proof
    from ._twins import twin

    if not z_loss > 0:
        raise ValueError(f"z_loss_entry: z_loss must be > 0, got {z_loss!r}")
    row = entry("softmax_cross_entropy", target, params)
    z_loss_proof()  # raises StepFailed unless every step checks
    k = len(row["minimizer"])
    t = twin("softmax_cross_entropy")
    zs = sp.symbols(f"z1:{k + 1}", real=True)
    values = t.parameters({**(params or {}), "z_loss": z_loss})
    q = [sp.nsimplify(v, rational=True) for v in row["target"]]
    loss = t.in_logits(zs, q, values)
    hessian = sp.lambdify(zs, sp.hessian(loss, zs), "mpmath")
    # Far below log Z = -1/(2 lambda): the cross-entropy's curvature (1 + 2 lambda log Z)
    # (diag p - p p^T) turns negative along a direction orthogonal to p.
    shift = -1 / z_loss
    point = [shift + (1 if i == k - 1 else 0) for i in range(k)]
    direction = [1, -1] + [0] * (k - 2)
    with mpmath.workdps(DIGITS):
        h = hessian(*map(mpmath.mpf, point))
        curvature = sum(direction[i] * h[i, j] * direction[j]
                        for i in range(k) for j in range(k))
    with np.errstate(divide="ignore"):  # a zero target's logit is -inf
        z_star = [float(v) for v in np.log(np.asarray(row["minimizer"]))]
    row.update({
        "option": "z_loss",
        "params": {**row["params"], "z_loss": z_loss},
        "logits": z_star,
        "method": row["method"] + "; z-loss (softxent prove z_loss, checked): on each "
                  "line z = log p + s·1 it is λQ s² (log Z = s), so p* is the "
                  "cross-entropy's and the logits' shift is pinned at log Z = 0: "
                  f"z* = log p* = [{', '.join(f'{v:.4f}' for v in z_star)}]",
        "convex_in_p": "the cross-entropy's, over the best shift: " + row["convex_in_p"],
        "convex_in_z": "no" if curvature < 0 else "unknown",
    })
    if curvature < 0:
        row["convex_in_z"] = (f"no (vᵀ∇²L v = {mpmath.nstr(curvature, 6)} < 0 at z = "
                              f"{[float(v) for v in point]}, v = {direction}, mpmath "
                              f"{DIGITS} digits: below log Z = −1/(2λ) the curvature of the "
                              "cross-entropy's part turns negative)")
    else:
        row["convex_in_z"] = "unknown (no counterexample found)"
    return row


def soft_cap_entry(target: Sequence[float], soft_cap: float) -> dict[str, Any]:
    """The catalogue row of ``softmax_cross_entropy`` with its logits capped at ``c``.

    Derived: the bounds ``1/(1 + (K−1)e^(2c)) < p_i < 1/(1 + (K−1)e^(−2c))`` from
    ``softxent prove soft_cap`` (checked by SymPy, K = 3) and, for the target's K, the
    values at the corners of the box substituted and checked by SymPy. The minimiser:
    the cross-entropy is convex in the capped logits t (``softxent prove
    softmax_cross_entropy``), so a KKT point of min over the closed box [−c, c]^K is a
    global minimiser. For each choice of the coordinates at −c, at c and free, the free
    ones solve p_i = q_i in closed form (``e^(t_i) = q_i S``, ``S = S_fixed / (1 − q_F)``);
    the first choice that satisfies the KKT conditions (a free t_i in [−c, c]; p_i ≥ q_i
    at −c, p_i ≤ q_i at c), checked with mpmath at 50 digits, is p*. Where a coordinate
    is at a bound, tanh never reaches it: the infimum is approached, not attained.
    """
    import itertools

    import mpmath
    import sympy as sp

    from ._proofs import soft_cap as soft_cap_proof
    from ._twins import softmax

    if not soft_cap > 0:
        raise ValueError(f"soft_cap_entry: soft_cap must be > 0, got {soft_cap!r}")
    row = entry("softmax_cross_entropy", target, None)
    soft_cap_proof()  # raises StepFailed unless every step checks
    q = np.asarray(row["target"], dtype=np.float64)
    k = len(q)
    c = sp.nsimplify(soft_cap, rational=True)
    logits = sp.symbols(f"t1:{k + 1}", real=True)
    first = softmax(logits)[0]
    high, low = 1 / (1 + (k - 1) * sp.exp(-2 * c)), 1 / (1 + (k - 1) * sp.exp(2 * c))
    corners = (first.subs({t: (c if i == 0 else -c) for i, t in enumerate(logits)}) - high,
               first.subs({t: (-c if i == 0 else c) for i, t in enumerate(logits)}) - low)
    if not all(sp.simplify(d) == 0 for d in corners):
        raise ValueError("soft_cap_entry: the corner values did not check")
    with mpmath.workdps(DIGITS):
        cap = mpmath.mpf(soft_cap)
        qs = [mpmath.mpf(float(v)) for v in q]
        found = None
        # At -c, free, at c; every coordinate free (the target itself) first.
        choices = sorted(itertools.product((-1, 0, 1), repeat=k), key=lambda r: r.count(0),
                         reverse=True)
        for roles in choices:
            free = [i for i in range(k) if roles[i] == 0]
            if any(qs[i] == 0 for i in free):  # a free t_i solves p_i = q_i > 0 only
                continue
            fixed_total = sum(mpmath.exp(roles[i] * cap) for i in range(k) if roles[i])
            free_mass = sum(qs[i] for i in free)
            if not free:
                total = fixed_total
            elif len(free) == k:
                shift = -(max(map(mpmath.log, qs)) + min(map(mpmath.log, qs))) / 2
                total = mpmath.exp(shift)  # t = log q + shift, centred in the box
            elif free_mass < 1:
                total = fixed_total / (1 - free_mass)
            else:
                continue
            t = [roles[i] * cap if roles[i] else mpmath.log(qs[i] * total) for i in range(k)]
            p = [mpmath.exp(ti) / sum(mpmath.exp(tj) for tj in t) for ti in t]
            tolerance = mpmath.mpf(10) ** (10 - DIGITS)
            kkt = all(
                (-cap - tolerance <= t[i] <= cap + tolerance
                 and abs(p[i] - qs[i]) < tolerance) if roles[i] == 0
                else (p[i] >= qs[i] - tolerance if roles[i] < 0 else p[i] <= qs[i] + tolerance)
                for i in range(k))
            if kkt:
                found = (roles, [float(v) for v in t], [float(v) for v in p])
                break
    if found is None:
        raise ValueError("soft_cap_entry: no KKT point found")
    roles, t_star, p_star = found
    reachable = max(abs(a - b) for a, b in zip(p_star, q, strict=True)) < 1e-12
    bounds = (float(low), float(high))
    gap = float((k - 1) * sp.exp(-2 * c) / (1 + (k - 1) * sp.exp(-2 * c)))  # 1 - high
    shown_high = f"1 − {gap:.6g}" if gap < 1e-3 else f"{bounds[1]:.6g}"
    outside = [i for i in range(k) if not bounds[0] < q[i] < bounds[1]]
    positive = q[q > 0]
    spread = float(np.log(positive.max()) - np.log(positive.min())) if q.min() > 0 else np.inf
    attained = reachable and spread < 2 * soft_cap  # else a t_i sits at ±c: tanh never gets there
    which = (("reachable: p* = q" + (", attained" if attained else ", an infimum"))
             if reachable else
             "unreachable: the minimiser is on the box's edge, "
             + ", ".join(f"t_{i + 1} at {'+' if r > 0 else '−'}c"
                         for i, r in enumerate(roles) if r)
             + " (an infimum: tanh never reaches ±c)")
    row.update({
        "option": "soft_cap",
        "params": {**row["params"], "soft_cap": soft_cap},
        "minimizer": p_star,
        "bias": (np.asarray(p_star) - q).tolist(),
        "logits": t_star,
        "proper": False,
        "proper_reason": (f"a one-hot target is never reached: every p_i < "
                          f"1/(1 + (K−1)e^(−2c)) = {shown_high} (softxent prove soft_cap)"),
        "method": (f"soft cap c = {soft_cap:g} (softxent prove soft_cap, checked): each "
                   f"p_i lies in ({bounds[0]:.6g}, {shown_high}); max log q − min log q = "
                   f"{spread:.4g} against 2c = {2 * soft_cap:g}. This target is " + which
                   + ("; " + ", ".join(f"q_{i + 1}" for i in outside) + " outside the box"
                      if outside else "")
                   + ". Minimiser: KKT on the closed box [−c, c]^K of the capped logits, "
                   "where the cross-entropy is convex, closed form per active set, checked "
                   f"by mpmath at {DIGITS} digits"),
        "inverse": None,
        "inverse_error": None,
        "convex_in_p": "unknown (p ranges over the reachable set only; no verdict derived)",
        "convex_in_z": ("unknown (convex in the capped logits t, the cross-entropy's verdict; "
                        "t = c·tanh(z/c) is not affine and no verdict in z is derived)"),
    })
    return row


# The catalogue's logit-option rows: PaLM's z-loss weight; Gemma 2's final-logit cap, and
# a cap small enough that the default target falls outside its box.
Z_LOSS = 1e-4
SOFT_CAPS = (30.0, 0.25)


def option_entries(target: Sequence[float]) -> list[dict[str, Any]]:
    """The rows of ``softmax_cross_entropy`` with the z-loss and with soft caps."""
    return [z_loss_entry(target, Z_LOSS), *(soft_cap_entry(target, c) for c in SOFT_CAPS)]
