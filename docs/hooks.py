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


def on_config(config: Any, **kwargs: Any) -> Any:
    """Every tutorial under docs/tutorials/ goes into the Tutorials section, listed ones in
    their order and any other after them, titled by its first heading: a new tutorial needs
    no edit of mkdocs.yml."""
    docs = Path(config["docs_dir"])
    for section in config["nav"] or []:
        if not isinstance(section, dict) or "Tutorials" not in section:
            continue
        entries = section["Tutorials"]
        listed = {e if isinstance(e, str) else next(iter(e.values())) for e in entries}
        for page in sorted((docs / "tutorials").glob("*.md")):
            path = page.relative_to(docs).as_posix()
            if path not in listed:
                first = page.read_text(encoding="utf-8").lstrip().splitlines()[:1]
                title = first[0].lstrip("# ").strip() if first and first[0].startswith("#") \
                    else page.stem.replace("_", " ").capitalize()
                entries.append({title: path})
    return config


def on_pre_build(config: Any, **kwargs: Any) -> None:
    for problem in api_coverage.problems():
        log.warning("API reference: %s", problem)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    try:
        return convert_page(markdown)
    except ValueError as error:
        log.warning("%s: %s", page.file.src_path, error)
        return markdown
