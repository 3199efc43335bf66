"""A progress bar over the losses of a run, shown only on a terminal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], enabled: bool) -> Iterable[T]:
    """``items``, wrapped in a tqdm bar when ``enabled`` and stdout is a terminal."""
    if not enabled:
        return items
    import sys

    from .._optional import require

    tqdm = require("tqdm", "experiments", "the progress bar").tqdm
    return tqdm(items, desc="losses", unit="loss", disable=not sys.stdout.isatty(), leave=False)
