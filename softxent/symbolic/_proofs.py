"""The derivations behind the note and the catalogue, every step checked by SymPy."""

from __future__ import annotations

from collections.abc import Callable

import mpmath
import sympy as sp

from ._engine import Derivation, StepFailed
from ._twins import sigmoid, softmax

p, q, z, x = sp.symbols("p q z x", positive=True)
a, b, u = sp.symbols("a b u", positive=True)
zr = sp.Symbol("z", real=True)

# Signs are decided through positive reparametrisations that encode the open
# intervals for SymPy's assumption system: q = 1/(1+a) ∈ (0, 1) with a > 0,
# p = q/(1+u) ∈ (0, q), p = 1 − (1−q)/(1+u) ∈ (q, 1), p = 1/(1+b) ∈ (0, 1).
_REPARAMETRISED = "SymPy's sign with a, b, u > 0: q = 1/(1+a)"


def log_lemma() -> Derivation:
    """log x ≤ x - 1 for x > 0, with equality only at x = 1."""
    d = Derivation("Lemma: log x ≤ x − 1", "x > 0")
    f = d.define("Let f(x) = x − 1 − log x", sp.Function("f")(x), x - 1 - sp.log(x))
    df = d.derivative("Its derivative", f, x, 1 - 1 / x, of="f")
    d.solution("f'(x) = 0 only at x = 1", df, x, [sp.Integer(1)])
    d.sign("f' < 0 on (0, 1)  [x = 1/(1+u), u > 0]", df, "negative", {x: 1 / (1 + u)})
    d.sign("f' > 0 on (1, ∞)  [x = 1 + u, u > 0]", df, "positive", {x: 1 + u})
    d.identity("f(1) = 0", f.subs(x, 1), sp.Integer(0))
    d.conclude("f decreases to f(1) = 0 and then increases: f(x) ≥ 0, with equality iff x = 1")
    return d


def binary_cross_entropy() -> Derivation:
    """The note's proof, and what it skipped."""
    d = Derivation("Binary cross-entropy drives p to the soft target q", "0 < p < 1, 0 < q < 1")
    H = d.define("The note's cross-entropy", sp.Function("H")(p, q),
                 -(q * sp.log(p) + (1 - q) * sp.log(1 - p)))
    dH = d.derivative("Differentiate in p", H, p, -q / p + (1 - q) / (1 - p), of="H")
    dH = d.identity("Factor (the note's formula)", dH, (p - q) / (p * (1 - p)))
    d.solution("The derivative vanishes only at p = q", dH, p, [q])
    d.sign("On (0, q) the derivative is negative", dH, "negative",
           {q: 1 / (1 + a), p: (1 / (1 + a)) / (1 + u)}, how=_REPARAMETRISED + ", p = q/(1+u)")
    d.sign("On (q, 1) the derivative is positive", dH, "positive",
           {q: 1 / (1 + a), p: 1 - (1 - 1 / (1 + a)) / (1 + u)},
           how=_REPARAMETRISED + ", p = 1 − (1−q)/(1+u)")
    d.conclude("H decreases on (0, q] and increases on [q, 1): p = q is the unique global "
               "minimum, so gradient descent drives p to q")
    d2H = d.derivative("Second derivative", H, p, q / p**2 + (1 - q) / (1 - p) ** 2, order=2,
                       of="H")
    d.sign("It is positive on (0, 1): H is strictly convex in p", d2H, "positive",
           {q: 1 / (1 + a), p: 1 / (1 + b)}, how=_REPARAMETRISED + ", p = 1/(1+b)")
    # The logit form.
    Hz = d.define("In the logit z, with p = σ(z) = 1/(1 + e^(−z))", sp.Function("H")(zr, q),
                  -(q * sp.log(sigmoid(zr)) + (1 - q) * sp.log(1 - sigmoid(zr))))
    d.derivative("dH/dz = σ(z) − q = p − q", Hz, zr, sigmoid(zr) - q, of="H")
    d.derivative("d²H/dz² = σ(z)(1 − σ(z)) = p(1 − p)", Hz, zr,
                 sigmoid(zr) * (1 - sigmoid(zr)), order=2, of="H")
    d.identity("The logit curvature is at most 1/4", sp.Rational(1, 4) - p * (1 - p),
               (p - sp.Rational(1, 2)) ** 2)
    d.sign("since (p − 1/2)² ≥ 0", (p - sp.Rational(1, 2)) ** 2, "nonnegative")
    d.holds("In p, the gradient is unbounded near 0 and 1",
            lambda: sp.limit(dH.subs(q, sp.Rational(1, 3)), p, 0, "+") == -sp.oo
            and sp.limit(dH.subs(q, sp.Rational(1, 3)), p, 1, "-") == sp.oo,
            sp.Limit(dH, p, 0, "+"), "=", -sp.oo, "sympy.limit (q = 1/3)")
    d.holds("and so is the curvature",
            lambda: sp.limit(d2H.subs(q, sp.Rational(1, 3)), p, 0, "+") == sp.oo,
            sp.Limit(d2H, p, 0, "+"), "=", sp.oo, "sympy.limit (q = 1/3)")
    d.conclude("In z the gradient p − q lies in (−1, 1) and the curvature in (0, 1/4]; in p "
               "both blow up at 0 and 1. The logit form is the better-conditioned one to "
               "optimise, which is why softxent's losses take logits")
    return d


