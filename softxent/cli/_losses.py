"""List every registered loss with its family, kind and parameters."""

from __future__ import annotations

import argparse
import json

HELP = "list the registered losses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from typing import get_args

    from .._registry import Family

    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--family", choices=get_args(Family), default=None,
                        help="only this family: dense (whole arrays, targets of the logits' "
                             "shape; what verify, catalogue, experiments and bench take), "
                             "sparse (class indices or top-k teachers), chunked, linear "
                             "(default: every family)")


def run(args: argparse.Namespace) -> int:
    from .. import list_losses

    specs = list_losses(family=args.family)
    if args.json:
        rows = [
            {
                "loss": s.name,
                "family": s.family,
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
        kind = f"{s.family}: {s.input}/{s.targets}/{s.output}"
        print(f"{s.name:<{width}}  {kind:<48}  {params}")
        print(f"{'':<{width}}  {s.summary}")
    return 0
