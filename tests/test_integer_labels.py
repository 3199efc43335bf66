"""Integer-label cross-entropy: PyTorch's values, one fused pass, no N x V one-hot."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import softxent
from softxent.losses import _fused

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "torch_cross_entropy.json"


def _reference(z, y, *, where=None, label_smoothing=0.0, ignore_index=None,
               class_weights=None, example_weights=None):
    """The loss with the smoothed, weighted one-hot rows formed (N x V)."""
    v = z.shape[-1]
    keep = jnp.ones(z.shape, bool) if where is None else jnp.broadcast_to(where, z.shape)
    w = jnp.ones((v,), z.dtype) if class_weights is None else class_weights
    log_p = jax.nn.log_softmax(jnp.where(keep, z, -jnp.inf), axis=-1)
    log_p = jnp.where(keep, log_p, 0)
    row = jnp.ones(y.shape, z.dtype) if example_weights is None else example_weights
    if ignore_index is not None:
        row = jnp.where(y == ignore_index, 0, row)
    safe = jnp.clip(y, 0, v - 1)
    one_hot = jax.nn.one_hot(safe, v, dtype=z.dtype)
    kept = jnp.sum(keep, axis=-1, keepdims=True).astype(z.dtype)
    spread = jnp.where(keep, label_smoothing * w / kept, 0)
    q = (1 - label_smoothing) * one_hot * w[safe][:, None] + spread
    return -row * jnp.sum(q * log_p, axis=-1)


def test_values_and_gradients_equal_torch_cross_entropy():
    """Against torch.nn.functional.cross_entropy in float64 (the fixture's values were made
    by tests/fixtures/make_torch_reference.py): integer targets with weight, ignore_index
    and label_smoothing, and probability targets with label_smoothing, each reduction."""
    data = json.loads(FIXTURE.read_text())
    z = jnp.asarray(data["logits"], jnp.float64)
    labels = jnp.asarray(data["labels"])
    weights = jnp.asarray(data["class_weights"], jnp.float64)
    probabilities = jnp.asarray(data["probabilities"], jnp.float64)
    worst = 0.0
    for case in data["cases"]:
        options = {"label_smoothing": case["label_smoothing"], "reduction": case["reduction"]}
        if case["targets"] == "labels":
            extra = {"class_weights": weights} if case["weighted"] else {}

            def loss(z, options=options, extra=extra):
                return softxent.softmax_cross_entropy_with_integer_labels(
                    z, labels, ignore_index=data["ignore_index"], **extra, **options)
        else:
            def loss(z, options=options):
                return softxent.softmax_cross_entropy(z, probabilities, **options)

        value = loss(z)
        grad = jax.grad(lambda z, loss=loss: jnp.sum(loss(z)))(z)
        np.testing.assert_allclose(value, case["loss"], rtol=1e-12, atol=1e-12, err_msg=str(case))
        np.testing.assert_allclose(grad, case["grad"], rtol=1e-12, atol=1e-12, err_msg=str(case))
        worst = max(worst, float(jnp.max(jnp.abs(value - jnp.asarray(case["loss"])))))
    assert len(data["cases"]) == 18 and worst <= 1e-12


def _inputs(n=37, v=11, d=6, seed=0):
    rng = np.random.default_rng(seed)
    h = jnp.asarray(rng.normal(size=(n, d)))
    w = jnp.asarray(rng.normal(size=(d, v)))
    b = jnp.asarray(rng.normal(size=v))
    y = jnp.asarray(rng.integers(0, v, n)).at[3].set(-100)
    options = {
        "label_smoothing": 0.1,
        "ignore_index": -100,
        "class_weights": jnp.asarray(rng.uniform(0.5, 2, v)),
        "example_weights": jnp.asarray(rng.uniform(0.5, 2, n)),
    }
    return h, w, b, y, options


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_chunked_and_linear_forms_equal_the_plain_loss(reduction):
    """Rows padded to whole chunks, a bias, every option: values and the gradients in the
    hidden states, the output matrix and the bias within 1e-12 (float64)."""
    h, w, b, y, options = _inputs()
    options = {**options, "reduction": reduction}

    def plain(h, w, b):
        return softxent.softmax_cross_entropy_with_integer_labels(h @ w + b, y, **options)

    def chunked(h, w, b):
        return softxent.chunked_softmax_cross_entropy_with_integer_labels(
            h @ w + b, y, chunk_size=5, **options)

    def linear(h, w, b):
        return softxent.linear_softmax_cross_entropy_with_integer_labels(
            h, w, y, bias=b, chunk_size=8, **options)

    want = plain(h, w, b)
    want_grads = jax.grad(lambda *x: jnp.sum(plain(*x)), argnums=(0, 1, 2))(h, w, b)
    for form in (chunked, linear):
        np.testing.assert_allclose(form(h, w, b), want, rtol=1e-12, atol=1e-12)
        grads = jax.jit(jax.grad(lambda *x, f=form: jnp.sum(f(*x)), argnums=(0, 1, 2)))(h, w, b)
        for got, expected in zip(grads, want_grads, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("path", ["whole", "row-blocked"])
def test_the_fused_passes_equal_the_one_hot_formula(path, monkeypatch):
    """Both CPU paths (whole array; blocks of two rows, the last overlapping), with a class
    mask, smoothing over the kept classes, weights and an ignored row."""
    if path == "row-blocked":
        monkeypatch.setattr(_fused, "BLOCKED_MIN_ENTRIES", 0)
        monkeypatch.setattr(_fused, "BLOCK_ENTRIES", 14)
        jax.clear_caches()
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(size=(5, 7)) * 3)
    y = jnp.asarray([0, 6, -1, 3, 2])
    where = jnp.asarray(rng.uniform(size=(5, 7)) > 0.3).at[jnp.arange(5), jnp.clip(y, 0)].set(True)
    options = {
        "where": where, "label_smoothing": 0.2, "ignore_index": -1,
        "class_weights": jnp.asarray(rng.uniform(0.5, 2, 7)),
        "example_weights": jnp.asarray(rng.uniform(0.5, 2, 5)),
    }
    fast = softxent.softmax_cross_entropy_with_integer_labels
    np.testing.assert_allclose(fast(z, y, **options), _reference(z, y, **options), rtol=1e-12)
    np.testing.assert_allclose(
        jax.grad(lambda z: jnp.sum(fast(z, y, **options)))(z),
        jax.grad(lambda z: jnp.sum(_reference(z, y, **options)))(z),
        rtol=1e-12, atol=1e-12,
    )
    jax.clear_caches()


@pytest.mark.parametrize("rows", ["ordinary", "dominant peaks and ties", "an infinite logit"])
def test_the_cpu_hard_label_pass_equals_the_general_passes(rows, monkeypatch):
    """The CPU's own integer-label program (``_hard_labels_on_cpu``, from 2^21 entries;
    here at any size) against the general passes (row-blocked) and the one-hot formula:
    smoothing, class and example weights, an ignored row, the z-loss and two leading axes;
    rows whose peak holds nearly all the mass (its second sum of R taken), tied peaks, and a
    +inf logit (the row statistics recomputed by the general passes)."""
    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.normal(size=(2, 3, 9)) * 3)
    y = jnp.asarray([[0, 8, -1], [4, 4, 2]])
    if rows == "dominant peaks and ties":
        z = z.at[0, 0, 0].set(60.0).at[1, 0, 4].set(45.0).at[1, 1, 2].set(30.0)
        z = z.at[0, 1, :].set(1.5)
    elif rows == "an infinite logit":
        z = z.at[1, 2, 5].set(jnp.inf)
    options = {
        # without smoothing a peak's loss and gradient are its others' mass, R / S
        "label_smoothing": 0.0 if rows == "dominant peaks and ties" else 0.2,
        "ignore_index": -1,
        "class_weights": jnp.asarray(rng.uniform(0.5, 2, 9)),
        "example_weights": jnp.asarray(rng.uniform(0.5, 2, (2, 3))),
    }
    loss = softxent.softmax_cross_entropy_with_integer_labels

    def value_and_grad(z_loss):
        def total(z):
            return jnp.sum(loss(z, y, z_loss=z_loss, **options))
        return loss(z, y, z_loss=z_loss, **options), jax.grad(total)(z)

    monkeypatch.setattr(_fused, "BLOCKED_MIN_ENTRIES", 0)  # the CPU's program at any size
    taken = []
    hard = _fused._hard_labels_on_cpu
    monkeypatch.setattr(_fused, "_hard_labels_on_cpu",
                        lambda *a: taken.append(True) or hard(*a))
    jax.clear_caches()
    results = {z_loss: value_and_grad(z_loss) for z_loss in (0.0, 1e-3)}
    assert taken  # the CPU's own program was traced
    monkeypatch.setattr(_fused, "_takes_the_hard_label_pass", lambda *a: False)
    jax.clear_caches()
    for z_loss, (value, grad) in results.items():
        want_value, want_grad = value_and_grad(z_loss)
        np.testing.assert_allclose(value, want_value, rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)
    if rows != "an infinite logit":
        flat = _reference(z.reshape(6, 9), y.reshape(6), **{
            **options, "example_weights": options["example_weights"].reshape(6)})
        # log_softmax rounds a dominant peak's loss R / S (1e-19 here) to 0
        np.testing.assert_allclose(results[0.0][0].reshape(6), flat, rtol=1e-12, atol=1e-15)
    jax.clear_caches()


@pytest.mark.parametrize("masked", [False, True], ids=["whole rows", "a class masked"])
def test_two_leading_axes_at_the_row_blocked_size_equal_the_flattened_rows(masked):
    """[batch, sequence, V] logits from 2^21 entries: unmasked, the CPU's integer-label
    program; masked, the row-blocked passes, where the class weights (read whole by every
    block) took the three axes into each block's statistics, whose shape then failed."""
    rng = np.random.default_rng(4)
    z = jnp.asarray(rng.normal(size=(2, 1100, 1000)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 999, (2, 1100)))
    options = {"label_smoothing": 0.1, "class_weights": jnp.linspace(0.5, 2, 1000)}
    if masked:
        options["where"] = jnp.ones((1, 1, 1000), bool).at[..., 999].set(False)
    loss = softxent.softmax_cross_entropy_with_integer_labels
    flat = {**options, "where": options["where"][0]} if masked else options
    np.testing.assert_allclose(loss(z, y, **options).reshape(-1),
                               loss(z.reshape(2200, 1000), y.reshape(2200), **flat), rtol=1e-6)


