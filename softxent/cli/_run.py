"""Run an experiment described by a TOML config (see experiments/configs/).

Results go to <out>/<name>-<timestamp>/: config.toml (resolved), metadata.json,
metrics.csv, summary.json and figures/. Example:

  softxent run experiments/configs/k3_proper.toml --set optimizer.steps=500
"""

from __future__ import annotations

import argparse
import sys

HELP = "run an experiment config (fixed-point or model runs with optax)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="TOML config file(s)")
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config key, e.g. optimizer.learning_rate=0.1")


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2e}"
    return str(value)


def run(args: argparse.Namespace) -> int:
    from ..experiments import ConfigError, load

    try:  # validate every config before any work
        configs = [load(path, args.overrides) for path in args.configs]
    except ConfigError as e:
        print(f"softxent run: {e}", file=sys.stderr)
        return 2
    from ..experiments._runner import run as run_config

    for config in configs:
        print(f"{config['name']} ({config['kind']}): {config.get('description', '')}")
        path, result = run_config(config, args.out, progress=True)
        first = next(iter(result.summary.values()))
        columns = [c for c in ("max_abs_p_minus_pstar", "train_kl", "test_kl",
                               "max_abs_p_minus_q", "time_s", "converged") if c in first]
        print(f"  {'loss':<40}" + "".join(f"{c:>22}" for c in columns))
        for label, row in result.summary.items():
            print(f"  {label:<40}" + "".join(f"{_fmt(row.get(c)):>22}" for c in columns))
        where = f"; results: {path}" if path is not None else ""
        print(f"  devices: {', '.join(result.devices)}{where}\n")
    return 0
