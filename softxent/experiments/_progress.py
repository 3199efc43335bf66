"""A progress bar over the losses of a run (``softxent._progress``: on a terminal only)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], enabled: bool) -> Iterable[T]:
    """``items``, wrapped in a bar when ``enabled`` and stderr is a terminal."""
    from .._progress import bar

    return bar(items, "losses", unit="loss") if enabled else items
