"""Property tests (hypothesis) that hold for every loss in the registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import softxent
from softxent.symbolic import is_proper

SPECS = softxent.list_losses()
CLASS_LOGIT_SPECS = [s for s in SPECS if s.output == "per_example" and s.input == "logits"]
# Strictly proper for a soft target (minimised exactly at p = q), as the symbolic
# module decides it at the default parameters; tests/test_symbolic.py checks that list.
PROPER = {s.name for s in SPECS if is_proper(s.name)}
FEW = settings(max_examples=40, deadline=None)


@st.composite
def soft_rows(draw, min_k=2, max_k=6):
    k = draw(st.integers(min_k, max_k))
    logits = draw(st.lists(st.floats(-20, 20), min_size=k, max_size=k))
    weights = draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))
    weights[draw(st.integers(0, k - 1))] += 0.05  # never all zero
    q = np.array(weights) / np.sum(weights)
    return np.array(logits), q


def _targets_for(spec, q):
    if spec.targets == "logits":
        with np.errstate(divide="ignore"):
            return jnp.log(jnp.asarray(q))
    return jnp.asarray(q)


def _predictions_for(spec, z):
    z = jnp.asarray(z)
    if spec.input == "probabilities":
        return jax.nn.sigmoid(z) if spec.output == "per_component" else jax.nn.softmax(z)
    return z


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@FEW
@given(row=soft_rows())
def test_non_negative(spec, row):
    z, q = row
    value = spec.fn(_predictions_for(spec, z), _targets_for(spec, q))
    assert np.all(np.asarray(value) >= -1e-12)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.name in PROPER], ids=lambda s: s.name)
@FEW
@given(row=soft_rows(), noise=st.lists(st.floats(-1, 1), min_size=6, max_size=6))
def test_proper_losses_are_minimised_at_the_target(spec, row, noise):
    _, q = row
    q = np.clip(q, 1e-3, None)
    q = q / q.sum()
    # The logits (or probabilities) that reproduce q exactly: z* = log q.
    per_example = spec.link == "softmax" or spec.output == "per_example"
    best = np.log(q) if per_example else np.log(q / (1 - q))
    moved = best + 0.5 * np.array(noise[: len(q)])
    f = lambda z: float(jnp.sum(spec.fn(_predictions_for(spec, z), _targets_for(spec, q))))
    assert f(best) <= f(moved) + 1e-12


@pytest.mark.parametrize("spec", CLASS_LOGIT_SPECS, ids=lambda s: s.name)
@FEW
@given(row=soft_rows(), shift=st.floats(-50, 50))
def test_softmax_losses_ignore_a_constant_added_to_the_logits(spec, row, shift):
    z, q = row
    base = spec.fn(jnp.asarray(z), _targets_for(spec, q))
    shifted = spec.fn(jnp.asarray(z + shift), _targets_for(spec, q))
    np.testing.assert_allclose(shifted, base, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.output == "per_example"],
                         ids=lambda s: s.name)
@FEW
@given(row=soft_rows(min_k=3), data=st.data())
def test_where_equals_the_loss_on_the_kept_classes(spec, row, data):
    z, q = row
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(q), max_size=len(q))))
    keep[data.draw(st.integers(0, len(q) - 1))] = True
    preds = _predictions_for(spec, z)
    masked = spec.fn(preds, _targets_for(spec, q), where=jnp.asarray(keep))
    kept = spec.fn(preds[keep], _targets_for(spec, q[keep]))
    np.testing.assert_allclose(masked, kept, rtol=1e-10, atol=1e-12)


@FEW
@given(row=soft_rows(min_k=3), data=st.data(), alpha=st.floats(0, 1))
def test_label_smoothing_spreads_over_kept_classes_only(row, data, alpha):
    z, q = row
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(q), max_size=len(q))))
    keep[0] = True
    masked = softxent.softmax_cross_entropy(
        jnp.asarray(z), jnp.asarray(q), where=jnp.asarray(keep), label_smoothing=alpha
    )
    kept = softxent.softmax_cross_entropy(
        jnp.asarray(z[keep]), jnp.asarray(q[keep]), label_smoothing=alpha
    )
    np.testing.assert_allclose(masked, kept, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.output == "per_component"],
                         ids=lambda s: s.name)
@FEW
@given(row=soft_rows())
def test_elementwise_losses_act_per_component(spec, row):
    z, q = row
    preds = _predictions_for(spec, z)
    whole = spec.fn(preds, jnp.asarray(q))
    parts = [float(spec.fn(preds[i : i + 1], jnp.asarray(q[i : i + 1]))[0]) for i in range(len(q))]
    np.testing.assert_allclose(whole, parts, rtol=1e-12)
