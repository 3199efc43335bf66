"""Chunked and fused-linear forms equal the plain losses, with less compiled temp memory."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent

N, D, V = 37, 6, 11  # N not a multiple of the chunk: the padding path is exercised


def _data():
    k = jax.random.split(jax.random.key(0), 5)
    h = jax.random.normal(k[0], (N, D), jnp.float32)
    w = jax.random.normal(k[1], (D, V), jnp.float32)
    th = jax.random.normal(k[2], (N, D), jnp.float32)
    tw = jax.random.normal(k[3], (D, V), jnp.float32)
    q = jax.nn.softmax(jax.random.normal(k[4], (N, V), jnp.float32))
    return h, w, th, tw, q


# GPUs run float32 matmuls in TF32 by default (about 1e-3 relative): full
# precision, so the comparison is of the chunking and not of the matmul unit.
@jax.default_matmul_precision("highest")
def test_chunked_forms_match_unchunked_values_and_grads():
    h, w, th, tw, q = _data()

    def pairs():
        yield (
            lambda h, w: softxent.softmax_cross_entropy(h @ w, q, label_smoothing=0.1),
            lambda h, w: softxent.linear_softmax_cross_entropy(
                h, w, q, chunk_size=8, label_smoothing=0.1
            ),
        )
        yield (
            lambda h, w: softxent.softmax_cross_entropy(h @ w, q),
            lambda h, w: softxent.chunked_softmax_cross_entropy(h @ w, q, chunk_size=5),
        )
        yield (
            lambda h, w: softxent.distillation_loss(h @ w, th @ tw, temperature=3.0),
            lambda h, w: softxent.linear_distillation_loss(
                h, w, th, tw, temperature=3.0, chunk_size=16
            ),
        )
        yield (
            lambda h, w: softxent.distillation_loss(h @ w, th @ tw),
            lambda h, w: softxent.chunked_distillation_loss(h @ w, th @ tw, chunk_size=100),
        )

    @jax.jit  # one compiled program for every pair
    def everything(h, w):
        return [[(f(h, w), jax.grad(lambda h, w, f=f: jnp.mean(f(h, w)), argnums=(0, 1))(h, w))
                 for f in pair] for pair in pairs()]

    for (plain, g_plain), (chunked, g_chunk) in everything(h, w):
        np.testing.assert_allclose(chunked, plain, rtol=1e-6, atol=1e-6)
        for a, b in zip(g_chunk, g_plain, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fused_linear_temp_memory_is_bounded_by_the_chunk():
    d, v, chunk = 16, 2048, 64

    def temp(f, n):
        h = jnp.zeros((n, d), jnp.float32)
        w = jnp.zeros((d, v), jnp.float32)
        step = jax.jit(jax.value_and_grad(lambda h, w: jnp.mean(f(h, w)), argnums=(0, 1)))
        return step.lower(h, w).compile().memory_analysis().temp_size_in_bytes

    def plain(h, w):
        return softxent.distillation_loss(h @ w, h @ w)

    def fused(h, w):
        return softxent.linear_distillation_loss(h, w, h, w, chunk_size=chunk)

    assert temp(plain, 2048) >= 2048 * v * 4  # at least one N x V logits buffer
    assert temp(fused, 2048) < temp(plain, 2048) / 4
    # Doubling N leaves the fused form's temp memory (nearly) unchanged: set by the chunk.
    assert temp(fused, 1024) < 1.1 * temp(fused, 512)


def test_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
        softxent.chunked_softmax_cross_entropy(
            jnp.zeros((2, 3)), jnp.ones((2, 3)) / 3, chunk_size=0
        )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_reduced_linear_losses_equal_the_reduced_per_example_forms(reduction, dtype):
    """The scalar forms make their gradients in the forward pass: same value and gradients,
    in every argument (targets and label smoothing too; zero for the teacher)."""
    h, w, th, tw, q = (x.astype(dtype) for x in _data())
    smoothing = jnp.asarray(0.1, dtype)
    reduce = jnp.mean if reduction == "mean" else jnp.sum
    tol = {"float64": 1e-10, "float32": 2e-5}[dtype]

    def ce(reduced):
        def f(h, w, q, smoothing):
            if reduced:
                return softxent.linear_softmax_cross_entropy(
                    h, w, q, chunk_size=8, label_smoothing=smoothing, reduction=reduction)
            return reduce(softxent.softmax_cross_entropy(h @ w, q, label_smoothing=smoothing))
        return f

    def distill(reduced):
        def f(h, w, th, tw):
            if reduced:
                return softxent.linear_distillation_loss(
                    h, w, th, tw, temperature=3.0, chunk_size=16, reduction=reduction)
            return reduce(softxent.distillation_loss(h @ w, th @ tw, temperature=3.0))
        return f

    with jax.default_matmul_precision("highest"):
        for make, args in ((ce, (h, w, q, smoothing)), (distill, (h, w, th, tw))):
            want = jax.value_and_grad(make(False), argnums=(0, 1, 2, 3))(*args)
            got = jax.jit(jax.value_and_grad(make(True), argnums=(0, 1, 2, 3)))(*args)
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                assert a.dtype == b.dtype
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
            # Outside jit too (the backward pass then computes every cotangent eagerly).
            eager = jax.grad(make(True), argnums=(0, 1))(*args)
            for a, b in zip(eager, want[1][:2], strict=True):
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_reduced_linear_loss_makes_three_matrix_products_not_four():
    h, w, _, _, q = _data()

    def dots(f):
        # XLA's optimised program: the cotangent of the targets, unused here, is dropped.
        step = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
        return len(re.findall(r"= \S+ dot\(", step.lower(h, w).compile().as_text()))

    per_example = dots(lambda h, w: jnp.mean(
        softxent.linear_softmax_cross_entropy(h, w, q, chunk_size=8)))
    reduced = dots(lambda h, w: softxent.linear_softmax_cross_entropy(
        h, w, q, chunk_size=8, reduction="mean"))
    assert (per_example, reduced) == (4, 3)


def test_bad_reduction():
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\), "
                       r"got 'avg'"):
        softxent.linear_softmax_cross_entropy(
            jnp.zeros((2, 3)), jnp.zeros((3, 4)), jnp.ones((2, 4)) / 4, reduction="avg")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_masks_biases_and_reductions_follow_the_dense_losses(reduction):
    """The chunked forms take a class mask per row (chunked) or per class (shared), the
    linear forms a bias for the student and the teacher; every form reduces as the
    dense loss does (float64, within 1e-12)."""
    rng = np.random.default_rng(4)
    h, w, b = (jnp.asarray(rng.normal(size=s)) for s in ((N, D), (D, V), (V,)))
    q = jax.nn.softmax(jnp.asarray(rng.normal(size=(N, V))))
    t = jnp.asarray(rng.normal(size=(N, V)))
    masks = (jnp.asarray(rng.uniform(size=(N, V)) > 0.3), jnp.arange(V) != 2)

    @jax.jit  # one compiled program for every comparison
    def everything(h, w, b):
        pairs = []
        for where in masks:
            q_kept = jnp.where(where, q, 0)
            dense_where = jnp.broadcast_to(where, (N, V))  # the dense losses take no [V] mask
            pairs += [
                (softxent.chunked_softmax_cross_entropy(
                    h @ w, q_kept, where=where, chunk_size=5, label_smoothing=0.1,
                    reduction=reduction),
                 softxent.softmax_cross_entropy(h @ w, q_kept, where=dense_where,
                                                label_smoothing=0.1, reduction=reduction)),
                (softxent.chunked_distillation_loss(h @ w, t, where=where, chunk_size=5,
                                                    reduction=reduction),
                 softxent.distillation_loss(h @ w, t, where=dense_where, reduction=reduction)),
            ]
        pairs.append((
            softxent.linear_distillation_loss(h, w, h[::-1], w, bias=b, teacher_bias=b[::-1],
                                              chunk_size=8, reduction=reduction),
            softxent.distillation_loss(h @ w + b, h[::-1] @ w + b[::-1], reduction=reduction)))
        pairs.append((
            jax.grad(lambda b: jnp.sum(softxent.linear_softmax_cross_entropy(
                h, w, q, bias=b, chunk_size=8, reduction=reduction)))(b),
            jax.grad(lambda b: jnp.sum(softxent.softmax_cross_entropy(
                h @ w + b, q, reduction=reduction)))(b)))
        return pairs

    for got, want in everything(h, w, b):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _generalized_js_written_out(s, t, beta):
    """beta KL(P || M) + (1 - beta) KL(Q || M), M = beta P + (1 - beta) Q, as written."""
    p, q = jax.nn.softmax(t), jax.nn.softmax(s)
    m = beta * p + (1 - beta) * q
    return beta * jnp.sum(p * jnp.log(p / m), -1) + (1 - beta) * jnp.sum(q * jnp.log(q / m), -1)


def test_generalized_js_and_reverse_kl_forms_equal_the_dense_divergences():
    """float64, within 1e-12: the generalized JSD is ``kl_divergence`` at beta = 0,
    ``js_divergence`` at 1/2, ``reverse_kl_divergence`` at 1 and the written-out formula at
    0.3; reverse-KL distillation is T^2 reverse_kl_divergence at temperature T. Values of
    the chunked forms at each; values and gradients in h, W and b of the linear forms (with
    biases) per row at beta = 0.3 and for reverse KL, and reduced to a mean at 1/2."""
    rng = np.random.default_rng(5)
    h, w, b, th, tw = (jnp.asarray(rng.normal(size=s))
                       for s in ((N, D), (D, V), (V,), (N, D), (D, V)))
    tb, temperature = jnp.asarray(rng.normal(size=V)), 1.5
    weights = jnp.linspace(0.5, 2.0, N)

    def dense(beta, h, w, b):
        s, t = (h @ w + b) / temperature, (th @ tw + tb) / temperature
        q = jax.nn.softmax(t)
        if beta is None:  # reverse-KL distillation
            return temperature**2 * softxent.reverse_kl_divergence(s, q)
        if beta == 0.3:
            return _generalized_js_written_out(s, t, beta)
        return {0.0: softxent.kl_divergence, 0.5: softxent.js_divergence,
                1.0: softxent.reverse_kl_divergence}[beta](s, q)

    def chunked(beta, h, w, b, **options):
        if beta is None:
            return softxent.chunked_reverse_kl_distillation_loss(
                h @ w + b, th @ tw + tb, temperature=temperature, chunk_size=5, **options)
        return softxent.chunked_generalized_js_divergence(
            h @ w + b, th @ tw + tb, beta=beta, temperature=temperature, chunk_size=5,
            **options)

    def linear(beta, h, w, b, **options):
        options |= dict(bias=b, teacher_bias=tb, temperature=temperature, chunk_size=8)
        if beta is None:
            return softxent.linear_reverse_kl_distillation_loss(h, w, th, tw, **options)
        return softxent.linear_generalized_js_divergence(h, w, th, tw, beta=beta, **options)

    def grads(f):
        return jax.value_and_grad(f, argnums=(0, 1, 2))(h, w, b)

    @jax.jit  # one compiled program for every comparison
    def everything(h, w, b):
        pairs = {}
        for beta in (0.0, 0.3, 0.5, 1.0, None):
            pairs[f"chunked, beta {beta}"] = (chunked(beta, h, w, b), dense(beta, h, w, b))
        for beta in (0.3, None):
            pairs[f"linear, beta {beta}"] = tuple(
                grads(lambda *a, f=f, beta=beta: jnp.sum(weights * f(beta, *a)))
                for f in (linear, dense))
        pairs["linear mean, beta 0.5"] = (grads(lambda *a: linear(0.5, *a, reduction="mean")),
                                          grads(lambda *a: jnp.mean(dense(0.5, *a))))
        return pairs

    for key, (got, want) in everything(h, w, b).items():
        assert float(jnp.min(jax.tree.leaves(want)[0])) > 1e-3  # nonzero divergences
        for a, b_ in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12, err_msg=str(key))


LARGE_VOCABULARY_FORMS = [
    softxent.chunked_softmax_cross_entropy,
    softxent.chunked_distillation_loss,
    softxent.chunked_softmax_cross_entropy_with_integer_labels,
    softxent.linear_softmax_cross_entropy,
    softxent.linear_distillation_loss,
    softxent.linear_softmax_cross_entropy_with_integer_labels,
    softxent.softmax_cross_entropy_with_integer_labels,
    softxent.sparse_distillation_loss,
    softxent.chunked_sparse_distillation_loss,
    softxent.linear_sparse_distillation_loss,
    softxent.chunked_generalized_js_divergence,
    softxent.linear_generalized_js_divergence,
    softxent.chunked_reverse_kl_distillation_loss,
    softxent.linear_reverse_kl_distillation_loss,
]


def _reverse_kl_distillation_reference(s, t, temperature):
    """T^2 KL(Q || P) and its gradient in the student's logits, in mpmath with digits
    for logits out to the largest float and their differences."""
    import mpmath

    with mpmath.workdps(400):
        def log_softmax(z):
            z = [mpmath.mpf(float(x)) / temperature for x in z]
            peak = max(z)
            total = mpmath.log(mpmath.fsum(mpmath.exp(x - peak) for x in z))
            return [x - peak - total for x in z]

        log_q, log_p = log_softmax(s), log_softmax(t)
        q = [mpmath.exp(x) for x in log_q]
        slope = [a - b for a, b in zip(log_q, log_p, strict=True)]
        kl = mpmath.fsum(w * g for w, g in zip(q, slope, strict=True))
        gradient = [temperature * w * (g - kl) for w, g in zip(q, slope, strict=True)]
        return float(temperature**2 * kl), np.array([float(g) for g in gradient])


@pytest.mark.parametrize("dtype, student, teacher, temperature, slack", [
    # The teacher's logits 1e8 apart: its rounded log-probabilities lose the
    # differences the gradient needs.
    (jnp.float32, [5.071931839, -88.80292511, -1.594920754],
     [88.65892792, 159077104.0, -1.530059695], 2.0, 1),
    (jnp.float64, [-7.663572096e+275, -2.746838529, 0.6274509479],
     [3.710013776e+244, 850.3670068, 2.436448523], 2.0, 1),
    # A student weight below the smallest normal float times a huge teacher log-ratio;
    # exp of a log-weight near log(tiny) carries that log's rounding, ~700 units.
    (jnp.float32, [-88.72963715, -88.65701294, 88.71850586],
     [-103201407000.0, -3.011394564e+31, -192491.7031], 2.0, 1000),
    (jnp.float64, [-710.0660183, 709.2009259, -709.1792965],
     [2.652367576e+178, 8.988465674e+307, -8.988465674e+307], 2.0, 1000),
    # At T = 1/2 the teacher's logits span more than the largest float: its log-ratio
    # from the student's top class overflows where its half does not.
    (jnp.float32, [-4.989601612, -2.429546833, -4.394251823],
     [-1682.779541, -1.701411733e+38, 7.487155751e+32], 0.5, 1),
], ids=["float32-far-teacher", "float64-far-teacher", "float32-subnormal-weight",
        "float64-subnormal-weight", "float32-teacher-wider-than-the-range"])
def test_reverse_kl_distillation_keeps_far_apart_teacher_logits(dtype, student, teacher,
                                                                temperature, slack):
    """Value and gradient within 64 units of roundoff (normwise; times ``slack`` where
    the inputs' own rounding allows more) of the exact ones where the teacher's logits
    are far apart or the student's weights underflow."""
    s, t = jnp.asarray([student], dtype), jnp.asarray([teacher], dtype)
    value, gradient = jax.value_and_grad(
        lambda s: softxent.chunked_reverse_kl_distillation_loss(
            s, t, temperature=temperature, reduction="sum"))(s)
    exact_value, exact_gradient = _reverse_kl_distillation_reference(student, teacher,
                                                                     temperature)
    tolerance = slack * 64 * jnp.finfo(dtype).eps
    assert abs(float(value) - exact_value) <= tolerance * abs(exact_value)
    error = np.max(np.abs(np.asarray(gradient[0], np.float64) - exact_gradient))
    assert error <= tolerance * np.max(np.abs(exact_gradient)), (gradient, exact_gradient)


def _softmax_in_mpmath(z):
    """softmax of ``z`` at mpmath's working precision."""
    import mpmath

    z = [mpmath.mpf(float(x)) for x in z]
    total = mpmath.fsum(mpmath.exp(x - max(z)) for x in z)
    return [mpmath.exp(x - max(z)) / total for x in z]


def _generalized_js_reference(s, t, beta):
    """JSD_beta(P || Q) at T = 1 and its gradient in the student's logits, in mpmath."""
    import mpmath

    with mpmath.workdps(400):
        q, p = _softmax_in_mpmath(s), _softmax_in_mpmath(t)
        m = [beta * a + (1 - beta) * b for a, b in zip(p, q, strict=True)]
        value = (beta * mpmath.fsum(a * mpmath.log(a / c) for a, c in zip(p, m, strict=True) if a)
                 + (1 - beta) * mpmath.fsum(b * mpmath.log(b / c)
                                            for b, c in zip(q, m, strict=True) if b))
        slope = [(1 - beta) * mpmath.log(b / c) for b, c in zip(q, m, strict=True)]
        mean = mpmath.fsum(b * g for b, g in zip(q, slope, strict=True))
        gradient = [float(b * (g - mean)) for b, g in zip(q, slope, strict=True)]
        return float(value), np.array(gradient)


@pytest.mark.parametrize("dtype, student, teacher", [
    # A mixture ratio near 1: log M rounded to log beta's precision loses it.
    (jnp.float32, [88.80067444, 88.76563263, -50.91862488], [35.8193512, 35.67577362, 103.3637466]),
    (jnp.float32, [-0.660644114, 1.486042619, 0.3146804571],
     [6004.271484, -1.701411733e+38, -2.394334058e+24]),
    (jnp.float64, [0.7446341305, 2.438348137, -6.256043554],
     [6.054048958e+205, 1.243769284e+120, -8.988465674e+307]),
    (jnp.float64, [-752.9068199, 540.3378973, 200.4413821],
     [7.335823539e+261, 709.5908301, 0.2525409296]),
], ids=["float32-ratio-near-one", "float32-far-teacher", "float64-far-teacher",
        "float64-far-student"])
def test_generalized_js_keeps_ratios_near_one_and_far_teachers(dtype, student, teacher):
    """Value and gradient within 64 units of roundoff (normwise) of the exact ones."""
    s, t = jnp.asarray([student], dtype), jnp.asarray([teacher], dtype)
    value, gradient = jax.value_and_grad(
        lambda s: softxent.chunked_generalized_js_divergence(s, t, reduction="sum"))(s)
    exact_value, exact_gradient = _generalized_js_reference(student, teacher, 0.5)
    tolerance = 64 * jnp.finfo(dtype).eps
    assert abs(float(value) - exact_value) <= tolerance * max(abs(exact_value), 1e-30)
    error = np.max(np.abs(np.asarray(gradient[0], np.float64) - exact_gradient))
    assert error <= tolerance * np.max(np.abs(exact_gradient)), (gradient, exact_gradient)


def _teacher_divergence_hessian_product(s, t, v, beta):
    """H v of JSD_beta(P || Q) at T = 1 in the student's logits (reverse KL at beta = 1),
    in mpmath, from ``H v_i = (1 - beta) q_i [v'_i (w_i - rbar) - sum_k q_k v'_k w_k]``
    with ``v' = v - sum q v``, ``w = log(q / m) + beta p / m`` and ``rbar = sum q log(q /
    m)``; at beta = 1, ``H v_i = q_i v'_i (1 + d_i - KL) - q_i sum_k q_k (d_k - KL) v'_k``,
    ``d = log q - log p``."""
    import mpmath

    with mpmath.workdps(400):
        q, p = _softmax_in_mpmath(s), _softmax_in_mpmath(t)
        v = [mpmath.mpf(float(x)) for x in v]
        mean_v = mpmath.fsum(a * b for a, b in zip(q, v, strict=True))
        centred = [x - mean_v for x in v]
        if beta == 1:
            d = [mpmath.log(a / b) if a else 0 for a, b in zip(q, p, strict=True)]
            kl = mpmath.fsum(a * b for a, b in zip(q, d, strict=True))
            moved = mpmath.fsum(a * (b - kl) * c for a, b, c in zip(q, d, centred, strict=True))
            product = [a * c * (1 + b - kl) - a * moved
                       for a, b, c in zip(q, d, centred, strict=True)]
        else:
            m = [beta * a + (1 - beta) * b for a, b in zip(p, q, strict=True)]
            r = [mpmath.log(b / c) if b else 0 for b, c in zip(q, m, strict=True)]
            w = [x + beta * a / c for x, a, c in zip(r, p, m, strict=True)]
            rbar = mpmath.fsum(b * x for b, x in zip(q, r, strict=True))
            moved = mpmath.fsum(b * c * x for b, c, x in zip(q, centred, w, strict=True))
            product = [(1 - beta) * b * (c * (x - rbar) - moved)
                       for b, c, x in zip(q, centred, w, strict=True)]
        return np.array([float(x) for x in product])


@pytest.mark.parametrize("dtype, student, teacher, v, beta", [
    # p << q at a class: log(q / m) - rbar is -beta p / m to first order, and a Hessian
    # formed as their sum keeps only their rounding (1e-220 for 4e-303 here).
    (jnp.float64, [35.45179515, -532.1887374, 262.7300689],
     [219.7141461, 688.7804233, -773.5200402], [-1.379074757, 0.2100318472, 0.8841825094], 0.5),
    (jnp.float32, [-24.10003281, -1.983591557, -3018814401000000.0],
     [2.605386019, 1.386544704, 35.29965591], [0.04832625389, -0.6397476196, 0.1029086709], 0.5),
    # A teacher's logits 1e35 apart: the gradient is huge and its Hessian's terms cancel.
    (jnp.float32, [-2.926967372e+28, 29.44116402, -55.64760208],
     [-3.117872453e+16, -1.514908524e+35, -8.724594156e+20],
     [0.2516280413, -1.167604089, -1.177511454], 1.0),
    (jnp.float32, [8.507058665e+37, -8.06367689e+25, 8.507058665e+37],
     [8.507058665e+37, 7.92607738e+23, -11818276.0],
     [1.003875017, 0.9443445802, -0.04427732155], 1.0),
], ids=["float64-small-teacher-share", "float32-small-teacher-share",
        "float32-far-teacher", "float32-teacher-near-the-largest-float"])
def test_teacher_divergence_hessians_keep_their_digits(dtype, student, teacher, v, beta):
    """Hessian-vector products (forward over reverse) of generalized JSD and reverse-KL
    distillation within 64 units of roundoff of the exact ones, normwise, or within 64
    smallest normal floats (XLA flushes subnormal terms to 0 on the CPU)."""
    s, t, v = (jnp.asarray([x], dtype) for x in (student, teacher, v))
    forms = [lambda s: softxent.chunked_generalized_js_divergence(
        s, t, beta=beta, reduction="sum")]
    if beta == 1.0:
        forms.append(lambda s: softxent.chunked_reverse_kl_distillation_loss(
            s, t, temperature=1.0, reduction="sum"))
    exact = _teacher_divergence_hessian_product(student, teacher, v[0], beta)
    allowed = 64 * max(jnp.finfo(dtype).eps * np.max(np.abs(exact)), jnp.finfo(dtype).tiny)
    for loss in forms:
        product = jax.jvp(jax.grad(loss), (s,), (v,))[1]
        error = np.max(np.abs(np.asarray(product[0], np.float64) - exact))
        assert error <= allowed, (product, exact)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_teacher_divergences_near_the_teacher_keep_their_digits(beta):
    """A student 1/64 from its teacher in each logit (multiples of 1/64, so every shifted
    logit and difference is exact): generalized JSD about 1e-5, where the difference
    of two log-softmaxes would carry their normalisers' rounding, of the entropy's size
    (about 1e4 units of roundoff lost at beta = 0 and 1). Reverse-KL distillation at
    T = 1 is the beta = 1 divergence. Within 1500 units of the exact value in float64,
    what the cancellation of ``sum q d`` with ``log(S_t / S_s)`` leaves."""
    rng = np.random.default_rng(0)
    s = rng.integers(-32, 33, size=(6, 16)) / 8.0
    t = s + rng.choice([-1, 0, 1], size=s.shape) / 64.0
    forms = [softxent.chunked_generalized_js_divergence(
        jnp.asarray(s), jnp.asarray(t), beta=beta, chunk_size=4)]
    if beta == 1.0:
        forms.append(softxent.chunked_reverse_kl_distillation_loss(
            jnp.asarray(s), jnp.asarray(t), temperature=1.0, chunk_size=4))
    for row in range(len(s)):
        # beta = 0 and 1 are the KLs the formula approaches after dividing by its weight.
        if beta == 0.0:
            exact = _reverse_kl_distillation_reference(t[row], s[row], 1.0)[0]
        elif beta == 1.0:
            exact = _reverse_kl_distillation_reference(s[row], t[row], 1.0)[0]
        else:
            exact = _generalized_js_reference(s[row], t[row], beta)[0]
        for got in forms:
            error = abs(float(got[row]) - exact) / exact / (np.finfo(np.float64).eps / 2)
            assert error <= 1500, (row, exact, error)


@pytest.mark.parametrize("fn", LARGE_VOCABULARY_FORMS, ids=lambda f: f.__name__)
def test_docstring_has_formula_example_and_references_and_the_example_runs(fn):
    import doctest

    doc = fn.__doc__ or ""
    for part in (".. math::", "Args:", "reduction:", "Returns:", "Example:", "References:"):
        assert part in doc, f"{fn.__name__} docstring lacks {part!r}"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = doctest.DocTestFinder().find(fn, fn.__name__, globs={})
    assert sum(len(t.examples) for t in tests) > 0
    with jax.numpy_dtype_promotion("standard"):
        for t in tests:
            runner.run(t)
    assert runner.failures == 0, f"{fn.__name__}: docstring example failed"