def softmax_cross_entropy() -> Derivation:
    """K classes: the simplex argument, Gibbs' inequality and the logit geometry."""
    d = Derivation("Softmax cross-entropy drives p to q on the simplex",
                   "p_i > 0, q_i > 0, Σ p_i = Σ q_i = 1 (K = 3 where symbolic)")
    P = sp.symbols("p1:4", positive=True)
    Qs = sp.symbols("q1:4", positive=True)
    lam = sp.Symbol("lambda", real=True)
    H = d.define("Cross-entropy", sp.Function("H")(*P),
                 -sum(qi * sp.log(pi) for pi, qi in zip(P, Qs, strict=True)))
    grad_1 = d.derivative("∂H/∂p_1 (each p_i alike)", H, P[0], -Qs[0] / P[0], of="H")
    d.no_solution("It never vanishes: unconstrained, H has no stationary point; the argument "
                  "must use the simplex", grad_1, P[0])
    lagrangian = H + lam * (sum(P) - 1)
    constraint = {Qs[2]: 1 - Qs[0] - Qs[1]}
    equations = [sp.diff(lagrangian, pi).subs(constraint) for pi in P] + [sum(P) - 1]
    solutions = sp.solve(equations, [*P, lam], dict=True)
    expected = {P[0]: Qs[0], P[1]: Qs[1], P[2]: 1 - Qs[0] - Qs[1], lam: 1}
    d.holds("Lagrange/KKT (K = 3): ∂H/∂p_i + λ = 0 and Σ p_i = 1 have the unique solution "
            "p = q, λ = 1",
            lambda: len(solutions) == 1
            and all(sp.simplify(solutions[0][k] - v) == 0 for k, v in expected.items()),
            sp.Matrix(P), "=", sp.Matrix([Qs[0], Qs[1], 1 - Qs[0] - Qs[1]]),
            "sympy.solve on the KKT system")
    lemma = d.lemma(log_lemma())
    del lemma
    kl = sum(qi * sp.log(qi / pi) for pi, qi in zip(P, Qs, strict=True))
    entropy = -sum(qi * sp.log(qi) for qi in Qs)
    d.identity("General K: H(q, p) − H(q, q) = KL(q‖p) = Σ q_i log(q_i/p_i)", H - entropy, kl)
    d.identity("Each term, by the lemma at x = p_i/q_i (times q_i > 0): "
               "q_i log(p_i/q_i) = (p_i − q_i) − q_i f(p_i/q_i) ≤ p_i − q_i",
               Qs[0] * sp.log(P[0] / Qs[0]),
               (P[0] - Qs[0]) - Qs[0] * (P[0] / Qs[0] - 1 - sp.log(P[0] / Qs[0])))
    d.conclude("So −KL(q‖p) = Σ q_i log(p_i/q_i) ≤ Σ p_i − Σ q_i = 0 (Gibbs' inequality), "
               "with equality iff p_i = q_i for every i: p = q is the unique minimiser for "
               "every K")
    Z = sp.symbols("z1:4", real=True)
    S = softmax(Z)
    Hz = -sum(qi * sp.log(si) for si, qi in zip(S, Qs, strict=True))
    d.derivative("In the logits: ∂H/∂z_1 = softmax_1(z)·Σq − q_1", Hz, Z[0],
                 S[0] * sum(Qs) - Qs[0], of="H")
    hessian = sp.hessian(Hz, Z)
    expected_h = sp.Matrix(
        3, 3, lambda i, j: sum(Qs) * (S[int(i)] * sp.KroneckerDelta(i, j) - S[int(i)] * S[int(j)])
    )
    d.holds("Hessian = (Σq)(diag(p) − p pᵀ)",
            lambda: (hessian - expected_h).applyfunc(sp.simplify) == sp.zeros(3, 3),
            sp.Symbol("∇²H"), "=", sp.Symbol("(Σq)(diag(p) − p pᵀ)"), "entrywise simplify")
    V = sp.symbols("v1:4", real=True)
    Pc = [P[0], P[1], 1 - P[0] - P[1]]
    mean = sum(pi * vi for pi, vi in zip(Pc, V, strict=True))
    quad = sum(pi * vi**2 for pi, vi in zip(Pc, V, strict=True)) - mean**2
    d.identity("vᵀ(diag(p) − p pᵀ)v is a variance: Σ p_i (v_i − Σ_j p_j v_j)²", quad,
               sum(pi * (vi - mean) ** 2 for pi, vi in zip(Pc, V, strict=True)))
    d.sign("A sum of p_i ≥ 0 times squares: the Hessian is positive semi-definite",
           sum(pi * (vi - sp.Symbol("m", real=True)) ** 2 for pi, vi in zip(P, V, strict=True)),
           "nonnegative")
    d.holds("Its null vector is 1 (softmax ignores a constant shift)",
            lambda: (expected_h * sp.ones(3, 1)).applyfunc(sp.simplify) == sp.zeros(3, 1),
            sp.Symbol("∇²H · 1"), "=", sp.zeros(3, 1), "matrix product simplified")
    c = sp.Symbol("c", real=True)
    at_line = {Z[i]: sp.log(Qs[i]) + c for i in range(3)}
    d.holds("The gradient vanishes on the whole line z = log q + c·1 (Σ q = 1)",
            lambda: all(sp.simplify(sp.diff(Hz, Zi).subs(at_line).subs(constraint)) == 0
                        for Zi in Z),
            sp.Symbol("∇H(log q + c·1)"), "=", sp.zeros(3, 1), "substituted and simplified")
    d.conclude("H is convex in z with minimisers exactly the line log q + c·1, all of which "
               "give softmax(z) = q")
    return d


