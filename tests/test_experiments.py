"""Experiment runs: convergence, reproducibility, sharding and the atomic results folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from softxent.cli import main
from softxent.experiments import _results, fixed_point, load

ROOT = Path(__file__).parents[1]

TINY = """
name = "tiny"
kind = "fixed_point"
seed = 3
figures = []
[optimizer]
name = "adam"
learning_rate = 0.1
schedule = "cosine"
steps = 400
log_every = 40
[fixed_point]
classes = 3
targets = [[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]]
num_targets = 3
inits_per_target = 3
[[losses]]
name = "softmax_cross_entropy"
[[losses]]
name = "cross_entropy"
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_proper_losses_converge_to_the_target(tiny):
    config = load(tiny)
    result = fixed_point.train(config)
    targets = np.repeat(fixed_point.make_targets(config), 3, axis=0)
    for label, data in result.arrays["losses"].items():
        # For a proper loss the minimiser is q itself, so this needs no catalogue.
        np.testing.assert_allclose(data["final_p"], targets, atol=1e-6, err_msg=label)
        assert np.abs(data["p"][:, 0] - data["q"]).max() > 0.05  # they started away from q
        if result.summary[label]["max_abs_p_minus_pstar"] is not None:
            assert result.summary[label]["converged"] is True


def test_improper_loss_lands_on_the_symbolic_minimiser(tiny):
    symbolic = pytest.importorskip("softxent.symbolic")
    config = load(tiny, ["losses=[{name = \"focal_cross_entropy\", params = {gamma = 2.0}}]",
                         "optimizer.steps=2000", "optimizer.log_every=200",
                         "optimizer.learning_rate=0.05"])
    result = fixed_point.train(config)
    data = result.arrays["losses"]["focal_cross_entropy,gamma=2"]
    q = np.repeat(fixed_point.make_targets(config), 3, axis=0)
    p_star = np.stack([symbolic.minimizer("focal_cross_entropy", list(t), {"gamma": 2.0})
                       for t in q])
    np.testing.assert_allclose(data["final_p"], p_star, atol=1e-5)
    assert np.abs(data["final_p"] - q).max() > 0.01  # improper: not the target


def test_seed_makes_runs_reproducible(tiny):
    a = fixed_point.train(load(tiny))
    b = fixed_point.train(load(tiny))
    c = fixed_point.train(load(tiny, ["seed=4"]))
    label = "softmax_cross_entropy"
    np.testing.assert_array_equal(a.arrays["losses"][label]["p"], b.arrays["losses"][label]["p"])
    assert not np.array_equal(a.arrays["losses"][label]["p"], c.arrays["losses"][label]["p"])


def test_cli_writes_a_complete_results_folder(tiny, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["run", str(tiny), "--out", str(out), "--set", "figures=[\"convergence\"]"]) == 0
    (folder,) = list(out.iterdir())
    assert folder.name.startswith("tiny-")
    names = {p.name for p in folder.iterdir()}
    assert {"config.toml", "metadata.json", "metrics.csv", "summary.json", "figures"} <= names
    assert (folder / "figures" / "convergence.png").stat().st_size > 1000
    meta = json.loads((folder / "metadata.json").read_text())
    assert {"softxent", "jax", "jaxlib", "optax", "devices", "seed", "git_commit"} <= set(meta)
    assert meta["peak_rss_mib"] > 10  # this process, JAX loaded
    assert meta["seed"] == 3
    # The written config is the resolved one and loads back to the same thing.
    resolved = tomllib.loads((folder / "config.toml").read_text())
    assert load(folder / "config.toml") == load(tiny, ["figures=[\"convergence\"]"])
    assert resolved["fixed_point"]["inits_per_target"] == 3
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 11  # header + 2 losses x 11 logged steps
    captured = capsys.readouterr()
    assert "tiny" in captured.out
    assert "losses" not in captured.err  # no progress bar when output is not a terminal


def test_failed_run_leaves_no_complete_looking_folder(tiny, tmp_path):
    config = load(tiny, ["figures=[\"convergence\"]"])
    result = fixed_point.train(config)

    def broken_figures(result, folder):
        (folder / "half.png").write_bytes(b"partial")
        raise RuntimeError("disk full")

    out = tmp_path / "results"
    with pytest.raises(RuntimeError, match="disk full"):
        _results.write(result, out, broken_figures)
    assert list(out.iterdir()) == []
    path = _results.write(result, out, None)  # and a good write then succeeds
    assert [p.name for p in out.iterdir()] == [path.name]


SHARD_SCRIPT = """
import sys, json
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
from softxent.experiments import fixed_point, load
config = load(sys.argv[1], ["fixed_point.num_targets=5", "optimizer.steps=200"])
result = fixed_point.train(config)
np.save(sys.argv[2], np.stack([d["final_p"] for d in result.arrays["losses"].values()]))
print(json.dumps(result.devices))
"""


def _run_sharded(tiny: Path, out: Path, devices: int) -> tuple[np.ndarray, list[str]]:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SHARD_SCRIPT, str(tiny), str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return np.load(out), json.loads(done.stdout.strip().splitlines()[-1])