def test_a_mean_step_keeps_no_full_size_temporary():
    """From 2^21 entries the CPU reads the logits a block of rows at a time and compares
    each block with the labels: the compiled step keeps no N x V temporary (a float32
    one-hot, or the log-softmax, would be 16 MB here)."""
    n, v = 400, 10_000
    rng = np.random.default_rng(2)
    z = jnp.asarray(rng.normal(size=(n, v)) * 3, jnp.float32)
    y = jnp.asarray(rng.integers(0, v, n)).at[::7].set(-100)

    def mean(z, y):
        return softxent.softmax_cross_entropy_with_integer_labels(
            z, y, label_smoothing=0.1, ignore_index=-100, reduction="mean")

    step = jax.jit(jax.value_and_grad(mean)).lower(z, y).compile()
    value, grad = step(z, y)
    wide = z.astype(jnp.float64)
    kept = y != -100
    want = jnp.sum(_reference(wide, y, label_smoothing=0.1, ignore_index=-100)) / jnp.sum(
        kept.astype(jnp.float64))
    np.testing.assert_allclose(value, want, rtol=1e-6)
    assert float(jnp.max(jnp.abs(grad[~kept]))) == 0.0  # ignored rows get no gradient
    if jax.default_backend() == "cpu":
        assert step.memory_analysis().temp_size_in_bytes < z.size * 4 / 2


