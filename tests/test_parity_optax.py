"""softxent equals optax on every loss the two share (random inputs, float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import softxent

TOL = 1e-12


def _inputs(seed: int, shape=(16, 7), axis=-1):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    logits = 3.0 * jax.random.normal(k1, shape, dtype=jnp.float64)
    targets = jax.nn.softmax(2.0 * jax.random.normal(k2, shape, dtype=jnp.float64), axis=axis)
    mask = jax.random.bernoulli(k3, 0.7, shape)
    # Keep at least one class per row so that both libraries are well defined.
    first = jnp.zeros(shape, dtype=bool)
    first = first.at[(slice(None),) * (axis % len(shape)) + (0,)].set(True)
    return logits, targets, mask | first


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_cross_entropy(seed, axis):
    z, q, _ = _inputs(seed, axis=axis)
    _close(softxent.softmax_cross_entropy(z, q, axis=axis),
           optax.softmax_cross_entropy(z, q, axis=axis))


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_cross_entropy_with_mask(seed):
    z, q, m = _inputs(seed)
    _close(softxent.softmax_cross_entropy(z, q, where=m),
           optax.softmax_cross_entropy(z, q, where=m))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 1.0])
def test_softmax_cross_entropy_label_smoothing(alpha):
    z, q, _ = _inputs(3)
    _close(softxent.softmax_cross_entropy(z, q, label_smoothing=alpha),
           optax.softmax_cross_entropy(z, optax.smooth_labels(q, alpha)))


@pytest.mark.parametrize("seed", [0, 1])
def test_kl_divergence(seed):
    z, q, m = _inputs(seed)
    _close(softxent.kl_divergence(z, q), optax.kl_divergence(jax.nn.log_softmax(z), q))
    _close(softxent.kl_divergence(z, q, where=m),
           optax.kl_divergence(jax.nn.log_softmax(z, where=m), q, where=m))


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 2.0])
def test_poly1_cross_entropy(epsilon):
    z, q, m = _inputs(4)
    _close(softxent.poly1_cross_entropy(z, q, epsilon=epsilon),
           optax.losses.poly_loss_cross_entropy(z, q, epsilon=epsilon))


def test_sigmoid_binary_cross_entropy():
    z, _, _ = _inputs(5)
    y = jax.random.uniform(jax.random.key(9), z.shape, dtype=jnp.float64)
    _close(softxent.sigmoid_binary_cross_entropy(z, y), optax.sigmoid_binary_cross_entropy(z, y))


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_loss(alpha, gamma):
    z, _, _ = _inputs(6)
    y = jax.random.uniform(jax.random.key(8), z.shape, dtype=jnp.float64)
    _close(softxent.sigmoid_focal_loss(z, y, gamma=gamma, alpha=alpha),
           optax.sigmoid_focal_loss(z, y, gamma=gamma, alpha=alpha))


def test_gradients_match_optax():
    z, q, _ = _inputs(7)
    ours = jax.grad(lambda z: softxent.softmax_cross_entropy(z, q).sum())(z)
    theirs = jax.grad(lambda z: optax.softmax_cross_entropy(z, q).sum())(z)
    _close(ours, theirs)
    # The note's gradient in logit space: softmax(z) * sum(q) - q.
    _close(ours, jax.nn.softmax(z) * q.sum(-1, keepdims=True) - q)


def test_distillation_matches_scaled_kl():
    s, _, _ = _inputs(10)
    t, _, _ = _inputs(11)
    temperature = 3.0
    expected = temperature**2 * optax.kl_divergence(
        jax.nn.log_softmax(s / temperature), jax.nn.softmax(t / temperature)
    )
    _close(softxent.distillation_loss(s, t, temperature=temperature), expected)
    grad_teacher = jax.grad(lambda t: softxent.distillation_loss(s, t).sum())(t)
    np.testing.assert_array_equal(grad_teacher, np.zeros_like(t))


def test_probability_space_losses_match_their_logit_forms():
    z, q, _ = _inputs(12)
    _close(softxent.cross_entropy(jax.nn.softmax(z), q), softxent.softmax_cross_entropy(z, q))
    y = jax.random.uniform(jax.random.key(13), z.shape, dtype=jnp.float64)
    small = z / 4  # sigmoid(z) must not round to 0 or 1 in float64 for this identity
    _close(softxent.binary_cross_entropy(jax.nn.sigmoid(small), y),
           softxent.sigmoid_binary_cross_entropy(small, y))
