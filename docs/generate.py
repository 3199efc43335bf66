"""Generate the docs site's proof and results pages; ``make docs`` runs it before MkDocs.

    python docs/generate.py

Proofs: each page is the output of ``softxent prove NAME --format markdown``, so every step on
it was checked by SymPy while the page was made (a step that fails to check fails the build).

Results: every file under ``benchmarks/results/`` is rendered, none skipped: the known ones on
their own pages (with figures drawn from the same numbers), any other JSON file on the results
index as a generic table. A file in ``COMMITTED`` that is missing, or one that does not parse,
stops the build with a message naming it. Nothing on these pages is typed in.

Everything this writes is under ``docs/proofs/`` and ``docs/results/`` (ignored by git).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROOFS_OUT = ROOT / "docs" / "proofs"
RESULTS_OUT = ROOT / "docs" / "results"

PROOFS: dict[str, str] = {
    "binary_cross_entropy": "The note's proof: binary cross-entropy drives p to q, in p and in "
    "the logit, and what the note skipped (convexity, the conditioning near 0 and 1).",
    "softmax_cross_entropy": "K classes: the stationarity conditions on the simplex (K = 3), "
    "Gibbs' inequality for any K, and the logit Hessian.",
    "bce_on_softmax": "Per-component binary cross-entropy on softmax outputs: p = q only when "
    "the target sums to 1.",
    "z_loss": "The z-loss lambda (log Z)^2 keeps the minimiser p = q and pins the logits' shift "
    "to log Z = 0.",
    "soft_cap": "Soft-capping the logits at c bounds every probability: which targets it cannot "
    "reach.",
    "catalogue": "Every registry loss: its minimiser for a soft target, whether it is proper, "
    "the inverse map and convexity.",
}

# The results files this repository commits, with the command that writes each. A missing one
# is a build error; files other helpers or users add are rendered when present.
COMMITTED: dict[str, str] = {
    "bench_quick.json": "softxent bench --quick --json",
    "large_vocab.json": "softxent bench --large-vocab --json",
    "large_vocab_memory_8192x128000.json": "softxent bench --large-vocab --memory-only --shape "
    "8192,256,128000 --loss distillation_loss --loss sparse_distillation_loss --json",
    "ldl.json": "softxent ldl --data-dir ../shared/data/ldl --normalize --json",
    "ldl_sjaffe_l2_auto.json": "softxent ldl --data ../shared/data/ldl/SJAFFE.mat --l2 auto "
    "--peer --json",
    "verify.json": "softxent verify --json benchmarks/results/verify.json",
}

# Optional known files: rendered on their page when present, named as absent otherwise.
KNOWN_OPTIONAL: dict[str, str] = {
    "ldl_inverse_map.json": "see benchmarks/README.md",
}


class BuildError(Exception):
    """A results file is missing or malformed, or a proof failed to check."""


# -- small renderers ------------------------------------------------------------------------


def load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BuildError(f"{path.relative_to(ROOT)} is not JSON: {error}") from None


def table(header: list[str], rows: list[list[Any]], align: str = "") -> str:
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def environment(env: dict[str, Any] | None, source: str) -> str:
    """Where and when a result was measured, as its JSON records it."""
    if not env:
        return f"*`{source}` records no machine, versions or date.*\n"
    rows = []
    labels = {"date": "date", "command": "command", "machine": "machine",
              "load_average": "load average (1, 5, 15 min) at the start",
              "copy_bandwidth_gb_s": "copy bandwidth (GB/s, measured by the run)",
              "devices": "JAX devices"}
    for key, value in env.items():
        if key == "versions" and isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif key == "machine" and isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if key == "command":
            value = f"`{value}`"
        rows.append([labels.get(key, key), value])
    return f"Measured as recorded in `{source}`:\n\n" + table(["", ""], rows) + "\n"


def generic(data: Any) -> str:
    """Any JSON result as Markdown: a table for a list of flat objects, else key: value lines."""
    if isinstance(data, dict):
        parts, scalars = [], []
        for key, value in data.items():
            if key == "environment":
                continue
            if isinstance(value, list | dict) and value:
                parts.append(f"**{key}**\n\n" + generic(value))
            else:
                scalars.append([key, value])
        head = [table(["key", "value"], scalars)] if scalars else []
        return "\n\n".join(head + parts)
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        keys: list[str] = []
        for row in data:
            keys += [k for k in row if k not in keys]
        return table(keys, [[_cell(row.get(k, "")) for k in keys] for row in data])
    return f"```\n{json.dumps(data, indent=1)}\n```"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and set(value) == {"mean", "std"}:
        return f"{value['mean']:.4f} ± {value['std']:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _split(data: Any, rows_key: str) -> tuple[dict[str, Any] | None, Any]:
    """A results file's environment and its payload."""
    if isinstance(data, dict) and rows_key in data:
        return data.get("environment"), data[rows_key]
    return None, data


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- proofs ---------------------------------------------------------------------------------


