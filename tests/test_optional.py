"""The core needs only jax, jaxlib and numpy; a missing extra is named in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from softxent._optional import MissingExtra, require

OPTIONAL = ("sympy", "mpmath", "gmpy2", "matplotlib", "scipy", "optax", "tqdm", "sklearn")

# A meta-path finder that refuses every optional module, as if it were not installed.
BLOCK = f"""
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Absent())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True,
                          timeout=300)


def test_every_loss_and_its_gradient_work_without_the_extras():
    out = _run("""
import jax, jax.numpy as jnp, numpy as np, softxent
z = jnp.array([[0.5, -1.0, 2.0], [0.0, 0.1, -0.3]])
q = jnp.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
for spec in softxent.list_losses():
    x = jax.nn.softmax(z) if spec.input == "probabilities" else z
    t = jnp.log(q) if spec.targets == "logits" else q
    value, grad = jax.value_and_grad(lambda x: spec.fn(x, t, reduction="mean"))(x)
    assert np.isfinite(value) and bool(jnp.all(jnp.isfinite(grad))), spec.name
h, w = jnp.ones((2, 4)), jnp.ones((4, 3))
jax.grad(lambda w: softxent.linear_softmax_cross_entropy(h, w, q, reduction="sum"))(w)
assert not [m for m in sys.modules if m.partition(".")[0] in OPTIONAL]
print(len(softxent.list_losses()))
""".replace("OPTIONAL", repr(OPTIONAL)))
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(__import__("softxent").list_losses())


@pytest.mark.parametrize(
    ("command", "extra"),
    [(["prove", "--all"], "symbolic"), (["verify", "--points", "1"], "symbolic"),
     (["catalogue"], "symbolic"), (["demo", "--steps", "1"], "experiments"),
     (["run", "experiments/configs/k3_proper.toml"], "experiments"),
     (["bench", "--quick"], "bench"), (["ldl", "--data", "x.mat"], "ldl")],
)
def test_a_command_whose_extra_is_missing_says_so_in_one_line(command, extra):
    out = _run(f"from softxent.cli import main; raise SystemExit(main({command!r}))")
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"softxent {command[0]}: ")
    assert f"pip install 'softxent[{extra}]'" in line and f"pip install '.[{extra}]'" in line


def test_importing_a_subpackage_without_its_extra_names_the_extra():
    out = _run("import softxent.symbolic")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "softxent._optional.MissingExtra: softxent.symbolic needs sympy, which the "
        "'symbolic' extra installs: pip install 'softxent[symbolic]' "
        "(from a source checkout: pip install '.[symbolic]')"
    )


def test_require_returns_the_module_or_names_the_extra():
    assert require("math", "none", "a test").sqrt(4.0) == 2.0
    with pytest.raises(MissingExtra, match=r"^a feature needs no_such_module, which the 'x' "
                                           r"extra installs: pip install 'softxent\[x\]'"):
        require("no_such_module.sub", "x", "a feature")
