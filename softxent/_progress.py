"""Progress bars for long commands: on a terminal only, on stderr, and never required.

A bar appears when stderr is a terminal and tqdm is installed; otherwise the
items pass through untouched, so piped or logged output (and ``--json`` on
stdout) stays free of it.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def shown() -> bool:
    """Whether bars are drawn here: stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _tqdm(items: Iterable[Any] | None, desc: str, unit: str, total: int | None) -> Any:
    """A tqdm bar on stderr where bars are drawn (a terminal, tqdm installed), else None."""
    if not shown():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(items, desc=desc, unit=unit, total=total, leave=False, file=sys.stderr,
                dynamic_ncols=True)


def bar(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None
        ) -> Iterator[T] | Iterable[T]:
    """``items`` with a progress bar on a terminal (see the module's docstring)."""
    drawn = _tqdm(items, desc, unit, total)
    return items if drawn is None else drawn


_STAGES: contextvars.ContextVar[Any] = contextvars.ContextVar("softxent_stages", default=None)


@contextlib.contextmanager
def stages(desc: str, names: Sequence[str]) -> Iterator[None]:
    """A bar over the named stages of one long computation, advanced by :func:`stage`.

    Code deep inside the computation calls ``stage(name)`` as it enters each stage;
    outside a ``stages`` block (or off a terminal, or without tqdm) that does nothing.
    """
    shown_bar = _tqdm(None, desc, "stage", len(names))
    token = _STAGES.set((shown_bar, tuple(names)))
    try:
        yield
    finally:
        _STAGES.reset(token)
        if shown_bar is not None:
            shown_bar.close()


def stage(name: str) -> None:
    """Mark the start of stage ``name`` of the innermost :func:`stages` block."""
    active = _STAGES.get()
    if active is None or active[0] is None:
        return
    shown_bar, names = active
    done = names.index(name) if name in names else shown_bar.n
    shown_bar.n = max(shown_bar.n, done)
    shown_bar.set_postfix_str(name, refresh=False)
    shown_bar.refresh()
