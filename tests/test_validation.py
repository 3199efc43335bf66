"""Bad input gets a clear error naming the argument, the expected and the actual value."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent

SPECS = softxent.list_losses()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_class_index_labels_are_rejected_with_both_shapes(spec):
    logits = jnp.zeros((4, 3))
    labels = jnp.zeros((4, 1))
    with pytest.raises(ValueError, match=re.escape("(4, 1)")) as err:
        spec.fn(logits, labels)
    assert "(4, 3)" in str(err.value)
    assert spec.name in str(err.value)


def test_shape_error_also_raises_inside_a_users_jit():
    @jax.jit
    def step(z, q):
        return softxent.softmax_cross_entropy(z, q).mean()

    with pytest.raises(ValueError, match=r"targets shape \(8,\) must equal logits shape \(8, 5\)"):
        step(jnp.zeros((8, 5)), jnp.zeros((8,)))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_integer_predictions_are_a_type_error(spec):
    with pytest.raises(TypeError, match="floating dtype"):
        spec.fn(jnp.zeros((2, 3), dtype=jnp.int32), jnp.zeros((2, 3)))


def test_one_hot_integer_targets_are_accepted():
    z = jnp.array([[1.0, 2.0, 0.5]])
    hot = jnp.array([[0, 1, 0]])
    np.testing.assert_allclose(
        softxent.softmax_cross_entropy(z, hot),
        softxent.softmax_cross_entropy(z, hot.astype(jnp.float64)),
    )


@pytest.mark.parametrize(
    ("fn", "option", "value", "domain"),
    [
        (softxent.focal_cross_entropy, "gamma", -0.5, "[0, inf)"),
        (softxent.sigmoid_focal_loss, "gamma", -1.0, "[0, inf)"),
        (softxent.sigmoid_focal_loss, "alpha", 1.5, "[0, 1]"),
        (softxent.distillation_loss, "temperature", 0.0, "(0, inf)"),
        (softxent.distillation_loss, "temperature", -2.0, "(0, inf)"),
        (softxent.softmax_cross_entropy, "label_smoothing", 1.5, "[0, 1]"),
        (softxent.softmax_cross_entropy, "label_smoothing", -0.1, "[0, 1]"),
        (softxent.sigmoid_binary_cross_entropy, "label_smoothing", 2.0, "[0, 1]"),
        (softxent.sigmoid_binary_cross_entropy, "pos_weight", -1.0, "[0, inf)"),
        (softxent.generalized_cross_entropy, "k", 0.0, "(0, 1]"),
        (softxent.poly1_cross_entropy, "epsilon", -3.0, "[-1, inf)"),
        (softxent.focal_cross_entropy, "gamma", float("nan"), "[0, inf)"),
    ],
)
def test_out_of_range_options_name_the_option_and_value(fn, option, value, domain):
    with pytest.raises(ValueError) as err:
        fn(jnp.zeros((2, 3)), jnp.full((2, 3), 1 / 3), **{option: value})
    message = str(err.value)
    assert option in message and domain in message and f"{value:g}" in message


def test_array_options_are_checked_elementwise():
    with pytest.raises(ValueError, match="pos_weight must be in"):
        softxent.sigmoid_binary_cross_entropy(
            jnp.zeros(3), jnp.zeros(3), pos_weight=jnp.array([1.0, -2.0, 1.0])
        )


def test_pos_weight_may_not_enlarge_the_output():
    with pytest.raises(
        ValueError, match=r"pos_weight shape \(2, 3\) must broadcast to the logits shape \(3,\)"
    ):
        softxent.sigmoid_binary_cross_entropy(
            jnp.zeros(3), jnp.zeros(3), pos_weight=jnp.ones((2, 3))
        )


def test_traced_options_pass_through_and_vmap_over_them():
    # Inside vmap the option is a tracer; it cannot be checked, and must still work.
    gammas = jnp.array([0.0, 1.0, 2.0])
    q = jnp.array([0.2, 0.8])
    values = jax.vmap(lambda g: softxent.focal_cross_entropy(jnp.zeros(2), q, gamma=g))(gammas)
    assert values.shape == (3,)
    np.testing.assert_allclose(values[0], softxent.softmax_cross_entropy(jnp.zeros(2), q))


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        softxent.softmax_cross_entropy(jnp.zeros(3), jnp.zeros(3), gamma=2.0)


def test_where_must_be_boolean_and_a_class_or_per_example_mask():
    with pytest.raises(TypeError, match="where must be a boolean mask"):
        softxent.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2, 3)), where=jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"where shape \(2, 2\) is neither a class mask"):
        softxent.softmax_cross_entropy(
            jnp.zeros((2, 3)), jnp.zeros((2, 3)), where=jnp.ones((2, 2), dtype=bool)
        )
    # A per-class (vocabulary) mask shared by the batch is broadcast explicitly; a [K]
    # mask is not broadcast silently (optax's [batch] mask would mean examples).
    vocabulary = jnp.array([True, True, False])
    with pytest.raises(ValueError, match="broadcast_to"):
        softxent.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.full((2, 3), 0.5), where=vocabulary)
    value = softxent.softmax_cross_entropy(
        jnp.zeros((2, 3)), jnp.full((2, 3), 0.5), where=jnp.broadcast_to(vocabulary, (2, 3))
    )
    np.testing.assert_allclose(value, [np.log(2.0), np.log(2.0)])


def test_axis_errors():
    with pytest.raises(ValueError, match=r"axis must be in \[-2, 1\]"):
        softxent.kl_divergence(jnp.zeros((2, 3)), jnp.zeros((2, 3)), axis=2)
    with pytest.raises(ValueError, match="at least one"):
        softxent.kl_divergence(jnp.array(0.0), jnp.array(0.0))


def test_check_targets_accepts_valid_rows():
    q = np.array([[0.3, 0.5, 0.2], [1.0, 0.0, 0.0]])
    assert softxent.check_targets(q) is not None
    softxent.check_targets(np.array([[0.9, 0.6, 0.2]]), kind="multilabel")


BAD_TARGETS = [
    ([[0.3, 0.5, 0.2], [0.3, 0.3, 0.3]], "distribution",
     r"row \(1,\) does not sum to 1 \(tolerance 1e-06\): values \[0.3, 0.3, 0.3\], sum 0.9 "
     r"\(1 bad row of 2\)"),
    ([[0.3, 0.5, 0.2], [0.5, np.nan, 0.5]], "distribution", r"row \(1,\) has non-finite"),
    ([[1.2, -0.2, 0.0]], "distribution", r"row \(0,\) has negative entries"),
    ([[0.9, 1.6, 0.2]], "multilabel", r"row \(0,\) has entries above 1.*1.6"),
    ([[0.9, -0.1, 0.2], [0.1, -0.2, 0.2]], "multilabel", r"negative entries.*2 bad rows of 2"),
]


@pytest.mark.parametrize(("targets", "kind", "pattern"), BAD_TARGETS)
def test_check_targets_reports_the_first_bad_row(targets, kind, pattern):
    with pytest.raises(ValueError, match=pattern):
        softxent.check_targets(np.array(targets), kind=kind)


def test_check_targets_prints_float32_values_without_noise():
    q = np.array([[0.3, 0.3, 0.3]], np.float32)  # 0.3f is 0.30000001192...
    with pytest.raises(ValueError, match=re.escape("values [0.3, 0.3, 0.3], sum 0.9 (")):
        softxent.check_targets(q)


@pytest.mark.parametrize(("targets", "kind", "pattern"), BAD_TARGETS)
def test_check_targets_under_jit_reports_through_checkify(targets, kind, pattern):
    from jax.experimental import checkify

    def step(q):
        return jnp.sum(softxent.check_targets(q, kind=kind))

    error, _ = jax.jit(checkify.checkify(step))(jnp.asarray(targets, jnp.float32))
    # The traced message prints arrays as NumPy does (no commas), the eager one as lists.
    where_and_what = pattern.split(":")[0].split(".*")[0]
    assert error.get() is not None
    assert re.search(where_and_what, error.get()), error.get()
    with pytest.raises(Exception, match=where_and_what):
        error.throw()


def test_check_targets_under_jit_passes_good_rows_and_prints_rounded_sums():
    from jax.experimental import checkify

    step = jax.jit(checkify.checkify(lambda q: softxent.check_targets(q)))
    error, out = step(jnp.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], jnp.float32))
    assert error.get() is None and out.shape == (2, 3)
    error, _ = step(jnp.array([[0.3, 0.3, 0.3]], jnp.float32))
    assert "sum [0.9]" in error.get(), error.get()


def test_check_targets_under_jit_without_checkify_is_refused():
    with pytest.raises(ValueError, match="checkify"):
        jax.jit(lambda q: softxent.check_targets(q))(jnp.ones((2, 2)))


def test_checked_loss_reports_bad_targets_from_a_compiled_step():
    step = jax.jit(softxent.checked(softxent.softmax_cross_entropy))
    logits = jnp.zeros((2, 3))
    error, value = step(logits, jnp.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]]))
    assert error.get() is None
    np.testing.assert_allclose(value, softxent.softmax_cross_entropy(logits, jnp.full(
        (2, 3), 1.0) * jnp.array([0.2, 0.3, 0.5])))
    error, value = step(logits, jnp.array([[0.2, 0.3, 0.5], [np.nan, 0.5, 0.5]]))
    assert "row (1,) has non-finite entries" in error.get()
    error, _ = step(logits, jnp.array([[0.2, -0.3, 1.1], [0.2, 0.3, 0.5]]))
    assert "row (0,) has negative entries" in error.get()


def test_checked_uses_the_loss_axis_and_kind():
    step = jax.jit(softxent.checked(softxent.kl_divergence), static_argnames="axis")
    q = jnp.array([[0.5, 0.2], [0.5, 0.8]])  # columns are the distributions
    assert step(jnp.zeros((2, 2)), q, axis=0)[0].get() is None
    assert step(jnp.zeros((2, 2)), q)[0].get() is not None
    multilabel = jax.jit(softxent.checked(softxent.sigmoid_binary_cross_entropy))
    assert multilabel(jnp.zeros((1, 3)), jnp.array([[0.9, 0.9, 0.9]]))[0].get() is None
    with pytest.raises(ValueError, match="teacher logits"):
        softxent.checked(softxent.distillation_loss)
    with pytest.raises(ValueError, match="kind="):
        softxent.checked(lambda p, q: p)


def test_check_targets_on_a_class_axis_that_is_not_last():
    q = np.array([[0.5, 0.2], [0.5, 0.2]])  # columns are distributions: [0.5,0.5], [0.2,0.2]
    with pytest.raises(ValueError, match=r"row \(1,\).*sum 0.4"):
        softxent.check_targets(q, axis=0)


def test_check_targets_rejects_bad_kind():
    with pytest.raises(ValueError, match="kind must be"):
        softxent.check_targets([[1.0]], kind="onehot")  # type: ignore[arg-type]
