"""Symbolic verification: twins, the checked-derivation engine, proofs, catalogue, verify."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import sympy as sp

import softxent
from softxent.cli import main as cli
from softxent.symbolic import Derivation, StepFailed, _proofs, is_proper, minimizer, twin
from softxent.symbolic._catalogue import inverse_map
from softxent.symbolic._twins import symbols
from softxent.symbolic._verify import verify

ROOT = Path(__file__).resolve().parents[1]
SPECS = softxent.list_losses()


# -- twins ---------------------------------------------------------------------


def test_every_registry_loss_has_a_twin():
    missing = []
    for spec in softxent.list_losses(family=None):
        try:
            twin(spec.name)
        except KeyError:
            missing.append(spec.name)
    assert not missing, f"losses without a SymPy twin: {missing}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_twin_values_equal_the_jax_values(spec):
    t = twin(spec.name)
    params = t.parameters()
    rng = np.random.default_rng(0)
    width = 3 if spec.output == "per_example" else 1
    xs, ts = symbols("x", width, real=True), symbols("t", width, real=True)
    ax = xs if width > 1 else xs[0]
    at = ts if width > 1 else ts[0]
    expr = (t.in_probabilities(ax, at, params) if spec.input == "probabilities"
            else t.in_logits(ax, at, params))
    value = sp.lambdify([*xs, *ts], expr, "mpmath")
    for _ in range(5):
        if spec.input == "probabilities":
            x = rng.dirichlet(np.ones(width)) if width > 1 else rng.random(1)
        else:
            x = rng.normal(0, 3, width)
        tgt = (rng.normal(0, 2, width) if spec.targets == "logits"
               else rng.dirichlet(np.ones(width)) if width > 1 else rng.random(1))
        ours = float(jnp.sum(spec.fn(jnp.asarray(x), jnp.asarray(tgt))))
        reference = float(value(*x, *tgt))
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-14)


# -- the engine ------------------------------------------------------------------

p, q = sp.symbols("p q", positive=True)


def test_a_wrong_identity_raises():
    d = Derivation("broken")
    with pytest.raises(StepFailed, match="could not reduce"):
        d.identity("a wrong factorisation", -q / p + (1 - q) / (1 - p), (p - q) / (p * (1 + p)))
    assert d.steps == []


def test_a_wrong_derivative_solution_sign_and_check_raise():
    d = Derivation("broken")
    with pytest.raises(StepFailed):
        d.derivative("wrong", sp.log(p), p, 1 / p**2)
    with pytest.raises(StepFailed):
        d.solution("wrong root", p - q, p, [2 * q])
    with pytest.raises(StepFailed, match="cannot establish"):
        d.sign("not decidable as positive", p - q, "positive")
    with pytest.raises(StepFailed):
        d.holds("false", lambda: sp.Integer(1) > 2)


def test_checked_steps_render_in_three_formats():
    d = _proofs.binary_cross_entropy()
    text, latex, markdown = d.render("text"), d.render("latex"), d.render("markdown")
    assert "p = q" in text and "unique global minimum" in text
    assert "\\frac{p - q}{p \\left(1 - p\\right)}" in latex
    assert "$$" in markdown and markdown.startswith("## ")
    with pytest.raises(ValueError, match="format must be"):
        d.render("html")


@pytest.mark.parametrize("name", list(_proofs.PROOFS))
def test_every_proof_checks(name):
    d = _proofs.PROOFS[name]()
    assert len(d.steps) >= 5


def test_proof_script_runs_and_prints_the_note():
    out = subprocess.run([sys.executable, str(ROOT / "proofs" / "binary_cross_entropy.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "The derivative vanishes only at p = q" in out.stdout


def test_a_deliberately_broken_step_makes_the_script_exit_1(monkeypatch, capsys):
    def broken():
        d = Derivation("Binary cross-entropy, with a wrong step")
        H = -(q * sp.log(p) + (1 - q) * sp.log(1 - p))
        d.identity("a factorisation with a sign error", sp.diff(H, p), (q - p) / (p * (1 - p)))
        return d

    monkeypatch.setitem(_proofs.PROOFS, "binary_cross_entropy", broken)
    assert _proofs.script_main(["binary_cross_entropy"], []) == 1
    assert "FAILED" in capsys.readouterr().err
    assert cli(["prove", "binary_cross_entropy"]) == 1


def test_prove_cli_argument_errors(capsys):
    assert cli(["prove"]) == 2
    assert cli(["prove", "nonexistent"]) == 2
    assert "unknown proof 'nonexistent'" in capsys.readouterr().err


def test_bce_on_softmax_counterexample_is_not_the_target():
    d = _proofs.bce_on_softmax()
    text = d.render("text")
    assert "Counterexample" in text and "not q" in text


# -- catalogue ---------------------------------------------------------------------

PROPER_AT_DEFAULTS = {
    "binary_cross_entropy", "cross_entropy", "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy", "kl_divergence", "reverse_kl_divergence", "js_divergence",
    "brier_score", "distillation_loss",
}


def test_properness_at_defaults():
    assert {s.name for s in SPECS if is_proper(s.name)} == PROPER_AT_DEFAULTS


def test_properness_depends_on_parameters():
    assert not is_proper("softmax_cross_entropy", {"label_smoothing": 0.1})
    assert not is_proper("sigmoid_binary_cross_entropy", {"pos_weight": 2.0})
    assert is_proper("focal_cross_entropy", {"gamma": 0.0})
    assert is_proper("poly1_cross_entropy", {"epsilon": 0.0})
    assert not is_proper("generalized_cross_entropy", {"k": 0.1})


TARGETS = {2: [[0.3, 0.7], [0.05, 0.95], [0.5, 0.5]],
           3: [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.05, 0.15, 0.8]]}


def _numerical_minimiser(spec, q):
    """Minimise the shipped JAX loss over free logits with SciPy (independent of SymPy)."""
    q = jnp.asarray(q)
    link = jax.nn.softmax if spec.output == "per_example" else jax.nn.sigmoid

    def objective(z):
        z = jnp.asarray(z)
        if spec.targets == "logits":
            value = spec.fn(z, jnp.log(q))
        elif spec.input == "probabilities":
            value = spec.fn(link(z), q)
        else:
            value = spec.fn(z, q)
        return jnp.sum(value)

    value_and_grad = jax.jit(jax.value_and_grad(objective))
    result = scipy.optimize.minimize(
        lambda z: tuple(np.asarray(v, dtype=np.float64) for v in value_and_grad(z)),
        np.zeros(len(q)), jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 5000})
    return np.asarray(link(jnp.asarray(result.x)))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_catalogue_minimiser_agrees_with_numerical_minimisation(spec, k):
    for target in TARGETS[k]:
        symbolic = minimizer(spec.name, target)
        numeric = _numerical_minimiser(spec, target)
        np.testing.assert_allclose(symbolic, numeric, atol=1e-6,
                                   err_msg=f"{spec.name}, target {target}")


@pytest.mark.parametrize(("name", "params"), [
    ("softmax_cross_entropy", {"label_smoothing": 0.2}),
    ("sigmoid_binary_cross_entropy", {"pos_weight": 3.0, "label_smoothing": 0.1}),
    ("focal_cross_entropy", {"gamma": 1.0}),
    ("poly1_cross_entropy", {"epsilon": -0.5}),
    ("generalized_cross_entropy", {"k": 0.4}),
])
def test_inverse_maps_recover_the_target(name, params):
    q = np.array([0.2, 0.3, 0.5])
    recovered = inverse_map(name, minimizer(name, q, params), params)
    np.testing.assert_allclose(recovered, q, atol=1e-12)


def test_minimizer_rejects_bad_targets_and_names():
    with pytest.raises(ValueError, match="must sum to 1"):
        minimizer("kl_divergence", [0.2, 0.2])
    with pytest.raises(KeyError, match="unknown loss"):
        minimizer("kl_divergance", [0.5, 0.5])
    with pytest.raises(KeyError, match="no parameter"):
        minimizer("focal_cross_entropy", [0.5, 0.5], {"gama": 1.0})


def test_catalogue_json(capsys):
    assert cli(["catalogue", "--json", "--target", "0.2,0.3,0.5", "--loss", "kl_divergence",
                "--loss", "softmax_cross_entropy",
                "--set", "softmax_cross_entropy.label_smoothing=0.1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # in the registry's order, then the options of softmax_cross_entropy
    assert [r["loss"] for r in rows if "option" not in r] == [
        "softmax_cross_entropy", "kl_divergence"]
    assert [(r["loss"], r["option"]) for r in rows if "option" in r] == [
        ("softmax_cross_entropy", "z_loss"), ("softmax_cross_entropy", "soft_cap"),
        ("softmax_cross_entropy", "soft_cap")]
    for row in rows:
        assert {"loss", "params", "proper", "minimizer", "bias", "convex_in_p",
                "convex_in_z"} <= set(row)
        assert len(row["minimizer"]) == 3
    ce = next(r for r in rows if r["loss"] == "softmax_cross_entropy")
    assert ce["params"] == {"label_smoothing": 0.1} and ce["proper"] is False
    np.testing.assert_allclose(ce["minimizer"], [0.9 * 0.2 + 0.1 / 3, 0.9 * 0.3 + 0.1 / 3,
                                                 0.9 * 0.5 + 0.1 / 3])
    kl = next(r for r in rows if r["loss"] == "kl_divergence")
    assert kl["convex_in_z"].startswith("yes")
    np.testing.assert_allclose(kl["minimizer"], [0.2, 0.3, 0.5], atol=1e-12)


def test_catalogue_lists_every_dense_loss(capsys, monkeypatch):
    """Without --loss, one entry per dense registry loss in the registry's order (each
    entry's analysis is checked per loss in test_analyze), with --set reaching its loss."""
    from softxent.symbolic import _catalogue

    def summary(name, target, params=None):
        return {"loss": name, "params": params or {}, "minimizer": target}

    monkeypatch.setattr(_catalogue, "entry", summary)
    monkeypatch.setattr(_catalogue, "option_entries", lambda target: [])
    assert cli(["catalogue", "--json", "--set", "focal_cross_entropy.gamma=1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["loss"] for r in rows] == softxent.loss_names()
    assert next(r for r in rows if r["loss"] == "focal_cross_entropy")["params"] == {
        "gamma": 1.0}


def test_catalogue_z_loss_keeps_the_minimiser_and_pins_the_shift():
    from softxent.symbolic._catalogue import z_loss_entry

    row = z_loss_entry([0.2, 0.3, 0.5], 1e-3)
    np.testing.assert_allclose(row["minimizer"], [0.2, 0.3, 0.5], atol=1e-12)
    np.testing.assert_allclose(row["logits"], np.log([0.2, 0.3, 0.5]), atol=1e-12)
    assert row["convex_in_z"].startswith("no (")
    # The JAX loss at z* = log q is least along the shift (independent of SymPy).
    z = jnp.log(jnp.array([0.2, 0.3, 0.5]))
    q = jnp.array([0.2, 0.3, 0.5])
    values = [float(softxent.softmax_cross_entropy(z + s, q, z_loss=1e-3))
              for s in (-0.1, 0.0, 0.1)]
    assert values[1] < min(values[0], values[2])


def test_catalogue_soft_cap_names_the_unreachable_targets():
    from softxent.symbolic._catalogue import soft_cap_entry

    c = 0.25
    high = 1 / (1 + 2 * np.exp(-2 * c))
    inside = soft_cap_entry([0.3, 0.3, 0.4], c)
    assert "reachable: p* = q, attained" in inside["method"]
    np.testing.assert_allclose(inside["minimizer"], [0.3, 0.3, 0.4], atol=1e-12)
    outside = soft_cap_entry([0.2, 0.3, 0.5], c)
    assert "unreachable" in outside["method"] and f"{high:.6g}" in outside["method"]
    p = np.asarray(outside["minimizer"])
    assert np.all(np.asarray(outside["logits"]) <= c + 1e-12) and p.max() <= high + 1e-12
    # SciPy over the logits of the JAX loss, capped by the loss itself, reaches the same p.
    q = jnp.array([0.2, 0.3, 0.5])
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda z: softxent.softmax_cross_entropy(z, q, soft_cap=c)))
    result = scipy.optimize.minimize(
        lambda z: tuple(np.asarray(v, dtype=np.float64) for v in value_and_grad(z)),
        np.zeros(3), jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 2000})
    capped = c * np.tanh(result.x / c)
    np.testing.assert_allclose(np.exp(capped) / np.exp(capped).sum(), p, atol=1e-5)