def proofs() -> list[str]:
    """One page per proof, from ``softxent prove NAME --format markdown``, run side by side."""
    PROOFS_OUT.mkdir(parents=True, exist_ok=True)
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "softxent", "prove", name, "--format", "markdown"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for name in PROOFS
    }
    written = []
    for name, run in runs.items():
        out, err = run.communicate()
        if run.returncode != 0:
            raise BuildError(f"softxent prove {name} failed (exit {run.returncode}): "
                             f"{err.strip()}")
        title, body = _proof_page(out)
        page = (f"# {title}\n\n{PROOFS[name]}\n\n"
                f"*Generated by `softxent prove {name} --format markdown` when this site was "
                f"built; every numbered step was checked by SymPy.*\n\n{body}")
        (PROOFS_OUT / f"{name}.md").write_text(page, encoding="utf-8")
        written.append(f"proofs/{name}.md")
    index = ["# Proofs", "",
             "Each page is a derivation that SymPy checked step by step while this site was "
             "built: an identity reduced to 0, a root substituted back, a sign decided under the "
             "domain's assumptions. `softxent prove NAME` prints the same text, and "
             "`--format latex` a LaTeX version.", ""]
    index += [f"- [{name}]({name}.md): {text}" for name, text in PROOFS.items()]
    (PROOFS_OUT / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    return ["proofs/index.md", *written]


# A numbered step as Derivation.render("markdown") writes it: "N. claim *(how)*", where the
# how may hold one pair of parentheses.
_STEP = re.compile(
    r"^(?P<number>\d+)\. (?P<claim>.*) \*\((?P<how>[^()]*(?:\([^()]*\))?[^()]*)\)\*$")


def _proof_page(markdown: str) -> tuple[str, str]:
    """The derivation's title, and its body with headings one level up and each formula
    indented into its numbered step."""
    lines = markdown.strip("\n").splitlines()
    if not lines or not lines[0].startswith("## "):
        raise BuildError(f"softxent prove printed no '## title' line: {lines[:1]}")
    title = lines[0][3:].strip()
    body = []
    for line in lines[1:]:
        if line.startswith("#"):
            line = line[1:]
        elif line.startswith("   $$"):
            line = " " + line  # four spaces: a continuation of the list item
        elif (step := _STEP.match(line)) is not None:
            # A claim quotes formulas in plain text (p*, 2*q, p_i): not Markdown emphasis.
            claim = re.sub(r"([*_])", r"\\\1", step["claim"])
            line = f"{step['number']}. {claim} *({step['how']})*"
        body.append(line)
    return title, "\n".join(body) + "\n"


# -- results pages --------------------------------------------------------------------------


def saved_table(path: Path) -> str:
    """The Markdown table ``softxent bench --from-json`` prints for a saved run."""
    run = subprocess.run([sys.executable, "-m", "softxent", "bench", "--from-json", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise BuildError(f"softxent bench --from-json {path.name}: {run.stderr.strip()}")
    return run.stdout.strip()


def bench_page(path: Path, figures: Path) -> str:
    env, rows = _split(load(path), "rows")
    figure = _bench_figure(rows, figures / f"{path.stem}_speedup.png")
    return "\n".join([
        f"## softxent against optax (`{path.name}`)",
        "",
        "`jit(value_and_grad(mean loss))` in the logits; medians of repeated samples, the "
        "implementations of a case sampled in turn. *x optax* is optax's time over softxent's "
        "(above 1: softxent is faster); temp MiB is XLA's compiled temporary memory; the bound "
        "is 3·N·V·itemsize at the copy bandwidth the same run measured.",
        "",
        environment(env, f"benchmarks/results/{path.name}"),
        f"![Speed-up over optax]({figure})",
        "",
        saved_table(path),
        "",
    ])


def _bench_figure(rows: list[dict[str, Any]], name: Path) -> str:
    plt = _pyplot()
    cases: dict[tuple, dict[str, float]] = {}
    for row in rows:
        cases.setdefault((row["loss"], row["n"], row["v"], row["dtype"]), {})[row["impl"]] = (
            row["median_s"])
    dtypes = sorted({c[3] for c in cases})
    losses = list(dict.fromkeys(c[0] for c in cases))
    shapes = list(dict.fromkeys((c[1], c[2]) for c in cases))
    fig, axes = plt.subplots(1, len(dtypes), figsize=(5.5 * len(dtypes), 3.8), squeeze=False,
                             sharey=True)
    width = 0.8 / max(len(losses), 1)
    for ax, dtype in zip(axes[0], dtypes, strict=True):
        for i, loss in enumerate(losses):
            ratios = [cases.get((loss, n, v, dtype), {}) for n, v in shapes]
            heights = [r["optax"] / r["softxent"] if {"optax", "softxent"} <= r.keys() else 0
                       for r in ratios]
            ax.bar([s + i * width for s in range(len(shapes))], heights, width, label=loss)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([s + 0.4 - width / 2 for s in range(len(shapes))],
                      [f"{n}x{v}" for n, v in shapes])
        ax.set_title(dtype)
        ax.set_xlabel("N x V")
    axes[0][0].set_ylabel("optax time / softxent time")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, name)


def large_vocab_page(path: Path, figures: Path) -> str:
    env, rows = _split(load(path), "rows")
    figure = _large_vocab_figure(rows, figures / f"{path.stem}_memory.png")
    return "\n".join([
        "## Chunked linear forms against forming the logits",
        "",
        "`value_and_grad` in the hidden states and the output matrix. *unfused* forms the "
        "N x V logits and calls the fused loss; *linear* is the chunked linear form with "
        "per-example output, *linear_mean* the same with `reduction=\"mean\"`. Peak memory is "
        "the compiled step's arguments, outputs and temporaries. A run made with "
        "`--memory-only` compiled the steps from the inputs' shapes and timed nothing.",
        "",
        environment(env, f"benchmarks/results/{path.name}"),
        f"![Time and peak memory of each form]({figure})",
        "",
        saved_table(path),
        "",
    ])


def _large_vocab_figure(rows: list[dict[str, Any]], name: Path) -> str:
    """Time and peak memory per form; memory alone for a run compiled only
    (``--memory-only``, where no step was timed)."""
    plt = _pyplot()
    labels = [f"{r['loss'].replace('_loss', '')}\n{r['impl']} ({r['dtype']})" for r in rows]
    timed = all(r["median_s"] is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 6,
                                                             0.45 * len(rows) + 1.5),
                             sharey=True, squeeze=False)
    if timed:
        axes[0][0].barh(labels, [r["median_s"] * 1e3 for r in rows], color="tab:blue")
        axes[0][0].set_xlabel("ms per step")
    axes[0][-1].barh(labels, [r["peak_bytes"] / 2**20 for r in rows], color="tab:orange")
    axes[0][-1].set_xlabel("peak MiB")
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return _save(fig, name)


MEASURES = {"chebyshev": "Chebyshev ↓", "clark": "Clark ↓", "canberra": "Canberra ↓",
            "kl": "KL ↓", "cosine": "Cosine ↑", "intersection": "Intersection ↑"}


def ldl_page(paths: list[Path], figures: Path) -> str:
    parts = ["## LDL benchmark", "",
             "10-fold cross-validation of Geng's maximum-entropy model (softxent, optax's "
             "L-BFGS); where a run has the peer (`--peer`), SA-BFGS as PyLDL runs it (SciPy's "
             "L-BFGS-B) on the same folds in the same process. Mean ± std over folds; seconds "
             "include tracing and compiling.",
             ""]
    for path in paths:
        data = load(path)
        env, results = _split(data, "results")
        if isinstance(results, dict):  # `softxent ldl --data FILE --json`: one dataset
            env = results.get("environment")
            results = [{k: v for k, v in results.items() if k != "environment"}]
        regularised = any(r.get("l2") not in (0, 0.0, None) for r in results)
        title = ("The penalty chosen per fold (`--l2 auto`)" if regularised
                 else "Unregularised (Geng's model)")
        if len(results) == 1:
            title += f": {results[0]['dataset']}"
        parts += [f"### {title}", "", environment(env, f"benchmarks/results/{path.name}")]
        ours = sum(r["seconds"] for r in results)
        line = f"Total seconds over the {len(results)} datasets: softxent {ours:.0f}"
        if all("peer" in r for r in results):
            line += f", the SciPy peer {sum(r['peer']['seconds'] for r in results):.0f}"
        parts += [line + ".", ""]
        figure = _ldl_figure(results, figures / f"{path.stem}_kl.png")
        parts += [f"![KL of softxent and the peer per dataset]({figure})", "",
                  _ldl_table(results), ""]
        skipped = data.get("skipped", []) if isinstance(data, dict) else []
        parts += [f"Skipped {s}\n" for s in skipped]
    return "\n".join(parts)


def _metric_keys(metrics: dict[str, Any]) -> list[str]:
    return list(metrics)


def _ldl_table(results: list[dict[str, Any]]) -> str:
    keys = _metric_keys(results[0]["metrics"])
    rows = []
    sources = []
    for r in results:
        def cells(metrics: dict[str, Any], digits: int = 4) -> list[str]:
            return [f"{metrics[k]['mean']:.{digits}f} ± {metrics[k]['std']:.{digits}f}"
                    for k in keys]
        rows.append([r["dataset"], f"softxent {r['model']}", *cells(r["metrics"]),
                     f"{r['seconds']:.2f}"])
        if "peer" in r:
            rows.append([r["dataset"], "SA-BFGS (SciPy)", *cells(r["peer"]["metrics"]),
                         f"{r['peer']['seconds']:.2f} ({r['speedup']:.1f}× softxent's time)"])
        if "published" in r:
            pub = r["published"]
            rows.append([r["dataset"], f"{pub['method']} (published)",
                         *cells(pub["metrics"], 3), "n/a"])
            sources.append(f"{r['dataset']}: {pub['source']}")
    header = ["dataset", "method", *[MEASURES.get(k, k) for k in keys], "seconds"]
    text = table(header, rows, "ll" + "r" * (len(keys) + 1))
    return text + "".join(f"\n\nPublished figures: {s}" for s in sources)


def _ldl_figure(results: list[dict[str, Any]], name: Path) -> str:
    plt = _pyplot()
    key = next(k for k in results[0]["metrics"] if k.lower().startswith("k"))
    names = [r["dataset"] for r in results]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    xs = range(len(results))
    ax.bar([x - 0.2 for x in xs], [r["metrics"][key]["mean"] for r in results], 0.4,
           label="softxent maxent")
    if all("peer" in r for r in results):
        ax.bar([x + 0.2 for x in xs], [r["peer"]["metrics"][key]["mean"] for r in results], 0.4,
               label="SA-BFGS (SciPy)")
    ax.set_yscale("log")
    ax.set_ylabel(f"{MEASURES.get(key, key)} (mean over folds)")
    ax.set_xticks(list(xs), names, rotation=60, ha="right", fontsize=8)
    ax.legend()
    fig.tight_layout()
    return _save(fig, name)


def experiments_page(folders: list[Path], figures: Path) -> str:
    parts = ["## Experiments", "",
             "Saved runs of the shipped configs (`softxent run experiments/configs/NAME.toml`): "
             "each run's `summary.json` per loss, and the figures the run wrote.", ""]
    for folder in folders:
        summary = load(folder / "summary.json")
        metadata = load(folder / "metadata.json") if (folder / "metadata.json").exists() else {}
        env = {k: v for k, v in metadata.items() if k not in ("git_commit", "commit")}
        parts += [f"### {folder.name}", "",
                  environment(env, f"benchmarks/results/experiments/{folder.name}/metadata.json"),
                  generic([{"loss": label, **values} for label, values in summary.items()]), ""]
        for png in sorted((folder / "figures").glob("*.png")):
            target = figures / f"{folder.name}_{png.name}"
            shutil.copyfile(png, target)
            parts += [f"![{folder.name}: {png.stem}](figures/{target.name})", ""]
    return "\n".join(parts)


def _setting(params: dict[str, Any]) -> str:
    """``k=v, ...`` for a verify setting: numbers with ``:g``, a list of class weights in
    parentheses, a choice (``tail``) or an index as it is; ``defaults`` for none."""
    def shown(v: Any) -> str:
        if isinstance(v, list):
            return "(" + ", ".join(shown(x) for x in v) + ")"
        return f"{v:g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={shown(v)}" for k, v in params.items()) or "defaults"


