"""Every loss over the edge-case grid, in every dtype.

The rule tested: the value is never NaN, and wherever it is finite the gradient
(reverse mode), the forward-mode Jacobian and the Hessian are finite too, with
respect to the predictions, and the gradient with respect to the targets.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent
from tests import _grid

DTYPES = [jnp.float64, jnp.float32, jnp.bfloat16, jnp.float16]
SPECS = softxent.list_losses()


def _row_fn(spec):
    if spec.output == "per_example":
        return lambda x, t, m: spec.fn(x, t, where=m)
    return lambda x, t, m: jnp.sum(spec.fn(x, t, where=m))


def _inputs(spec):
    """Predictions, targets and masks for ``spec`` over its grid (float64)."""
    if spec.output == "per_example":
        logits, targets, masks, labels = _grid.class_grid()
        if spec.input == "probabilities":
            probs = np.array([_grid.CLASS_TARGETS[k] for k in _grid.CLASS_TARGETS])
            n = len(targets) // len(probs) + 1
            logits = np.tile(probs, (n, 1))[: len(targets)]
        if spec.targets == "logits":  # distillation: the teacher's logits are log q
            with np.errstate(divide="ignore"):
                targets = np.log(targets)
        return logits, targets, masks, labels
    predictions = _grid.PROBS if spec.input == "probabilities" else _grid.ELEMENT_LOGITS
    x, y, labels = _grid.element_grid(predictions)
    return x, y, np.ones_like(x, dtype=bool), labels


@functools.cache
def _compiled(name):
    """The value and every derivative from one compilation (a jit each costs most of the
    test's time)."""
    spec = softxent.get_loss(name)
    f = _row_fn(spec)
    parts = {
        "value": f,
        "grad": jax.grad(f),
        "jacfwd": jax.jacfwd(f),
        "hessian": jax.hessian(f),
        "grad_targets": jax.grad(f, argnums=1),
    }
    return jax.jit(lambda x, t, m: {kind: jax.vmap(g)(x, t, m) for kind, g in parts.items()})


def _representable(reference: np.ndarray, dtype) -> np.ndarray:
    """Where the float64 derivative fits in ``dtype`` (else inf is the right answer)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(reference) & (np.abs(reference) <= float(jnp.finfo(dtype).max))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_no_nan_and_finite_derivatives(spec, dtype):
    x, t, m, labels = _inputs(spec)
    x = jnp.asarray(x).astype(dtype)
    target_dtype = jnp.float64 if dtype == jnp.float64 else jnp.float32
    t = jnp.asarray(t).astype(target_dtype)
    if spec.targets == "logits":
        t = t.astype(dtype)
    m = jnp.asarray(m)
    outputs = _compiled(spec.name)(x, t, m)

    raw = outputs["value"]
    value = np.asarray(raw, dtype=np.float64)
    nan_rows = [labels[i] for i in np.flatnonzero(np.isnan(value))]
    assert not nan_rows, f"{spec.name} gives NaN at: {nan_rows[:5]}"
    finite = np.isfinite(value)
    assert finite.sum() >= len(value) // 3, "the grid should be largely finite"

    # The same (rounded) inputs in float64, to tell a true overflow from a failure.
    wide = [jnp.asarray(a).astype(jnp.float64) for a in (x, t)]
    # The value is finite wherever the float64 value on the same inputs fits the dtype
    # (the float16 range ends at 65504, so a large finite loss may rightly overflow).
    wide_outputs = _compiled(spec.name)(*wide, m)
    wide_value = np.asarray(wide_outputs["value"])
    lost = _representable(wide_value, raw.dtype) & ~finite
    bad = [labels[i] for i in np.flatnonzero(lost)]
    assert not bad, f"{spec.name}: inf where the float64 value is finite: {bad[:5]}"
    for kind in ("grad", "jacfwd", "hessian", "grad_targets"):
        d = np.asarray(outputs[kind], dtype=np.float64).reshape(len(value), -1)
        reference = np.asarray(wide_outputs[kind]).reshape(len(value), -1)
        nan = np.any(np.isnan(d), axis=1)
        bad = [labels[i] for i in np.flatnonzero(finite & nan)]
        assert not bad, f"{spec.name}: NaN {kind} where the value is finite: {bad[:5]}"
        should_be_finite = _representable(reference, dtype)
        overflow = np.any(should_be_finite & ~np.isfinite(d), axis=1)
        bad = [labels[i] for i in np.flatnonzero(finite & overflow)]
        assert not bad, f"{spec.name}: non-finite {kind} where the value is finite: {bad[:5]}"


CLASS_LOGIT_SPECS = [s for s in SPECS if s.output == "per_example" and s.input == "logits"]


def _teacher_or_targets(spec, q):
    if spec.targets == "logits":
        with np.errstate(divide="ignore"):
            return jnp.log(jnp.asarray(q))
    return jnp.asarray(q)


@pytest.mark.parametrize("spec", CLASS_LOGIT_SPECS, ids=lambda s: s.name)
def test_neg_inf_logit_with_zero_target_equals_loss_on_other_classes(spec):
    z = jnp.array(_grid.CLASS_LOGITS["neg_inf"])
    q = np.array(_grid.CLASS_TARGETS["zero_at_1"])
    keep = np.array([0, 2, 3])
    full = spec.fn(z, _teacher_or_targets(spec, q))
    reduced = spec.fn(z[keep], _teacher_or_targets(spec, q[keep]))
    np.testing.assert_allclose(full, reduced, rtol=1e-12, atol=0)
    assert np.isfinite(full)


@pytest.mark.parametrize("spec", CLASS_LOGIT_SPECS, ids=lambda s: s.name)
def test_pos_inf_logit_with_matching_one_hot_target_is_zero(spec):
    z = jnp.array(_grid.CLASS_LOGITS["pos_inf"])
    q = np.array(_grid.CLASS_TARGETS["one_hot_0"])
    value = spec.fn(z, _teacher_or_targets(spec, q))
    assert float(value) == 0.0
    grad = jax.grad(lambda z: spec.fn(z, _teacher_or_targets(spec, q)))(z)
    np.testing.assert_array_equal(grad, np.zeros(4))


@pytest.mark.parametrize("spec", CLASS_LOGIT_SPECS, ids=lambda s: s.name)
def test_fully_masked_row_is_zero_with_zero_gradient(spec):
    z = jnp.array(_grid.CLASS_LOGITS["finite"])
    q = np.array(_grid.CLASS_TARGETS["soft"])
    where = jnp.zeros(4, dtype=bool)
    f = lambda z: spec.fn(z, _teacher_or_targets(spec, q), where=where)
    assert float(f(z)) == 0.0
    np.testing.assert_array_equal(jax.grad(f)(z), np.zeros(4))
    np.testing.assert_array_equal(jax.hessian(f)(z), np.zeros((4, 4)))


def test_cross_entropy_is_infinite_exactly_where_a_positive_target_has_zero_probability():
    z = jnp.array(_grid.CLASS_LOGITS["neg_inf"])
    assert float(softxent.softmax_cross_entropy(z, jnp.array([0.25, 0.25, 0.25, 0.25]))) == np.inf
    assert np.isfinite(float(softxent.softmax_cross_entropy(z, jnp.array([0.5, 0.0, 0.25, 0.25]))))
    # Label smoothing on a masked class: optax returns inf, softxent excludes the class.
    mask = jnp.array([True, False, True, True])
    smoothed = softxent.softmax_cross_entropy(
        z, jnp.array([0.5, 0.0, 0.25, 0.25]), where=mask, label_smoothing=0.1
    )
    assert np.isfinite(float(smoothed))


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [(np.inf, 1.0, 0.0), (-np.inf, 0.0, 0.0), (np.inf, 0.0, np.inf), (-np.inf, 1.0, np.inf),
     (-np.inf, 0.5, np.inf), (0.0, 0.5, np.log(2.0))],
)
def test_sigmoid_bce_at_infinite_logits(x, y, expected):
    value = softxent.sigmoid_binary_cross_entropy(jnp.array([x]), jnp.array([y]))
    np.testing.assert_allclose(value, [expected], rtol=1e-12)


@pytest.mark.parametrize(("p", "q", "expected"), [(0.0, 0.0, 0.0), (1.0, 1.0, 0.0),
                                                  (0.0, 0.3, np.inf), (1.0, 0.3, np.inf)])
def test_binary_cross_entropy_limits(p, q, expected):
    assert float(softxent.binary_cross_entropy(jnp.array(p), jnp.array(q))) == expected


def test_kl_gradient_with_respect_to_zero_target_is_finite_and_exact_elsewhere():
    z = jnp.array([0.3, -0.2, 1.0])
    q = jnp.array([0.6, 0.0, 0.4])
    g = jax.grad(lambda q: softxent.kl_divergence(z, q))(q)
    log_p = jax.nn.log_softmax(z)
    # d/dq_i [q_i log q_i - q_i log p_i] = log q_i + 1 - log p_i for q_i > 0.
    np.testing.assert_allclose(g[jnp.array([0, 2])], (jnp.log(q) + 1 - log_p)[jnp.array([0, 2])],
                               rtol=1e-12)
    assert np.isfinite(float(g[1]))
    # For the cross-entropy the partial derivative at q_i = 0 is exactly -log p_i.
    gce = jax.grad(lambda q: softxent.softmax_cross_entropy(z, q))(q)
    np.testing.assert_allclose(gce, -log_p, rtol=1e-12)


def test_elementwise_where_masks_value_and_gradient():
    x = jnp.array([0.5, -jnp.inf, 2.0])
    y = jnp.array([0.3, 0.7, 1.0])
    mask = jnp.array([True, False, True])
    for spec in [s for s in SPECS if s.output == "per_component" and s.input == "logits"]:
        f = lambda x, spec=spec: jnp.sum(spec.fn(x, y, where=mask))
        assert np.isfinite(float(f(x))), spec.name
        g = jax.grad(f)(x)
        assert float(g[1]) == 0.0 and np.all(np.isfinite(g)), spec.name


# -- where exp overflows: values and second derivatives ------------------------------


def _exact_second_derivative(f, x: float) -> float:
    """f''(x) by mpmath, with digits to spare beyond the e^-x terms that it holds."""
    import mpmath

    with mpmath.workdps(60 + int(abs(x))):
        return float(mpmath.diff(f, mpmath.mpf(x), 2))


@pytest.mark.parametrize(
    ("dtype", "top"), [(jnp.float32, 87.0), (jnp.float32, 88.5), (jnp.float64, 708.0)]
)
def test_js_divergence_is_finite_and_at_most_log_2_where_exp_underflows(dtype, top):
    z = jnp.array([top, 0.0], dtype)
    value = float(softxent.js_divergence(z, jnp.array([1.0, 0.0], dtype)))
    # Exactly: (log 2 / 2) e^-top to first order, below the dtype's smallest normal.
    assert 0.0 <= value <= float(jnp.finfo(dtype).tiny)
    swapped = float(softxent.js_divergence(z, jnp.array([0.0, 1.0], dtype)))
    np.testing.assert_allclose(swapped, np.log(2.0), rtol=4 * float(jnp.finfo(dtype).eps))


@pytest.mark.parametrize(
    ("dtype", "size"), [(jnp.float32, 30.0), (jnp.float32, 80.0), (jnp.float64, 250.0)]
)
def test_js_divergence_hessian_is_finite_at_saturated_logits(dtype, size):
    q = jnp.array([0.0, 1.0, 0.0], dtype)
    f = lambda z: softxent.js_divergence(z, q)
    z = jnp.array([size, 0.0, -size], dtype)
    assert np.isfinite(float(f(z)))
    assert np.all(np.isfinite(np.asarray(jax.hessian(f)(z))))


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize(
    ("dtype", "x"), [(jnp.float32, 50.0), (jnp.float32, 87.0), (jnp.float64, 400.0),
                     (jnp.float64, 700.0)]
)
def test_sigmoid_focal_hessian_is_finite_for_hard_targets(dtype, x, gamma):
    for sign, y in [(1, 1.0), (-1, 0.0), (1, 0.0), (-1, 1.0)]:
        target = jnp.array([y], dtype)
        f = lambda x, target=target: jnp.sum(
            softxent.sigmoid_focal_loss(x, target, gamma=gamma))
        h = np.asarray(jax.hessian(f)(jnp.array([sign * x], dtype)))
        assert np.all(np.isfinite(h)), (sign * x, y, h)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("x", [40.0, 60.0, 300.0])
def test_sigmoid_focal_second_derivative_is_accurate_in_float64(x, gamma):
    import mpmath

    def loss(x):  # target 0: sigma(x)^gamma softplus(x)
        return (1 / (1 + mpmath.exp(-x))) ** gamma * mpmath.log1p(mpmath.exp(x))

    ours = jax.hessian(
        lambda x: jnp.sum(softxent.sigmoid_focal_loss(x, jnp.zeros(1), gamma=gamma))
    )(jnp.array([x]))
    np.testing.assert_allclose(float(ours[0, 0]), _exact_second_derivative(loss, x), rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("x", [40.0, 60.0, 300.0])
def test_softmax_focal_second_derivative_is_accurate_in_float64(x, gamma):
    import mpmath

    def loss(x):  # logits [x, 0], target [0, 1]: -(1 - p_1)^gamma log p_1, p_1 = sigma(-x)
        return (1 / (1 + mpmath.exp(-x))) ** gamma * mpmath.log1p(mpmath.exp(x))

    q = jnp.array([0.0, 1.0])
    ours = jax.hessian(lambda z: softxent.focal_cross_entropy(z, q, gamma=gamma))(
        jnp.array([x, 0.0])
    )
    np.testing.assert_allclose(float(ours[0, 0]), _exact_second_derivative(loss, x), rtol=1e-12)
    # The top class's own weight (1 - p_0)^gamma = sigma(-x)^gamma, with target [1, 0].
    def top_loss(x):
        return (1 / (1 + mpmath.exp(x))) ** gamma * mpmath.log1p(mpmath.exp(-x))

    with mpmath.workdps(60 + int(x)):
        exact = float(mpmath.diff(top_loss, mpmath.mpf(x)))
    top = jax.grad(lambda z: softxent.focal_cross_entropy(z, q[::-1], gamma=gamma))(
        jnp.array([x, 0.0])
    )
    np.testing.assert_allclose(float(top[0]), exact, rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_log1p_is_accurate_where_xla_float64_log1p_is_not(dtype):
    import mpmath

    from softxent._numerics import log1p

    x = np.linspace(-0.45, -0.33, 301).astype(dtype)
    ours = np.asarray(log1p(jnp.asarray(x)), dtype=np.float64)
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.log1p(mpmath.mpf(float(a)))) for a in x])
    ulps = np.abs(ours - exact) / np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    assert ulps.max() <= 2, (x[np.argmax(ulps)], ulps.max())


@pytest.mark.parametrize(
    ("dtype", "x"), [(jnp.float32, -16.587), (jnp.float32, 30.0), (jnp.float64, 37.08),
                     (jnp.float64, -300.0)]
)
def test_sigmoid_bce_second_derivative_keeps_its_relative_accuracy(dtype, x):
    import mpmath

    x = jnp.array([x], dtype)
    h = jax.hessian(
        lambda x: jnp.sum(softxent.sigmoid_binary_cross_entropy(x, jnp.full(1, 0.75, dtype)))
    )(x)
    exact_x = mpmath.mpf(float(x[0]))
    with mpmath.workdps(200):  # sigma(x) sigma(-x), for every target
        exact = float(1 / (1 + mpmath.exp(-exact_x)) / (1 + mpmath.exp(exact_x)))
    np.testing.assert_allclose(float(h[0, 0]), exact, rtol=8 * float(jnp.finfo(dtype).eps))


# -- the numeric claims of the docstrings ---------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_js_divergence_lies_in_zero_log_2_and_is_finite_on_the_grid(dtype):
    logits, targets, masks, _ = _grid.class_grid()
    rng = np.random.default_rng(0)
    scale = 10.0 ** rng.uniform(-1, 3, size=(400, 1))
    z = np.concatenate([logits, scale * rng.normal(size=(400, 4))])
    q = np.concatenate([targets, rng.dirichlet(np.ones(4) * 0.3, size=400)])
    m = np.concatenate([masks, np.ones((400, 4), dtype=bool)])
    kept = np.where(m, q, 0)
    q = np.where(kept.sum(1, keepdims=True) > 0, kept / np.maximum(kept.sum(1, keepdims=True),
                                                                1e-300), q)
    # The float64 grid rows beyond float32 become +-inf (jax casts without a warning).
    z = jnp.asarray(z).astype(dtype)
    value = np.asarray(softxent.js_divergence(z, jnp.asarray(q, dtype), where=jnp.asarray(m)))
    assert np.all(np.isfinite(value))
    bound = np.log(2.0) * (1 + 8 * float(jnp.finfo(dtype).eps))
    assert value.min() >= 0 and value.max() <= bound, (value.min(), value.max())


def test_generalized_cross_entropy_costs_q_over_k_at_probability_0():
    q = jnp.array([0.25, 0.75])
    value = softxent.generalized_cross_entropy(jnp.array([-jnp.inf, 0.0]), q, k=0.5)
    np.testing.assert_allclose(float(value), 0.25 / 0.5, rtol=1e-12)


def test_poly1_term_below_epsilon_minus_1_is_minimised_inside():
    import sympy as sp

    p, eps = sp.symbols("p epsilon")
    term = -sp.log(p) + eps * (1 - p)  # the per-class term of poly1_cross_entropy
    (p_star,) = sp.solve(sp.diff(term, p), p)
    assert sp.simplify(p_star + 1 / eps) == 0
    # For epsilon = -2 the loss at that interior point is below its value at p = 1.
    z = jnp.log(jnp.array([0.5, 0.5]))
    inside = softxent.poly1_cross_entropy.jitted(z, jnp.array([1.0, 0.0]), epsilon=-2.0)
    np.testing.assert_allclose(float(inside), float(term.subs({p: 0.5, eps: -2})), rtol=1e-12)
    assert float(inside) < 0.0


@pytest.mark.parametrize("top", [40.0, 300.0])
def test_poly1_value_keeps_one_minus_p_of_a_saturated_class(top):
    import mpmath

    with mpmath.workdps(60 + int(top)):
        rest = 1 / (1 + mpmath.exp(mpmath.mpf(top)))  # 1 - p_0 for logits [top, 0]
        exact = float(-mpmath.log1p(-rest) + 2 * rest)
    value = softxent.poly1_cross_entropy(jnp.array([top, 0.0]), jnp.array([1.0, 0.0]), epsilon=2.0)
    np.testing.assert_allclose(float(value), exact, rtol=1e-13)


@pytest.mark.parametrize(("dtype", "top"), [(jnp.float32, 60.0), (jnp.float64, 600.0)])
def test_fused_losses_keep_the_mass_below_a_saturated_peak(dtype, top):
    """Logits [top, 0, -top/2]: the other classes' mass is far below the unit roundoff, so
    log S = log1p(rest) and the peak's gradient (minus that mass) must not round to 0."""
    import mpmath

    def softmax(z):
        total = sum(mpmath.exp(a) for a in z)
        return [mpmath.exp(a) / total for a in z]

    z = [top, 0.0, -top / 2]
    teacher = [2 * top, 0.0, -top]  # distillation: the teacher's peak saturated too
    temperature = 2.0
    with mpmath.workdps(60 + int(top)):
        p = softmax([mpmath.mpf(a) for a in z])
        p_t, q_t = (softmax([mpmath.mpf(a) / temperature for a in x]) for x in (z, teacher))
        exact = {  # (value, gradient) for a one-hot target at the peak, and for the teacher
            "softmax_cross_entropy": (-mpmath.log(p[0]), [p[0] - 1, p[1], p[2]]),
            "kl_divergence": (-mpmath.log(p[0]), [p[0] - 1, p[1], p[2]]),
            "distillation_loss": (
                temperature**2 * sum(b * mpmath.log(b / a) for a, b in zip(p_t, q_t, strict=True)),
                [temperature * (a - b) for a, b in zip(p_t, q_t, strict=True)],
            ),
        }
        exact = {k: (float(v), [float(g) for g in grad]) for k, (v, grad) in exact.items()}
    logits = jnp.array(z, dtype)
    targets = {"distillation_loss": jnp.array(teacher, dtype)}
    params = {"distillation_loss": {"temperature": temperature}}
    eps, tiny = float(jnp.finfo(dtype).eps), float(jnp.finfo(dtype).tiny)  # below tiny: flushed
    for name, (value, gradient) in exact.items():
        fn = softxent.get_loss(name).fn
        q = targets.get(name, jnp.array([1.0, 0.0, 0.0], dtype))
        f = lambda z, fn=fn, q=q, name=name: fn(z, q, **params.get(name, {}))
        np.testing.assert_allclose(float(f(logits)), value, rtol=8 * eps, err_msg=name)
        np.testing.assert_allclose(np.asarray(jax.grad(f)(logits), np.float64), gradient,
                                   rtol=8 * eps, atol=tiny, err_msg=name)


def test_js_divergence_gradient_of_a_saturated_row_does_not_cancel():
    """Logits [-453.7, 269.5, -54.3], target [1, 0, 0]: every exact partial is about 3e-312
    (below float64's smallest normal); a cancellation would leave roundoff times p_2 ~ 1e-157."""
    z = jnp.array([-453.671109, 269.4625751, -54.28137286], jnp.float64)
    q = jnp.array([1.0, 0.0, 0.0], jnp.float64)
    g = np.asarray(jax.grad(lambda z: softxent.js_divergence(z, q))(z))
    assert np.all(np.abs(g) <= 2.0**20 * float(jnp.finfo(jnp.float64).tiny)), g


def test_focal_gradient_at_a_tie_for_the_top_class():
    """Logits [1, -5, 1]: the first entry is the top; max's derivative at the tie is not its."""
    q = jnp.array([0.989328742, 0.0, 0.01067124214])
    g = jax.grad(lambda z: softxent.focal_cross_entropy(z, q))(jnp.array([1.0, -5.0, 1.0]))
    exact = [-0.29289643371597384, 0.0007399963394805244, 0.2921564373764933]  # mpmath.diff
    np.testing.assert_allclose(np.asarray(g), exact, rtol=1e-12)


# -- the sparse, chunked and linear families on the class grid -------------------------

FAMILY_SPECS = softxent.list_losses(family="sparse") + softxent.list_losses(
    family="chunked") + softxent.list_losses(family="linear")
IGNORED = -100


def _family_call(spec, logits, targets, masks):
    """``(loss(x), x, rows)``: the loss of ``spec`` per grid row as a function of its first
    argument, and the row indices it covers. Labels are each row's most likely target
    class (every 5th row ignored); a top-k teacher holds each row's two largest targets
    (log 0 = -inf included); a linear form reads the logits as hidden states through an
    identity output matrix, on the rows where they and the teacher's log-probabilities
    are finite (an infinite hidden state times the matrix's zeros is NaN)."""
    rows = np.arange(len(logits))
    with np.errstate(divide="ignore"):
        log_targets = np.log(targets)
    if spec.family == "linear":
        rows = rows[np.all(np.isfinite(logits), axis=1)]
        logits, targets, log_targets = logits[rows], targets[rows], log_targets[rows]
        log_targets = np.maximum(log_targets, -1e30)  # a finite stand-in for log 0
    dtype = logits.dtype
    labels = jnp.asarray(np.argmax(targets, axis=1)).at[::5].set(IGNORED)
    top = np.argsort(-targets, axis=1, kind="stable")[:, :2]
    top_log_probs = jnp.asarray(np.take_along_axis(log_targets, top, axis=1), dtype)
    eye = jnp.eye(logits.shape[1], dtype=dtype)
    masks = jnp.asarray(masks[rows]) if spec.family == "chunked" else None
    chunk = {} if spec.family == "sparse" else {"chunk_size": 3}
    where = {} if masks is None else {"where": masks}
    if spec.targets == "labels":
        fixed = (labels,)
        where = where if spec.family != "linear" else {}
        options = {"ignore_index": IGNORED, "label_smoothing": 0.1, **where}
    elif spec.targets == "top_k":
        fixed, options = (jnp.asarray(top), top_log_probs), {}
    elif spec.targets == "probabilities":
        fixed, options = (jnp.asarray(targets, dtype),), where
    else:  # a teacher's logits or hidden states: log q
        takes_where = "where" in inspect.signature(spec.fn).parameters
        fixed, options = (jnp.asarray(log_targets, dtype),), where if takes_where else {}
    if spec.family == "linear":
        teacher = (eye,) if spec.targets == "hidden" else ()
        return (lambda h: spec.fn(h, eye, *fixed, *teacher, **chunk, **options)), rows
    return (lambda z: spec.fn(z, *fixed, **chunk, **options)), rows


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("spec", FAMILY_SPECS, ids=lambda s: s.name)
def test_sparse_chunked_and_linear_forms_keep_the_grid_rule(spec, dtype):
    """The rule of the dense grid test (no NaN value; finite gradient and second derivative
    along a direction wherever the value is finite) for every loss of the other families;
    rows are independent, so one call over the grid gives each row's derivatives."""
    logits, targets, masks, labels = _grid.class_grid()
    x = jnp.asarray(logits).astype(dtype)
    f, rows = _family_call(spec, np.asarray(x, np.float64).astype(dtype), targets, masks)
    x = x[rows]
    direction = jnp.asarray(np.random.default_rng(0).normal(size=x.shape), dtype)

    @jax.jit
    def everything(x):
        total = lambda x: jnp.sum(f(x))  # noqa: E731
        gradient = jax.grad(total)
        return f(x), gradient(x), jax.jvp(gradient, (x,), (direction,))[1]

    value, gradient, curvature = (np.asarray(a, np.float64) for a in everything(x))
    names = [labels[i] for i in rows]
    assert not np.isnan(value).any(), [names[i] for i in np.flatnonzero(np.isnan(value))[:5]]
    finite = np.isfinite(value)
    assert finite.sum() >= len(value) // 3, "the grid should be largely finite"
    for kind, d in (("gradient", gradient), ("second derivative", curvature)):
        bad = finite & ~np.all(np.isfinite(d), axis=1)
        assert not bad.any(), (f"{spec.name}: non-finite {kind} where the value is finite: "
                               f"{[names[i] for i in np.flatnonzero(bad)[:5]]}")
