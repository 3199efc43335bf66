"""softxent equals optax on every loss the two share (random inputs, float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.test_util as jax_test_util
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


# -- optax's own test cases (optax/losses/_classification_test.py) -----------------
# Values and tolerances are optax's. Where softxent's conventions differ by design
# the case is translated, and the comment says how.

_YS = np.array([[10.0, 1.0, -2.0], [1.0, 4.0, 0.2]], dtype=np.float32)
_TS = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
_CE = np.array([9.00013, 3.0696733], dtype=np.float32)


def test_optax_softmax_cross_entropy_scalar_and_batched():
    np.testing.assert_allclose(softxent.softmax_cross_entropy(_YS[0], _TS[0]), _CE[0], atol=1e-4)
    np.testing.assert_allclose(softxent.softmax_cross_entropy(_YS, _TS), _CE, atol=1e-4)


def test_optax_softmax_cross_entropy_per_logit_mask_gives_zero_for_masked_rows():
    where = np.array([[1, 0, 0], [0, 0, 0]]).astype(bool)
    out = softxent.softmax_cross_entropy(_YS, _TS, where=where)
    np.testing.assert_array_equal(jnp.where(jnp.any(where, -1), 0.0, out), 0)


def test_optax_softmax_cross_entropy_gradient_is_finite_with_a_mask():
    # optax's mask here is per example ([True, False] for two rows); softxent's `where`
    # masks classes, so the per-example mask takes the class axis as size 1.
    mask = np.array([[True], [False]])
    g = jax.grad(lambda z: jnp.sum(softxent.softmax_cross_entropy(z, _TS, where=mask)))(_YS)
    assert np.all(np.isfinite(g))
    jax_test_util.check_grads(
        lambda z: softxent.softmax_cross_entropy(z, _TS), (_YS.astype(np.float64),), order=1
    )


@pytest.mark.parametrize("size", [5, 10])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "poly1_cross_entropy",
                                  "kl_divergence"])
def test_optax_class_mask_equals_dropping_the_classes(loss, size):
    rng = np.random.default_rng(size)
    preds = rng.normal(size=size)
    targets = rng.dirichlet(np.ones(size))
    mask = rng.integers(2, size=size).astype(bool)
    mask[0] = True
    fn = softxent.get_loss(loss).fn
    np.testing.assert_allclose(fn(preds[mask], targets[mask]), fn(preds, targets, where=mask),
                               atol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "poly1_cross_entropy",
                                  "kl_divergence"])
def test_optax_axis(loss, axis):
    rng = np.random.default_rng(axis)
    shape = [4, 5, 6]
    preds = rng.normal(size=shape)
    targets = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])  # as optax draws them
    fn = softxent.get_loss(loss).fn
    np.testing.assert_allclose(
        fn(preds, targets, axis=axis),
        fn(np.moveaxis(preds, axis, -1), np.moveaxis(targets, axis, -1)),
        atol=1e-4,
    )


def test_optax_safe_softmax_cross_entropy_cases():
    # softxent's cross-entropy is optax's safe_softmax_cross_entropy on -inf logits.
    ys = np.array([[10.0, 1.0, -2.0], [1.0, 4.0, 0.2], [-np.inf, 0.0, 0.0],
                   [-np.inf, 0.0, 0.0], [-np.inf, 0.0, -np.inf]], dtype=np.float32)
    ts = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.4, 0.3, 0.3],
                   [0.0, 1.0, 0.0]], dtype=np.float32)
    expected = np.array([9.00013, 3.0696733, 0.693147, np.inf, 0.0], dtype=np.float32)
    np.testing.assert_allclose(softxent.softmax_cross_entropy(ys, ts), expected, atol=1e-4)
    ours = jax.value_and_grad(softxent.softmax_cross_entropy)(ys[0], ts[0])
    plain = jax.value_and_grad(optax.softmax_cross_entropy)(ys[0], ts[0])
    np.testing.assert_allclose(ours[0], plain[0], atol=1e-4)
    np.testing.assert_allclose(ours[1], plain[1], atol=1e-4)


@pytest.mark.parametrize(
    ("preds", "labels", "expected"),
    [([-1e09, -1e-09], [1.0, 0.0], 5e08), ([-1e09, -1e-09], [0.0, 1.0], 0.3465736),
     ([1e09, 1e-09], [1.0, 0.0], 0.3465736), ([1e09, 1e-09], [0.0, 1.0], 5e08),
     ([-1e09, 1e-09], [1.0, 0.0], 5e08), ([-1e09, 1e-09], [0.0, 1.0], 0.3465736),
     ([1e09, -1e-09], [1.0, 0.0], 0.3465736), ([1e09, -1e-09], [0.0, 1.0], 5e08),
     ([0.0, 0.0], [1.0, 0.0], 0.6931472), ([0.0, 0.0], [0.0, 1.0], 0.6931472)],
)
def test_optax_sigmoid_binary_cross_entropy(preds, labels, expected):
    tested = jnp.mean(softxent.sigmoid_binary_cross_entropy(np.array(preds), np.array(labels)))
    np.testing.assert_allclose(tested, expected, rtol=1e-6, atol=1e-6)


_POLY_LOGITS = np.array([0.14, 1.456, 2.356, -0.124, -2.47])
_POLY_LABELS = np.array([0.1, 0.15, 0.2, 0.25, 0.3])


@pytest.mark.parametrize(("eps", "expected"), [(2, 4.5317), (1, 3.7153), (-1, 2.0827),
                                               (0, 2.8990), (-0.5, 2.4908), (1.15, 3.8378),
                                               (1.214, 3.8900), (5.45, 7.3480)])
def test_optax_poly1_scalar(eps, expected):
    np.testing.assert_allclose(
        softxent.poly1_cross_entropy(_POLY_LOGITS, _POLY_LABELS, epsilon=eps), expected,
        atol=1e-4)


@pytest.mark.parametrize(("eps", "expected"), [
    (2, [0.4823, 1.2567]), (1, [0.3261, 1.0407]), (0, [0.1698, 0.8247]),
    (-0.5, [0.0917, 0.7168]), (1.15, [0.3495, 1.0731]), (1.214, [0.3595, 1.0870]),
    (5.45, [1.0211, 2.0018])])
def test_optax_poly1_batched(eps, expected):
    logits = np.array([[4.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    labels = np.array([[1.0, 0.0, 0.0], [0.0, 0.8, 0.2]])
    np.testing.assert_allclose(softxent.poly1_cross_entropy(logits, labels, epsilon=eps),
                               expected, atol=1e-4)


@pytest.mark.parametrize(("logits", "labels"), [
    ([[4.0, 2.0, 1.0], [0.0, 5.0, 1.0], [0.134, 1.234, 3.235]],
     [[1.0, 0.0, 0.0], [0.0, 0.8, 0.2], [0.34, 0.33, 0.33]]),
    ([[4.0, 2.0, 1.0, 0.134, 1.3515], [0.0, 5.0, 1.0, 0.5215, 5.616]],
     [[0.5, 0.0, 0.0, 0.0, 0.5], [0.0, 0.12, 0.2, 0.56, 0.12]]),
    ([1.89, 2.39], [0.34, 0.66]), ([0.314], [1.0])])
def test_optax_poly1_equals_cross_entropy_at_epsilon_0(logits, labels):
    logits, labels = np.array(logits), np.array(labels)
    np.testing.assert_allclose(softxent.poly1_cross_entropy(logits, labels, epsilon=0.0),
                               softxent.softmax_cross_entropy(logits, labels), atol=1e-4)


_LOG_PS = np.array([[-2.9957, -3.5066, -3.9120, -1.2040, -0.6931, -2.3026],
                    [-1.6094, -1.6094, -1.6094, -2.3026, -1.8971, -1.8971]])
_QS = np.array([[0.2, 0.2, 0.2, 0.1, 0.15, 0.15], [0.05, 0.03, 0.02, 0.3, 0.5, 0.0]])


def test_optax_kl_divergence():
    # optax takes log-probabilities as given; softxent takes logits and normalises
    # them. optax's rows of log p sum to 1 within 1e-4, inside optax's tolerance.
    np.testing.assert_allclose(softxent.kl_divergence(_LOG_PS, _QS), [0.8875577, 0.7592807],
                               atol=1e-4)


def test_optax_kl_divergence_with_log_targets_is_distillation_at_temperature_1():
    # optax's kl_divergence_with_log_targets(log p, log q) = KL(q || p); softxent's
    # distillation loss at T = 1 is that KL, with the teacher's logits as log q.
    log_qs = np.array([[-1.6094, -1.6094, -1.6094, -2.3026, -1.8971, -1.8971],
                       [-2.9957, -3.5066, -3.9120, -1.2040, -0.6931, -2.3026]])
    np.testing.assert_allclose(softxent.distillation_loss(_LOG_PS, log_qs, temperature=1.0),
                               [0.8875625, 0.7187435584901326], atol=1e-4)


_FYS = np.array([[2.0, 0.1, -2.0], [0.3, -0.1, 1.2]], dtype=np.float32)
_FTS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
_FOCAL_RTOL = 2e-5  # optax's, on the CPU


def test_optax_focal_equals_cross_entropy_at_gamma_0():
    np.testing.assert_allclose(softxent.sigmoid_focal_loss(_FYS, _FTS, gamma=0.0),
                               softxent.sigmoid_binary_cross_entropy(_FYS, _FTS),
                               rtol=_FOCAL_RTOL)
    logits = np.array([[-1.0, 0.0, 1.0], [2.0, -2.0, 0.5]], dtype=np.float32)
    labels = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(softxent.sigmoid_focal_loss(logits, labels, gamma=0.0),
                               optax.sigmoid_binary_cross_entropy(logits, labels),
                               rtol=_FOCAL_RTOL)


def test_optax_focal_scale():
    focal = softxent.sigmoid_focal_loss(_FYS, _FTS, gamma=2)
    p = jax.nn.sigmoid(_FYS)
    ce = softxent.sigmoid_binary_cross_entropy(_FYS, _FTS)
    p_t = p * _FTS + (1 - p) * (1 - _FTS)
    np.testing.assert_allclose(focal / ce, (1 - p_t) ** 2, rtol=_FOCAL_RTOL)


def _logit(x):
    return jnp.log(x / (1.0 - x))


def test_optax_focal_large_and_small_logits():
    ones = jnp.ones(4, dtype=jnp.float32)
    large = _logit(jnp.array([0.9, 0.98, 0.3, 0.99], dtype=jnp.float32))
    ratio = (softxent.sigmoid_binary_cross_entropy(large, ones)
             / softxent.sigmoid_focal_loss(large, ones, gamma=2, alpha=0.5))
    np.testing.assert_allclose(ratio, 2.0 / (1.0 - jax.nn.sigmoid(large)) ** 2,
                               rtol=_FOCAL_RTOL)
    small = _logit(jnp.array([0.1, 0.02, 0.09, 0.15], dtype=jnp.float32))
    ratio = (softxent.sigmoid_binary_cross_entropy(small, ones)
             / softxent.sigmoid_focal_loss(small, ones, gamma=2))
    np.testing.assert_allclose(ratio, 1.0 / (1.0 - jax.nn.sigmoid(small)) ** 2,
                               rtol=_FOCAL_RTOL)


def test_optax_focal_alpha_weights():
    ce = softxent.sigmoid_binary_cross_entropy(_FYS, _FTS)
    np.testing.assert_allclose(softxent.sigmoid_focal_loss(_FYS, _FTS, gamma=0.0, alpha=1),
                               ce * _FTS, rtol=_FOCAL_RTOL)
    ignore_positive = softxent.sigmoid_focal_loss(_FYS, _FTS, alpha=0)
    assert np.all(ce[_FTS == 1] > 0) and np.all(ignore_positive[_FTS == 1] == 0)
    ignore_negative = softxent.sigmoid_focal_loss(_FYS, _FTS, alpha=1)
    assert np.all(ce[_FTS == 0] > 0) and np.all(ignore_negative[_FTS == 0] == 0)


def test_optax_focal_extreme_logits_have_finite_gradients_and_hessians():
    logits = jnp.array([100.0, -100.0, 75.0, -75.0, 50.0, -50.0], dtype=jnp.float32)
    labels = jnp.array([0.9, 0.1, 0.8, 0.2, 1.0, 0.0], dtype=jnp.float32)

    def loss(x):
        return jnp.sum(softxent.sigmoid_focal_loss(x, labels, gamma=0.5))

    assert np.isfinite(float(loss(logits)))
    assert np.all(np.isfinite(jax.grad(loss)(logits)))
    assert np.all(np.isfinite(jax.hessian(loss)(logits)))


# -- where: a class mask or a per-example mask, never a silent broadcast ------------


def test_where_of_the_batch_shape_is_rejected_with_both_meanings_explained():
    z = jnp.array([[10.0, 1.0, -2.0], [1.0, 4.0, 0.2], [0.0, 0.0, 0.0]])
    q = jnp.eye(3)
    with pytest.raises(ValueError, match=r"where shape \(3,\).*optax.*reshape\(\(3, 1\)\)"):
        softxent.softmax_cross_entropy(z, q, where=jnp.array([True, False, True]))
    with pytest.raises(ValueError, match="per-example mask of shape"):
        softxent.sigmoid_binary_cross_entropy(z, q, where=jnp.array([True, False, True]))


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "kl_divergence",
                                  "poly1_cross_entropy"])
def test_per_example_mask_equals_optax_example_mask(loss):
    z, q, _ = _inputs(21)
    keep = jax.random.bernoulli(jax.random.key(22), 0.6, (z.shape[0],)).at[0].set(True)
    theirs = {
        "softmax_cross_entropy": lambda: optax.softmax_cross_entropy(z, q, where=keep[:, None]),
        "kl_divergence": lambda: optax.kl_divergence(jax.nn.log_softmax(z), q,
                                                     where=keep[:, None]),
        "poly1_cross_entropy": lambda: optax.losses.poly_loss_cross_entropy(
            z, q, where=keep[:, None]),
    }[loss]()
    fn = softxent.get_loss(loss).fn
    ours = fn(z, q, where=keep[:, None])
    _close(jnp.where(keep, ours, 0), jnp.where(keep, theirs, 0))
    np.testing.assert_array_equal(np.asarray(ours)[~np.asarray(keep)], 0)
    # The mean is over the kept examples only.
    kept_mean = jnp.sum(ours) / jnp.sum(keep).astype(ours.dtype)
    _close(fn(z, q, where=keep[:, None], reduction="mean"), kept_mean)


def test_elementwise_per_example_mask_keeps_or_drops_every_label():
    z, _, _ = _inputs(23)
    y = jax.random.uniform(jax.random.key(24), z.shape, dtype=jnp.float64)
    keep = jnp.arange(z.shape[0]) % 3 != 1
    for name in ["sigmoid_binary_cross_entropy", "sigmoid_focal_loss"]:
        fn = softxent.get_loss(name).fn
        full = fn(z, y, where=jnp.broadcast_to(keep[:, None], z.shape))
        _close(fn(z, y, where=keep[:, None]), full)
        _close(fn(z, y, where=keep[:, None], reduction="mean"),
               jnp.sum(full) / (jnp.sum(keep).astype(full.dtype) * z.shape[1]))
