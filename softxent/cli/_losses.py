"""List every registered loss with its kind and parameters."""

from __future__ import annotations

import argparse
import json

HELP = "list the registered losses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list")


def run(args: argparse.Namespace) -> int:
    from .. import list_losses

    specs = list_losses()
    if args.json:
        rows = [
            {
                "loss": s.name,
                "input": s.input,
                "targets": s.targets,
                "link": s.link,
                "output": s.output,
                "params": {p.name: p.default for p in s.params},
                "domains": {p.name: p.domain() for p in s.params},
                "summary": s.summary,
            }
            for s in specs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(s.name) for s in specs)
    for s in specs:
        params = ", ".join(f"{p.name}={p.default} in {p.domain()}" for p in s.params) or "-"
        kind = f"{s.input}/{s.link}/{s.output}"
        print(f"{s.name:<{width}}  {kind:<32}  {params}")
        print(f"{'':<{width}}  {s.summary}")
    return 0