def z_loss() -> Derivation:
    """PaLM's z-loss: the minimiser in p stays q; the logits' shift is pinned to log Z = 0."""
    d = Derivation("The z-loss leaves p* = q and pins the logits' shift",
                   "q_i > 0, Σ q_i = 1, λ > 0 (K = 3)")
    Z = sp.symbols("z1:4", real=True)
    Qs = sp.symbols("q1:4", positive=True)
    lam = sp.Symbol("lambda", positive=True)
    s = sp.Symbol("s", real=True)
    constraint = {Qs[2]: 1 - Qs[0] - Qs[1]}
    S = softmax(Z)
    log_z = sp.log(sum(sp.exp(zi) for zi in Z))
    loss = d.define("Cross-entropy plus the z-loss, log Z = log Σ e^(z_i)",
                    sp.Function("L")(*Z),
                    -sum(qi * sp.log(si) for si, qi in zip(S, Qs, strict=True)) + lam * log_z**2)
    grad_1 = d.derivative("∂L/∂z_1 = p_1 Σq − q_1 + 2λ log Z p_1 (each z_i alike)", loss, Z[0],
                          S[0] * sum(Qs) - Qs[0] + 2 * lam * log_z * S[0], of="L")
    line = {Z[i]: sp.log(Qs[i]) + s for i in range(3)}
    d.identity("On the cross-entropy's minimisers z = log q + s·1: log Z = s",
               log_z.subs(line).subs(constraint), s)
    on_line = d.identity("There ∂L/∂z_1 = 2λ s q_1: the cross-entropy's part vanishes",
                         grad_1.subs(line).subs(constraint), 2 * lam * s * Qs[0])
    d.solution("It vanishes only at s = 0", on_line, s, [sp.Integer(0)])
    d.conclude("The z-loss does not move the minimiser in probabilities (p* = q: it depends "
               "on the logits' shift alone, which softmax ignores) but of the line "
               "log q + s·1 it keeps the one point z = log q, where log Z = 0: the logits "
               "become log-probabilities")
    return d


