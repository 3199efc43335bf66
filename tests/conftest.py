"""Test-wide settings: float64 available, strict dtype promotion, warnings are errors.

Strict promotion makes any implicit mixing of dtypes inside softxent an error, so
each cast in the library is deliberate. Warnings become errors via pyproject.toml.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


import sys  # noqa: E402

import pytest  # noqa: E402


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
