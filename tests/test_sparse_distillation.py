"""Distillation from top-k teachers: the dense loss at k = V, the two tails' formulas below
it, clear errors, and a linear step whose memory is set by the chunk and N x k."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent

N, D, V, T = 13, 5, 9, 1.7
TAILS = ("renormalize", "bucket")


def _teacher(k):
    """A teacher's logits, its top-k classes (best first) and their log-probabilities at T."""
    rng = np.random.default_rng(3)
    t = jnp.asarray(rng.normal(size=(N, V)) * 3)
    top = jnp.asarray(np.argsort(-np.asarray(t), axis=-1)[:, :k])
    return t, top, jnp.take_along_axis(jax.nn.log_softmax(t / T), top, axis=-1)


def _student():
    rng = np.random.default_rng(4)
    return (jnp.asarray(rng.normal(size=s)) for s in ((N, D), (D, V), (V,)))


def _value_and_grads(loss, *args):
    return jax.value_and_grad(loss, argnums=tuple(range(len(args))))(*args)


def test_with_every_class_in_the_top_k_both_tails_are_the_dense_distillation():
    """k = V (the classes in the teacher's order, not 0..V-1): the plain and linear forms
    (per row and summed), both tails, equal ``distillation_loss`` in value and in the
    gradients of h, W and b, float64, 1e-12. (The chunked form equals the plain one below.)"""
    t, top, log_q = _teacher(V)
    weights = jnp.linspace(0.5, 2.0, N)  # a cotangent that differs per row

    def dense(h, w, b):
        return softxent.distillation_loss(h @ w + b, t, temperature=T)

    def forms(tail):
        options = dict(temperature=T, tail=tail)
        return {
            "plain": lambda h, w, b: softxent.sparse_distillation_loss(
                h @ w + b, top, log_q, **options),
            "linear": lambda h, w, b: softxent.linear_sparse_distillation_loss(
                h, w, top, log_q, bias=b, chunk_size=4, **options),
        }

    @jax.jit  # one compiled program for every comparison
    def everything(h, w, b):
        got = {}
        for tail in TAILS:
            for name, form in forms(tail).items():
                got[name, tail] = (form(h, w, b), _value_and_grads(
                    lambda *a: jnp.sum(weights * form(*a)), h, w, b))  # noqa: B023
            # The scalar path: gradients made in the forward pass.
            got["linear, sum", tail] = (None, _value_and_grads(
                lambda h, w, b: softxent.linear_sparse_distillation_loss(
                    h, w, top, log_q, bias=b, chunk_size=4, reduction="sum",
                    temperature=T, tail=tail), h, w, b))  # noqa: B023
        want = (dense(h, w, b), _value_and_grads(lambda *a: jnp.sum(weights * dense(*a)),
                                                 h, w, b))
        want_sum = _value_and_grads(lambda *a: jnp.sum(dense(*a)), h, w, b)
        return got, want, want_sum

    got, (want, want_weighted), want_sum = everything(*_student())
    for key, (losses, value_and_grads) in got.items():
        if losses is not None:
            np.testing.assert_allclose(losses, want, rtol=1e-12, atol=1e-12, err_msg=str(key))
        expected = want_sum if key[0] == "linear, sum" else want_weighted
        for a, b in zip(jax.tree.leaves(value_and_grads), jax.tree.leaves(expected),
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=str(key))


def _written_out(s, top, log_q, tail):
    """The docstring's formulas with the student's log-softmax formed, autodiff's gradient."""
    log_p = jnp.take_along_axis(jax.nn.log_softmax(s / T), top, axis=-1)
    a = jnp.exp(log_q)
    if tail == "renormalize":
        q = a / jnp.sum(a, axis=-1, keepdims=True)
        return T**2 * jnp.sum(q * (jnp.log(q) - log_p), axis=-1)
    mass, student_mass = jnp.sum(a, axis=-1), jnp.sum(jnp.exp(log_p), axis=-1)
    tail_term = (1 - mass) * jnp.log((1 - mass) / (1 - student_mass))
    return T**2 * (jnp.sum(a * (log_q - log_p), axis=-1) + tail_term)