def soft_cap() -> Derivation:
    """Gemma 2's logit soft-capping bounds the reachable probabilities."""
    d = Derivation("Soft-capping the logits at c bounds every probability",
                   "t_i = c·tanh(z_i/c) ∈ (−c, c), c > 0 (K = 3)")
    T = sp.symbols("t1:4", real=True)
    c = sp.Symbol("c", positive=True)
    zr_ = sp.Symbol("z", real=True)
    d.derivative("The cap's derivative, 1 − tanh²(z/c) ∈ (0, 1]", c * sp.tanh(zr_ / c), zr_,
                 1 - sp.tanh(zr_ / c) ** 2)
    S = softmax(T)
    grows = d.derivative("∂p_1/∂t_1 = p_1(1 − p_1): p_1 grows with its own logit", S[0],
                         T[0], S[0] * (1 - S[0]))
    d.sign("p_1(1 − p_1) > 0", sp.together(grows), "positive")
    falls = d.derivative("∂p_1/∂t_2 = −p_1 p_2: and falls with each other logit", S[0], T[1],
                         -S[0] * S[1])
    d.sign("−p_1 p_2 < 0", falls, "negative")
    corner = {T[0]: c, T[1]: -c, T[2]: -c}
    d.identity("So p_1 < its value at t = (c, −c, −c): 1/(1 + (K − 1)e^(−2c))",
               S[0].subs(corner), 1 / (1 + 2 * sp.exp(-2 * c)))
    d.identity("and p_1 > its value at t = (−c, c, c): 1/(1 + (K − 1)e^(2c))",
               S[0].subs({T[0]: -c, T[1]: c, T[2]: c}), 1 / (1 + 2 * sp.exp(2 * c)))
    d.sign("The upper bound is below 1", 1 - 1 / (1 + 2 * sp.exp(-2 * c)), "positive")
    d.conclude("A target q is reached (softmax(t) = q with t = log q + s·1 inside (−c, c)) "
               "exactly when max_i log q_i − min_j log q_j < 2c; a target with an entry "
               "outside (1/(1 + (K−1)e^(2c)), 1/(1 + (K−1)e^(−2c))), a one-hot or a zero "
               "entry among them, is never reached: the loss has no minimiser there, only an "
               "infimum approached as the logits run to ±∞, with a gradient that never "
               "vanishes")
    return d


COUNTEREXAMPLE_TARGET = (sp.Rational(9, 10), sp.Rational(3, 5), sp.Rational(1, 5))


