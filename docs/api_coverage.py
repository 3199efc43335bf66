"""Which public names the API reference lacks, and which have no docstring.

The API pages document a name with a mkdocstrings directive ``::: module.NAME``. Every
public name of the modules in ``DOCUMENTED`` must have one, and a docstring: a function's
or class's own ``__doc__``, or for a constant the string literal right after its assignment
(which is where mkdocstrings reads it from). ``make docs`` fails on any gap (see hooks.py),
and so does the test suite.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import types
from pathlib import Path

DOCUMENTED = ("softxent", "softxent.symbolic", "softxent.ldl", "softxent.bench",
              "softxent.experiments")
API_DIR = Path(__file__).parent / "api"
_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.M)


def public_names(module_name: str) -> list[str]:
    """``__all__`` where the module defines it, else its names without a leading underscore,
    submodules and functions or classes of other packages (imported for its own use) left
    out."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and getattr(value, "__module__", module_name).partition(".")[0]
            == module_name.partition(".")[0]
        ]
    return sorted(names)


def documented_names(api_dir: Path = API_DIR) -> set[str]:
    """The dotted names of every ``:::`` directive on the API pages."""
    return {m for page in api_dir.glob("*.md") for m in _DIRECTIVE.findall(page.read_text())}


def _constant_has_docstring(module_name: str, name: str) -> bool:
    """Whether ``name`` is assigned in ``module_name`` (or in the private module its
    ``__init__`` imports it from) with a string literal right after the assignment."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level and any(
            alias.name == name for alias in node.names
        ):
            package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
            source = importlib.import_module("." * node.level + (node.module or ""), package)
            return _constant_has_docstring(source.__name__, name)
    for previous, node in zip(tree.body, tree.body[1:], strict=False):
        targets = (
            [previous.target] if isinstance(previous, ast.AnnAssign)
            else previous.targets if isinstance(previous, ast.Assign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and bool(node.value.value.strip())
            )
    return False


def has_docstring(module_name: str, name: str) -> bool:
    value = getattr(importlib.import_module(module_name), name)
    if inspect.isclass(value):
        return bool((value.__dict__.get("__doc__") or "").strip())
    if callable(value):
        return bool((inspect.getdoc(value) or "").strip())
    return _constant_has_docstring(module_name, name)


def problems(modules: tuple[str, ...] = DOCUMENTED, api_dir: Path = API_DIR) -> list[str]:
    """One line per public name that has no API page entry or no docstring."""
    documented = documented_names(api_dir)
    found = []
    for module_name in modules:
        for name in public_names(module_name):
            dotted = f"{module_name}.{name}"
            if dotted not in documented:
                found.append(f"{dotted}: no `::: {dotted}` on any page of docs/api/")
            if not has_docstring(module_name, name):
                found.append(f"{dotted}: no docstring")
    return found
