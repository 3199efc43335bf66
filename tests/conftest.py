"""Test-wide settings: float64 available, strict dtype promotion, warnings are errors,
and a cache folder of the run's own (``$XDG_CACHE_HOME``: ``softxent verify``'s cache).

Strict promotion makes any implicit mixing of dtypes inside softxent an error, so
each cast in the library is deliberate. Warnings become errors via pyproject.toml.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


import os  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _cache_of_this_run(tmp_path_factory):
    """Commands that keep a cache keep it in the run's temporary folder, not the user's."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(autouse=True)
def _registry_as_it_was():
    """A loss a test registers (a plugin, a config's ``plugins``) is gone after it, and so
    is the plugin module, so that no test sees another's losses."""
    import softxent

    before = set(softxent.loss_names())
    modules = set(sys.modules)
    yield
    for name in set(softxent.loss_names()) - before:
        softxent.unregister_loss(name)
    for name in set(sys.modules) - modules:
        if name.startswith("softxent_plugin_"):
            del sys.modules[name]
