"""Ending a command on SIGINT or SIGTERM: one line, exit status 128 + the signal's number.

The handler does not raise into the work: Python may run it inside a garbage
collector callback (JAX registers one), where an exception is printed and
swallowed and the work goes on. It ends the process itself instead: it removes
the folders still being written (``softxent._unfinished``; a complete results
folder has already been renamed into place), stops the workers of a process
pool (``softxent verify`` uses one), prints one line and leaves with
``os._exit``. Leaving that way also skips the interpreter's finalisation, where
XLA's threads can still be running and the process crashed with a segmentation
fault (exit status 139). ``softxent._exit`` has the start-up handler, installed
before JAX is imported.

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
import threading
from collections.abc import Iterator

from .._exit import ORIGINAL, SIGNALS, finished, leave, message

GRACE_S = 2.0  # for the main thread to come back from a native call and run the handler


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
        previous[s] = ORIGINAL.get(s, found)  # what was there before install_early
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
        finished()  # the CLI process only (where the start-up handler ran)
        os.close(write_fd)
        thread.join(timeout=1)
        with contextlib.suppress(OSError):
            os.close(read_fd)
