"""LaTeX to MathML for the docs site, so the mathematics renders offline (no script, no CDN).

Chromium, Firefox and Safari render MathML Core natively. Three sources are converted:
``$$ ... $$`` blocks in the pages (the proofs that ``softxent prove --format markdown``
writes), ``\\( ... \\)`` inline in the pages, and the ``.. math::`` blocks and
``:math:`...``` roles of the docstrings (see ``griffe_math.py``).
"""

from __future__ import annotations

import re

from latex2mathml.converter import convert

_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"\\\((.+?)\\\)", re.S)
_ROLE = re.compile(r":math:`([^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n")
# A function name (log, exp, softmax): LaTeX sets thin spaces around it, MathML Core does not.
_FUNCTION_NAME = re.compile(r"(<mi>[A-Za-z]{2,}</mi>)")


def to_mathml(latex: str, *, display: bool) -> str:
    """One line of MathML for ``latex``; ValueError naming the formula if it does not convert."""
    try:
        html = convert(latex.strip(), display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises its own exception types
        raise ValueError(f"cannot convert the LaTeX {latex.strip()!r} to MathML: {error}") from None
    thin = '<mspace width="0.1667em"></mspace>'
    html = _FUNCTION_NAME.sub(thin + r"\1" + thin, html.replace("\n", ""))
    # Python-Markdown reads a line that starts with an unknown tag as a raw HTML block, which
    # would split the paragraph around an inline formula; a span keeps it inline.
    return html if display else f'<span class="math">{html}</span>'


def convert_page(markdown: str) -> str:
    """A page's ``$$ ... $$`` and ``\\( ... \\)`` formulas as MathML."""
    markdown = _DISPLAY.sub(lambda m: to_mathml(m.group(1), display=True), markdown)
    return _INLINE.sub(lambda m: to_mathml(m.group(1), display=False), markdown)


def convert_docstring(text: str) -> str:
    """A docstring's ``.. math::`` blocks and ``:math:`` roles as MathML."""
    text = _ROLE.sub(lambda m: to_mathml(m.group(1), display=False), text)
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        # The directive's body: the lines indented deeper than the directive (blank lines
        # inside it included), as reStructuredText reads it.
        indent = len(match["indent"])
        body: list[str] = []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        latex = " ".join(line.strip() for line in body)
        out.append(f"{match['indent']}{to_mathml(latex, display=True)}\n\n")
    return "".join(out)