@pytest.mark.parametrize(("override", "message"), [
    ("focal_cross_entropy.gama=1", "has no parameter 'gama'"),
    ("focal_cros_entropy.gamma=1", "did you mean 'focal_cross_entropy'"),
    ("focal_cross_entropy.gamma=-1", "gamma must be in [0, inf), got -1"),
    ("focal_cross_entropy.gamma=abc", "expects a number"),
    ("gamma=1", "LOSS.PARAM=VALUE"),
])
def test_catalogue_set_errors_exit_2(override, message, capsys):
    assert cli(["catalogue", "--set", override]) == 2
    assert message in capsys.readouterr().err


# -- verify --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_verify_covers_every_loss_and_order(dtype):
    # The dense losses run here; the other families in the tests below, a few each. One
    # worker: with two, each builds every reference again, beside this process's compiling
    # (points split over workers are checked below).
    results = verify(points=6, workers=1, losses=softxent.loss_names(), dtypes=(dtype,))
    settings = {(r.loss, tuple(r.params.items())) for r in results}
    assert {loss for loss, _ in settings} == set(softxent.loss_names())
    assert {(r.order, r.dtype) for r in results} == {(o, dtype) for o in (0, 1, 2)}
    assert len(results) == 3 * len(settings)
    for r in results:
        assert r.points > 0 and r.passed, r


