"""Progress bars appear on a terminal only, on stderr."""

from __future__ import annotations

import io

from softxent import _progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_unless_stderr_is_a_terminal(monkeypatch):
    items = [1, 2, 3]
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert _progress.bar(items, "x") is items


def test_a_bar_on_a_terminal_goes_to_stderr(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert list(_progress.bar([1, 2, 3], "cases", unit="case")) == [1, 2, 3]
    assert "cases" in terminal.getvalue() and "/3" in terminal.getvalue()
