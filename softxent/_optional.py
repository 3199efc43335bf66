"""Optional dependencies: the extras that bring them, and a clear error when one is missing.

``import softxent`` and every loss need only jax, jaxlib and numpy. The rest of
the toolkit (symbolic proofs, experiments, the LDL benchmark, the speed bench)
imports its dependencies lazily through :func:`require`, so that a missing one
is named with the pip command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The extra that installs each optional top-level module (pyproject.toml).
EXTRA_OF: dict[str, str] = {
    "sympy": "symbolic",
    "mpmath": "symbolic",
    "optax": "experiments",
    "matplotlib": "experiments",
    "tqdm": "experiments",
    "scipy": "ldl",
    "sklearn": "examples",
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message is one line with the fix."""

    def __init__(self, module: str, extra: str, feature: str) -> None:
        self.extra = extra
        self.feature = feature
        super().__init__(
            f"{feature} needs {module}, which the '{extra}' extra installs: "
            f"pip install 'softxent[{extra}]' (from a source checkout: pip install '.[{extra}]')",
            name=module,
        )


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` naming ``extra`` and ``feature``.

    Args:
      module: the module to import, e.g. ``"sympy"`` or ``"scipy.io"``.
      extra: the softxent extra that installs it, e.g. ``"symbolic"``.
      feature: what needs it, for the message, e.g. ``"softxent.symbolic"``.

    Returns:
      The imported module.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        top = module.partition(".")[0]
        if error.name is not None and error.name.partition(".")[0] != top:
            raise  # the module is there but one of its own imports is broken
        raise MissingExtra(top, extra, feature) from error


def missing_extra(error: ModuleNotFoundError, feature: str) -> MissingExtra | None:
    """The :class:`MissingExtra` for an optional module's ``ModuleNotFoundError``, else None."""
    top = (error.name or "").partition(".")[0]
    if top not in EXTRA_OF:
        return None
    return MissingExtra(top, EXTRA_OF[top], feature)


__all__ = ["EXTRA_OF", "MissingExtra", "missing_extra", "require"]
