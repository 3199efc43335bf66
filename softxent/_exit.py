"""Ending the command-line process at once on SIGINT or SIGTERM.

Stdlib only and imported first by ``softxent/__init__.py`` when the package runs
as the command line, so the start-up handler is in place within milliseconds,
before JAX is imported (seconds, on a busy machine). ``softxent.cli._interrupt``
takes over while a command runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The handlers found at start-up, before install_early replaced them.
ORIGINAL: dict[int, object] = {}


def message(command: str, signum: int) -> str:
    name = f"softxent {command}" if command else "softxent"
    return f"{name}: interrupted by {signal.Signals(signum).name}"


def leave(status: int, line: str) -> None:
    """Remove unfinished folders, stop worker processes, print ``line`` on stderr, and
    end the process now."""
    if "softxent._unfinished" in sys.modules:
        sys.modules["softxent._unfinished"].remove_all()
    if "multiprocessing" in sys.modules:  # a process pool's workers would outlive us
        import multiprocessing

        for child in multiprocessing.active_children():
            with contextlib.suppress(Exception):
                child.terminate()
        # What a normal exit runs: the pool's semaphores are unlinked here, or the
        # resource tracker, which outlives us, warns about them after our last line.
        from multiprocessing import util

        with contextlib.suppress(Exception):
            util._exit_function()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())
    os._exit(status)


def _early(signum: int, frame) -> None:
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    leave(128 + signum, message(command, signum))


def install_early() -> None:
    """Handle SIGINT and SIGTERM from the CLI's first moment; there is no work to clean
    up yet. A signal the process was started with ignored (``nohup``, a shell's
    background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    parent = getattr(sys.modules.get("multiprocessing"), "parent_process", None)
    if parent is not None and parent() is not None:
        return  # a pool worker, given the CLI's argv by spawn: its parent handles signals
    for s in SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            ORIGINAL[s] = signal.signal(s, _early)


def _after_the_work(signum: int, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(128 + signum)


def finished() -> None:
    """After a command's work, in the CLI process: a signal during the interpreter's
    shutdown (JAX's exit callbacks) ends it at once and quietly, the results being
    complete, instead of printing a KeyboardInterrupt traceback from a callback."""
    for s in ORIGINAL:
        signal.signal(s, _after_the_work)