def test_a_mean_with_every_row_ignored_is_zero():
    z = jnp.zeros((3, 4))
    loss = softxent.softmax_cross_entropy_with_integer_labels(
        z, jnp.full((3,), -100), ignore_index=-100, reduction="mean")
    assert float(loss) == 0.0


def test_bad_arguments_name_themselves():
    fn = softxent.softmax_cross_entropy_with_integer_labels
    z = jnp.zeros((3, 4))
    with pytest.raises(TypeError, match="labels must have an integer dtype, got float"):
        fn(z, jnp.zeros((3,)))
    with pytest.raises(ValueError, match=r"labels shape \(3, 1\) must be .* \(3,\)"):
        fn(z, jnp.zeros((3, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"class_weights shape \(3,\) must be \(4,\)"):
        fn(z, jnp.zeros((3,), jnp.int32), class_weights=jnp.ones(3))
    with pytest.raises(TypeError, match="ignore_index must be an int or None, got 1.5"):
        fn(z, jnp.zeros((3,), jnp.int32), ignore_index=1.5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        fn(z, jnp.zeros((3,), jnp.int32), reduction="avg")
    with pytest.raises(ValueError, match=r"labels must be integers of shape \(3,\)"):
        softxent.linear_softmax_cross_entropy_with_integer_labels(
            jnp.zeros((3, 2)), jnp.zeros((2, 4)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match=r"bias shape \(3,\) must be \(4,\)"):
        softxent.linear_softmax_cross_entropy(
            jnp.zeros((3, 2)), jnp.zeros((2, 4)), jnp.zeros((3, 4)), bias=jnp.zeros(3))


def test_smoothing_term_is_finite_where_only_its_unweighted_sum_overflows():
    """alpha / K sum_c (m - z_c) at float32 logits near -max: each term is weighted
    before the sum, whose unweighted total would overflow."""
    z = jnp.array([356.0, -1.7e38, -1.7e38], jnp.float32)
    loss = softxent.softmax_cross_entropy_with_integer_labels(z, jnp.array(0),
                                                              label_smoothing=0.1)
    exact = 0.1 / 3 * 2 * (356.0 + 1.7e38)
    np.testing.assert_allclose(float(loss), exact, rtol=1e-6)
