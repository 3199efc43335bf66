"""Published SA-BFGS figures to print beside ours, with where each number comes from.

Only numbers we could trace to a source are here. Geng (2016) reports SA-BFGS on
every dataset of the paper, but the paper's tables were not available to us;
the s-JAFFE row below is the original MATLAB implementation's result as the
PyLDL README quotes it (mean ± std over ten-fold cross-validation).
"""

from __future__ import annotations

from typing import NamedTuple


class Published(NamedTuple):
    """One published result: the method, where it is printed, and its six measures."""

    method: str
    source: str
    metrics: dict[str, dict[str, float]]


def _row(*pairs: tuple[float, float]) -> dict[str, dict[str, float]]:
    names = ("chebyshev", "clark", "canberra", "kl", "cosine", "intersection")
    return {
        name: {"mean": mean, "std": std} for name, (mean, std) in zip(names, pairs, strict=True)
    }


PUBLISHED: dict[str, Published] = {
    "SJAFFE": Published(
        method="SA-BFGS, Geng 2016 (MATLAB)",
        source=(
            "Geng, Label Distribution Learning, IEEE TKDE 2016, doi:10.1109/TKDE.2016.2545658, "
            "as quoted in the README of SpriteMisaka/PyLDL at commit 0829376"
        ),
        metrics=_row(
            (0.107, 0.015), (0.399, 0.044), (0.820, 0.103),
            (0.064, 0.016), (0.940, 0.015), (0.860, 0.019),
        ),
    ),
}
"""Published figures by dataset name, with each one's method and source."""