def test_below_k_equal_v_the_tails_follow_their_formulas():
    """k = 3 of 9: the renormalised teacher and the tail bucket, in value and gradient (plain
    and chunked), float64; the bucket also counts the tail, so the two differ."""
    _, top, log_q = _teacher(3)
    h, w, b = _student()
    weights = jnp.linspace(0.5, 2.0, N)

    @jax.jit
    def everything(s):
        out = {}
        for tail in TAILS:
            out[tail] = [_value_and_grads(
                lambda s: jnp.sum(weights * f(s)), s)  # noqa: B023
                for f in (lambda s: _written_out(s, top, log_q, tail),  # noqa: B023
                          lambda s: softxent.sparse_distillation_loss(
                              s, top, log_q, temperature=T, tail=tail),  # noqa: B023
                          lambda s: softxent.chunked_sparse_distillation_loss(
                              s, top, log_q, temperature=T, tail=tail, chunk_size=5))]  # noqa: B023
        return out

    out = everything(2 * (h @ w + b))
    for tail in TAILS:
        (want, want_grad), *forms = out[tail]
        for got, grad in forms:
            np.testing.assert_allclose(got, want, rtol=1e-12)
            np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-12)
    assert abs(float(out["renormalize"][0][0]) - float(out["bucket"][0][0])) > 1e-3


