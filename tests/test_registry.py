"""The registry: one table, user losses checked as the built-ins are, no import cycle."""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent
from softxent._registry import references_of

PACKAGE = Path(softxent.__file__).resolve().parent


def total_variation(logits, targets, *, axis=-1, where=None, reduction="none", scale=1.0):
    p = jax.nn.softmax(logits, axis=axis, where=where)
    tv = scale * 0.5 * jnp.sum(jnp.abs(p - targets), axis=axis, where=where)
    return softxent.apply_reduction("total_variation", tv, reduction)


SCALE = softxent.Param("scale", 1.0, 0.0, None, low_open=True, doc="a positive factor")
FIELDS = dict(input="logits", link="softmax", output="per_example", summary="total variation")


@pytest.fixture
def registered():
    names = []

    def register(fn, **fields):
        loss = softxent.register_loss(fn, **{**FIELDS, **fields})
        names.append(loss.__name__)
        return loss

    yield register
    for name in names:
        softxent.unregister_loss(name)


def test_a_registered_loss_is_listed_exported_and_its_params_checked(registered):
    loss = registered(total_variation, params=(SCALE,), symbolic="twin")
    spec = softxent.get_loss("total_variation")
    assert spec.fn is loss and spec.params == (SCALE,) and spec.symbolic == "twin"
    assert softxent.loss_names()[-1] == "total_variation"
    assert spec in softxent.list_losses(output="per_example")
    z, q = jnp.zeros((2, 2)), jnp.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(loss(z, q), [0.5, 0.0])
    np.testing.assert_allclose(loss([0.0, 0.0], [1.0, 0.0], reduction="sum", scale=2.0), 1.0)
    # The same messages as a built-in loss gives.
    with pytest.raises(ValueError, match=r"total_variation: scale must be in \(0, inf\), got -1"):
        loss(z, q, scale=-1.0)
    with pytest.raises(ValueError, match=r"total_variation: reduction must be one of"):
        loss(z, q, reduction="avg")
    assert "stablehlo" in loss.lower(z, q).as_text()


def test_register_loss_works_as_a_decorator():
    tv = globals()["total_variation"]

    @softxent.register_loss(**FIELDS)
    def total_variation(logits, targets, *, axis=-1, where=None, reduction="none"):
        return tv(logits, targets, axis=axis, where=where, reduction=reduction)

    try:
        assert softxent.get_loss("total_variation").fn is total_variation
    finally:
        softxent.unregister_loss("total_variation")
    with pytest.raises(KeyError, match="unknown loss 'total_variation'"):
        softxent.get_loss("total_variation")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output": "class"}, r"output must be one of \('per_example', 'per_component'\), "
                              r"got 'class'"),
        ({"link": "tanh"}, r"link must be one of \('softmax', 'sigmoid', 'none'\), got 'tanh'"),
        ({"input": "scores"}, r"input must be one of .*got 'scores'"),
        ({"family": "blocked"}, r"family must be one of \('dense', 'sparse', 'chunked', "
                                r"'linear'\), got 'blocked'"),
        ({"summary": ""}, r"summary must be a non-empty string"),
    ],
)
def test_a_bad_field_is_named_with_its_choices(fields, message):
    with pytest.raises(ValueError, match=r"loss 'total_variation': " + message):
        softxent.register_loss(total_variation, **{**FIELDS, **fields})
    assert "total_variation" not in softxent.loss_names(family=None)


def test_a_function_outside_the_contract_is_refused():
    def no_reduction(logits, targets, *, axis=-1, where=None):
        return logits

    with pytest.raises(ValueError, match=r"'no_reduction': .* keyword-only 'reduction' with "
                                         r"default 'none', got missing"):
        softxent.register_loss(no_reduction, **FIELDS)
    with pytest.raises(ValueError, match=r"parameter 'scale' must be keyword-only with default "
                                         r"2.0 \(its Param's default\), got keyword-only, "
                                         r"default 1.0"):
        softxent.register_loss(total_variation, params=(SCALE.__class__("scale", 2.0),),
                               **FIELDS)
    with pytest.raises(TypeError, match=r"fn must be exported with softxent.export_loss"):
        softxent.LossSpec(total_variation, **FIELDS)


def test_a_name_is_registered_once_and_built_ins_stay(registered):
    registered(total_variation)
    with pytest.raises(ValueError, match="loss 'total_variation' is already registered"):
        softxent.register_loss(total_variation, **FIELDS)
    with pytest.raises(ValueError, match="'brier_score' is built in and cannot be unregistered"):
        softxent.unregister_loss("brier_score")


