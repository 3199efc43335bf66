"""Label distribution learning: loader errors, the six measures, cross-validation, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from softxent.bench import _ldl as ldl_bench
from softxent.bench import cross_validate, cross_validate_peer, fold_assignment
from softxent.bench._ldl import _standardisation, softmax_loss
from softxent.cli import main as cli
from softxent.ldl import LDLData, LDLDataError, load_mat, score
from softxent.ldl import _metrics as metrics
from softxent.ldl._models import (
    SPARSE_BELOW,
    bcoo_features,
    fit_maxent,
    maxent_logits,
    sparse_pays,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ldl"


def _write(path: Path, **arrays) -> Path:
    scipy.io.savemat(str(path), arrays)
    return path


def _synthetic(tmp_path: Path, n: int = 80, d: int = 5, k: int = 3, seed: int = 0) -> Path:
    """Label distributions drawn from a known maximum-entropy model."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    logits = x @ rng.normal(0, 3, (d, k))
    labels = np.exp(logits - logits.max(1, keepdims=True))
    labels /= labels.sum(1, keepdims=True)
    return _write(tmp_path / "synthetic.mat", features=x, labels=labels)


# -- loader --------------------------------------------------------------------------


def test_load_valid_file(tmp_path):
    data = load_mat(_synthetic(tmp_path))
    assert (data.n, data.d, data.k, data.name) == (80, 5, 3, "synthetic")
    np.testing.assert_allclose(data.labels.sum(1), 1)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"features": np.ones((3, 2))}, "missing 'labels'"),
    ({"features": np.ones((3, 2)), "labels": np.full((4, 2), 0.5)},
     "has 3 rows but 'labels' has 4"),
    ({"features": np.ones((2, 2)), "labels": np.array([[0.5, 0.5], [np.nan, 1.0]])},
     "'labels' row 1 has non-finite values"),
    ({"features": np.ones((2, 2)), "labels": np.array([[0.5, 0.5], [1.2, -0.2]])},
     "'labels' row 1 has negative entries"),
    ({"features": np.ones((3, 2)), "labels": np.array([[0.5, 0.5], [0.5, 0.5], [0.3, 0.3]])},
     "'labels' row 2 sums to 0.6, not 1"),
    ({"features": np.array([[1.0, np.inf]]), "labels": np.array([[0.5, 0.5]])},
     "'features' row 0 has non-finite values"),
])
def test_loader_errors_name_file_problem_and_row(tmp_path, arrays, message):
    path = _write(tmp_path / "bad.mat", **arrays)
    with pytest.raises(LDLDataError) as err:
        load_mat(path)
    assert message in str(err.value) and "bad.mat" in str(err.value)


def test_normalize_renormalises_and_counts(tmp_path):
    labels = np.array([[0.5, 0.5], [0.2, 0.2], [0.3, 0.9]])
    path = _write(tmp_path / "off.mat", features=np.ones((3, 1)), labels=labels)
    data = load_mat(path, normalize=True)
    assert data.renormalized_rows == 2
    np.testing.assert_allclose(data.labels, [[0.5, 0.5], [0.5, 0.5], [0.25, 0.75]])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(LDLDataError, match="no such file"):
        load_mat(tmp_path / "nope.mat")


# -- measures --------------------------------------------------------------------------

U = np.array([[0.5, 0.5], [1.0, 0.0]])
V = np.array([[0.25, 0.75], [0.5, 0.5]])


def test_measures_against_hand_computed_values():
    # Row 0: u = (1/2, 1/2), v = (1/4, 3/4).
    assert metrics.chebyshev(U, V)[0] == pytest.approx(0.25)
    assert metrics.clark(U, V)[0] == pytest.approx(np.sqrt((1 / 3) ** 2 + (1 / 5) ** 2))
    assert metrics.canberra(U, V)[0] == pytest.approx(1 / 3 + 1 / 5)
    assert metrics.kl(U, V)[0] == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(2 / 3))
    assert metrics.cosine(U, V)[0] == pytest.approx(0.5 / (np.sqrt(0.5) * np.sqrt(0.625)))
    assert metrics.intersection(U, V)[0] == pytest.approx(0.75)