def _cache_use(data: dict[str, Any]) -> str:
    """What a verify run took from its cache, which its time depends on."""
    if "programs_compiled" not in data:
        return ""
    return (f" (mpmath references: {data['references_computed']} computed, "
            f"{data['references_loaded_from_cache']} from the cache; XLA programs: "
            f"{data['programs_compiled']} compiled, {data['programs_loaded_from_cache']} "
            f"from the cache)")


def verify_page(path: Path) -> str:
    """``softxent verify --json``: the worst error per loss setting, order and dtype."""
    data = load(path)
    results = data.get("results", [])
    columns = [(d, o) for d in data.get("dtypes", []) for o in data.get("orders", [])]
    names = {0: "value", 1: "gradient", 2: "H v"}
    settings: dict[tuple[str, str], dict[tuple[str, int], dict[str, Any]]] = {}
    for r in results:
        params = _setting(r["params"])
        settings.setdefault((r["loss"], params), {})[(r["dtype"], r["order"])] = r
    rows = []
    for (loss, params), cells in settings.items():
        row: list[Any] = [f"`{loss}`", params]
        for key in columns:
            r = cells.get(key)
            row.append("" if r is None else f"{r['max_err']:.3g}" + ("" if r["passed"] else " ✗"))
        rows.append(row)
    failed = [r for r in results if not r["passed"]]
    header = ["loss", "parameters", *(f"{d} {names[o]}" for d, o in columns)]
    summary = (f"{len(results) - len(failed)} of {len(results)} within the tolerance of "
               f"{data.get('tolerance_units_of_roundoff', '?')} units of roundoff, "
               f"{data.get('points', '?')} points per setting and dtype (seed "
               f"{data.get('seed', '?')}), {data.get('seconds', '?')} s{_cache_use(data)}, on "
               f"{data.get('date', 'an unrecorded date')}.")
    return "\n".join([
        f"### {path.name}", "", f"Written by `{data.get('command', 'softxent verify --json')}`.",
        "", environment(data.get("environment"), f"benchmarks/results/{path.name}"), summary, "",
        "The worst error at each order, in units of roundoff (the measure is in `softxent "
        "verify --help`; ✗ marks a failure):", "", table(header, rows),
        *(["", "Failures:", "", *(f"- {r['loss']} {r['params']} order {r['order']} "
                                  f"{r['dtype']}: {r['failures'][:1] or r['worst']}"
                                  for r in failed)] if failed else []), ""])