def test_verify_tasks_cover_every_family_and_option():
    import inspect

    from softxent.symbolic import _verify

    tasks = _verify._tasks(None)
    assert {spec.name for spec, _ in tasks} == set(softxent.loss_names(family=None))
    for form, settings in _verify.VARIANTS.items():
        for setting in settings:
            if set(setting) <= {"z_loss", "soft_cap"}:
                continue  # for each function of the form that takes it (checked below)
            assert any(twin(spec.name).form == form and params == setting
                       for spec, params in tasks), (form, setting)
    # Every function with a z-loss or a soft cap is verified with each.
    for spec in softxent.list_losses(family=None):
        accepted = inspect.signature(spec.fn).parameters
        for option in ("z_loss", "soft_cap"):
            if option in accepted:
                assert any(s is spec and option in params for s, params in tasks), (
                    spec.name, option)
    # A chunked or linear form shares its plain form's points and reference.
    keys = {_verify.reference_key(spec, params, "float32") for spec, params in tasks}
    assert len(keys) < len(tasks)
    plain = softxent.get_loss("softmax_cross_entropy")
    for name in ("chunked_softmax_cross_entropy", "linear_softmax_cross_entropy"):
        assert (_verify.reference_key(softxent.get_loss(name), {"z_loss": 1e-3}, "float64")
                == _verify.reference_key(plain, {"z_loss": 1e-3}, "float64"))


