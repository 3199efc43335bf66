"""Griffe extension: the docstrings' mathematics rendered as MathML, and their ``Example:``
sections read as Google-style examples (griffe knows the plural, ``Examples:``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import griffe

sys.path.insert(0, str(Path(__file__).parent))
from mathml import convert_docstring  # noqa: E402

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)


class DocstringMath(griffe.Extension):
    """Rewrites ``.. math::``, ``:math:`` and ``Example:`` in every docstring mkdocstrings
    renders."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = convert_docstring(text)
