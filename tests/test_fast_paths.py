"""The fast softmax-loss derivatives equal the reference formulas (the pre-fast-path code)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import softxent
from softxent._numerics import keep_mask, masked_log_softmax, masked_sum, xlogx, xlogy
from softxent.losses import _fused
from softxent.losses._sigmoid import _bce_from_logits


@pytest.fixture(params=["whole", "row-blocked"])
def statistics_path(request, monkeypatch):
    """Run a test on the whole-array path (which keeps the exponentials for the
    gradient) and again on the CPU's row-blocked one (which forms them again).

    The blocked path starts at 2^21 entries; here it is forced on with blocks
    of two rows, so five rows take three blocks and the last overlaps.
    """
    if request.param == "whole":
        yield request.param
        return
    monkeypatch.setattr(_fused, "BLOCKED_MIN_ENTRIES", 0)
    monkeypatch.setattr(_fused, "BLOCK_ENTRIES", 14)
    jax.clear_caches()  # the exported losses are jitted: retrace under the new setting
    yield request.param
    jax.clear_caches()  # and again once the setting is undone


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


@pytest.mark.usefixtures("statistics_path")
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
            # compiled: one XLA program per derivative instead of one per operation
            got = jax.jit(transform(fast, argnums=argnum))(z, t)
            want = jax.jit(transform(slow, argnums=argnum))(z, t)
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
    h_fast = jax.jit(jax.hessian(lambda a: jnp.sum(fn(a, t[rows], where=w, **kw))))(z[rows])
    h_slow = jax.jit(jax.hessian(lambda a: jnp.sum(ref(a, t[rows], where=w, **kw))))(z[rows])
    assert np.all(np.isfinite(h_fast))
    np.testing.assert_allclose(h_fast, h_slow, rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("statistics_path")
@pytest.mark.parametrize(("name", "ref", "kw"), CASES)
def test_infinite_logits_and_vmap_jit(name, ref, kw):
    fn = softxent.get_loss(name).fn
    z = jnp.array(
        [[jnp.inf, 0.0, -jnp.inf], [jnp.inf, jnp.inf, 1.0], [0.5, -jnp.inf, 2.0]], jnp.float32
    )
    q = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.3, 0.0, 0.7]], jnp.float32)
    t = jnp.where(jnp.isfinite(z), z, 0.0) if name == "distillation_loss" else q
    fast = jax.jit(jax.vmap(jax.grad(lambda a, b: fn(a, b, **kw))))(z, t)
    slow = jax.jit(jax.vmap(jax.grad(lambda a, b: ref(a, b, **kw))))(z, t)
    assert np.all(np.isfinite(fast))
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)


@pytest.mark.usefixtures("statistics_path")
def test_bfloat16_is_computed_in_float32():
    z, q, _ = _inputs(jnp.bfloat16, False)
    z = jnp.where(jnp.isfinite(z), z, 0).astype(jnp.bfloat16)
    out = softxent.softmax_cross_entropy(z, q)
    assert out.dtype == jnp.float32
    wide = (z.astype(jnp.float32), q.astype(jnp.float32))
    np.testing.assert_allclose(out, ref_ce(*wide), rtol=1e-6)
    np.testing.assert_allclose(softxent.kl_divergence(z, q), ref_kl(*wide), rtol=1e-5, atol=1e-6)
    g = jax.grad(lambda a: jnp.sum(softxent.softmax_cross_entropy(a, q)))(z)
    assert g.dtype == jnp.bfloat16
    want = jax.jit(jax.grad(
        lambda a: jnp.sum(ref_ce(a.astype(jnp.float32), q.astype(jnp.float32)))))(z)
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(want, np.float32), atol=1e-2)


def _sigmoid_inputs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 6)) * 4
    y = rng.uniform(size=(4, 6))
    y[0, :3] = [0.0, 1.0, 0.0]
    x[0, :4] = [-np.inf, np.inf, np.inf, 50.0]
    y[1, :2] = [1.0, 0.0]
    x[1, :2] = [-60.0, 60.0]  # saturated: the gradient is -1 and +1, not 0
    where = np.ones((4, 6), bool)
    where[2, 1:3] = False
    weight = rng.uniform(0.5, 2.0, size=(6,))
    return (
        jnp.asarray(x, jnp.float32),
        jnp.asarray(y, jnp.float32),
        jnp.asarray(where),
        jnp.asarray(weight, jnp.float32),
    )


def _ref_sigmoid_bce(x, y, where, pos_weight, label_smoothing):
    y = (1 - label_smoothing) * jnp.where(where, y, 0) + label_smoothing / 2
    x = jnp.where(where, x, 0)
    loss = _bce_from_logits(x, y, pos_weight)
    return jnp.where(where, loss, 0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_sigmoid_bce_fast_path_matches_reference(weighted, smoothing):
    x, y, where, weight = _sigmoid_inputs()
    kw = {"label_smoothing": smoothing}
    if weighted:
        kw["pos_weight"] = weight

    def fast(x, y, w):
        opts = dict(kw, pos_weight=w) if weighted else kw
        return jnp.sum(softxent.sigmoid_binary_cross_entropy(x, y, where=where, **opts))

    def slow(x, y, w):
        return jnp.sum(_ref_sigmoid_bce(x, y, where, w if weighted else None, smoothing))

    finite_rows = slice(1, 4)  # row 0 holds infinite losses; its slopes are checked below
    args = (x[finite_rows], y[finite_rows], weight)
    w_rows = where[finite_rows]

    def fast_rows(x, y, w):
        opts = dict(kw, pos_weight=w) if weighted else kw
        return jnp.sum(softxent.sigmoid_binary_cross_entropy(x, y, where=w_rows, **opts))

    def slow_rows(x, y, w):
        return jnp.sum(_ref_sigmoid_bce(x, y, w_rows, w if weighted else None, smoothing))

    np.testing.assert_allclose(fast_rows(*args), slow_rows(*args), rtol=1e-6)
    for transform in (jax.grad, jax.jacfwd):
        for argnum in (0, 1, 2) if weighted else (0, 1):
            got = jax.jit(transform(fast_rows, argnums=argnum))(*args)
            want = jax.jit(transform(slow_rows, argnums=argnum))(*args)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    h_fast = jax.jit(jax.hessian(fast_rows))(*args)
    h_slow = jax.jit(jax.hessian(slow_rows))(*args)
    np.testing.assert_allclose(h_fast, h_slow, rtol=1e-5, atol=1e-6)
    # Infinite logits: values as the reference, slopes finite everywhere.
    np.testing.assert_allclose(
        softxent.sigmoid_binary_cross_entropy(x, y, where=where, **kw),
        _ref_sigmoid_bce(x, y, where, weight if weighted else None, smoothing),
        rtol=1e-6,
    )
    g = jax.grad(fast)(x, y, weight)
    assert np.all(np.isfinite(g))
    assert np.all(np.asarray(g)[~np.asarray(where)] == 0)
    if smoothing == 0.0 and not weighted:
        np.testing.assert_allclose(g, jnp.where(where, jax.nn.sigmoid(x) - y, 0), atol=1e-7)


@pytest.mark.usefixtures("statistics_path")
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "kl_divergence", "distillation_loss"])
def test_a_nan_logit_gives_nan_in_its_row_only(name):
    """The +inf-row limit must not hide a NaN logit (nor a NaN beside a +inf)."""
    z = jnp.array([[0.5, jnp.nan, -1.0], [jnp.inf, jnp.nan, 0.0], [0.5, 0.2, -1.0]])
    q = jnp.array([[0.2, 0.3, 0.5]] * 3)
    fn = softxent.get_loss(name).fn
    value = fn(z, q) if name != "distillation_loss" else fn(z, jnp.zeros_like(z))
    assert np.isnan(value[:2]).all() and np.isfinite(value[2])


def _check_mean_step(fast, slow, logits, targets, grad_atol=1e-6):
    """``jit(value_and_grad(fast))`` against ``slow`` in float64 (the gradient within
    ``grad_atol`` of its largest entry); on the CPU the compiled step keeps less temp
    memory than 60 % of a float32 N x V buffer: the row loop's blocks of 2^18 entries,
    about 1 MiB each, nine of them at this size (16 MB a buffer)."""
    step = jax.jit(jax.value_and_grad(fast)).lower(logits, targets).compile()
    value, grad = step(logits, targets)
    wide = (logits.astype(jnp.float64), targets.astype(jnp.float64))
    want_value, want_grad = jax.value_and_grad(slow)(*wide)
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    scale = float(jnp.max(jnp.abs(want_grad)))
    np.testing.assert_allclose(
        np.asarray(grad, np.float64), want_grad, rtol=0, atol=grad_atol * scale
    )
    if jax.default_backend() == "cpu":
        assert step.memory_analysis().temp_size_in_bytes < logits.size * 4 * 0.6


@pytest.mark.parametrize(("name", "ref", "kw"), CASES)
def test_large_arrays_match_the_reference_with_no_full_size_temporary(name, ref, kw):
    """From 2^21 entries the CPU computes the row statistics a block of rows
    at a time; the compiled step then keeps no N x V temporary (computed whole,
    XLA writes one for each reduction's input)."""
    rng = np.random.default_rng(3)
    shape = (4, 100, 10_000)  # 4M entries: 400 rows in blocks of 26 (the last overlaps)
    z = jnp.asarray(rng.normal(size=shape) * 3, jnp.float32)
    q = jax.nn.softmax(jnp.asarray(rng.normal(size=shape) * 2, jnp.float32), axis=-1)
    t = z[::-1] if name == "distillation_loss" else q
    fn = softxent.get_loss(name).fn

    # float64 reference: in float32 the reference's own distillation gradient
    # is off by 2e-4 of its largest entry, where the fast path is within 1e-6
    _check_mean_step(
        lambda z, t: jnp.mean(fn(z, t, **kw)), lambda z, t: jnp.mean(ref(z, t, **kw)), z, t
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(
    "kw",
    [{}, {"pos_weight": 2.0}, {"pos_weight": "per class"}, {"label_smoothing": 0.1}],
    ids=["plain", "weighted", "weight-per-class", "smoothed"],
)
def test_sigmoid_bce_mean_step_keeps_no_full_size_temporary(dtype, kw):
    """The caller's mean of sigmoid BCE fuses with the loss: the compiled step keeps
    no N x V temporary on the CPU (the plain form makes XLA write three float32
    ones, five for bfloat16 inputs), and its value and gradient are the reference's."""
    rng = np.random.default_rng(5)
    shape = (64, 2048)
    z = jnp.asarray(rng.normal(size=shape) * 4, dtype)
    y = jnp.asarray(rng.uniform(size=shape), dtype)
    if kw.get("pos_weight") == "per class":
        kw = {"pos_weight": jnp.asarray(rng.uniform(0.5, 2.0, size=shape[-1]), jnp.float32)}

    def fast(z, y):
        return jnp.mean(softxent.sigmoid_binary_cross_entropy(z, y, **kw))

    def slow(z, y):
        weight = kw.get("pos_weight")
        weight = None if weight is None else jnp.asarray(weight, jnp.float64)
        return jnp.mean(_ref_sigmoid_bce(z, y, True, weight, kw.get("label_smoothing", 0.0)))

    grad_atol = 1e-6 if dtype == jnp.float32 else 1e-2  # bfloat16 gradient: 8 bits
    _check_mean_step(fast, slow, z, y, grad_atol)


def _lowered_mean_step(name, shape, platform):
    """The StableHLO of ``jit(value_and_grad(mean loss))`` for ``platform``, lowered
    here without its device."""
    fn = softxent.get_loss(name).fn
    spec = jax.ShapeDtypeStruct(shape, jnp.float32)
    step = jax.jit(jax.value_and_grad(lambda z, t: jnp.mean(fn(z, t))))
    return jax.export.export(step, platforms=[platform])(spec, spec).mlir_module()


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "kl_divergence", "distillation_loss"])
def test_only_the_cpu_lowering_loops_over_row_blocks(name):
    """GPUs and TPUs fuse the row statistics themselves: their programs must not
    contain the CPU's loop over row blocks."""
    for platform, loops in [("cpu", True), ("cuda", False), ("tpu", False)]:
        module = _lowered_mean_step(name, (2048, 1024), platform)
        assert ("stablehlo.while" in module) == loops, platform


