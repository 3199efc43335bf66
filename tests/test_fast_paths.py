"""The fast softmax-loss derivatives equal the reference formulas (the pre-fast-path code)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import softxent
from softxent._numerics import keep_mask, masked_log_softmax, masked_sum, xlogx, xlogy


def _smooth(q, keep, alpha):
    kept = jnp.sum(keep, axis=-1, keepdims=True).astype(q.dtype)
    return jnp.where(keep, (1 - alpha) * q + alpha / jnp.maximum(kept, 1), 0)


def ref_ce(z, q, where=None, label_smoothing=0.0):
    q = _smooth(q, keep_mask(where, z.shape), jnp.asarray(label_smoothing, z.dtype))
    return masked_sum(-xlogy(q, masked_log_softmax(z, -1, where)), -1, where)


def ref_kl(z, q, where=None):
    return masked_sum(xlogx(q) - xlogy(q, masked_log_softmax(z, -1, where)), -1, where)


def ref_distill(s, t, where=None, temperature=2.0):
    temperature = jnp.asarray(temperature, s.dtype)
    log_q = masked_log_softmax(lax.stop_gradient(t) / temperature, -1, where)
    log_p = masked_log_softmax(s / temperature, -1, where)
    return temperature**2 * masked_sum(xlogy(jnp.exp(log_q), log_q - log_p), -1, where)


CASES = [
    ("softmax_cross_entropy", ref_ce, {}),
    ("softmax_cross_entropy", ref_ce, {"label_smoothing": 0.1}),
    ("kl_divergence", ref_kl, {}),
    ("distillation_loss", ref_distill, {"temperature": 3.0}),
]


def _inputs(dtype, masked):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 7)) * 3
    q = rng.dirichlet(np.ones(7) * 0.5, size=5)
    q[1, 2] = 0.0
    q[1] /= q[1].sum()
    z[2, 3] = -np.inf  # target there is set to 0 below
    q[2, 3] = 0.0
    q[2] /= q[2].sum()
    where = None
    if masked:
        where = np.ones((5, 7), dtype=bool)
        where[0, :2] = False
        where[4, :] = False  # fully masked row
        where = jnp.asarray(where)
    return jnp.asarray(z, dtype), jnp.asarray(q, dtype), where


def _targets(name, z, q):
    # distillation takes teacher logits; use finite ones
    return (
        jnp.asarray(np.random.default_rng(1).normal(size=z.shape), z.dtype)
        if name == "distillation_loss"
        else q
    )


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("name", "ref", "kw"), CASES)
def test_value_and_derivatives_match_reference(name, ref, kw, masked):
    z, q, where = _inputs(jnp.float32, masked)
    t = _targets(name, z, q)
    fn = softxent.get_loss(name).fn

    def fast(z, t):
        return jnp.sum(fn(z, t, where=where, **kw))

    def slow(z, t):
        return jnp.sum(ref(z, t, where=where, **kw))

    np.testing.assert_allclose(fast(z, t), slow(z, t), rtol=1e-6, atol=1e-6)
    for transform in (jax.grad, jax.jacfwd):
        for argnum in (0, 1):
            got = transform(fast, argnums=argnum)(z, t)
            want = transform(slow, argnums=argnum)(z, t)
            finite = np.isfinite(np.asarray(want))
            np.testing.assert_allclose(
                np.asarray(got)[finite], np.asarray(want)[finite], rtol=1e-5, atol=1e-6
            )
            got_finite = np.isfinite(np.asarray(got))
            if where is not None and np.isfinite(slow(z, t)):
                # The reference's reverse mode gives NaN at masked classes (a zero
                # cotangent times an infinite partial); an excluded class must get
                # exactly 0 instead. Elsewhere a non-finite partial is genuine.
                excluded = np.broadcast_to(~np.asarray(where), finite.shape)
                np.testing.assert_array_equal(np.asarray(got)[excluded & ~finite], 0)
                assert np.all(got_finite[~excluded] == finite[~excluded])
            else:
                assert np.all(got_finite == finite)
    rows = slice(2, 5)  # includes the -inf logit and (masked) the fully masked row
    w = None if where is None else where[rows]
    h_fast = jax.hessian(lambda a: jnp.sum(fn(a, t[rows], where=w, **kw)))(z[rows])
    h_slow = jax.hessian(lambda a: jnp.sum(ref(a, t[rows], where=w, **kw)))(z[rows])
    assert np.all(np.isfinite(h_fast))
    np.testing.assert_allclose(h_fast, h_slow, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "ref", "kw"), CASES)
def test_infinite_logits_and_vmap_jit(name, ref, kw):
    fn = softxent.get_loss(name).fn
    z = jnp.array(
        [[jnp.inf, 0.0, -jnp.inf], [jnp.inf, jnp.inf, 1.0], [0.5, -jnp.inf, 2.0]], jnp.float32
    )
    q = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.3, 0.0, 0.7]], jnp.float32)
    t = jnp.where(jnp.isfinite(z), z, 0.0) if name == "distillation_loss" else q
    fast = jax.jit(jax.vmap(jax.grad(lambda a, b: fn(a, b, **kw))))(z, t)
    slow = jax.vmap(jax.grad(lambda a, b: ref(a, b, **kw)))(z, t)
    assert np.all(np.isfinite(fast))
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)


def test_bfloat16_is_computed_in_float32():
    z, q, _ = _inputs(jnp.bfloat16, False)
    z = jnp.where(jnp.isfinite(z), z, 0).astype(jnp.bfloat16)
    out = softxent.softmax_cross_entropy(z, q)
    assert out.dtype == jnp.float32
    g = jax.grad(lambda a: jnp.sum(softxent.softmax_cross_entropy(a, q)))(z)
    assert g.dtype == jnp.bfloat16
    want = jax.grad(lambda a: jnp.sum(ref_ce(a.astype(jnp.float32), q.astype(jnp.float32))))(z)
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(want, np.float32), atol=1e-2)
