"""The public API: registry, jit export, transforms, dtypes, import weight, docs."""

from __future__ import annotations

import doctest
import inspect
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent

ROOT = Path(__file__).resolve().parents[1]
SPECS = softxent.list_losses()
REQUIRED = {
    "binary_cross_entropy", "cross_entropy", "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy", "kl_divergence", "reverse_kl_divergence", "js_divergence",
    "brier_score", "focal_cross_entropy", "sigmoid_focal_loss", "poly1_cross_entropy",
    "generalized_cross_entropy", "distillation_loss",
}


def _example_inputs(spec, shape=(5, 4)):
    z = jax.random.normal(jax.random.key(0), shape, dtype=jnp.float32)
    q = jax.nn.softmax(jax.random.normal(jax.random.key(1), shape, dtype=jnp.float32))
    if spec.input == "probabilities":
        z = jax.nn.softmax(z) if spec.output == "per_example" else jax.nn.sigmoid(z)
    if spec.targets == "logits":
        q = jnp.log(q)
    return z, q


def test_registry_lists_every_required_loss_once():
    names = softxent.loss_names()
    assert REQUIRED <= set(names)
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(softxent, name) is softxent.get_loss(name).fn


def test_get_loss_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean 'softmax_cross_entropy'"):
        softxent.get_loss("softmax_crossentropy")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_registry_defaults_match_the_signature(spec):
    signature = inspect.signature(spec.fn)
    for param in spec.params:
        assert signature.parameters[param.name].default == param.default
        assert signature.parameters[param.name].kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.parameters["where"].default is None


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_exported_compiled_and_transformable(spec):
    z, q = _example_inputs(spec)
    # Exported jit-compiled: lowering works and eager calls return jax Arrays.
    assert "stablehlo" in spec.fn.lower(z, q).as_text()[:2000] or spec.fn.lower(z, q)
    eager = spec.fn(z, q)
    assert isinstance(eager, jax.Array)
    expected_shape = (5,) if spec.output == "per_example" else (5, 4)
    assert eager.shape == expected_shape
    # Inside a user's jit, vmap and grad.
    np.testing.assert_allclose(jax.jit(spec.fn)(z, q), eager, rtol=1e-6)
    per_row = jax.vmap(spec.fn)(z, q)
    np.testing.assert_allclose(per_row, eager, rtol=1e-6)
    grad = jax.grad(lambda z: spec.fn(z, q).sum())(z)
    assert grad.shape == z.shape and bool(jnp.all(jnp.isfinite(grad)))


def test_eager_calls_reuse_one_compilation():
    spec = softxent.get_loss("softmax_cross_entropy")
    z, q = _example_inputs(spec)
    spec.fn(z, q)
    before = spec.fn.jitted._cache_size()
    spec.fn(z + 1.0, q, label_smoothing=0.1)
    spec.fn(z + 2.0, q, label_smoothing=0.2)  # a new value is traced, not recompiled
    assert spec.fn.jitted._cache_size() == before + 1


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_low_precision_inputs_compute_in_float32(spec, dtype):
    z, q = _example_inputs(spec)
    z_low = z.astype(dtype)
    if spec.targets == "logits":
        q = q.astype(dtype)
    low = spec.fn(z_low, q)
    assert low.dtype == jnp.float32
    # The float32 computation on the same (rounded) predictions: the float32 targets
    # are used as they are, not quantised to the input dtype (that would differ by
    # ~1e-3). XLA may compile the float32 arithmetic of a program that reads a
    # low-precision input into different machine code (fused multiply-adds), so the
    # last bit or two may differ.
    np.testing.assert_allclose(low, spec.fn(z_low.astype(jnp.float32), q), rtol=2**-21, atol=0)
    grad = jax.grad(lambda z: spec.fn(z, q).sum())(z_low)
    assert grad.dtype == dtype


def test_soft_targets_are_not_quantised_to_bfloat16():
    z = jnp.zeros(3, dtype=jnp.bfloat16)
    q1 = jnp.array([0.3335, 0.3330, 0.3335], dtype=jnp.float32)
    q2 = q1 + jnp.array([2e-4, -4e-4, 2e-4], dtype=jnp.float32)
    assert jnp.array_equal(q1.astype(jnp.bfloat16), q2.astype(jnp.bfloat16))  # bf16 can't tell
    g1 = jax.grad(lambda q: softxent.kl_divergence(z, q))(q1)
    g2 = jax.grad(lambda q: softxent.kl_divergence(z, q))(q2)
    assert not jnp.array_equal(g1, g2)