@pytest.mark.parametrize(
    ("name", "cpu", "other"),
    [("softmax_cross_entropy", 1, 2), ("kl_divergence", 1, 2), ("distillation_loss", 2, 4)],
)
def test_a_small_cpu_step_keeps_its_exponentials(name, cpu, other):
    """Below BLOCKED_MIN_ENTRIES the CPU's step is bound by its exponentials: the
    softmax's are made once and kept for the gradient (the teacher's too, for
    distillation). GPUs and TPUs fuse them into the reductions and form them again."""
    for platform, count in [("cpu", cpu), ("cuda", other), ("tpu", other)]:
        module = _lowered_mean_step(name, (256, 1000), platform)
        assert len(re.findall(r"stablehlo\.exponential\s", module)) == count, platform


@pytest.mark.usefixtures("statistics_path")
@pytest.mark.parametrize("masked", [False, True])
def test_distillation_derivative_in_the_temperature_matches_reference(masked):
    z, _, where = _inputs(jnp.float32, masked)
    z = jnp.where(jnp.isfinite(z), z, 0)
    t = _targets("distillation_loss", z, None)

    def fast(temperature):
        return jnp.sum(softxent.distillation_loss(z, t, where=where, temperature=temperature))

    def slow(temperature):
        return jnp.sum(ref_distill(z, t, where=where, temperature=temperature))

    for transform in (jax.grad, jax.jacfwd):
        np.testing.assert_allclose(jax.jit(transform(fast))(2.5), jax.jit(transform(slow))(2.5),
                                   rtol=1e-5)