def test_zero_entries_are_clipped_as_pyldl_does():
    # Row 1: u = (1, 0). Clark's second term is ((eps - 1/2)/(eps + 1/2))^2 ≈ 1, not 0/0.
    assert metrics.clark(U, V)[1] == pytest.approx(np.sqrt(1 / 9 + 1), rel=1e-12)
    assert metrics.kl(U, V)[1] == pytest.approx(np.log(2), rel=1e-12)
    assert np.isfinite(metrics.kl(V, U)[1])  # prediction 0 where the truth is not
    assert metrics.intersection(U, V)[1] == pytest.approx(0.5)


def test_perfect_prediction_scores():
    s = score(V, V)
    assert s["chebyshev"] == 0 and s["kl"] == pytest.approx(0, abs=1e-15)
    assert s["cosine"] == pytest.approx(1) and s["intersection"] == pytest.approx(1)


# -- cross-validation -------------------------------------------------------------------


def test_fold_assignment_is_balanced_and_seeded():
    a = fold_assignment(23, 5, seed=1)
    assert sorted(np.bincount(a).tolist()) == [4, 4, 5, 5, 5]
    assert np.array_equal(a, fold_assignment(23, 5, seed=1))
    assert not np.array_equal(a, fold_assignment(23, 5, seed=2))
    with pytest.raises(ValueError, match="folds must be between 2"):
        fold_assignment(5, 6, seed=0)


def test_maxent_recovers_a_maxent_generator(tmp_path):
    data = load_mat(_synthetic(tmp_path, n=120))
    result = cross_validate(data, folds=4, max_iter=200)
    assert result["metrics"]["kl"]["mean"] < 1e-3
    assert result["metrics"]["cosine"]["mean"] > 0.999
    assert {"dataset", "n", "d", "k", "folds", "model", "loss", "seconds", "metrics"} <= set(result)
    peer = cross_validate_peer(data, folds=4)
    assert peer["metrics"]["kl"]["mean"] < 0.05  # no bias term, but the same family