def test_float64_in_float64_out():
    z = jnp.array([1.0, 2.0], dtype=jnp.float64)
    assert softxent.softmax_cross_entropy(z, jnp.array([0.5, 0.5])).dtype == jnp.float64


def test_python_lists_are_accepted():
    value = softxent.softmax_cross_entropy([0.0, 0.0], [0.5, 0.5])
    np.testing.assert_allclose(value, np.log(2.0))


def test_import_softxent_does_not_import_sympy_or_matplotlib():
    code = (
        "import sys, softxent; "
        "heavy = [m for m in ('sympy', 'matplotlib', 'scipy', 'optax') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version_comes_from_package_metadata():
    from importlib.metadata import version

    assert softxent.__version__ == version("softxent")


def test_py_typed_marker_ships():
    assert (Path(softxent.__file__).parent / "py.typed").exists()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_docstring_has_formula_example_and_references_and_the_example_runs(spec):
    doc = spec.fn.__doc__ or ""
    for part in (".. math::", "Example:", "References:", "Args:", "Returns:"):
        assert part in doc, f"{spec.name} docstring lacks {part!r}"
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(spec.fn, spec.name, globs={})
    assert sum(len(t.examples) for t in tests) > 0
    with jax.numpy_dtype_promotion("standard"):
        for t in tests:
            runner.run(t)
    assert runner.failures == 0, f"{spec.name}: docstring example failed"


def test_readme_example_runs_and_fits_the_targets():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                         check=True, timeout=300)
    assert float(out.stdout.strip().splitlines()[-1]) < 0.05


def test_cli_lists_losses_as_json():
    import json

    out = subprocess.run([sys.executable, "-m", "softxent", "losses", "--json"],
                         capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    assert [r["loss"] for r in rows] == softxent.loss_names(family=None)
    assert {r["family"] for r in rows} == {"dense", "sparse", "chunked", "linear"}
    assert [r["loss"] for r in rows if r["family"] == "dense"] == softxent.loss_names()
    focal = next(r for r in rows if r["loss"] == "focal_cross_entropy")
    assert focal["params"] == {"gamma": 2.0}


def test_cli_demo_runs():
    out = subprocess.run([sys.executable, "-m", "softxent", "demo", "--steps", "300"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "softmax_cross_entropy" in out.stdout and "Edge cases" in out.stdout


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_loss_reduces_to_the_mean_or_sum_of_its_output(spec):
    z, q = _example_inputs(spec)
    per_example = spec.fn(z, q)
    assert inspect.signature(spec.fn).parameters["reduction"].default == "none"
    np.testing.assert_allclose(spec.fn(z, q, reduction="none"), per_example)
    for reduction, reduce in [("mean", jnp.mean), ("sum", jnp.sum)]:
        value = spec.fn(z, q, reduction=reduction)
        assert value.shape == ()
        np.testing.assert_allclose(value, reduce(per_example), rtol=2e-6)
        np.testing.assert_allclose(
            jax.grad(lambda z, r=reduction: spec.fn(z, q, reduction=r))(z),
            jax.grad(lambda z, f=reduce: f(spec.fn(z, q)))(z),
            rtol=1e-5, atol=1e-7,
        )
    assert "reduction:" in spec.fn.__doc__


@pytest.mark.parametrize("reduction", ["avg", None, "MEAN"])
def test_a_bad_reduction_names_the_option_and_the_choices(reduction):
    with pytest.raises(ValueError, match=r"brier_score: reduction must be one of "
                       r"\('none', 'mean', 'sum'\), got " + re.escape(repr(reduction))):
        softxent.brier_score(jnp.zeros((2, 3)), jnp.ones((2, 3)) / 3, reduction=reduction)
    # The exported jitted function checks it too, rather than reducing to the sum.
    with pytest.raises(ValueError, match=r"brier_score: reduction must be one of"):
        softxent.brier_score.jitted(jnp.zeros((2, 3)), jnp.ones((2, 3)) / 3, reduction=reduction)