def test_a_bad_teacher_is_named_with_what_was_expected_and_what_came():
    fn = softxent.sparse_distillation_loss
    s = jnp.zeros((2, 4))
    top, log_q = jnp.array([[0, 1], [2, 3]]), jnp.log(jnp.array([[0.5, 0.25], [0.5, 0.25]]))
    cases = [
        ((s, top.astype(float), log_q), TypeError,
         r"teacher_indices must have an integer dtype, got float64"),
        ((s, top[:1], log_q[:1]), ValueError,
         r"teacher_indices shape \(1, 2\) must be student_logits's leading shape \(2,\) "
         r"followed by k"),
        ((s, top, log_q[:, :1]), ValueError,
         r"teacher_log_probs shape \(2, 1\) must equal teacher_indices' shape \(2, 2\)"),
        ((s, jnp.zeros((2, 5), int), jnp.zeros((2, 5))), ValueError,
         r"k = 5 classes per row; k must be in \[1, V\] with V = 4"),
        ((s, top.at[1, 1].set(4), log_q), ValueError,
         r"teacher_indices must lie in \[0, 4\) \(the student's classes\), got 4 in row \(1,\)"),
        ((s, top.at[1, 1].set(-1), log_q), ValueError, r"\[0, 4\).*got -1 in row \(1,\)"),
        ((s, top.at[0, 1].set(0), log_q), ValueError,
         r"teacher_indices must be distinct within a row, got 0 more than once in row \(0,\)"),
        ((s, top, log_q.at[1, 0].set(0.3)), ValueError,
         r"teacher_log_probs must be log-probabilities, <= 0 and not NaN, got 0.3 in row \(1,\)"),
        ((s, top, jnp.log(jnp.array([[0.5, 0.25], [0.75, 0.5]]))), ValueError,
         r"teacher_log_probs of a row must hold probability at most 1 .* got 1.25 in row \(1,\)"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            fn(*args)
    with pytest.raises(ValueError, match=r"tail must be one of \('renormalize', 'bucket'\), "
                                         r"got 'drop'"):
        fn(s, top, log_q, tail="drop")
    with pytest.raises(ValueError, match=r"temperature must be in \(0, inf\), got 0"):
        fn(s, top, log_q, temperature=0.0)
    with pytest.raises(ValueError, match=r"linear_sparse_distillation_loss: teacher_indices "
                                         r"shape \(3, 2\) must be hidden @ weight's leading "
                                         r"shape \(2,\)"):
        softxent.linear_sparse_distillation_loss(
            jnp.zeros((2, 3)), jnp.zeros((3, 4)), jnp.zeros((3, 2), int), jnp.zeros((3, 2)))
    # Under jit the values cannot be looked at: an index outside [0, V) gives NaN, not a
    # silently wrapped class.
    traced = jax.jit(lambda i: fn(s, i, log_q))(top.at[1, 1].set(7))
    assert np.isnan(traced[1]) and np.isfinite(traced[0])


def test_a_compiled_linear_step_keeps_no_n_by_v_temporary():
    """Value and gradient of the linear form at V = 2048: no [N, V] buffer in the optimised
    program, temp memory far below one N x V array, and growing with N by O(N k) only."""
    d, k, chunk = 16, 16, 64

    def compiled(n):
        h, w = jnp.zeros((n, d), jnp.float32), jnp.zeros((d, 2048), jnp.float32)
        top = jnp.tile(jnp.arange(k), (n, 1))
        log_q = jnp.full((n, k), -jnp.log(2.0 * k), jnp.float32)

        def mean(h, w):
            return softxent.linear_sparse_distillation_loss(
                h, w, top, log_q, tail="bucket", chunk_size=chunk, reduction="mean")

        return jax.jit(jax.value_and_grad(mean, argnums=(0, 1))).lower(h, w).compile()

    big, small = compiled(1024), compiled(256)
    assert "[1024,2048]" not in big.as_text()
    temp = big.memory_analysis().temp_size_in_bytes
    assert temp < 1024 * 2048 * 4 / 4  # chunk x V buffers (0.5 MB each), not N x V (8 MB)
    growth = temp - small.memory_analysis().temp_size_in_bytes
    assert growth < (1024 - 256) * k * 4 * 8  # a few [N, k] arrays; N x V would be 6.3 MB


def test_tiny_and_underflowing_student_masses_keep_their_value():
    """Renormalised, log S is log1p of the mass below the student's peak (2.7e-38 here, not
    0); with the bucket, the student's tail mass outside the top k underflows and its log
    is still finite (float64)."""
    x = jnp.array([775.5, -616.2, 599.8])
    got = softxent.sparse_distillation_loss(x, jnp.array([0]), jnp.array([0.0]))
    below = np.exp((np.array([-616.2, 599.8]) - 775.5) / 2.0)
    np.testing.assert_allclose(float(got), 4.0 * np.sum(below), rtol=1e-12)
    assert float(got) > 0

    x, temperature = np.array([339.8, 701.2, 57.25]), 0.5
    log_a = -0.855
    got = softxent.sparse_distillation_loss(jnp.asarray(x), jnp.array([1]), jnp.array([log_a]),
                                            temperature=temperature, tail="bucket")
    z = x / temperature
    log_s = np.logaddexp.reduce(z)
    log_out = np.logaddexp(z[0], z[2])
    a, rest = np.exp(log_a), -np.expm1(log_a)
    exact = a * (log_a - (z[1] - log_s)) + rest * (np.log(rest) - (log_out - log_s))
    np.testing.assert_allclose(float(got), temperature**2 * exact, rtol=1e-12)


@pytest.mark.parametrize("tail", ["renormalize", "bucket"])
def test_a_dominant_peak_in_the_top_k_keeps_its_gradient(tail):
    """The student's peak holds all but e^-187 of its mass and is the teacher's top class:
    its slope p - q is minus the mass elsewhere (the gradient sums to 0 over the classes),
    not the 0 that p - q rounds to (float64)."""
    z = jnp.array([196.27, -817.75, -177.74])
    log_probs = jnp.array([0.0 if tail == "renormalize" else -1e-300])
    grad = jax.grad(lambda z: softxent.sparse_distillation_loss(
        z, jnp.array([0]), log_probs, tail=tail))(z)
    assert float(grad[0]) < 0
    np.testing.assert_allclose(float(grad[0]), -float(grad[1] + grad[2]), rtol=1e-12)


# Points of `softxent verify` where the top-k forms once failed, as (dtype, setting,
# student logits, teacher [log-probabilities, mask], direction of the Hessian-vector
# product); the twin's exact value, gradient and product are the reference.
BUCKET = {"tail": "bucket", "temperature": 0.5}
EXTREME_POINTS = [
    # A teacher probability exp(-1.1e32) against a student logit 2 x 1.7e38 below the
    # peak: 0 x inf in the value.
    ("float32", BUCKET, [-1.7014e38, 1.7014e38, 1.504e35], [-1.097e32, 0, -8.507e37, 1, 1, 1],
     [1.445, -2.38, -0.4511]),
    # z - m overflows at the one class outside the top k: NaN in its tail share.
    ("float32", BUCKET, [1.7014e38, -1.7014e38, -88.77], [-0.9755, 0, -0.5518, 1, 0, 1],
     [1.445, -2.38, -0.4511]),
    # Teacher probabilities below the smallest normal float against huge log-ratios.
    ("float32", {}, [5.79e32, 88.805, -6.23e36], [0, -188.33, -128.78, 1, 1, 1],
     [1.445, -2.38, -0.4511]),
    ("float64", {}, [2.398e115, -294.04, 4.488e221], [0, -709.98, 0, 0, 1, 1],
     [1.445, -2.38, -0.4511]),
    # Two classes outside the top k whose z - m round to one value (-2.2e42): the tail's
    # shares, their derivatives too, must tell them apart.
    ("float64", BUCKET, [849.53, -710.35, 1.105e42], [0, 0, -0.4054, 0, 0, 1],
     [1.445, -2.38, -0.4511]),
    ("float64", BUCKET, [4.1156, 3.9017e62, -709.87], [0, -0.671, 0, 0, 1, 0],
     [1.445, -2.38, -0.4511]),
    # A small KL (4e-21) whose teacher mass log A rounds to 0 in float32.
    ("float32", {}, [78.54808807, -78.64316559, -29.48863411],
     [0.0, -116.5718689, -49.57859039, 1, 1, 1], [1.445, -2.38, -0.4511]),
    # k = V with teacher mass 1 + 2.9e-22: the gradient is A p - a.
    ("float32", BUCKET, [78.54808807, -78.64316559, -29.48863411],
     [0.0, -116.5718689, -49.57859039, 1, 1, 1], [1.445, -2.38, -0.4511]),
    ("float64", BUCKET, [-709.1336999, 709.3781066, -710.1140473],
     [-10.06180799, -0.0001558353659, -9.086845562, 1, 1, 1], [1.445, -2.38, -0.4511]),
    # A tail mass 1 - A of 2e-14 that 1 - exp(log A) loses in float32.
    ("float32", BUCKET, [-5.870463507e31, -2.005070138e26, 1.283275381e21],
     [0.0, -21.88434219, -3.13163051e-10, 0, 1, 1], [1.445, -2.38, -0.4511]),
    # A tail share that rounds to 1: its derivative, relative to that peak, is 1e-21.
    ("float32", BUCKET, [66.73828125, -24.97306252, -0.7976273298],
     [-0.006303324364, 0.0, 0.0, 1, 0, 0], [0.7573413253, -0.7774454355, 0.3747605383]),
]
TOP_K_FORMS = ("sparse_distillation_loss", "chunked_sparse_distillation_loss",
               "linear_sparse_distillation_loss")


@pytest.mark.parametrize(("dtype", "setting"), [("float32", {}), ("float64", {}),
                                                ("float32", BUCKET), ("float64", BUCKET)],
                         ids=["float32", "float64", "float32-bucket", "float64-bucket"])
def test_extreme_points_match_the_twin_in_value_gradient_and_curvature(dtype, setting):
    """Each point's value, gradient and Hessian-vector product in every top-k form are
    within verify's tolerance of the SymPy twin (mpmath), as ``softxent verify`` measures."""
    from softxent.symbolic import _verify

    rows = [p for p in EXTREME_POINTS if p[0] == dtype and p[1] == setting]
    x, t, v = (np.array([p[i] for p in rows], float) for i in (2, 3, 4))
    orders = (0, 1, 2)
    name = TOP_K_FORMS[0]
    params = _verify.rounded_parameters(softxent.get_loss(name), setting, dtype)
    exact, moved = _verify.reference(name, params, orders, x, t, v, False)
    for form in TOP_K_FORMS:
        spec = softxent.get_loss(form)
        computed = _verify._jax_outputs(spec, setting, orders, dtype, x, t, v)
        for order in orders:
            result = _verify.compare(spec, setting, order, dtype, x, t, v, exact, moved,
                                     computed, orders)
            assert result.passed, result.describe()
