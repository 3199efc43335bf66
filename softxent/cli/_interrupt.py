"""Ending a command on SIGINT or SIGTERM: one line, exit status 128 + the signal's number.

The handler does not raise into the work: Python may run it inside a garbage
collector callback (JAX registers one), where an exception is printed and
swallowed and the work goes on. It ends the process itself instead: it removes
the folders still being written (``softxent._unfinished``; a complete results
folder has already been renamed into place), stops the workers of a process
pool (``softxent verify`` uses one), prints one line and leaves with
``os._exit``. Leaving that way also skips the interpreter's finalisation, where
XLA's threads can still be running and the process crashed with a segmentation
fault (exit status 139).

Python runs a handler only between bytecodes of the main thread, so a signal
that arrives during a long native call (an XLA compilation, a computation)
waits for it. A watchdog thread, woken at once through ``signal.set_wakeup_fd``,
ends the process the same way after ``GRACE_S`` if the handler has not run by
then; the main thread is inside that native call, not writing results.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from .._unfinished import remove_all

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 2.0  # for the main thread to come back from a native call and run the handler


def message(command: str, signum: int) -> str:
    name = f"softxent {command}" if command else "softxent"
    return f"{name}: interrupted by {signal.Signals(signum).name}"


def leave(status: int, line: str) -> None:
    """Remove unfinished folders, stop worker processes, print ``line`` on stderr, and
    end the process now."""
    remove_all()
    if "multiprocessing" in sys.modules:  # a process pool's workers would outlive us
        import multiprocessing

        for child in multiprocessing.active_children():
            with contextlib.suppress(Exception):
                child.terminate()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())
    os._exit(status)


# The handlers found at start-up, before install_early replaced them.
_ORIGINAL: dict[int, object] = {}


def _command_in(argv: list[str]) -> str:
    from . import COMMANDS

    return next((a for a in argv if a in COMMANDS), "")


def _early(signum: int, frame) -> None:
    leave(128 + signum, message(_command_in(sys.argv[1:]), signum))


def install_early() -> None:
    """Handle SIGINT and SIGTERM from the CLI's first moment, while JAX is still being
    imported (seconds, on a busy machine): there is no work to clean up yet.

    A signal the process was started with ignored (``nohup``, a shell's
    background job) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for s in SIGNALS:
        current = signal.getsignal(s)
        if current is not signal.SIG_IGN:
            _ORIGINAL[s] = signal.signal(s, _early)


class _Watch:
    def __init__(self, command: str):
        self.command = command
        self.lock = threading.Lock()  # one of the handler and the watchdog ends the process

    def end(self, signum: int, why: str = "") -> None:
        if self.lock.acquire(blocking=False):
            leave(128 + signum, message(self.command, signum) + why)

    def handler(self, signum: int, frame) -> None:
        self.end(signum)

    def watchdog(self, read_fd: int, done: threading.Event) -> None:
        while True:
            try:
                data = os.read(read_fd, 16)
            except OSError:
                return
            if not data:  # the write end closed: the command is over
                return
            signums = [s for s in data if s in SIGNALS]
            if signums and not done.wait(GRACE_S):
                self.end(signums[0], " (during a native call)")


@contextlib.contextmanager
def handled(command: str) -> Iterator[_Watch]:
    """Within the block, SIGINT and SIGTERM end the process (see the module's docstring).

    Only in the main thread (elsewhere the block changes nothing); the previous
    handlers and wakeup fd come back when the block ends.
    """
    watch = _Watch(command)
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    done = threading.Event()
    previous = {}
    for s in SIGNALS:
        if signal.getsignal(s) is signal.SIG_IGN:
            continue  # started ignored (nohup, a background job): it stays ignored
        found = signal.signal(s, watch.handler)
        previous[s] = _ORIGINAL.get(s, found)  # what was there before install_early
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    thread = threading.Thread(target=watch.watchdog, args=(read_fd, done), daemon=True,
                              name="softxent-interrupt-watchdog")
    thread.start()
    try:
        yield watch
    finally:
        done.set()
        signal.set_wakeup_fd(previous_fd)
        for s, h in previous.items():
            signal.signal(s, h)
        os.close(write_fd)
        thread.join(timeout=1)
        with contextlib.suppress(OSError):
            os.close(read_fd)