def test_four_devices_give_the_same_numbers_as_one(tiny, tmp_path):
    # 2 targets + 5 random, 3 inits each = 21 runs: not a multiple of 4, so padding is used.
    one, devices_one = _run_sharded(tiny, tmp_path / "one.npy", 1)
    four, devices_four = _run_sharded(tiny, tmp_path / "four.npy", 4)
    assert len(devices_one) == 1 and len(devices_four) == 4
    assert one.shape == four.shape == (2, 21, 3)
    np.testing.assert_allclose(four, one, rtol=0, atol=1e-12)


def test_distillation_on_digits_halves_the_gap_to_the_teacher(tmp_path):
    """A small, fast version of experiments/configs/distill_digits.toml."""
    from softxent.experiments import get_kind, load

    config = load(ROOT / "experiments" / "configs" / "distill_digits.toml",
                  ["distillation.seeds=1", "optimizer.steps=300", "optimizer.log_every=100",
                   "distillation.teacher_hidden=32"])
    result = get_kind("distillation").train(config)
    summary = result.summary
    assert summary["teacher"]["accuracy"]["mean"] > 0.9
    assert summary["student_distilled"]["accuracy"]["mean"] > 0.85
    # Distillation moves the student towards the teacher's distribution.
    assert (summary["student_distilled"]["kl_to_teacher"]["mean"]
            < summary["student_hard"]["kl_to_teacher"]["mean"])
    assert {row["model"] for row in result.metrics} == {"teacher", "student_hard",
                                                        "student_distilled"}
    paths = get_kind("distillation").figures(result, tmp_path)
    assert (tmp_path / paths[0]).stat().st_size > 10_000


def test_distillation_config_errors():
    from softxent.experiments import ConfigError, load

    with pytest.raises(ConfigError, match="exactly one"):
        load(ROOT / "experiments" / "configs" / "distill_digits.toml",
             ["losses=[{name='kl_divergence'}]"])
    with pytest.raises(ConfigError, match=r"distillation.hard_weight.*\[0, 1\]"):
        load(ROOT / "experiments" / "configs" / "distill_digits.toml",
             ["distillation.hard_weight=1.5"])


def test_run_prints_the_distillation_measures():
    from softxent.cli._run import summary_table

    summary = {
        "teacher": {"accuracy": {"mean": 0.98, "std": 0.01}, "kl_to_teacher": {"mean": 0.0,
                                                                               "std": 0.0}},
        "student_distilled": {"accuracy": {"mean": 0.96, "std": 0.02},
                              "kl_to_teacher": {"mean": 0.113, "std": 0.023}},
        "setting": {"temperature": 4.0},
    }
    lines = summary_table(summary).splitlines()
    assert "accuracy" in lines[0] and "kl_to_teacher" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["teacher", "student_distilled"]
    assert "0.9600 ± 0.0200" in lines[2] and "0.1130 ± 0.0230" in lines[2]


def test_a_divergence_within_rounding_of_zero_prints_as_zero():
    from softxent.cli._run import summary_table

    summary = {"at_q": {"train_kl": -3e-9, "test_kl": 2e-9, "max_abs_p_minus_q": -3e-9},
               "broken": {"train_kl": -0.01, "test_kl": {"mean": -4e-8, "std": 1e-8}}}
    at_q, broken = summary_table(summary).splitlines()[1:]
    assert at_q.split()[1:] == ["0.00e+00", "2.00e-09", "-3.00e-09"]  # only divergences
    assert broken.split()[1] == "-1.00e-02"  # far below rounding: a defect, shown
    assert "0.0000 ± 0.0000" in broken


def test_a_sweep_in_chunks_gives_the_numbers_of_one_call_and_writes_its_runs(tiny, tmp_path):
    # 15 runs in chunks of 4: the last chunk is padded to the compiled size
    whole = fixed_point.train(load(tiny))
    chunked_config = load(tiny, ["fixed_point.chunk_runs=4", "fixed_point.trajectories=6"])
    chunked = fixed_point.train(chunked_config)
    for label, row in whole.summary.items():
        got = chunked.summary[label]
        for key in ("max_abs_p_minus_pstar", "median_abs_p_minus_pstar", "max_abs_p_minus_q",
                    "fraction_within_tolerance", "nonfinite_runs", "converged", "runs"):
            assert got[key] == pytest.approx(row[key], rel=1e-12, abs=1e-15), (label, key)
        assert got["chunk_runs"] == 4 and got["runs_per_s"] > 0
        data, want = chunked.arrays["losses"][label], whole.arrays["losses"][label]
        np.testing.assert_allclose(data["final_p"], want["final_p"], rtol=0, atol=1e-13)
        np.testing.assert_allclose(data["p"], want["p"][:6], rtol=0, atol=1e-13)
        for key in ("err_median", "err_max"):
            np.testing.assert_allclose(data[key], want[key], rtol=1e-6, atol=1e-12)
    for got, want in zip(chunked.metrics, whole.metrics, strict=True):
        assert got["objective_mean"] == pytest.approx(want["objective_mean"], rel=1e-12)
    folder = _results.write(chunked, tmp_path / "out")
    runs = np.load(folder / chunked.summary["cross_entropy"]["runs_file"])
    assert runs.shape == (15,) and list(runs["target"]) == [i // 3 for i in range(15)]
    np.testing.assert_array_equal(runs["final_p"],
                                  chunked.arrays["losses"]["cross_entropy"]["final_p"])
