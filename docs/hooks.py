"""MkDocs hooks: MathML for the pages' formulas, and the API reference's completeness."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import api_coverage  # noqa: E402
from mathml import convert_page  # noqa: E402

# A warning on a logger under "mkdocs" fails `mkdocs build --strict`.
log = logging.getLogger("mkdocs.hooks.softxent")


def on_pre_build(config: Any, **kwargs: Any) -> None:
    for problem in api_coverage.problems():
        log.warning("API reference: %s", problem)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    try:
        return convert_page(markdown)
    except ValueError as error:
        log.warning("%s: %s", page.file.src_path, error)
        return markdown
