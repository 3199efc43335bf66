"""``--plugin MODULE``: import a user's module before a command runs.

A plugin registers its losses with :func:`softxent.register_loss` when it is
imported; every command then sees them as it sees the built-ins. MODULE is an
importable module name (the current directory is searched first) or the path of
a ``.py`` file.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path


class PluginError(ValueError):
    """A plugin that could not be imported; the message names it and the reason."""


def load_plugins(modules: Sequence[str]) -> None:
    for module in modules:
        load_plugin(module)


def load_plugin(module: str) -> None:
    path = Path(module)
    try:
        if module.endswith(".py"):
            if not path.is_file():
                raise PluginError(f"--plugin {module}: no such file")
            name = f"softxent_plugin_{path.stem}"
            if name in sys.modules:
                return
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise PluginError(f"--plugin {module}: cannot be loaded as a module")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded
            try:
                spec.loader.exec_module(loaded)
            except BaseException:
                del sys.modules[name]
                raise
            return
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        importlib.import_module(module)
    except PluginError:
        raise
    except ModuleNotFoundError as err:
        raise PluginError(f"--plugin {module}: no module named {err.name!r} (give a module "
                          f"name importable from here, or a path to a .py file)") from None
    except Exception as err:  # the plugin's own error, in one line
        raise PluginError(f"--plugin {module}: importing it raised "
                          f"{type(err).__name__}: {err}") from None