@pytest.mark.usefixtures("statistics_path")
def test_a_parameter_of_shape_n_by_1_is_one_value_per_row():
    """A temperature or a smoothing of shape [N, 1] is one value per row."""
    z, q, _ = _inputs(jnp.float32, False)
    z = jnp.where(jnp.isfinite(z), z, 0)
    t = _targets("distillation_loss", z, q)
    temperature = jnp.linspace(0.5, 3.0, z.shape[0])[:, None].astype(jnp.float32)
    np.testing.assert_allclose(
        softxent.distillation_loss(z, t, temperature=temperature),
        ref_distill(z, t, temperature=temperature),
        rtol=1e-5,
    )
    alpha = jnp.linspace(0.0, 0.5, z.shape[0])[:, None].astype(jnp.float32)
    np.testing.assert_allclose(
        softxent.softmax_cross_entropy(z, q, label_smoothing=alpha),
        ref_ce(z, q, label_smoothing=alpha),
        rtol=1e-5,
    )


@pytest.mark.parametrize("path", ["whole", "row-blocked"])
def test_a_dominant_peaks_slope_is_the_others_target_mass(path, monkeypatch):
    """At a peak holding nearly all the mass the slope is (Q - q_peak) - Q R / S; for
    targets whose sum rounds, Q - q_peak formed as a difference is off by Q's rounding
    (about 70 units of roundoff of the others' mass 0.0072 here), while summed without
    the peak it is exact. Checked against mpmath at 50 digits."""
    import mpmath

    if path == "row-blocked":
        monkeypatch.setattr(_fused, "BLOCKED_MIN_ENTRIES", 0)
        jax.clear_caches()
    z = jnp.array([[709.8181212, -710.3839759, -710.0504672]] * 2, jnp.float64)
    q = jnp.array([[0.9928246628, 0.0, 0.007175337227]] * 2, jnp.float64)
    for loss in (softxent.softmax_cross_entropy, softxent.kl_divergence):
        grad = jax.grad(lambda z, loss=loss: jnp.sum(loss(z, q)))(z)[0]
        with mpmath.workdps(50):
            zs, qs = [mpmath.mpf(float(x)) for x in z[0]], [mpmath.mpf(float(x)) for x in q[0]]
            peak = max(zs)
            e = [mpmath.exp(x - peak) for x in zs]
            exact = [float(sum(qs) * ej / sum(e) - qj) for ej, qj in zip(e, qs, strict=True)]
        np.testing.assert_allclose(grad, exact, rtol=4 * np.finfo(np.float64).eps, atol=0)
    jax.clear_caches()


