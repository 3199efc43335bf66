"""Files written whole or not at all (``softxent._files.atomic_file``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from softxent._files import atomic_file


def test_a_file_appears_only_when_its_block_ends(tmp_path):
    path = tmp_path / "new" / "results.json"
    with atomic_file(path) as out:
        json.dump({"a": 1}, out)
        assert not path.exists()  # written beside it until the block ends
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_a_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_file(path) as out:
        out.write("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_verify_keeps_no_partial_reference(tmp_path, monkeypatch):
    """A reference whose writing fails is skipped, and nothing of it stays in the cache."""
    from softxent.symbolic import _verify

    def broken(out, **arrays):
        out.write(b"part")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    _verify._store_reference(tmp_path, "key", np.zeros((1, 1)), np.zeros((1, 1)))
    assert list(tmp_path.iterdir()) == []
    assert _verify._load_reference(tmp_path, "key") is None