def generic_page(path: Path, command: str) -> str:
    data = load(path)
    env = data.get("environment") if isinstance(data, dict) else None
    return "\n".join([f"### {path.name}", "", f"Written by `{command}`.", "",
                      environment(env, f"benchmarks/results/{path.name}"), generic(data), ""])


def _save(fig: Any, path: Path) -> str:
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return f"figures/{path.name}"


# -- the pages ------------------------------------------------------------------------------


def results(source: Path = RESULTS, out: Path = RESULTS_OUT,
            committed: dict[str, str] | None = None) -> list[str]:
    """The results pages for every file under ``source``, written to ``out``; ``committed``
    (default: ``COMMITTED`` for this repository's folder, none for another) names the files
    that must be there."""
    if committed is None:
        committed = COMMITTED if source == RESULTS else {}
    if out.exists():
        shutil.rmtree(out)
    figures = out / "figures"
    figures.mkdir(parents=True)
    missing = [name for name in committed if not (source / name).exists()]
    if missing:
        raise BuildError("missing results file(s) "
                         + ", ".join(f"{source / m} (made by `{committed[m]}`)"
                                     for m in missing))
    files = sorted(source.glob("*.json"))
    experiment_folders = sorted(p.parent for p in source.glob("experiments/*/summary.json"))
    strays = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix != ".json"
                    and p.parent.parent.name != "experiments"
                    and p.parent.parent.parent.name != "experiments")
    if strays:
        raise BuildError("no page renders " + ", ".join(str(p) for p in strays))
    used: set[str] = set()

    def page(name: str, title: str, intro: str, body: list[str]) -> str:
        text = f"# {title}\n\n{intro}\n\n" + ("\n".join(body) if body else
                                             "*No saved results of this kind are in "
                                             "`benchmarks/results/`.*\n")
        (out / name).write_text(text, encoding="utf-8")
        return f"results/{name}"

    def render(filename: str, renderer: Callable[[Path], str]) -> list[str]:
        path = source / filename
        if not path.exists():
            return []
        used.add(filename)
        return [renderer(path)]

    def render_all(pattern: str, renderer: Callable[[Path], str]) -> list[str]:
        paths = sorted(source.glob(pattern))
        used.update(p.name for p in paths)
        return [renderer(p) for p in paths]

    pages = [
        page("benchmarks.md", "Benchmarks",
             "How to regenerate: `softxent bench --json > benchmarks/results/bench.json` "
             "(see `benchmarks/README.md`).",
             render_all("bench*.json", lambda p: bench_page(p, figures))),
        page("large_vocab.md", "Large vocabulary",
             "How to regenerate: `softxent bench --large-vocab --json > "
             "benchmarks/results/large_vocab.json`, and the memory of the top-k teacher at "
             "LLM scale: `softxent bench --large-vocab --memory-only --shape 8192,256,128000 "
             "--loss distillation_loss --loss sparse_distillation_loss --json > "
             "benchmarks/results/large_vocab_memory_8192x128000.json`.",
             render_all("large_vocab*.json", lambda p: large_vocab_page(p, figures))),
    ]
    ldl_files = [p for p in sorted(source.glob("ldl*.json")) if p.name != "ldl_inverse_map.json"]
    used.update(p.name for p in ldl_files)
    ldl_body = [ldl_page(ldl_files, figures)] if ldl_files else []
    ldl_body += render("ldl_inverse_map.json",
                       lambda p: generic_page(p, KNOWN_OPTIONAL["ldl_inverse_map.json"]))
    pages.append(page("ldl.md", "Label distribution learning",
                      "How to regenerate: the `softxent ldl ... --json` commands in "
                      "`benchmarks/README.md`.", ldl_body))
    pages.append(page("experiments.md", "Experiments",
                      "How to regenerate: `softxent run CONFIG --out DIR`, then copy the run's "
                      "`summary.json`, `metadata.json` and the figures shown here into "
                      "`benchmarks/results/experiments/NAME/`.",
                      [experiments_page(experiment_folders, figures)]
                      if experiment_folders else []))
    pages.append(page("verification.md", "Verification",
                      "`softxent verify` compares the value, `jax.grad` and Hessian-vector "
                      "products of every loss, in float32 and float64, with its SymPy twin "
                      "evaluated by mpmath; how to regenerate: "
                      f"`{COMMITTED['verify.json']}`.",
                      render("verify.json", verify_page)))
    others = [generic_page(p, "see benchmarks/README.md") for p in files if p.name not in used]
    index = ["# Results", "",
             "Every page here is generated by `python docs/generate.py` (run by `make docs`) "
             "from the machine-readable results saved in `benchmarks/results/`; each shows the "
             "machine, the versions and the date its file records. `benchmarks/README.md` says "
             "how to regenerate each file.", "",
             "- [Benchmarks](benchmarks.md): softxent against optax and a naive implementation.",
             "- [Large vocabulary](large_vocab.md): the chunked linear forms.",
             "- [Label distribution learning](ldl.md): the LDL datasets against the peer.",
             "- [Experiments](experiments.md): the shipped experiment configs.",
             "- [Verification](verification.md): values, gradients and Hessians against "
             "SymPy.", ""]
    if others:
        index += ["## Other results", "", *others]
    (out / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    return ["results/index.md", *pages]


def main() -> int:
    try:
        written = proofs() + results()
    except BuildError as error:
        print(f"docs/generate.py: {error}", file=sys.stderr)
        return 1
    print(f"docs/generate.py: wrote {len(written)} pages: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