# A plain (sparse) or chunked form of each twin the sparse, chunked and linear families
# add; the chunked and linear forms share these.
NEW_FORMS = ["softmax_cross_entropy_with_integer_labels", "sparse_distillation_loss",
             "chunked_generalized_js_divergence", "chunked_reverse_kl_distillation_loss",
             "softmax_cross_entropy"]


@pytest.mark.parametrize("name", NEW_FORMS)
def test_non_dense_twins_equal_the_jax_values(name):
    """At moderate points, float64, every setting verify checks (z_loss and soft_cap too)."""
    import mpmath

    from softxent.symbolic import _verify

    jax.config.update("jax_enable_x64", True)
    spec = softxent.get_loss(name)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, (6, 3))
    teacher = rng.normal(0, 3, (6, 3))
    if spec.targets == "top_k":
        log_p = teacher - np.log(np.sum(np.exp(teacher), axis=1, keepdims=True))
        mask = (np.argsort(np.argsort(-teacher, axis=1), axis=1)
                < np.array([1, 2, 3, 1, 2, 3])[:, None]).astype(float)
        t = np.concatenate([np.where(mask > 0, log_p, 0), mask], axis=1)
    elif spec.targets == "labels":
        t = np.eye(3)[[0, 1, 2, 2, 1, 0]]
    elif spec.targets == "logits":
        t = teacher
    else:
        t = rng.dirichlet(np.ones(3), 6)
    tasks = [params for s, params in _verify._tasks([name])]
    assert len(tasks) >= 2
    for params in tasks:
        value = _verify._value_function(name, _verify.rounded_parameters(spec, params,
                                                                          "float64"))
        ours = _verify._jax_outputs(spec, params, (0,), "float64", x, t, np.zeros_like(x))
        with mpmath.workdps(40):
            exact = [float(value(*map(mpmath.mpf, x[i]), *map(mpmath.mpf, t[i])))
                     for i in range(len(x))]
        np.testing.assert_allclose(ours[:, 0], exact, rtol=1e-12, atol=1e-300,
                                   err_msg=f"{name} {params}")


def _perturbed(spec, factor):
    import dataclasses
    import functools

    @functools.wraps(spec.fn)
    def fn(*args, **kwargs):
        return spec.fn(*args, **kwargs) * factor

    return dataclasses.replace(spec, fn=softxent.export_loss(spec.params)(fn))