@pytest.mark.parametrize("path", ["whole", "row-blocked"])
def test_distillation_near_its_teacher_keeps_the_divergences_digits(path, monkeypatch):
    """A student 1/64 from its teacher in each logit: KL about 2e-5 at T = 2, where
    ``Q log S - W`` would cancel two terms of the entropy's size (2e5 units of roundoff
    lost). From the rows' differences the loss is within 1500 units here: what is left
    is the cancellation of ``sum q d`` with ``log(S_t / S_s)``, both of the size of d.
    The logits are multiples of 1/64, so every shifted logit and difference is exact and
    mpmath at 60 digits gives the value the float64 inputs define."""
    import mpmath

    if path == "row-blocked":
        monkeypatch.setattr(_fused, "BLOCKED_MIN_ENTRIES", 0)
        jax.clear_caches()
    rng = np.random.default_rng(0)
    s = rng.integers(-32, 33, size=(8, 16)) / 8.0
    t = s + rng.choice([-1, 0, 1], size=s.shape) / 64.0
    got = np.asarray(softxent.distillation_loss(jnp.asarray(s), jnp.asarray(t),
                                                temperature=2.0))

    def log_softmax(z):
        peak = max(z)
        total = mpmath.log(mpmath.fsum(mpmath.exp(x - peak) for x in z))
        return [x - peak - total for x in z]

    with mpmath.workdps(60):
        for row in range(len(s)):
            log_p = log_softmax([mpmath.mpf(float(x)) / 2 for x in s[row]])
            log_q = log_softmax([mpmath.mpf(float(x)) / 2 for x in t[row]])
            exact = 4 * mpmath.fsum(mpmath.exp(b) * (b - a)
                                    for a, b in zip(log_p, log_q, strict=True))
            error = float(abs(got[row] - exact) / exact) / (np.finfo(np.float64).eps / 2)
            assert error <= 1500, (row, float(exact), error)
    jax.clear_caches()
