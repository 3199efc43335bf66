"""Progress bars for long commands: on a terminal only, on stderr, and never required.

A bar appears when stderr is a terminal and tqdm is installed; otherwise the
items pass through untouched, so piped or logged output (and ``--json`` on
stdout) stays free of it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def shown() -> bool:
    """Whether bars are drawn here: stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def bar(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None
        ) -> Iterator[T] | Iterable[T]:
    """``items`` with a progress bar on a terminal (see the module's docstring)."""
    if not shown():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit=unit, total=total, leave=False, file=sys.stderr,
                dynamic_ncols=True)