def _sparse_data(n: int = 120, d: int = 40, k: int = 3, nonzero: float = 0.03,
                 seed: int = 0) -> LDLData:
    """A bag-of-words-like matrix (mostly zeros) with maxent-generated labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)) * (rng.random((n, d)) < nonzero)
    logits = x @ rng.normal(0, 3, (d, k))
    labels = np.exp(logits - logits.max(1, keepdims=True))
    return LDLData("sparse", x, labels / labels.sum(1, keepdims=True))


def test_sparse_maxent_predicts_as_the_dense_one():
    data = _sparse_data()
    train = (fold_assignment(data.n, 3, seed=0)[None, :] != np.arange(3)[:, None]) * 1.0
    # Standardised, so the test also covers the mean and scale folded into the weights.
    mean, scale = (jnp.asarray(a) for a in _standardisation(data.features, train))
    targets, train = jnp.asarray(data.labels), jnp.asarray(train)

    def predictions(x):
        params = jax.jit(lambda x: fit_maxent(softmax_loss("kl_divergence"), x, targets, train,
                                              mean, scale, max_iter=10, gtol=1e-7))(x)
        return jax.vmap(lambda p, m, s: jax.nn.softmax(maxent_logits(p, x, m, s)))(
            params, mean, scale)

    dense = predictions(jnp.asarray(data.features))
    sparse = predictions(bcoo_features(data.features, "float64"))
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-9)


def test_cross_validate_measures_agree_between_sparse_and_dense():
    data = _sparse_data()
    dense = cross_validate(data, folds=3, max_iter=10, standardize=True, sparse=False)
    sparse = cross_validate(data, folds=3, max_iter=10, standardize=True, sparse=True)
    for name, value in dense["metrics"].items():
        assert sparse["metrics"][name]["mean"] == pytest.approx(value["mean"], rel=0, abs=1e-9)


def test_sparse_path_only_for_sparse_maxent_features(tmp_path):
    under, at = np.zeros((10, 10)), np.zeros((10, 10))
    under.flat[:round(100 * SPARSE_BELOW) - 1] = 1.0
    at.flat[:round(100 * SPARSE_BELOW)] = 1.0
    assert sparse_pays(under) and not sparse_pays(at)
    assert cross_validate(_sparse_data(), folds=3, max_iter=5)["sparse"] is True
    dense = load_mat(_synthetic(tmp_path))
    assert cross_validate(dense, folds=3, max_iter=5)["sparse"] is False
    assert cross_validate(_sparse_data(), model="mlp", folds=3)["sparse"] is False
    with pytest.raises(ValueError, match="sparse features need model 'maxent'.*got model 'mlp'"):
        cross_validate(_sparse_data(), model="mlp", folds=3, sparse=True)


def test_mlp_and_other_losses_run(tmp_path):
    data = load_mat(_synthetic(tmp_path))
    result = cross_validate(data, model="mlp", loss="softmax_cross_entropy", folds=3)
    assert result["metrics"]["intersection"]["mean"] > 0.8
    with pytest.raises(ValueError, match="cannot fit a label distribution"):
        cross_validate(data, loss="sigmoid_binary_cross_entropy", folds=3)


def test_cli_json_schema_and_errors(tmp_path, capsys):
    path = _synthetic(tmp_path)
    assert cli(["ldl", "--data", str(path), "--folds", "3", "--max-iter", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["environment"]["command"].startswith("softxent ldl --data ")
    assert set(result["metrics"]) == {"chebyshev", "clark", "canberra", "kl", "cosine",
                                      "intersection"}
    assert set(result["metrics"]["kl"]) == {"mean", "std"}
    assert result["folds"] == 3 and result["dataset"] == "synthetic"
    assert cli(["ldl", "--data", str(tmp_path / "missing.mat")]) == 2
    assert cli(["ldl", "--data", str(path), "--loss", "kl_divergance"]) == 2
    assert "did you mean 'kl_divergence'" in capsys.readouterr().err


def test_cli_data_dir_writes_a_markdown_table_and_reports_bad_files(tmp_path, capsys):
    _synthetic(tmp_path)
    _write(tmp_path / "broken.mat", features=np.ones((3, 2)))
    assert cli(["ldl", "--data-dir", str(tmp_path), "--folds", "3", "--max-iter", "30"]) == 0
    out = capsys.readouterr().out
    assert "| synthetic | softxent maxent |" in out and "Skipped broken.mat" in out


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared LDL datasets are not beside the repo")
def test_shared_sjaffe_in_the_expected_range():
    data = load_mat(SHARED / "SJAFFE.mat")
    result = cross_validate(data, folds=10)
    assert 0.0 < result["metrics"]["kl"]["mean"] < 0.08
    assert result["metrics"]["cosine"]["mean"] > 0.93


def test_markdown_prints_published_figures_with_their_source():
    from softxent.bench import PUBLISHED
    from softxent.cli._ldl import _markdown

    metrics = {m: {"mean": 0.5, "std": 0.1} for m in
               ("chebyshev", "clark", "canberra", "kl", "cosine", "intersection")}
    results = [{"dataset": name, "model": "maxent", "metrics": metrics, "seconds": 1.0}
               for name in ("SJAFFE", "Yeast_alpha")]
    table = _markdown(results, [])
    published = [line for line in table.splitlines() if "(published)" in line]
    assert len(published) == 1 and published[0].startswith("| SJAFFE | SA-BFGS")
    assert "0.107 ± 0.015" in published[0] and "0.860 ± 0.019" in published[0]
    assert PUBLISHED["SJAFFE"].source in table


# -- l2 = "auto" ---------------------------------------------------------------------


def _overfitting_data(n: int = 90, d: int = 60, k: int = 3, seed: int = 0) -> LDLData:
    """Labels from a weak signal in two features plus label noise, among many noise
    features: unregularised maxent fits the noise, a ridge penalty does better."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    logits = x[:, :2] @ rng.normal(0, 1, (2, k)) + rng.normal(0, 1, (n, k))
    labels = np.exp(logits - logits.max(1, keepdims=True))
    return LDLData("overfit", x, labels / labels.sum(1, keepdims=True))


def test_l2_auto_regularises_where_the_unregularised_fit_overfits():
    data = _overfitting_data()
    auto = cross_validate(data, folds=3, max_iter=200, l2="auto")
    plain = cross_validate(data, folds=3, max_iter=200)
    assert len(auto["l2"]) == 3 and all(v in ldl_bench.L2_GRID for v in auto["l2"])
    assert min(auto["l2"]) >= 0.1  # the strong end of the grid for 60 noise features
    assert auto["metrics"]["kl"]["mean"] < plain["metrics"]["kl"]["mean"]


