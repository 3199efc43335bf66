"""Interrupt trials: start a ``softxent`` command, send SIGINT or SIGTERM during one of
its phases, and judge how it ended.

The child runs the real CLI behind a preamble that only records when phases end
(JAX's compile events: tracing, lowering, compiling; softxent's figure drawing and
results writing), so each trial knows which phase its signal fell in. A trial
passes when the command either finished normally before the signal mattered, or
ended with exit status 128 + signal, one line ``softxent CMD: interrupted by
SIG...`` on stderr, no traceback, and no results folder that is not complete.

The test suite runs a few trials per command; for the many-point count::

    python -m tests._signals --trials 20   # per command and signal
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PREAMBLE = r"""
import os, signal, sys, time
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # started in the background (nohup, `cmd &`): restore the handler a terminal's
    # foreground process has, so that SIGINT reaches softxent as a user's Ctrl-C does
    signal.signal(signal.SIGINT, signal.default_int_handler)
log = open(os.environ["SOFTXENT_PHASES"], "a", buffering=1)
def mark(name):
    log.write(f"{name} {time.time()}\n")
mark("start")
sys.argv[0] = "softxent"  # as the console script runs it
import softxent
import jax.monitoring
EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "traced",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowered",
          "/jax/core/compile/backend_compile_duration": "compiled"}
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: mark(EVENTS[event]) if event in EVENTS else None)
import softxent.experiments._results as results
import softxent.experiments.figures as figures
def wrap(module, attr, start, end):
    inner = getattr(module, attr)
    def wrapped(*args, **kwargs):
        mark(start)
        out = inner(*args, **kwargs)
        mark(end)
        return out
    setattr(module, attr, wrapped)
