"""Run an experiment described by a TOML config (see experiments/configs/).

Results go to <out>/<name>-<timestamp>/: config.toml (resolved), metadata.json,
metrics.csv, summary.json and figures/. Example:

  softxent run experiments/configs/k3_proper.toml --set optimizer.steps=500
"""

from __future__ import annotations

import argparse

HELP = "run an experiment config (fixed-point or model runs with optax)"
# The optional modules this command needs, with the extra that installs each.
NEEDS = (("optax", "experiments"), ("matplotlib", "experiments"), ("tqdm", "experiments"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="TOML config file(s)")
    parser.add_argument("--out", default="results", help="results folder (default: results)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config key, e.g. optimizer.learning_rate=0.1")
    from .. import _distributed

    _distributed.add_arguments(parser)


# Divergences are >= 0; a computed one just below 0 is rounding (KL summed as
# q (log q - log p) at p = q), printed as 0. More negative than this is shown as it is.
DIVERGENCES = ("train_kl", "test_kl", "kl_to_teacher")
ROUNDING = 1e-6  # float32's resolution of a value of order 1, above any float64 rounding


def _fmt(value, column: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column in DIVERGENCES and isinstance(value, float) and -ROUNDING < value < 0:
        value = 0.0
    if isinstance(value, float):
        return f"{value:.2e}"
    if isinstance(value, dict) and {"mean", "std"} <= value.keys():
        mean = value["mean"]
        if column in DIVERGENCES and -ROUNDING < mean < 0:
            mean = 0.0
        return f"{mean:.4f} ± {value['std']:.4f}"
    return str(value)


# Summary columns worth a terminal line, per experiment kind; the rest is in summary.json.
_COLUMNS = (
    "max_abs_p_minus_pstar", "train_kl", "test_kl", "max_abs_p_minus_q",
    "accuracy", "nll", "ece", "kl_to_teacher", "time_s", "converged",
)


def summary_table(summary: dict[str, dict]) -> str:
    """The run's summary as terminal lines: one row per loss or model."""
    first = next(iter(summary.values()))
    columns = [c for c in _COLUMNS if c in first]
    lines = [f"  {'loss or model':<40}" + "".join(f"{c:>22}" for c in columns)]
    for label, row in summary.items():
        if any(c in row for c in columns):  # skip rows such as the run's settings
            lines.append(f"  {label:<40}" + "".join(f"{_fmt(row.get(c), c):>22}"
                                                    for c in columns))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import _distributed
    from ..experiments import load
    from ._paths import UsageError, output_folder, readable_file

    # Every config and the results folder are checked before any work: a mistake
    # found after training would lose it. Errors reach the CLI's one-line report.
    output_folder(args.out)
    for path in args.configs:
        readable_file(path, "config")
    try:
        _distributed.settings(args)
    except _distributed.DistributedError as error:
        raise UsageError(str(error)) from None
    # Before load, which may ask JAX for devices: the processes must join first.
    writer = _distributed.start(args, "run")
    configs = [load(path, args.overrides) for path in args.configs]
    from ..experiments._runner import run as run_config

    for config in configs:
        if writer:
            print(f"{config.name} ({config.kind}): {config.description}", flush=True)
        try:
            path, result = run_config(config, args.out, progress=writer)
        except Exception as error:
            error.add_note(f"no results folder was written for {config.name}")
            raise
        if writer:
            print(summary_table(result.summary))
            print(f"  devices: {', '.join(result.devices)}; results: {path}\n")
    _distributed.finish()
    return 0
