"""SIGINT and SIGTERM end each long command with one line and exit status 130 or 143,
no traceback, no worker left running and no results folder that is not complete.

A few points of the phases here; ``python -m tests._signals --trials N`` runs many.
"""

from __future__ import annotations

import signal

import pytest

from . import _signals

POINTS = [  # (command, signal, the mark after which it is sent, seconds after the mark)
    ("run", signal.SIGTERM, "figures", 0.05),
    ("ldl", signal.SIGINT, "compiled", 0.05),
    ("verify", signal.SIGINT, "main", 0.05),  # its process pool's workers must go too
    ("catalogue", signal.SIGTERM, "start", 0.3),  # while JAX is being imported
    ("bench", signal.SIGINT, "compiled", 0.05),
    ("analyze", signal.SIGINT, "main", 1.0),  # inside SymPy, under its own time limits
]


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signals")
    return folder, _signals.commands(folder)


@pytest.mark.parametrize(("command", "signum", "after", "delay"), POINTS,
                         ids=[f"{c}-{s.name}-{a}" for c, s, a, _ in POINTS])
def test_signal_ends_the_command_cleanly(commands, command, signum, after, delay):
    folder, argvs = commands
    trial = _signals.trial(command, argvs[command], signum, after, delay, folder, timeout=120)
    assert trial.outcome == "interrupted", (trial, trial.stderr[-2000:])
    assert trial.status == 128 + signum
