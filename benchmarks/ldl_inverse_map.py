"""The LDL inverse-map table: improper losses, raw and mapped back, beside a proper one.

For each loss, one command (the same a user runs):

    softxent ldl --data-dir DIR --loss LOSS --inverse-map --json [--plugin MODULE]

fits Geng's maxent model by 10-fold cross-validation on every dataset and scores
the raw predictions and the predictions mapped back through the loss's symbolic
inverse map with the six LDL measures. This script runs those commands (or, with
--reuse, reads what they printed into DIR/LOSS.json) and writes one JSON file with
the machine, versions, date and commands, for the docs' results pages:

    python benchmarks/ldl_inverse_map.py --data-dir ../shared/data/ldl \\
        --out benchmarks/results/ldl_inverse_map.json

The file is written whole at the end (a temporary file renamed), so a failed run
leaves no partial results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "experiments/plugins/my_loss.py"
LOSSES: dict[str, list[str]] = {
    "kl_divergence": [],  # proper: the inverse map is the identity
    "focal_cross_entropy": [],  # gamma = 2 (the default)
    "poly1_cross_entropy": [],  # epsilon = 2
    "generalized_cross_entropy": [],  # k = 0.7
    "squared_miss": ["--plugin", PLUGIN],  # a user's loss
}
MEASURES = ("chebyshev", "clark", "canberra", "kl", "cosine", "intersection")


def command(data_dir: str, loss: str) -> list[str]:
    return ["softxent", "ldl", "--data-dir", data_dir, "--loss", loss, "--inverse-map",
            "--json", *LOSSES[loss]]


def environment(commands: list[str]) -> dict[str, object]:
    versions = {"python": platform.python_version()}
    for package in ("softxent", "jax", "jaxlib", "numpy", "scipy", "sympy"):
        versions[package] = metadata.version(package)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": cpu, "cores": os.cpu_count()},
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "versions": versions,
        "command": " ; ".join(commands),
    }


def run(data_dir: str, loss: str, reuse: Path | None) -> list[dict]:
    if reuse is not None:
        return json.loads((reuse / f"{loss}.json").read_text())
    done = subprocess.run(command(data_dir, loss), cwd=ROOT, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command(data_dir, loss))} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def skipped(data_dir: str, results: list[dict]) -> list[dict[str, str]]:
    """The datasets in the folder that have no result, with the loader's reason."""
    from softxent.ldl import LDLDataError, load_mat

    present = {r["dataset"] for r in results}
    out = []
    for path in sorted(Path(data_dir).glob("*.mat")):
        if path.stem in present:
            continue
        try:
            load_mat(path)
            reason = "no result"
        except (LDLDataError, ValueError) as err:
            reason = str(err)
        out.append({"dataset": path.stem, "reason": reason})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results"
                        / "ldl_inverse_map.json")
    parser.add_argument("--reuse", type=Path, help="read each command's output from DIR/LOSS.json")
    parser.add_argument("--loss", action="append", choices=list(LOSSES),
                        help="only these losses (repeatable; default all)")
    args = parser.parse_args(argv)
    chosen = args.loss or list(LOSSES)
    per_loss = {loss: run(args.data_dir, loss, args.reuse) for loss in chosen}
    rows, summary = [], []
    for loss, results in per_loss.items():
        for r in results:
            row = {"dataset": r["dataset"], "loss": loss, "k": r["k"], "seconds": r["seconds"]}
            for m in MEASURES:
                row[m] = r["metrics"][m]["mean"]
                row[f"{m} mapped"] = r["metrics_inverse_map"][m]["mean"]
            rows.append(row)
        maps = {r["inverse_map"] for r in results}
        line = {"loss": loss, "inverse_map": " | ".join(sorted(maps)), "datasets": len(results)}
        for m in MEASURES:
            line[f"{m} (mean over datasets)"] = sum(r["metrics"][m]["mean"] for r in results) \
                / len(results)
            line[f"{m} mapped"] = sum(r["metrics_inverse_map"][m]["mean"]
                                      for r in results) / len(results)
        summary.append(line)
    first = next(iter(per_loss.values()))
    data = {
        "environment": environment([" ".join(command(args.data_dir, loss)) for loss in chosen]),
        "what": "maxent (Geng 2016), 10-fold CV, float64, no penalty; each measure's mean over "
                "folds, raw and mapped back through the loss's symbolic inverse map",
        "summary": summary,
        "results": rows,
        "skipped": skipped(args.data_dir, first),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.parent.parent / f".{args.out.name}.partial"  # not in results/
    partial.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    partial.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
