"""The documentation's claims that code can check: every public name is on an API page with a
docstring, every docstring example runs, and every Python block of the README and the docs
pages runs (a page's blocks in order, as one script)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import softxent

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS))
import api_coverage  # noqa: E402
from mathml import convert_docstring, convert_page  # noqa: E402

# Pages written by docs/generate.py hold no hand-written code.
GENERATED = ("proofs", "results")
PAGES = [ROOT / "README.md"] + sorted(
    p for p in DOCS.rglob("*.md") if p.relative_to(DOCS).parts[0] not in GENERATED
)
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_every_public_name_has_an_api_entry_and_a_docstring():
    assert api_coverage.problems() == []


def test_a_public_name_without_an_entry_or_a_docstring_is_reported(tmp_path):
    (tmp_path / "page.md").write_text("::: softxent.cross_entropy\n")
    found = api_coverage.problems(("softxent",), tmp_path)
    assert "softxent.kl_divergence: no `::: softxent.kl_divergence` on any page of docs/api/" in (
        found)
    assert not any(line.startswith("softxent.cross_entropy:") for line in found)


def _modules() -> list[str]:
    names = ["softxent"]
    for info in pkgutil.walk_packages(softxent.__path__, "softxent."):
        if not info.name.endswith(".__main__"):  # importing it runs the command line
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    with jax.numpy_dtype_promotion("standard"):
        for test in finder.find(module, module_name):
            if test.examples and test.name.startswith(module_name):
                runner.run(test)
    assert runner.failures == 0, f"{module_name}: a docstring example failed (see above)"


def test_docstring_examples_are_found():
    finder = doctest.DocTestFinder()
    module = importlib.import_module("softxent.losses._softmax")
    assert sum(len(t.examples) for t in finder.find(module)) > 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_of_a_page_run(page, tmp_path):
    blocks = _PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))
    if not blocks:
        return
    script = "\n\n".join(blocks)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, f"{page.name}: its Python blocks failed:\n{out.stderr[-3000:]}"


def test_formulas_become_mathml():
    page = convert_page("a \\( p^{*} \\) and\n\n$$ \\frac{p - q}{p (1 - p)} $$\n")
    assert page.count("<math") == 2 and "$$" not in page and "\\(" not in page
    assert 'display="block"' in page and "<mfrac>" in page
    doc = convert_docstring("Loss.\n\n    .. math::\n      \\ell = -\\sum_i q_i\n\n    with "
                            ":math:`q_i \\ge 0`.\n")
    assert ".. math::" not in doc and ":math:" not in doc and doc.count("<math") == 2


def _saved_results(folder: Path) -> dict:
    """A small results folder in the formats `softxent bench --json` and `softxent ldl --json`
    print."""
    import json

    env = {"date": "2026-01-02T03:04:05+00:00", "machine": {"cpu": "Test CPU", "cores": 2},
           "load_average": [1.5, 1.0, 0.5], "versions": {"python": "3.11", "jax": "0.0"},
           "command": "softxent bench --json", "copy_bandwidth_gb_s": 7.5}
    bench = [{"loss": "kl_divergence", "impl": impl, "n": 4, "v": 8, "dtype": "float32",
              "median_s": seconds, "temp_bytes": 2**20, "bound_fraction": 0.25}
             for impl, seconds in [("optax", 0.0031), ("softxent", 0.0022), ("naive", 0.0043)]]
    metrics = {m: {"mean": 0.1234, "std": 0.0101} for m in
               ("chebyshev", "clark", "canberra", "kl", "cosine", "intersection")}
    ldl = [{"dataset": "Toy", "model": "maxent", "metrics": metrics, "seconds": 1.25, "l2": 0.0,
            "peer": {"model": "sa_bfgs", "seconds": 2.5, "metrics": metrics}, "speedup": 2.0}]
    files = {"bench.json": {"environment": env, "rows": bench},
             "ldl.json": {"environment": env, "results": ldl, "skipped": ["Bad.mat: broken"]},
             "surprise.json": [{"what": "a file no page knows", "value": 42}]}
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data))
    return files


def test_results_pages_show_the_saved_numbers_and_where_they_were_measured(tmp_path):
    import generate

    _saved_results(tmp_path / "in")
    generate.results(tmp_path / "in", tmp_path / "out")
    bench = (tmp_path / "out" / "benchmarks.md").read_text()
    assert "| kl_divergence | 4x8 | float32 | 3.1 | 2.2 | 4.3 | 1.41 |" in bench
    assert "Test CPU" in bench and "1.5, 1.0, 0.5" in bench and "2026-01-02" in bench
    assert (tmp_path / "out" / "figures" / "bench_speedup.png").stat().st_size > 0
    assert "![Speed-up over optax](figures/bench_speedup.png)" in bench
    ldl = (tmp_path / "out" / "ldl.md").read_text()
    assert "| Toy | softxent maxent | 0.1234 ± 0.0101 |" in ldl
    assert "2.50 (2.0× softxent's time)" in ldl and "Skipped Bad.mat: broken" in ldl
    index = (tmp_path / "out" / "index.md").read_text()
    assert "surprise.json" in index and "| a file no page knows | 42 |" in index


def test_a_missing_committed_or_unrenderable_results_file_fails_the_build(tmp_path):
    import generate

    _saved_results(tmp_path / "in")
    with pytest.raises(generate.BuildError, match="large_vocab.json"):
        generate.results(tmp_path / "in", tmp_path / "out",
                         committed={"large_vocab.json": "softxent bench --large-vocab --json"})
    (tmp_path / "in" / "notes.txt").write_text("typed in")
    with pytest.raises(generate.BuildError, match="notes.txt"):
        generate.results(tmp_path / "in", tmp_path / "out")


def test_the_committed_results_render(tmp_path):
    import generate

    pages = generate.results(generate.RESULTS, tmp_path)
    assert len(pages) == 6
    for name, command in generate.COMMITTED.items():
        assert (generate.RESULTS / name).exists(), f"{name} (made by {command}) is missing"
