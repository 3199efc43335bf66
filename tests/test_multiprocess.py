"""`softxent run` across two processes (CPU, gloo, two devices each) with jax.distributed:
the same numbers as one process, one results folder, and a bounded, clear end when a
process dies."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CONFIG = """
name = "sweep"
kind = "fixed_point"
[optimizer]
name = "adam"
learning_rate = 0.1
steps = {steps}
log_every = {log_every}
[fixed_point]
classes = 4
num_targets = 6
inits_per_target = 2
[[losses]]
name = "softmax_cross_entropy"
[[losses]]
name = "focal_cross_entropy"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


def _start(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "softxent", "run", str(config),
                             "--out", str(out), *extra], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _two(config: Path, out: Path, *extra: str) -> list[subprocess.Popen]:
    port = _free_port()
    return [_start(config, out, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                   "--process-id", str(i), *extra) for i in range(2)]


def _numbers(folder: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((folder / "summary.json").read_text())
    with (folder / "metrics.csv").open() as f:
        metrics = list(csv.DictReader(f))
    return summary, metrics


def test_two_processes_give_the_one_process_numbers_and_one_folder(tmp_path):
    from softxent.experiments import load
    from softxent.experiments._runner import run

    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG.format(steps=60, log_every=20))
    pair = _two(config, tmp_path / "two")
    run(load(config), tmp_path / "one")  # the one-process run, here, while they work
    for process in pair:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    folders = list((tmp_path / "two").iterdir())
    assert len(folders) == 1, folders  # only process 0 writes
    (single,) = list((tmp_path / "one").iterdir())
    summary1, metrics1 = _numbers(single)
    summary2, metrics2 = _numbers(folders[0])
    assert summary1.keys() == summary2.keys()
    worst = 0.0
    for label in summary1:
        for key in ("max_abs_p_minus_pstar", "median_abs_p_minus_pstar", "max_abs_p_minus_q"):
            worst = max(worst, abs(summary1[label][key] - summary2[label][key]))
    for row1, row2 in zip(metrics1, metrics2, strict=True):
        for key in ("objective_mean", "err_median", "err_max"):
            worst = max(worst, abs(float(row1[key]) - float(row2[key])))
    assert worst <= 1e-6, worst
    devices = json.loads((folders[0] / "metadata.json").read_text())["devices"]
    assert len(devices) == 4  # two processes, two devices each
    print(f"two-process vs one-process: largest difference {worst:.3g}")


def test_a_killed_process_ends_the_other_with_a_clear_error(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG.format(steps=200_000, log_every=1000))  # minutes of work
    out = tmp_path / "out"
    pair = _two(config, out, "--peer-timeout", "5")
    # Both joined once process 0 has read its config (it prints the name after joining).
    first = pair[0].stdout.readline()
    assert first.startswith("sweep"), first
    time.sleep(2)
    pair[1].send_signal(signal.SIGKILL)
    start = time.monotonic()
    try:
        _, err = pair[0].communicate(timeout=90)
    except subprocess.TimeoutExpired:
        pair[0].kill()
        pytest.fail("process 0 hung after its peer was killed")
    seconds = time.monotonic() - start
    pair[1].communicate()
    assert pair[0].returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("softxent run:")]
    assert lines and "process 1 of 2 stopped responding" in lines[-1], err
    assert not out.exists() or not any(out.iterdir())
    print(f"process 0 ended {seconds:.1f} s after process 1 was killed")
    assert seconds < 60


def test_ldl_data_dir_across_two_processes_equals_one(tmp_path):
    import scipy.io

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        scipy.io.savemat(data / f"{name}.mat", {"features": rng.normal(size=(60, 4)),
                                                "labels": rng.dirichlet(np.ones(3), size=60)})
    from softxent.bench import cross_validate
    from softxent.ldl import load_mat

    argv = [sys.executable, "-m", "softxent", "ldl", "--data-dir", str(data), "--folds", "3",
            "--max-iter", "40", "--json"]
    port = _free_port()
    pair = [subprocess.Popen([*argv, "--coordinator", f"127.0.0.1:{port}", "--num-processes",
                              "2", "--process-id", str(i)], env=_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    # The one-process results, here, while they work.
    single = [cross_validate(load_mat(data / f"{name}.mat"), folds=3, max_iter=40)
              for name in ("a", "b", "c")]
    outs = [p.communicate(timeout=300) for p in pair]
    assert [p.returncode for p in pair] == [0, 0], [err for _, err in outs]
    assert outs[1][0] == ""  # only process 0 prints the results
    joint = json.loads(outs[0][0])["results"]
    assert [r["dataset"] for r in joint] == ["a", "b", "c"]
    worst = max(abs(r1["metrics"][m][s] - r2["metrics"][m][s])
                for r1, r2 in zip(single, joint, strict=True)
                for m in r1["metrics"] for s in ("mean", "std"))
    assert worst <= 1e-6, worst


def test_ldl_folds_of_one_file_across_two_processes_equal_one(tmp_path):
    import scipy.io

    path = tmp_path / "one.mat"
    rng = np.random.default_rng(1)
    scipy.io.savemat(path, {"features": rng.normal(size=(60, 4)),
                            "labels": rng.dirichlet(np.ones(3), size=60)})
    from softxent.bench import cross_validate
    from softxent.ldl import load_mat

    argv = [sys.executable, "-m", "softxent", "ldl", "--data", str(path), "--folds", "3",
            "--max-iter", "40", "--l2", "auto", "--json"]
    port = _free_port()
    pair = [subprocess.Popen([*argv, "--coordinator", f"127.0.0.1:{port}", "--num-processes",
                              "2", "--process-id", str(i)], env=_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    single = cross_validate(load_mat(path), folds=3, max_iter=40, l2="auto")
    outs = [p.communicate(timeout=300) for p in pair]
    assert [p.returncode for p in pair] == [0, 0], [err for _, err in outs]
    assert outs[1][0] == ""
    joint = json.loads(outs[0][0])
    assert joint["l2"] == single["l2"] and joint["folds_at_max_iter"] == single["folds_at_max_iter"]
    worst = max(abs(single["metrics"][m][s] - joint["metrics"][m][s])
                for m in single["metrics"] for s in ("mean", "std"))
    assert worst <= 1e-6, worst
