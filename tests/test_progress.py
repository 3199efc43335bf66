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


def test_stages_advance_a_bar_on_a_terminal_and_do_nothing_elsewhere(monkeypatch):
    _progress.stage("outside any block")  # no bar: nothing happens
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with _progress.stages("work", ["a", "b"]):
        _progress.stage("a")
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with _progress.stages("work", ["a", "b", "c"]):
        _progress.stage("b")
        assert "1/3" in terminal.getvalue() and "b" in terminal.getvalue()
        _progress.stage("c")
        assert "2/3" in terminal.getvalue()


def test_analyze_and_catalogue_show_their_stages_on_a_terminal(monkeypatch, capsys):
    from softxent.cli import main

    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    # an expression no other test analyses: not in the analysis cache, every stage runs
    assert main(["analyze", "--expr", "q*(1 - p)**3/3", "--kind", "separable",
                 "--target", "0.2,0.3,0.5", "--json"]) == 0
    shown = terminal.getvalue()
    assert "analyze" in shown and "convexity in the logits" in shown
    # the catalogue's own bar over its one loss
    assert main(["catalogue", "--loss", "brier_score"]) == 0
    assert "catalogue" in terminal.getvalue() and "/1" in terminal.getvalue()
    capsys.readouterr()


def test_verify_shows_both_of_its_phases_on_a_terminal(monkeypatch, capsys):
    from softxent.cli import main

    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["verify", "--points", "2", "--loss", "brier_score", "--order", "0",
                 "--dtype", "float64", "--workers", "1"]) == 0
    assert "verify: JAX" in terminal.getvalue() and "verify: mpmath" in terminal.getvalue()
    capsys.readouterr()
