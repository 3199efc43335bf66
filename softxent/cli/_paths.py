"""Checks of the paths a command is given, made before any work starts.

Each check returns the path, or raises :class:`UsageError` with one line naming
the option, the path and what is wrong with it; the CLI prints that line and
exits with status 2. Nothing is created or changed by a check.
"""

from __future__ import annotations

import os
from pathlib import Path


class UsageError(ValueError):
    """A user's mistake on the command line: one line, exit status 2."""


def readable_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` names an existing, readable regular file."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{what} {path}: no such file")
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a folder, not a file")
    if not path.is_file():
        raise UsageError(f"{what} {path}: not a regular file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise UsageError(f"{what} {path}: cannot be read ({error.strerror})") from None
    return path


def output_folder(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` is a writable folder, or the folder that would hold it is.

    The check goes up to the nearest part of ``path`` that exists: it must be a
    folder (not a file) in which this process may create entries.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path}: exists and is not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {path}: cannot be made, {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: {existing} is not writable")
    return path


def folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` names an existing, listable folder."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{what} {path}: no such folder")
    if not path.is_dir():
        raise UsageError(f"{what} {path}: not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot be read")
    return path