FAMILY_SAMPLE = ["softmax_cross_entropy_with_integer_labels", "chunked_softmax_cross_entropy",
                 "linear_distillation_loss"]


def test_verify_checks_a_sparse_a_chunked_and_a_linear_form(monkeypatch):
    from softxent.symbolic import _verify

    monkeypatch.setattr(_verify, "VARIANTS", {})
    results = _verify.verify(points=8, workers=2, losses=FAMILY_SAMPLE, dtypes=("float64",))
    assert {r.loss for r in results} == set(FAMILY_SAMPLE) and len(results) == 9
    assert all(r.passed and r.points > 0 for r in results), [
        r.describe() for r in results if not r.passed]
    # A relative 2e-5 change of the value (335 units of roundoff in float32) fails each.
    off = [_perturbed(softxent.get_loss(name), 1 + 2e-5) for name in FAMILY_SAMPLE]
    monkeypatch.setattr(_verify, "list_losses", lambda **_: off)
    results = _verify.verify(points=8, workers=2, orders=(1,), dtypes=("float32",))
    assert [r.loss for r in results] == FAMILY_SAMPLE
    assert not any(r.passed for r in results), [r.describe() for r in results]


def test_verify_cli_json_and_errors(capsys, tmp_path):
    path = tmp_path / "verify.json"
    code = cli(["verify", "--points", "8", "--loss", "reverse_kl_divergence", "--order", "1",
                "--dtype", "float64", "--json", str(path)])
    assert code == 0, capsys.readouterr().err
    document = json.loads(path.read_text())
    assert {"date", "environment", "results", "tolerance_units_of_roundoff"} <= set(document)
    # one reference (the defaults), computed or taken from the user's cache
    assert document["references_computed"] + document["references_loaded_from_cache"] == 1
    assert document["programs_compiled"] + document["programs_loaded_from_cache"] >= 1
    (row,) = document["results"]
    assert (row["loss"], row["order"], row["dtype"], row["passed"]) == (
        "reverse_kl_divergence", 1, "float64", True)
    assert cli(["verify", "--points", "0"]) == 2
    assert cli(["verify", "--loss", "nope"]) == 2


@pytest.mark.parametrize("order", [0, 1, 2])
def test_verify_catches_a_perturbed_loss_at_each_order(monkeypatch, order):
    import dataclasses

    from softxent.symbolic import _verify

    spec = softxent.get_loss("kl_divergence")
    # A relative 2e-5 change of the value changes every order by as much: 2e-5 / 2^-24
    # = 335 units of roundoff in float32, far beyond the tolerance.
    @softxent.export_loss()
    def kl_divergence(logits, targets, *, axis=-1, where=None, reduction="none"):
        kl = spec.fn(logits, targets, axis=axis, where=where, reduction=reduction)
        return kl * (1 + 2e-5)

    off = dataclasses.replace(spec, fn=kl_divergence)
    monkeypatch.setattr(_verify, "list_losses", lambda **_: [off])
    (result,) = _verify.verify(points=30, workers=1, orders=(order,), dtypes=("float32",))
    assert not result.passed
    assert "kl_divergence" in result.describe() and f"order {order}" in result.describe()


def test_verify_reference_takes_parameters_as_the_dtype_holds_them():
    from softxent.symbolic._verify import rounded_parameters

    spec = softxent.get_loss("generalized_cross_entropy")
    held = dict(rounded_parameters(spec, {"k": 0.3}, "float32"))
    assert held == {"k": float(np.float32(0.3))} and held["k"] != 0.3
    assert dict(rounded_parameters(spec, {}, "float64")) == {"k": 0.7}


