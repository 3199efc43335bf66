"""z-loss and logit soft-capping of the cross-entropy, KL and distillation: the written-out
formula on both CPU paths and in the chunked and linear forms, no array of their own, and
what they do to the minimiser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent
from softxent.losses import _fused

Z_LOSS, CAP, SMOOTHING = 0.05, 3.0, 0.1


def _written_out(z, q, where, smoothing):
    """-sum q' log softmax(c tanh(z / c)) + lambda sum(q') logsumexp(...)^2 over the kept
    classes (the targets here hold less than 1 per row: the z-loss scales with it)."""
    capped = jnp.where(where, CAP * jnp.tanh(z / CAP), -jnp.inf)
    kept = jnp.sum(where, axis=-1, keepdims=True).astype(z.dtype)
    smoothed = jnp.where(where, (1 - smoothing) * q + smoothing / kept, 0)
    log_z = jax.nn.logsumexp(capped, axis=-1)
    log_p = jnp.where(where, capped - log_z[:, None], 0)
    mass = jnp.sum(smoothed, axis=-1)
    return -jnp.sum(smoothed * log_p, axis=-1) + Z_LOSS * mass * log_z**2


@pytest.mark.parametrize("path", ["whole", "row-blocked"])
def test_the_fused_passes_equal_the_written_out_formula(path, monkeypatch):
    """float64, within 1e-12: value, gradient in the logits (reverse and forward mode) and in
    the targets and the smoothing, with a class mask and logits beyond the cap."""
    if path == "row-blocked":
        monkeypatch.setattr(_fused, "BLOCKED_MIN_ENTRIES", 0)
        monkeypatch.setattr(_fused, "BLOCK_ENTRIES", 14)
        jax.clear_caches()
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.normal(size=(5, 7)) * 4)
    q = jax.nn.softmax(jnp.asarray(rng.normal(size=(5, 7))))
    where = jnp.asarray(rng.uniform(size=(5, 7)) > 0.3).at[:, 0].set(True)
    q = jnp.where(where, q, 0)
    weights = jnp.linspace(0.5, 2.0, 5)
    tangent = jnp.asarray(rng.normal(size=(5, 7)))

    def fused(z, q, smoothing):
        return softxent.softmax_cross_entropy(z, q, where=where, label_smoothing=smoothing,
                                              z_loss=Z_LOSS, soft_cap=CAP)

    def plain(z, q, smoothing):
        return _written_out(z, q, where, smoothing)

    @jax.jit
    def everything(z, q, smoothing):
        return [(f(z, q, smoothing),
                 jax.grad(lambda *a: jnp.sum(weights * f(*a)), argnums=(0, 1, 2))(  # noqa: B023
                     z, q, smoothing),
                 jax.jvp(lambda z: f(z, q, smoothing), (z,), (tangent,))[1])  # noqa: B023
                for f in (fused, plain)]

    got, want = everything(z, q, jnp.asarray(SMOOTHING))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert float(jnp.max(jnp.abs(z))) > CAP  # the cap is in play
    jax.clear_caches()


@pytest.mark.parametrize("path", ["whole", "row-blocked"])
def test_kl_and_distillation_take_the_options(path, monkeypatch):
    """float64, within 1e-12: KL(q || softmax(c tanh(z / c))) + lambda sum(q) (log Z)^2, and
    T^2 [KL at T + lambda (log Z_T)^2] with the student capped and Z_T the tempered
    student's normaliser: values, gradients in the logits and in the temperature, and a
    Hessian-vector product; the chunked and linear distillation forms agree."""
    if path == "row-blocked":
        monkeypatch.setattr(_fused, "BLOCKED_MIN_ENTRIES", 0)
        monkeypatch.setattr(_fused, "BLOCK_ENTRIES", 14)
        jax.clear_caches()
    rng = np.random.default_rng(9)
    z, t, v = (jnp.asarray(rng.normal(size=(5, 7)) * 4) for _ in range(3))
    q = jax.nn.softmax(t)
    options = dict(z_loss=Z_LOSS, soft_cap=CAP)

    def capped(x):
        return CAP * jnp.tanh(x / CAP)

    def kl_plain(z, _):
        log_z = jax.nn.logsumexp(capped(z), axis=-1)
        log_p = jax.nn.log_softmax(capped(z))
        return jnp.sum(q * (jnp.log(q) - log_p), axis=-1) + Z_LOSS * log_z**2

    def distillation_plain(s, temperature):
        teacher = jax.nn.softmax(t / temperature)
        log_p = jax.nn.log_softmax(capped(s) / temperature)
        log_z = jax.nn.logsumexp(capped(s) / temperature, axis=-1)
        kl = jnp.sum(teacher * (jnp.log(teacher) - log_p), axis=-1)
        return temperature**2 * (kl + Z_LOSS * log_z**2)

    eye = jnp.eye(7)
    forms = {
        "kl": (lambda z, _: softxent.kl_divergence(z, q, **options), kl_plain),
        "distillation": (lambda s, T: softxent.distillation_loss(s, t, temperature=T, **options),
                         distillation_plain),
        "chunked": (lambda s, T: softxent.chunked_distillation_loss(
            s, t, temperature=T, chunk_size=2, **options), distillation_plain),
        "linear": (lambda s, T: softxent.linear_distillation_loss(
            s, eye, t, eye, temperature=T, chunk_size=2, **options), distillation_plain),
    }

    @jax.jit
    def everything(z, temperature):
        out = {}
        for name, pair in forms.items():
            out[name] = []
            for f in pair:
                total = lambda z, T, f=f: jnp.sum(f(z, T))  # noqa: E731
                gradient = jax.grad(total, argnums=(0, 1))
                hvp = jax.jvp(lambda z, g=gradient: g(z, temperature)[0], (z,), (v,))[1]
                out[name].append((f(z, temperature), gradient(z, temperature), hvp))
        return out

    for name, (got, want) in everything(z, jnp.asarray(2.5)).items():
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
    assert float(jnp.max(jnp.abs(z))) > CAP
    jax.clear_caches()


def test_chunked_and_linear_forms_take_the_same_options():
    rng = np.random.default_rng(7)
    h, w, b = (jnp.asarray(rng.normal(size=s)) for s in ((9, 4), (4, 6), (6,)))
    q = jax.nn.softmax(jnp.asarray(rng.normal(size=(9, 6))))
    options = dict(label_smoothing=SMOOTHING, z_loss=Z_LOSS, soft_cap=CAP)

    def dense(h, w, b):
        return softxent.softmax_cross_entropy(2 * (h @ w + b), q, **options)

    @jax.jit
    def everything(h, w, b):
        forms = (
            dense,
            lambda h, w, b: softxent.chunked_softmax_cross_entropy(
                2 * (h @ w + b), q, chunk_size=4, **options),
            lambda h, w, b: softxent.linear_softmax_cross_entropy(
                h, 2 * w, q, bias=2 * b, chunk_size=4, **options),
        )
        per_row = [jax.value_and_grad(lambda *a, f=f: jnp.sum(f(*a)), argnums=(0, 1, 2))(
            h, w, b) for f in forms]
        mean = jax.value_and_grad(lambda h, w, b: softxent.linear_softmax_cross_entropy(
            h, 2 * w, q, bias=2 * b, chunk_size=4, reduction="mean", **options),
            argnums=(0, 1, 2))(h, w, b)
        dense_mean = jax.value_and_grad(lambda *a: jnp.mean(dense(*a)), argnums=(0, 1, 2))(
            h, w, b)
        return per_row, (mean, dense_mean)

    per_row, (mean, dense_mean) = everything(h, w, b)
    for got in per_row[1:]:
        for a, b_ in zip(jax.tree.leaves(got), jax.tree.leaves(per_row[0]), strict=True):
            np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)
    for a, b_ in zip(jax.tree.leaves(mean), jax.tree.leaves(dense_mean), strict=True):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


def test_the_options_add_no_full_size_temporary():
    """From 2^21 entries the CPU step reads blocks of rows: with the z-loss and the cap its
    temp memory grows by at most a block's buffers (2^18 entries), never by an N x V array
    of capped logits, and stays below one N x V array."""
    if jax.default_backend() != "cpu":
        pytest.skip("the row-blocked path is the CPU's")
    z = jnp.zeros((256, 8192), jnp.float32)
    q = jnp.full(z.shape, 1 / 8192, jnp.float32)

    def temp(**options):
        def mean(z, q):
            return softxent.softmax_cross_entropy(z, q, reduction="mean", **options)

        step = jax.jit(jax.value_and_grad(mean)).lower(z, q).compile()
        return step.memory_analysis().temp_size_in_bytes

    plain, regularised = temp(), temp(z_loss=Z_LOSS, soft_cap=CAP)
    assert regularised <= plain + 2 * _fused.BLOCK_ENTRIES * 4, (plain, regularised)
    assert regularised < z.size * 4, (plain, regularised)


def test_what_the_options_do_to_the_minimiser():
    """The cross-entropy's gradient vanishes along the logits' shift z + s; the z-loss's
    only at log Z = 0, where the logits are log q. Capped at c, no probability exceeds
    1 / (1 + (K - 1) e^{-2c}): a one-hot target is not reached and keeps a gradient."""
    q = jnp.array([0.2, 0.3, 0.5])

    def grad(z, **options):
        return jax.grad(lambda z: softxent.softmax_cross_entropy(z, q, **options))(z)

    np.testing.assert_allclose(grad(jnp.log(q) + 1.0), 0, atol=1e-12)
    np.testing.assert_allclose(grad(jnp.log(q), z_loss=Z_LOSS), 0, atol=1e-12)
    # log Z = 1 at z = log q + 1: the z-loss's gradient 2 lambda log Z p = 2 lambda q.
    np.testing.assert_allclose(grad(jnp.log(q) + 1.0, z_loss=Z_LOSS), 2 * Z_LOSS * q,
                               rtol=1e-12)
    one_hot, cap, k = jnp.array([0.0, 0.0, 1.0]), 2.0, 3
    bound = -np.log(1 / (1 + (k - 1) * np.exp(-2 * cap)))  # the least reachable loss
    for scale in (1.0, 10.0, 1e3):
        z = scale * jnp.array([-1.0, -1.0, 1.0])
        loss = softxent.softmax_cross_entropy(z, one_hot, soft_cap=cap)
        assert float(loss) >= bound * (1 - 1e-12)
    np.testing.assert_allclose(float(loss), bound, rtol=1e-12)  # approached, never passed


def test_bad_options_name_themselves():
    z, q = jnp.zeros((2, 3)), jnp.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: z_loss must be a finite "
                                         r"number >= 0, got -0.1"):
        softxent.softmax_cross_entropy(z, q, z_loss=-0.1)
    with pytest.raises(ValueError, match=r"soft_cap must be a finite number > 0, got 0"):
        softxent.softmax_cross_entropy(z, q, soft_cap=0)
    with pytest.raises(TypeError, match=r"linear_softmax_cross_entropy: soft_cap must be a "
                                        r"Python number > 0 or None, got 'big'"):
        softxent.linear_softmax_cross_entropy(jnp.zeros((2, 2)), jnp.zeros((2, 3)), q,
                                              soft_cap="big")


def test_integer_labels_take_the_options_weighted_by_the_row():
    """Integer labels with the options equal the soft cross-entropy of their one-hot rows
    (target mass 1), an ignored row gives 0, and an example weight r scales the row's whole
    loss, z-loss included; the chunked and linear forms agree (float64, values and
    gradients)."""
    rng = np.random.default_rng(8)
    h, w = jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.normal(size=(4, 5)) * 3)
    y = jnp.asarray([0, 4, 2, -100, 1, 3])
    r = jnp.asarray(rng.uniform(0.5, 2.0, 6))
    options = dict(label_smoothing=SMOOTHING, z_loss=Z_LOSS, soft_cap=CAP)
    one_hot = jax.nn.one_hot(jnp.clip(y, 0), 5, dtype=h.dtype)

    @jax.jit
    def everything(h, w):
        def integer(h, w, **more):
            return softxent.softmax_cross_entropy_with_integer_labels(
                h @ w, y, ignore_index=-100, **options, **more)

        soft = softxent.softmax_cross_entropy(h @ w, one_hot, **options)
        forms = {
            "dense": lambda h, w: integer(h, w, example_weights=r, reduction="mean"),
            "chunked": lambda h, w: softxent.chunked_softmax_cross_entropy_with_integer_labels(
                h @ w, y, ignore_index=-100, example_weights=r, chunk_size=4,
                reduction="mean", **options),
            "linear": lambda h, w: softxent.linear_softmax_cross_entropy_with_integer_labels(
                h, w, y, ignore_index=-100, example_weights=r, chunk_size=4,
                reduction="mean", **options),
        }
        grads = {k: jax.value_and_grad(f, argnums=(0, 1))(h, w) for k, f in forms.items()}
        return integer(h, w), soft, integer(h, w, example_weights=r), grads

    plain, soft, weighted, grads = everything(h, w)
    kept = np.asarray(y) != -100
    np.testing.assert_allclose(plain[kept], soft[kept], rtol=1e-12)
    assert float(plain[3]) == 0.0 and float(weighted[3]) == 0.0
    np.testing.assert_allclose(weighted[kept], (r * plain)[kept], rtol=1e-12)
    np.testing.assert_allclose(grads["dense"][0], jnp.sum(weighted) / jnp.sum(r[kept]),
                               rtol=1e-12)
    for form in ("chunked", "linear"):
        for a, b in zip(jax.tree.leaves(grads[form]), jax.tree.leaves(grads["dense"]),
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=form)


def test_the_options_keep_their_accuracy_at_saturated_logits():
    """The cap's slope sech^2(z / c) where 1 - tanh^2 rounds to 0; the same value from a
    plain call and from value_and_grad (the capped peak found on the raw logits); the
    z-loss finite where only log Z^2 overflows, and 0 on an ignored row."""
    z = jnp.array([-629.62, -664.10, 607.25])
    one_hot = jnp.array([1.0, 0.0, 0.0])
    gradient = jax.grad(lambda z: softxent.softmax_cross_entropy(z, one_hot, soft_cap=30.0))(z)
    capped = 30.0 * np.tanh(np.asarray(z) / 30.0)
    p = np.exp(capped - np.max(capped)) / np.sum(np.exp(capped - np.max(capped)))
    sech2 = 1 / np.cosh(np.asarray(z) / 30.0) ** 2
    np.testing.assert_allclose(gradient, (p - np.asarray(one_hot)) * sech2, rtol=1e-12)
    assert np.all(gradient != 0)

    x = jnp.array([19.51005363, 5.254357338, -88.7822876], jnp.float32)
    q = one_hot.astype(jnp.float32)

    def capped_loss(x):
        return softxent.softmax_cross_entropy(x, q, soft_cap=30.0)

    value, _ = jax.value_and_grad(capped_loss)(x)
    assert float(value) == float(capped_loss(x))
    np.testing.assert_allclose(float(value), 6.4232410097e-06, rtol=1e-6)  # mpmath

    big = jnp.array([2.234e19, -1.24e20, 0.948], jnp.float32)
    for call in (softxent.softmax_cross_entropy, jax.jit(softxent.softmax_cross_entropy,
                                                          static_argnames="z_loss")):
        loss = call(big, q, z_loss=1e-3)  # within a caller's jit too (constants folded)
        np.testing.assert_allclose(float(loss), 1e-3 * 2.234e19**2, rtol=1e-5)
    ignored = softxent.softmax_cross_entropy_with_integer_labels(
        jnp.array([5.27e197, -3.83e290, -1.06e51]), jnp.array(1), ignore_index=1, z_loss=1e-3)
    assert float(ignored) == 0.0


@pytest.mark.parametrize("labels", ["integer", "one-hot"])
def test_a_capped_logit_near_minus_twice_the_cap_keeps_the_value_exact(labels):
    """Capped logits c tanh(z / c) of opposite signs, both saturated: their difference is
    near -2c = -60, and exp of it rounded carries 60 units of roundoff into the value.
    Within 8 units of mpmath's in float64."""
    import mpmath

    z = [-836.5060425, 392.0872583, -747.9357426]
    with mpmath.workdps(60):
        capped = [30 * mpmath.tanh(mpmath.mpf(x) / 30) for x in z]
        exact = float(mpmath.log(mpmath.fsum(mpmath.exp(x) for x in capped)) - capped[1])
    logits = jnp.asarray(z, jnp.float64)
    if labels == "integer":
        value = softxent.softmax_cross_entropy_with_integer_labels(
            logits, jnp.asarray(1), soft_cap=30.0)
    else:
        value = softxent.softmax_cross_entropy(logits, jnp.asarray([0.0, 1.0, 0.0]),
                                               soft_cap=30.0)
    assert abs(float(value) - exact) <= 8 * 2.0**-53 * exact, (float(value), exact)
