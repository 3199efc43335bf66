"""A user's loss through --plugin: losses, analyze, catalogue, ldl and configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io

import softxent
from softxent.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = str(ROOT / "experiments" / "plugins" / "my_loss.py")


def test_plugin_loss_is_listed_and_analysed(capsys):
    assert cli(["losses", "--plugin", PLUGIN, "--json"]) == 0
    assert "squared_miss" in [row["loss"] for row in json.loads(capsys.readouterr().out)]
    assert cli(["analyze", "squared_miss", "--plugin", PLUGIN, "--target", "0.7,0.2,0.1",
                "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["proper"] is False and out["minimizer"][2] == 0.0
    np.testing.assert_allclose(out["minimizer"][:2], [7 / 9, 2 / 9], atol=1e-12)


def test_plugin_loss_in_catalogue(capsys):
    assert cli(["catalogue", "--plugin", PLUGIN, "--loss", "squared_miss", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["proper"] is False and row["inverse"].startswith("q_i ∝")


def test_plugin_errors_exit_2(capsys):
    assert cli(["losses", "--plugin", "no_such_module_here"]) == 2
    err = capsys.readouterr().err
    assert "no module named 'no_such_module_here'" in err and len(err.strip().splitlines()) == 1
    assert cli(["losses", "--plugin", "missing.py"]) == 2
    assert "missing.py: no such file" in capsys.readouterr().err


def test_config_names_its_plugin():
    from softxent.experiments import load as load_config

    config = load_config(ROOT / "experiments" / "configs" / "k3_my_loss.toml")
    assert [entry.name for entry in config.losses] == ["squared_miss", "softmax_cross_entropy"]
    assert "squared_miss" in softxent.loss_names()
    assert config.plugins == (PLUGIN,)  # absolute: the resolved config loads from anywhere


def test_a_run_folders_config_loads_with_its_plugin(tmp_path):
    from softxent.experiments import _results
    from softxent.experiments import load as load_config

    config = load_config(ROOT / "experiments" / "configs" / "k3_my_loss.toml")
    folder = _results.write(_results.Result(config=config, metrics=[], summary={}),
                            tmp_path / "out")
    assert load_config(folder / "config.toml") == config


def _synthetic(tmp_path: Path, n: int = 60, d: int = 4, k: int = 3) -> Path:
    rng = np.random.default_rng(0)
    x = rng.random((n, d))
    logits = x @ rng.normal(0, 3, (d, k))
    labels = np.exp(logits - logits.max(1, keepdims=True))
    path = tmp_path / "synthetic.mat"
    scipy.io.savemat(str(path), {"features": x, "labels": labels / labels.sum(1, keepdims=True)})
    return path


def test_ldl_inverse_map_for_a_plugin_loss(tmp_path, capsys):
    data = str(_synthetic(tmp_path))
    assert cli(["ldl", "--plugin", PLUGIN, "--data", data, "--loss", "squared_miss",
                "--inverse-map", "--folds", "2", "--max-iter", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["inverse_map"].startswith("q_i ∝")
    assert set(result["metrics_inverse_map"]) == set(result["metrics"])
    assert result["metrics_inverse_map"] != result["metrics"]
    assert cli(["ldl", "--data", data, "--loss", "kl_divergence", "--inverse-map", "--folds",
                "2", "--max-iter", "50", "--json"]) == 0
    proper = json.loads(capsys.readouterr().out)
    assert proper["inverse_map"] == "q = p*"
    assert proper["metrics_inverse_map"] == proper["metrics"]


def test_verify_checks_a_users_loss_against_its_symbolic_loss(tmp_path, capsys):
    from softxent.cli import main

    wrong = tmp_path / "wrong_loss.py"
    wrong.write_text(
        "import jax, jax.numpy as jnp\n"
        "import softxent\n"
        "from softxent.symbolic import SymbolicLoss\n"
        "def wrong_miss(logits, targets, *, axis=-1, where=None, reduction='none'):\n"
        "    p = jax.nn.softmax(logits, axis=axis)\n"
        "    return jnp.sum(targets * (1 - p) ** 3, axis=axis)  # the formula says ** 2\n"
        "softxent.register_loss(wrong_miss, input='logits', link='softmax',\n"
        "    output='per_example', summary='a wrong power',\n"
        "    symbolic=SymbolicLoss('wrong_miss', 'q*(1 - p)**2', 'separable'))\n")
    try:
        assert main(["verify", "--plugin", PLUGIN, "--plugin", str(wrong), "--points", "30",
                     "--loss", "squared_miss", "--loss", "wrong_miss"]) == 1
    finally:
        softxent.unregister_loss("wrong_miss")
    out, err = capsys.readouterr()
    assert "squared_miss: PASSED" in out and "wrong_miss: FAILED" in out
    assert "FAIL wrong_miss: FAILED" in err and "1/2 within tolerance" in out
