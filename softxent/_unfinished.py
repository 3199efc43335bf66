"""Folders being written, so that an interrupted process can remove them before it ends.

A writer registers its temporary folder for as long as the folder is incomplete
(``with unfinished(path): ...``, then it renames the folder into place); an
interrupt handler calls :func:`remove_all` just before it ends the process, so
no half-written folder outlives the process.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

_OPEN: set[Path] = set()


@contextlib.contextmanager
def unfinished(path: Path) -> Iterator[Path]:
    """Register ``path`` as incomplete within the block."""
    _OPEN.add(path)
    try:
        yield path
    finally:
        _OPEN.discard(path)


def remove_all() -> None:
    """Remove every registered folder (those that were renamed into place are gone)."""
    for path in list(_OPEN):
        shutil.rmtree(path, ignore_errors=True)


def hold(path: Path) -> None:
    """Register ``path`` as incomplete until :func:`release` (for a folder whose life is
    not one block, such as a sweep's spill folder)."""
    _OPEN.add(path)


def release(path: Path) -> None:
    """``path`` is complete, or gone: an interrupt leaves it alone."""
    _OPEN.discard(path)
