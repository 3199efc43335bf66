"""Config validation: every problem stops `softxent run` with exit 2 before any work."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from softxent.cli import main
from softxent.experiments import ConfigError, ExperimentConfig, as_dict, load
from softxent.experiments._config import dumps

CONFIGS = sorted((Path(__file__).parents[1] / "experiments" / "configs").glob("*.toml"))

GOOD = """
name = "tiny"
kind = "fixed_point"
[optimizer]
name = "adam"
learning_rate = 0.1
steps = 20
log_every = 10
[fixed_point]
classes = 3
targets = [[0.2, 0.3, 0.5]]
[[losses]]
name = "softmax_cross_entropy"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_validate(path):
    config = load(path)
    assert config.losses


def test_good_config_fills_defaults(tmp_path):
    config = load(_write(tmp_path, GOOD))
    assert config.device == "auto" and config.seed == 0
    assert config.fixed_point.inits_per_target == 1


def test_a_config_is_a_frozen_typed_object_that_writes_back_as_toml(tmp_path):
    config = load(_write(tmp_path, GOOD))
    assert isinstance(config, ExperimentConfig)
    assert config.fixed_point.targets == ((0.2, 0.3, 0.5),)  # arrays become tuples
    assert config.optimizer.learning_rate == 0.1 and config.losses[0].label == config.losses[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1
    written = tmp_path / "written.toml"
    written.write_text(dumps(as_dict(config)))
    assert load(written) == config


@pytest.mark.parametrize(
    "old, new, fragments",
    [
        ("learning_rate = 0.1", "learnig_rate = 0.1",
         ["optimizer.learnig_rate", "unknown key", "did you mean 'learning_rate'"]),
        ("learning_rate = 0.1", "learning_rate = -0.1",
         ["optimizer.learning_rate", "expected a finite number > 0", "-0.1"]),
        ("steps = 20", 'steps = "20"', ["optimizer.steps", "expected an integer", "'20' (string)"]),
        ('name = "adam"', 'name = "adamw"',
         ["optimizer.name", "expected one of 'sgd', 'adam', 'lbfgs'", "did you mean 'adam'",
          "adamw"]),
        ("targets = [[0.2, 0.3, 0.5]]", "targets = [[0.2, 0.3, 0.6]]",
         ["fixed_point.targets[0]", "summing to 1", "1.1"]),
        ('name = "softmax_cross_entropy"', 'name = "softmax_cross_entropi"',
         ["losses[0].name", "unknown loss", "softmax_cross_entropy"]),
        ('kind = "fixed_point"', 'kind = "fixed_pont"',
         ["kind", "did you mean 'fixed_point'", "fixed_pont"]),
        ('name = "softmax_cross_entropy"',
         'name = "focal_cross_entropy"\nparams = { gama = 2.0 }',
         ["losses[0].params.gama", "did you mean 'gamma'"]),
        ('name = "softmax_cross_entropy"',
         'name = "focal_cross_entropy"\nparams = { gamma = -1.0 }',
         ["losses[0].params.gamma", "expected a number in [0, inf)", "-1.0"]),
        ("log_every = 10", "log_every = 7", ["optimizer.log_every", "divisor", "7"]),
        ("targets = [[0.2, 0.3, 0.5]]", 'targets = [[0.2, "a", 0.5]]',
         ["fixed_point.targets[0][1]", "expected a number", "'a' (string)"]),
        ("classes = 3", 'classes = 3\nparametrization = "probability"',
         ["fixed_point.parametrization", "did you mean 'probabilities'"]),
    ],
)
def test_bad_config_exits_2_with_a_clear_message(tmp_path, capsys, old, new, fragments):
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    out_dir = tmp_path / "results"
    code = main(["run", str(path), "--out", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not out_dir.exists()  # nothing was started


def test_set_override_is_validated(tmp_path):
    path = _write(tmp_path, GOOD)
    assert load(path, ["optimizer.steps=40"]).optimizer.steps == 40
    with pytest.raises(ConfigError, match=r"optimizer\.learning_rate: expected a finite number"):
        load(path, ["optimizer.learning_rate=0"])


def test_missing_file_and_bad_toml(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    assert main(["run", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