def test_other_families_are_listed_only_when_asked_for(registered):
    registered(total_variation, family="chunked")
    assert "total_variation" not in softxent.loss_names()
    assert [s.name for s in softxent.list_losses(family="chunked")][-1] == "total_variation"
    assert softxent.loss_names(family=None)[-1] == "total_variation"
    assert softxent.get_loss("total_variation").family == "chunked"


LARGE_VOCABULARY = ("softmax_cross_entropy", "distillation_loss",
                   "softmax_cross_entropy_with_integer_labels", "sparse_distillation_loss",
                   "generalized_js_divergence", "reverse_kl_distillation_loss")


def test_every_family_is_in_the_table_and_the_tools_default_to_dense():
    """The sparse, chunked and linear forms are registered (exported, with their params and
    references); list_losses() stays dense, and a tool asking for a dense loss by name
    hears which family a large-vocabulary form is in."""
    families = {f: softxent.loss_names(family=f) for f in ("sparse", "chunked", "linear")}
    assert families == {
        "sparse": ["softmax_cross_entropy_with_integer_labels", "sparse_distillation_loss"],
        "chunked": [f"chunked_{name}" for name in LARGE_VOCABULARY],
        "linear": [f"linear_{name}" for name in LARGE_VOCABULARY],
    }
    assert all(s.family == "dense" for s in softxent.list_losses())
    for name in sum(families.values(), []):
        spec = softxent.get_loss(name)
        assert spec.fn is getattr(softxent, name) and spec.references
        assert spec.input == ("hidden" if spec.family == "linear" else "logits")
    assert softxent.get_loss("linear_generalized_js_divergence").params[0].name == "beta"
    with pytest.raises(KeyError, match=r"loss 'chunked_distillation_loss' is of the 'chunked' "
                                       r"family; expected a loss of the 'dense' family"):
        softxent.get_loss("chunked_distillation_loss", family="dense")
    with pytest.raises(KeyError, match=r"unknown loss 'linear_distilation_loss'; did you mean "
                                       r"'linear_distillation_loss'"):
        softxent.get_loss("linear_distilation_loss", family="linear")
    # Exported: parameters checked before any work, the same message as a dense loss.
    with pytest.raises(ValueError, match=r"linear_generalized_js_divergence: beta must be in "
                                         r"\[0, 1\], got 1.5"):
        softxent.linear_generalized_js_divergence(
            jnp.zeros((2, 3)), jnp.zeros((3, 4)), jnp.zeros((2, 3)), jnp.zeros((3, 4)), beta=1.5)


def test_references_are_the_docstring_entries():
    doc = """Summary.

    References:
      First, A Paper,
      2001.

      Second, Another, 2002.

    Notes:
      not a reference.
    """
    assert references_of(doc) == ("First, A Paper, 2001.", "Second, Another, 2002.")
    assert references_of("No sections.") == ()
    for spec in softxent.list_losses():
        assert spec.references, f"{spec.name} has no References section"
        assert spec.references == references_of(spec.fn.__doc__)


def test_register_loss_docstring_example_runs():
    tests = doctest.DocTestFinder().find(softxent.register_loss, "register_loss", globs={})
    runner = doctest.DocTestRunner()
    for t in tests:
        runner.run(t)
    assert sum(len(t.examples) for t in tests) > 0 and runner.failures == 0
    assert "total_variation" not in softxent.loss_names(family=None)


def _imports(module: str, path: Path, modules: set[str]) -> set[str]:
    """The softxent modules ``module`` imports anywhere in its source (functions included).

    Importing a name from one's own parent package is left out: a package that
    re-exports its submodules is imported first and is no cycle.
    """
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parent = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join(parent + ([node.module] if node.module else []))
            found |= {f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target
                      for a in node.names}
    return {m for m in found if m in modules and m != module and not module.startswith(m + ".")}


def test_no_import_cycle_among_the_modules():
    paths = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: _imports(m, p, set(paths)) for m, p in paths.items()}
    for start in graph:  # a cycle exists where a module reaches itself
        seen, stack = set(), list(graph[start])
        while stack:
            m = stack.pop()
            assert m != start, f"import cycle through {start}"
            if m not in seen:
                seen.add(m)
                stack.extend(graph[m])