def bce_on_softmax() -> Derivation:
    """The note's claim that per-component BCE on softmax outputs also works, and when not."""
    d = Derivation("Per-component BCE on softmax outputs",
                   "p on the simplex (K = 3), 0 < q_i < 1")
    P = sp.symbols("p1:4", positive=True)
    Qs = sp.symbols("q1:4", positive=True)
    lam = sp.Symbol("lambda", real=True)
    L = d.define("Sum of binary cross-entropies", sp.Function("L")(*P),
                 -sum(qi * sp.log(pi) + (1 - qi) * sp.log(1 - pi)
                      for pi, qi in zip(P, Qs, strict=True)))
    grads = [sp.diff(L, pi) for pi in P]
    d.identity("∂L/∂p_i = (p_i − q_i)/(p_i(1 − p_i)) (the note's derivative, per component)",
               grads[0], (P[0] - Qs[0]) / (P[0] * (1 - P[0])))
    constraint = {Qs[2]: 1 - Qs[0] - Qs[1]}
    d.holds("When Σ q = 1, p = q with multiplier λ = 0 satisfies KKT: ∂L/∂p_i = λ, Σp = 1",
            lambda: all(sp.simplify(g.subs(dict(zip(P, Qs, strict=True))).subs(constraint))
                        == 0 for g in grads),
            sp.Symbol("∂L/∂p_i |_(p=q)"), "=", sp.Integer(0), "substituted and simplified")
    d.sign("Each term's second derivative is positive, so L is convex on the simplex",
           sp.diff(L, P[0], 2), "positive", {Qs[0]: 1 / (1 + a), P[0]: 1 / (1 + b)},
           how=_REPARAMETRISED.replace("q", "q_i") + ", p_i = 1/(1+b)")
    d.conclude("For a soft target that is a distribution, the KKT point p = q is the global "
               "minimum: the note's claim holds")
    target = COUNTEREXAMPLE_TARGET
    at_target = {Qs[i]: target[i] for i in range(3)}
    kkt = [g.subs(at_target) - lam for g in grads] + [sum(P) - 1]
    d.identity(f"Counterexample: q = {[str(t) for t in target]} sums to", sum(target),
               sp.Rational(17, 10))
    start = [t / sum(target) for t in target] + [0]
    with mpmath.workdps(50):
        root = sp.nsolve(kkt, [*P, lam], start, prec=50)
    values = {s: root[i] for i, s in enumerate([*P, lam])}
    residual = max(abs(sp.N(e.subs(values), 50)) for e in kkt)
    d.holds("Its KKT system solved numerically (50 digits), residual < 1e-40",
            lambda: residual < sp.Float("1e-40") and all(0 < values[pi] < 1 for pi in P),
            sp.Matrix(P), "≈", sp.Matrix([sp.N(values[pi], 6) for pi in P]),
            "sympy.nsolve, substituted back")
    d.holds("The minimiser is not q, and the multiplier is not 0",
            lambda: abs(values[lam]) > sp.Float("1e-3")
            and max(abs(values[P[i]] - target[i]) for i in range(3)) > sp.Float("1e-2"),
            lam, "≈", sp.N(values[lam], 6), "compared with q")
    d.conclude("Soft multi-label targets (Σ q ≠ 1) cannot be reached by softmax outputs; with "
               "independent sigmoid outputs each component is the binary case, minimised at "
               "p_i = q_i")
    return d


def catalogue() -> Derivation:
    """The analysis of every registry loss (K = 3 for class losses), each a checked lemma.

    Each lemma is ``analyze``'s derivation from the loss's SymPy twin: its
    stationarity condition, properness and the minimiser's closed form or the
    conditions it solves, every step checked.
    """
    from ._analysis import analyze
    from ._twins import all_twins

    d = Derivation("Catalogue: where each loss drives p for a soft target",
                   "parameters at their defaults; K = 3 for class losses")
    for t in all_twins():
        d.lemma(analyze(t.name).base_derivation)
    return d


PROOFS: dict[str, Callable[[], Derivation]] = {
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "bce_on_softmax": bce_on_softmax,
    "z_loss": z_loss,
    "soft_cap": soft_cap,
    "catalogue": catalogue,
}

__all__ = ["PROOFS", "StepFailed", "log_lemma"]


def print_proofs(names: list[str], fmt: str = "text") -> int:
    """Print each derivation in ``fmt``; a step that does not check prints FAILED, returns 1.

    The one entry point of ``softxent prove`` and of the scripts in proofs/.
    """
    import sys

    for name in names:
        try:
            text = PROOFS[name]().render(fmt)
        except StepFailed as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
        print(text)
    return 0


def script_main(names: list[str], argv: list[str] | None = None) -> int:
    """The scripts in proofs/: ``--latex`` or ``--markdown`` chooses the format of
    :func:`print_proofs`."""
    import argparse

    parser = argparse.ArgumentParser(description=f"Print the checked derivation(s): {names}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--latex", action="store_true", help="LaTeX instead of text")
    group.add_argument("--markdown", action="store_true", help="Markdown instead of text")
    args = parser.parse_args(argv)
    return print_proofs(names, "latex" if args.latex else "markdown" if args.markdown else "text")
