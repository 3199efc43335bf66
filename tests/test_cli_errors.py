"""A user's mistake on the command line: one line naming the path and the problem,
exit status 2, before any work; other failures: one line saying what failed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from softxent.cli import main

CONFIG = """
name = "tiny"
kind = "fixed_point"
[optimizer]
name = "adam"
steps = 10
log_every = 5
[fixed_point]
classes = 3
targets = [[0.2, 0.3, 0.5]]
[[losses]]
name = "softmax_cross_entropy"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts training or fitting."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the bad input was reported")

    import softxent.bench as bench
    import softxent.experiments._runner as runner

    monkeypatch.setattr(runner, "run", forbidden)
    monkeypatch.setattr(bench, "cross_validate", forbidden)


def _one_line_error(capsys, argv: list[str], *fragments: str) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _mat_files(tmp_path: Path) -> dict[str, Path]:
    """Broken MATLAB inputs: empty, cut off after the header, cut off inside the data."""
    import scipy.io

    good = tmp_path / "good.mat"
    rng = np.random.default_rng(0)
    scipy.io.savemat(good, {"features": rng.normal(size=(40, 5)),
                            "labels": rng.dirichlet(np.ones(3), size=40)})
    raw = good.read_bytes()
    files = {"empty": b"", "12 bytes": raw[:12], "cut inside the data": raw[: len(raw) // 2]}
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.mat"
        paths[name].write_bytes(content)
    return paths


def test_run_config_that_is_a_folder(capsys, tmp_path, no_work):
    _one_line_error(capsys, ["run", str(tmp_path)], str(tmp_path), "is a folder")


def test_run_config_that_is_not_utf8(capsys, tmp_path, no_work):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe\x00")
    _one_line_error(capsys, ["run", str(bad)], str(bad), "not valid TOML")


def test_run_out_that_is_a_file_is_caught_before_training(capsys, config, tmp_path, no_work):
    out = tmp_path / "taken"
    out.write_text("")
    _one_line_error(capsys, ["run", str(config), "--out", str(out)], str(out),
                    "exists and is not a folder")


def test_run_out_under_a_file(capsys, config, tmp_path, no_work):
    (tmp_path / "taken").write_text("")
    out = tmp_path / "taken" / "results"
    _one_line_error(capsys, ["run", str(config), "--out", str(out)], str(out), "cannot be made")
    assert not out.exists()


@pytest.mark.parametrize("case", ["empty", "12 bytes", "cut inside the data"])
def test_ldl_broken_mat_file(capsys, tmp_path, no_work, case):
    path = _mat_files(tmp_path)[case]
    _one_line_error(capsys, ["ldl", "--data", str(path)], str(path),
                    "not a readable MATLAB file")


def test_ldl_data_that_is_a_folder(capsys, tmp_path, no_work):
    folder = tmp_path / "SJAFFE.mat"
    folder.mkdir()
    _one_line_error(capsys, ["ldl", "--data", str(folder)], str(folder), "is a folder",
                    "--data-dir")


def test_ldl_data_dir_that_is_a_file(capsys, tmp_path, no_work):
    path = tmp_path / "x.mat"
    path.write_text("")
    _one_line_error(capsys, ["ldl", "--data-dir", str(path)], str(path), "not a folder")


def test_bench_from_json_that_is_a_folder(capsys, tmp_path):
    _one_line_error(capsys, ["bench", "--from-json", str(tmp_path)], str(tmp_path),
                    "is a folder")


def test_missing_optional_dependency_names_the_pip_command(capsys, monkeypatch, no_work):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    config = Path(__file__).parents[1] / "experiments" / "configs" / "distill_digits.toml"
    _one_line_error(capsys, ["run", str(config)], "needs sklearn",
                    "pip install 'softxent[examples]'")


def test_a_failure_during_the_work_is_one_line_naming_it(capsys, config, tmp_path,
                                                         monkeypatch):
    import softxent.experiments.fixed_point as fixed_point

    def broken(*args, **kwargs):
        raise RuntimeError("the solver broke")

    monkeypatch.setattr(fixed_point, "solver", broken)
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RuntimeError: the solver broke" in err[0], err
    assert "no results folder was written for tiny" in err[0]
    assert not any((tmp_path / "out").glob("tiny-*"))


def test_debug_shows_the_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "softxent", "--debug", "run", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 2 and "Traceback" in done.stderr
    assert "is a folder" in done.stderr


def test_console_entry_exits_2_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "softxent", "run", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"softxent run: config {tmp_path}: is a folder, not a file"]


@pytest.mark.parametrize("fault", ["figure", "full disk"])
def test_a_failure_while_writing_leaves_no_folder_and_says_what_failed(
        capsys, config, tmp_path, monkeypatch, fault):
    import errno

    import softxent.experiments._results as results
    import softxent.experiments.fixed_point as fixed_point

    if fault == "figure":
        config.write_text(CONFIG.replace('kind = "fixed_point"',
                                         'kind = "fixed_point"\nfigures = ["convergence"]'))

        def draw(result, folder):
            raise ValueError("the figure broke")

        monkeypatch.setattr(fixed_point, "figures", draw)
        expected = "ValueError: the figure broke"
    else:
        def full(path, rows):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        monkeypatch.setattr(results, "_write_csv", full)
        expected = "No space left on device"
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert "no results folder was written for tiny" in err[0]
    assert list(out.iterdir()) == []  # neither a results folder nor a temporary one
