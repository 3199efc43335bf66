"""analyze, the whitelist parser, to_jax and check_gradient, and `softxent analyze`."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import sympy as sp

import softxent
from softxent.cli import main as cli
from softxent.symbolic import (
    ExpressionError,
    StepFailed,
    SymbolicLoss,
    _analysis,
    _twins,
    analyze,
    check_gradient,
    parse_expression,
    to_jax,
)

ROOT = Path(__file__).resolve().parents[1]

# -- the six user losses of the acceptance list --------------------------------------

SPHERICAL = SymbolicLoss("spherical", "-(p1*q1 + p2*q2 + p3*q3)/sqrt(p1**2 + p2**2 + p3**2)",
                         "distribution")
ROOT_SCORE = SymbolicLoss("root", "-q*sqrt(p)", "separable")  # interior closed form p ∝ q²
SQUARED_MISS = SymbolicLoss("squared_miss", "q*(1 - p)**2", "separable")  # boundary minimiser
BCE = SymbolicLoss("bce", "-(q*log(p) + (1 - q)*log(1 - p))", "elementwise")
WEIGHTED_BCE = SymbolicLoss("weighted_bce", "-(w*q*log(p) + (1 - q)*log(1 - p))",
                            "elementwise", {"w": 2.0})
# Strictly proper ((p − q)² times a positive factor), but the sign of ∂ℓ/∂p and
# the curvature defeat SymPy's assumptions: the verdict must be None.
UNDECIDABLE = SymbolicLoss("undecidable", "(p - q)**2*(2 + sin(1/p))", "elementwise")


def _scipy_minimiser(loss: SymbolicLoss, q: list[float]) -> np.ndarray:
    """An independent minimisation: SciPy on the formula (no SymPy solving, no KKT)."""
    expr, _ = loss.at()
    if loss.kind == "elementwise":
        f = sp.lambdify((sp.Symbol("p", positive=True), sp.Symbol("q", positive=True)), expr)
        out = []
        for qi in q:
            r = scipy.optimize.minimize_scalar(lambda p, qi=qi: f(p, qi), bounds=(1e-12, 1 - 1e-12),
                                               method="bounded", options={"xatol": 1e-13})
            out.append(r.x)
        return np.array(out)
    k = len(q)
    p_syms = sp.symbols(f"p1:{k + 1}", positive=True)
    q_syms = sp.symbols(f"q1:{k + 1}", positive=True)
    if loss.kind == "separable":
        p, qq = sp.Symbol("p", positive=True), sp.Symbol("q", positive=True)
        expr = sum(expr.xreplace({p: pi, qq: qi}) for pi, qi in zip(p_syms, q_syms, strict=True))
    f = sp.lambdify([*p_syms, *q_syms], expr)
    grad = sp.lambdify([*p_syms, *q_syms], [sp.diff(expr, s) for s in p_syms])

    def objective(x: np.ndarray) -> float:
        return float(f(*np.maximum(x, 1e-300), *q))

    def jac(x: np.ndarray) -> np.ndarray:
        return np.array(grad(*np.maximum(x, 1e-300), *q), dtype=float)

    result = scipy.optimize.minimize(
        objective, np.full(k, 1 / k), jac=jac, method="SLSQP", bounds=[(0, 1)] * k,
        constraints=[{"type": "eq", "fun": lambda x: np.sum(x) - 1, "jac": lambda x: np.ones(k)}],
        options={"ftol": 1e-16, "maxiter": 1000})
    return result.x


@pytest.mark.parametrize(("loss", "target", "proper"), [
    (SPHERICAL, [0.2, 0.3, 0.5], True),
    (ROOT_SCORE, [0.2, 0.3, 0.5], False),
    (SQUARED_MISS, [0.7, 0.2, 0.1], False),
    (BCE, [0.3, 0.8], True),
    (WEIGHTED_BCE, [0.3, 0.8], False),
    (UNDECIDABLE, [0.3], None),
], ids=lambda x: x.name if isinstance(x, SymbolicLoss) else None)
def test_user_losses_verdicts_and_minimisers(loss, target, proper):
    a = analyze(loss, target=target)
    assert a.proper is proper, a.proper_reason
    np.testing.assert_allclose(a.minimizer, _scipy_minimiser(loss, target), atol=1e-6)
    if proper:
        np.testing.assert_allclose(a.minimizer, target, atol=1e-12)


def test_interior_closed_form_and_inverse_map():
    a = analyze(ROOT_SCORE, target=[0.2, 0.3, 0.5])
    assert a.closed_form is not None and "q**2" in a.closed_form
    q = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(a.minimizer, q**2 / np.sum(q**2), atol=1e-14)
    np.testing.assert_allclose(a.invert(a.minimizer), q, atol=1e-12)
    assert a.convex_in_p == "yes"


def test_boundary_minimiser_lies_on_a_face_with_kkt_multipliers():
    a = analyze(SQUARED_MISS, target=[0.7, 0.2, 0.1])
    assert a.minimizer[2] == 0.0 and all(v > 0 for v in a.minimizer[:2])
    assert "face p_j = 0 for j in {3}" in a.minimizer_method
    # A target whose minimiser is interior: the same loss solves on the interior.
    inside = analyze(SQUARED_MISS, target=[0.3, 0.3, 0.4])
    assert min(inside.minimizer) > 0
    np.testing.assert_allclose(inside.minimizer, _scipy_minimiser(SQUARED_MISS, [0.3, 0.3, 0.4]),
                               atol=1e-6)


def test_spherical_is_not_separable_and_its_proof_is_second_order():
    a = analyze(SPHERICAL)
    text = a.render("text")
    assert "separable" not in text and "positive definite" in text
    assert "numerical" in a.proper_reason  # the global part says what rests on numbers


def test_inverse_map_of_a_saturated_prediction_is_finite():
    # A softmax that rounds to exactly 1: q ∝ 1/(1 − p) is read at the nearest p below 1.
    recovered = analyze(SQUARED_MISS).invert(np.array([[1.0, 0.0, 0.0], [0.5, 0.3, 0.2]]))
    assert np.all(np.isfinite(recovered))
    np.testing.assert_allclose(recovered[0], [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(recovered.sum(axis=1), 1)


def test_elementwise_closed_form_and_inverse():
    a = analyze(WEIGHTED_BCE, target=[0.3])
    assert a.closed_form == "p* = 2*q/(q + 1)"
    assert a.minimizer == pytest.approx([0.6 / 1.3], abs=1e-14)
    np.testing.assert_allclose(a.invert(np.array(a.minimizer)), [0.3], atol=1e-12)
    assert analyze(WEIGHTED_BCE, params={"w": 1.0}).proper is True


def test_undecided_verdict_says_why():
    a = analyze(UNDECIDABLE)
    assert a.proper is None and "could not decide" in a.proper_reason
    assert a.as_json()["proper"] is None


def test_bernardo_lemma_for_local_rules():
    log_score = analyze(SymbolicLoss("log", "-2*q*log(p)", "separable"))
    assert log_score.proper is True
    assert any("Bernardo" in s["claim"] for s in log_score.steps())
    power = analyze(SymbolicLoss("power", "-q*p", "separable"))
    assert power.proper is False


# -- the registry through analyze: agreement with the catalogue's figures -------------

# The catalogue's figures for q = (0.2, 0.3, 0.5) at the defaults (softxent catalogue).
CATALOGUE = {
    "sigmoid_focal_loss": [0.0470, 0.1223, 0.5000],
    "focal_cross_entropy": [0.2482, 0.3253, 0.4265],
    "poly1_cross_entropy": [0.1412, 0.2466, 0.6122],
    "generalized_cross_entropy": [0.0384, 0.1482, 0.8134],
}
IMPROPER = set(CATALOGUE)


@pytest.mark.parametrize("spec", softxent.list_losses(), ids=lambda s: s.name)
def test_analyze_agrees_with_the_catalogue(spec):
    q = [0.2, 0.3, 0.5]
    a = analyze(spec.name, target=q)
    assert a.proper is (spec.name not in IMPROPER), a.proper_reason
    np.testing.assert_allclose(a.minimizer, CATALOGUE.get(spec.name, q), atol=5e-5)
    recovered = a.invert(np.asarray(a.minimizer))
    if spec.name != "sigmoid_focal_loss":  # the only one without an inverse map
        np.testing.assert_allclose(recovered, q, atol=1e-10)


def test_registry_convexity_verdicts():
    assert analyze("kl_divergence").convex_in_logits == "yes"
    assert analyze("poly1_cross_entropy").convex_in_p == "yes"
    assert analyze("brier_score").convex_in_logits == "no"


def test_a_broken_twin_changes_the_catalogue(monkeypatch, capsys):
    monkeypatch.setitem(_twins._FORMS, "kl_divergence",
                        lambda p, q, P: sum(qi * sp.log(qi / pi**2)
                                            for pi, qi in zip(p, q, strict=True)))
    assert cli(["catalogue", "--json", "--loss", "kl_divergence"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    # Twice the log score still is proper; breaking it further changes the minimiser:
    monkeypatch.setitem(_twins._FORMS, "kl_divergence",
                        lambda p, q, P: sum(qi * sp.log(qi / pi) + pi**2
                                            for pi, qi in zip(p, q, strict=True)))
    assert cli(["catalogue", "--json", "--loss", "kl_divergence"]) == 0
    broken = json.loads(capsys.readouterr().out)[0]
    assert row["proper"] is True
    assert broken["proper"] is False
    assert max(abs(a - b) for a, b in zip(broken["minimizer"], [0.2, 0.3, 0.5], strict=True)) > 1e-3


def test_no_check_that_cannot_fail():
    for path in (ROOT / "softxent" / "symbolic").glob("*.py"):
        assert "lambda: True" not in path.read_text(), path


# -- the parser ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "message"), [
    ("-q*log(p) + foo", "separable", "unknown symbol 'foo'"),
    ("-q*lg(p)", "separable", "unknown function 'lg'"),
    ("__import__('os').system('true')", "separable", "attribute access"),
    ("__import__('os')", "separable", "unknown function '__import__'"),
    ("p.real", "elementwise", "attribute access"),
    ("p[0]", "elementwise", "subscripts"),
    ("p1*q1", "elementwise", "'p1' is not a variable of an elementwise loss"),
    ("p4*q1", "distribution", "kind/K mismatch"),
    ("2*q", "separable", "does not depend on the prediction"),
    ("log(p, base=2)", "separable", "takes no keyword"),
    ("-q*log(p", "separable", "not a formula"),
    ("'p'", "separable", "is not a number"),
])
def test_the_parser_refuses_what_is_not_whitelisted(text, kind, message):
    with pytest.raises(ExpressionError, match=None) as info:
        SymbolicLoss("x", text, kind, classes=3 if kind == "distribution" else None)
    assert message in str(info.value)


def test_the_parser_reads_powers_functions_and_parameters():
    expr = parse_expression("-q*(1 - p)^g*log(p) + Max(p, 1/2)", kind="separable", params=["g"])
    p, q = sp.Symbol("p", positive=True), sp.Symbol("q", positive=True)
    g = sp.Symbol("g", real=True)
    assert sp.simplify(expr - (-q * (1 - p) ** g * sp.log(p) + sp.Max(p, sp.Rational(1, 2)))) == 0


def test_sympy_expressions_are_adopted_by_name():
    p, q = sp.symbols("p q")
    loss = SymbolicLoss("ce", -q * sp.log(p), "separable")
    assert analyze(loss).proper is True
    with pytest.raises(ExpressionError, match="unknown symbol 'r'"):
        SymbolicLoss("bad", -q * sp.log(sp.Symbol("r")), "separable")


# -- to_jax and check_gradient -------------------------------------------------------

FOCAL = SymbolicLoss("focal", "-q*(1 - p)**gamma*log(p)", "separable", {"gamma": 2.0})


def _focal(z, q, gamma=2.0):
    log_p = jax.nn.log_softmax(z)
    return -jnp.sum(q * (1 - jnp.exp(log_p)) ** gamma * log_p, axis=-1)


def _sign_error(z, q, gamma=2.0):
    return -_focal(z, q, gamma)


def _missing_term(z, q, gamma=2.0):
    log_p = jax.nn.log_softmax(z)
    return -jnp.sum(q * (1 - jnp.exp(log_p) ** gamma) * log_p, axis=-1)


def _wrong_constant(z, q, gamma=2.0):
    log_p = jax.nn.log_softmax(z)
    return -jnp.sum(q * (1 - jnp.exp(log_p)) ** (gamma + 0.01) * log_p, axis=-1)


def test_check_gradient_passes_correct_code():
    for fn in (_focal, to_jax(FOCAL)):
        result = check_gradient(fn, FOCAL, points=300)
        assert result.passed and result.max_rel_err <= 1e-10, result.summary()


@pytest.mark.parametrize("wrong", [_sign_error, _missing_term, _wrong_constant])
def test_check_gradient_catches_wrong_code(wrong):
    result = check_gradient(wrong, FOCAL, points=300)
    assert not result.passed
    assert "FAILED" in result.summary() and "worst" in result.summary()


def test_check_gradient_elementwise_on_probabilities():
    def bce(p, q, w=2.0):
        return -(w * q * jnp.log(p) + (1 - q) * jnp.log1p(-p))

    assert check_gradient(bce, WEIGHTED_BCE, points=300, input="probabilities").passed
    wrong = check_gradient(lambda p, q, w=2.0: bce(p, q, w + 1), WEIGHTED_BCE, points=300,
                           input="probabilities")
    assert not wrong.passed
    with pytest.raises(ValueError, match="points must be an integer >= 1, got 0"):
        check_gradient(bce, WEIGHTED_BCE, points=0)


def test_to_jax_matches_the_shipped_loss_and_transforms():
    fn = to_jax(FOCAL)
    z = jax.random.normal(jax.random.key(0), (5, 3), dtype=jnp.float64)
    q = jax.nn.softmax(jax.random.normal(jax.random.key(1), (5, 3), dtype=jnp.float64))
    shipped = softxent.focal_cross_entropy(z, q, gamma=2.0)
    np.testing.assert_allclose(fn(z, q), shipped, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(fn)(z, q, gamma=1.0),
                               softxent.focal_cross_entropy(z, q, gamma=1.0), rtol=1e-12)
    np.testing.assert_allclose(jax.vmap(fn)(z, q), shipped, rtol=1e-12)
    grad = jax.grad(lambda z: fn(z, q, reduction="sum"))(z)
    expected = jax.grad(lambda z: jnp.sum(softxent.focal_cross_entropy(z, q)))(z)
    np.testing.assert_allclose(grad, expected, rtol=1e-10)
    assert float(fn(z, q, where=jnp.array([True, False, True, True, True]))[1]) == 0.0
    spherical = to_jax(SPHERICAL, input="probabilities")
    assert float(spherical(q[0], q[0])) == pytest.approx(-float(jnp.linalg.norm(q[0])))


# -- the command line ----------------------------------------------------------------

KEYS = {"loss", "kind", "params", "proper", "minimizer", "stationarity", "inverse_map",
        "convex_in_p", "convex_in_logits", "steps"}


def test_analyze_cli_json(capsys):
    assert cli(["analyze", "--expr", "-q*log(p) + eps*q*(1 - p)", "--kind", "separable",
                "--param", "eps=2", "--target", "0.2,0.3,0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == KEYS
    assert out["proper"] is False and out["params"] == {"eps": 2.0}
    np.testing.assert_allclose(out["minimizer"], CATALOGUE["poly1_cross_entropy"], atol=5e-5)
    assert out["convex_in_p"] in ("yes", "no", "unknown")
    assert all(set(s) == {"claim", "how"} for s in out["steps"])


def test_analyze_cli_registry_and_formats(capsys):
    assert cli(["analyze", "kl_divergence", "--format", "latex"]) == 0
    assert "\\section*" in capsys.readouterr().out
    assert cli(["analyze", "kl_divergence", "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("## Analysis of kl_divergence")
    assert cli(["analyze", "--expr", "(p - q)**2*(2 + sin(1/p))", "--kind", "elementwise",
                "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proper"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--expr", "-q*log(p) + foo", "--kind", "separable"], "unknown symbol 'foo'"),
    (["--expr", "-q*lg(p)", "--kind", "separable"], "unknown function 'lg'"),
    (["--expr", "2*q", "--kind", "separable"], "does not depend on the prediction"),
    (["--expr", "p4*q4", "--kind", "distribution", "--classes", "3"], "kind/K mismatch"),
    (["--expr", "-q*log(p)", "--kind", "separable", "--target", "0.5,0.6"],
     "must be a distribution"),
    (["--expr", "-q*log(p)"], "--expr needs --kind"),
    (["kl_divergance"], "unknown loss 'kl_divergance'"),
    (["focal_cross_entropy", "--param", "gama=1"], "has no parameter"),
    (["focal_cross_entropy", "--param", "gamma=x"], "expects a number"),
    ([], "give a registry loss NAME or --expr EXPR"),
])
def test_analyze_cli_bad_input_exits_2(argv, message, capsys):
    assert cli(["analyze", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_analyze_cli_failed_step_exits_1(monkeypatch, capsys):
    def broken(self, *args):
        raise StepFailed("planted failure")

    monkeypatch.setattr(_analysis._Elementwise, "derive_inverse", broken)
    assert cli(["analyze", "--expr", "-(q*log(p) + (1-q)*log(1-p))/3", "--kind",
                "elementwise"]) == 1
    assert "planted failure" in capsys.readouterr().err