def test_l2_auto_with_one_candidate_is_that_fixed_penalty(monkeypatch):
    data = _overfitting_data()
    monkeypatch.setattr(ldl_bench, "L2_GRID", (1e-3,))
    auto = cross_validate(data, folds=3, max_iter=50, l2="auto")
    fixed = cross_validate(data, folds=3, max_iter=50, l2=1e-3, standardize=True)
    assert auto["l2"] == [1e-3] * 3 and fixed["l2"] == 1e-3
    assert auto["standardize"] is True
    for name, value in fixed["metrics"].items():
        assert auto["metrics"][name]["mean"] == pytest.approx(value["mean"], rel=1e-12)


def test_l2_auto_never_sees_the_test_rows(monkeypatch):
    """The validation scores behind the choice use training rows of that fold only."""
    data = _overfitting_data()
    calls = []

    def recording_score(labels, predicted):
        calls.append(labels)
        return score(labels, predicted)

    monkeypatch.setattr(ldl_bench, "score", recording_score)
    cross_validate(data, folds=3, max_iter=20, l2="auto")
    grid = len(ldl_bench.L2_GRID)
    assert len(calls) == 3 * grid + 3  # the choice, then the three test folds
    fold = fold_assignment(data.n, 3, seed=0)
    row_index = {row.tobytes(): i for i, row in enumerate(data.labels)}
    for call, labels in enumerate(calls[:3 * grid]):
        rows = [row_index[row.tobytes()] for row in labels]
        assert len(rows) > 0 and not np.any(fold[rows] == call // grid)


def test_l2_bad_values(tmp_path, capsys):
    data = _overfitting_data()
    with pytest.raises(ValueError, match="l2 must be a number >= 0 or 'auto', got 'best'"):
        cross_validate(data, folds=3, l2="best")
    with pytest.raises(ValueError, match="l2='auto' needs model 'maxent', got model 'mlp'"):
        cross_validate(data, model="mlp", folds=3, l2="auto")
    path = _synthetic(tmp_path)
    assert cli(["ldl", "--data", str(path), "--model", "mlp", "--l2", "auto"]) == 2
    assert "--l2 auto needs --model maxent, got --model mlp" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli(["ldl", "--data", str(path), "--l2", "best"])
    assert exit_info.value.code == 2
    assert "expected a number >= 0 or 'auto', got 'best'" in capsys.readouterr().err


def test_cli_reports_folds_at_the_iteration_cap_and_renormalised_rows(tmp_path, capsys):
    path = _synthetic(tmp_path)
    base = ["ldl", "--data", str(path), "--folds", "3", "--normalize"]
    assert cli([*base, "--max-iter", "2", "--json"]) == 0
    capped = json.loads(capsys.readouterr().out)
    assert capped["folds_at_max_iter"] == 3 and capped["max_iter"] == 2
    assert capped["normalize"] is True and capped["renormalized_rows"] == 0
    assert cli([*base, "--max-iter", "500", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["folds_at_max_iter"] < 3
    assert cli([*base, "--max-iter", "2"]) == 0
    captured = capsys.readouterr()
    assert "synthetic: 3 of 3 folds stopped at the iteration cap (--max-iter 2)" in captured.out
    assert "synthetic: --normalize changed 0 of" in captured.out
    assert captured.err == ""  # no progress bar where stderr is not a terminal


def test_combining_fold_parts_needs_every_fold_once():
    from softxent.bench import combine_folds

    def part(folds, seconds):
        record = {"metrics": dict.fromkeys(ldl_bench.MEASURES, 0.5), "at_max_iter": False,
                  "l2": 0.1}
        return {"dataset": "d", "n": 9, "d": 2, "k": 3, "folds": 3, "model": "maxent",
                "loss": "kl_divergence", "seconds": seconds, "dtype": "float64",
                "standardize": True, "l2": "auto", "sparse": False, "max_iter": 5,
                "inverse_map": None, "fitted": [dict(record, fold=f) for f in folds]}

    combined = combine_folds([part([2, 0], 1.5), part([1], 2.5)])
    assert combined["l2"] == [0.1] * 3 and combined["folds_at_max_iter"] == 0
    assert combined["seconds"] == 2.5  # the parts ran side by side
    assert combined["metrics"]["kl"] == {"mean": 0.5, "std": 0.0}
    with pytest.raises(ValueError, match=r"each of the 3 folds once, got folds \[0, 2\]"):
        combine_folds([part([2, 0], 1.0)])
    with pytest.raises(ValueError, match=r"got folds \[0, 1, 1, 2\]"):
        combine_folds([part([2, 0, 1], 1.0), part([1], 1.0)])
