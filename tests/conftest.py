"""Test-wide settings: float64 available, strict dtype promotion, warnings are errors.

Strict promotion makes any implicit mixing of dtypes inside softxent an error, so
each cast in the library is deliberate. Warnings become errors via pyproject.toml.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