wrap(figures, "draw", "figures", "drawn")
wrap(results, "write", "writing", "written")
from softxent.cli import main
mark("main")
sys.exit(main(sys.argv[1:]))
"""

# The phase a signal fell in, from the last mark before it.
AFTER = {None: "interpreter start", "start": "imports", "main": "tracing",
         "traced": "compiling", "lowered": "compiling", "compiled": "computing",
         "figures": "figures", "drawn": "writing", "writing": "writing",
         "written": "after writing"}
TARGETS = ("time", "start", "main", "traced", "compiled", "figures", "drawn", "written")
RESULT_FILES = ("config.toml", "metadata.json", "metrics.csv", "summary.json")

CONFIG = """
name = "trial"
kind = "fixed_point"
figures = ["convergence", "simplex"]
[optimizer]
name = "adam"
steps = 200
log_every = 20
[fixed_point]
classes = 3
num_targets = 16
inits_per_target = 2
[[losses]]
name = "softmax_cross_entropy"
[[losses]]
name = "focal_cross_entropy"
"""


def commands(folder: Path) -> dict[str, list[str]]:
    """Small versions of each long command (a few seconds each)."""
    import scipy.io

    config = folder / "trial.toml"
    config.write_text(CONFIG)
    rng = np.random.default_rng(0)
    mat = folder / "trial.mat"
    scipy.io.savemat(mat, {"features": rng.normal(size=(300, 20)),
                           "labels": rng.dirichlet(np.ones(4), size=300)})
    return {
        "run": ["run", str(config), "--out", "{out}"],
        "ldl": ["ldl", "--data", str(mat), "--folds", "3", "--max-iter", "60"],
        "bench": ["bench", "--shape", "64,32", "--repeats", "1", "--dtype", "float32"],
        "verify": ["verify", "--points", "20", "--loss", "softmax_cross_entropy"],
        "catalogue": ["catalogue", "--loss", "focal_cross_entropy"],
        "analyze": ["analyze", "--expr", "q*(1 - p)**2", "--kind", "separable",
                    "--target", "0.7,0.2,0.1"],
    }


@dataclass
class Trial:
    command: str
    signal: str
    target: str
    phase: str
    outcome: str  # "interrupted", "finished" or what went wrong
    status: int
    seconds: float
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("interrupted", "finished")


def _marks(path: Path) -> list[tuple[str, float]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    marks = []
    for line in lines:
        name, _, stamp = line.partition(" ")
        try:
            marks.append((name, float(stamp)))
        except ValueError:
            continue  # a line being written
    return marks


def _folders_ok(out: Path) -> str | None:
    """None if every results folder is complete and nothing temporary is left."""
    if not out.exists():
        return None
    for entry in out.iterdir():
        if entry.name.startswith("."):
            return f"temporary folder left: {entry.name}"
        missing = [f for f in RESULT_FILES if not (entry / f).is_file()]
        figures = entry / "figures"
        if not missing and not (figures.is_dir() and len(list(figures.iterdir())) >= 2):
            missing.append("figures")
        if missing:
            return f"incomplete results folder {entry.name} (missing {', '.join(missing)})"
    return None


def _left_running(marker: str) -> list[int]:
    """Processes still running with ``marker`` in their environment (the child's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def trial(command: str, argv: list[str], signum: int, target: str, delay: float,
          folder: Path, timeout: float = 180) -> Trial:
    """One run of ``command``, signalled ``delay`` s after ``target`` was marked."""
    work = Path(tempfile.mkdtemp(dir=folder))
    phases, out = work / "phases", work / "out"
    env = {**os.environ, "SOFTXENT_PHASES": str(phases)}
    argv = [a.replace("{out}", str(out)) for a in argv]
    start = time.time()
    child = subprocess.Popen([sys.executable, "-c", PREAMBLE, *argv], env=env, cwd=work,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = start + timeout
    if target == "time":
        fire_at = start + delay
    else:
        fire_at = None
        while time.time() < deadline and child.poll() is None:
            hit = [t for name, t in _marks(phases) if name == target]
            if hit:
                fire_at = hit[0] + delay
                break
            time.sleep(0.005)
    sent = None
    if fire_at is not None and child.poll() is None:
        time.sleep(max(0.0, fire_at - time.time()))
        if child.poll() is None:
            child.send_signal(signum)
            sent = time.time()
    try:
        stdout, stderr = child.communicate(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        child.kill()
        try:  # a process the child started may still hold its pipes
            stdout, stderr = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            stderr = "(pipes still held by another process after the child was killed)"
        return Trial(command, signal.Signals(signum).name, target, "?", "hung", -9,
                     time.time() - start, stderr)
    seconds = time.time() - start
    before = [name for name, t in _marks(phases) if sent is not None and t <= sent]
    phase = AFTER[before[-1] if before else None] if sent is not None else "not sent"
    status = child.returncode
    lines = [line for line in stderr.splitlines() if line.strip()]
    expected = f"softxent {command}: interrupted by {signal.Signals(signum).name}"
    problem = _folders_ok(out)
    time.sleep(0.2)  # terminated workers take a moment to go
    left = _left_running(f"SOFTXENT_PHASES={phases}")
    if left:
        problem = f"left {len(left)} process(es) running"
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    if "Traceback" in stderr:
        outcome = "traceback"
    elif status in (-signal.SIGSEGV, 128 + signal.SIGSEGV):
        outcome = "segmentation fault"
    elif problem:
        outcome = problem
    elif status == 0:
        outcome = "finished"
    elif status == 128 + signum and len(lines) == 1 and lines[0].startswith(expected):
        outcome = "interrupted"
    elif (status in (-signum, 128 + signum) and not lines and stdout.strip()
          and phase == "after writing"):
        outcome = "finished"  # the signal came during interpreter shutdown, the work was done
    else:
        outcome = f"exit {status}, last line {lines[-1] if lines else ''!r}"
    return Trial(command, signal.Signals(signum).name, target, phase, outcome, status, seconds,
                 stderr)


def plan(names: list[str], per_signal: int, seed: int, span: dict[str, float]):
    """(command, signal, target, delay) for ``per_signal`` trials of each command and signal:
    signals at random times over the command's run, and at the start of each phase."""
    rng = random.Random(seed)
    for name in names:
        targets = [t for t in TARGETS
                   if name == "run" or t not in ("figures", "drawn", "written")]
        for signum in (signal.SIGINT, signal.SIGTERM):
            for i in range(per_signal):
                target = targets[i % len(targets)]
                delay = (rng.uniform(0.5, 0.8 * span[name]) if target == "time"
                         else rng.uniform(0, 0.3))
                yield name, signum, target, delay


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12, help="per command and signal")
    parser.add_argument("--command", action="append", help="only this command (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        argvs = commands(folder)
        names = args.command or list(argvs)
        span = {}
        for name in names:  # one uninterrupted run each: how long a trial may wait
            t0 = time.time()
            done = subprocess.run([sys.executable, "-m", "softxent",
                                   *[a.replace("{out}", str(folder / "calibration"))
                                     for a in argvs[name]]], capture_output=True, text=True)
            span[name] = time.time() - t0
            print(f"{name}: uninterrupted run {span[name]:.1f} s, exit {done.returncode}",
                  flush=True)
        trials = []
        for name, signum, target, delay in plan(names, args.trials, args.seed, span):
            result = trial(name, argvs[name], signum, target, delay, folder)
            trials.append(result)
            print(f"{result.command:9} {result.signal:7} {result.target:8} "
                  f"{result.phase:13} {result.outcome} ({result.seconds:.1f} s)", flush=True)
            if not result.ok or (result.outcome == "finished" and result.phase != "after writing"):
                print("    stderr: " + result.stderr[-1500:].replace("\n", "\n    "))
    counts = collections.Counter((t.command, t.phase, t.outcome) for t in trials)
    sent = [t for t in trials if t.phase != "not sent"]
    print(f"\n{len(sent)} signalled trials, {sum(not t.ok for t in sent)} failed "
          f"({len(trials) - len(sent)} more finished before the signal's moment)")
    for (command, phase, outcome), count in sorted(counts.items()):
        print(f"  {command:9} {phase:13} {outcome}: {count}")
    return 0 if all(t.ok for t in trials) else 1


if __name__ == "__main__":
    raise SystemExit(main())