def test_verify_floor_moves_each_input_on_its_own():
    """The value at logits [-709, 710], target [1, 0, 0] (about 1419) moves by 709 u
    and 710 u as each logit moves by its own unit roundoff, and by 1419 u as the target
    of 1 does (d/dt_0 of -t_0 log p_0): the floor is their sum. At two equal logits, which
    a scaling keeps equal, the gradient still moves."""
    from softxent.symbolic._verify import reference

    x, t, v = np.array([[-709.0, 710.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]), np.zeros((1, 3))
    exact, moved = reference("softmax_cross_entropy", (("label_smoothing", 0.0),), (0, 1),
                             x, t, v, False)
    np.testing.assert_allclose(exact[0, 0], 1419.0, rtol=1e-12)
    np.testing.assert_allclose(moved[0, 0], 2 * 1419.0, rtol=1e-9)
    x = np.array([[40.0, 40.0, 0.0]])
    exact, moved = reference("softmax_cross_entropy", (("label_smoothing", 0.0),), (0, 1),
                             x, t, v, False)
    # The gradient's p_0 - t_0 at p_0 = 1/2: z_0 and z_1 times p_0 (1 - p_0) = 1/4 and
    # p_0 p_1 = 1/4 make 10 each, and the target of 1 adds |p_0 - 1| = 1/2.
    np.testing.assert_allclose(moved[0, 1], 20.5, rtol=1e-9)


# Points of the default verify run (seed 0, 400 points) where a term of the loss lost
# accuracy: the focal weight's log(1 - p_t) differentiated as a sum that cancels
# (Hessian-vector product).
_VERIFIED_POINTS = [
    ("sigmoid_focal_loss", {"gamma": 1.5, "alpha": 0.25}, "float32", 2,
     ["0x1.0f894p+2"], ["0x1.74b1d6p-2"], ["-0x1.127c34p-3"]),
]


@pytest.mark.parametrize("name, params, dtype, order, x, t, v", _VERIFIED_POINTS,
                         ids=lambda a: a if isinstance(a, str) else "")
def test_verify_points_within_tolerance(name, params, dtype, order, x, t, v):
    from softxent.symbolic import _verify

    spec = softxent.get_loss(name)
    x, t, v = (np.array([[float.fromhex(a) for a in row]]) for row in (x, t, v))
    items = _verify.rounded_parameters(spec, params, dtype)
    exact, moved = _verify.reference(name, items, _verify.ORDERS, x, t, v, False)
    computed = _verify._jax_outputs(spec, params, _verify.ORDERS, dtype, x, t, v)
    result = _verify.compare(spec, params, order, dtype, x, t, v, exact, moved, computed,
                             _verify.ORDERS)
    assert result.passed, result.describe()


def test_verify_value_rounding_to_the_largest_float_is_finite():
    from softxent.symbolic._verify import compare

    spec = softxent.get_loss("binary_cross_entropy")
    top = float(np.finfo(np.float32).max)
    exact = np.array([[top * (1 + 2.0**-26)], [top * (1 + 2.0**-23)]])  # rounds to max; to inf
    computed = np.array([[top], [np.inf]])
    x = t = v = np.full((2, 1), 0.5)
    result = compare(spec, {}, 0, "float32", x, t, v, exact, np.zeros_like(exact), computed, (0,))
    assert result.passed, result.describe()
    computed[1, 0] = top  # where the exact value overflows, a finite one is a failure
    result = compare(spec, {}, 0, "float32", x, t, v, exact, np.zeros_like(exact), computed, (0,))
    assert not result.passed and "overflows" in result.failures[0]


def test_verify_takes_its_references_from_the_cache_when_the_points_are_the_same(
        tmp_path, monkeypatch):
    """A second run with a cache folder computes no reference and gives the same results;
    other points (another seed) are computed, not read."""
    from softxent.symbolic import _verify

    counts: collections.Counter[str] = collections.Counter()
    first = _verify.verify(points=6, workers=1, losses=["kl_divergence"],
                           dtypes=("float64",), cache=tmp_path, counts=counts)
    assert counts["compiled"] >= 3 and counts["loaded"] == 0, counts
    assert counts["references computed"] == 3 and counts["references loaded"] == 0
    stored = sorted(tmp_path.glob("*.npz"))
    assert len(stored) == 3  # defaults, z_loss and soft_cap
    assert len(list((tmp_path / "compiled").iterdir())) == counts["compiled"]
    assert jax.config.jax_compilation_cache_dir is None  # JAX's setting given back

    def refuse(*args, **kwargs):
        raise AssertionError("a cached reference was computed again")

    monkeypatch.setattr(_verify, "reference", refuse)
    counts = collections.Counter()
    again = _verify.verify(points=6, workers=1, losses=["kl_divergence"],
                           dtypes=("float64",), cache=tmp_path, counts=counts)
    assert [r.as_dict() for r in again] == [r.as_dict() for r in first]
    # every setting's program loaded from the cache, none compiled again
    assert counts["loaded"] >= 3 and counts["compiled"] == 0, counts
    assert counts["references loaded"] == 3 and counts["references computed"] == 0
    # the pool pickles what it is handed: the local stand-in cannot be sent, and says so
    with pytest.raises(Exception, match="computed again|pickle"):
        _verify.verify(points=6, seed=1, workers=1, losses=["kl_divergence"],
                       dtypes=("float64",), cache=tmp_path)
