"""The ``softxent`` command line.

Each subcommand lives in its own module ``softxent/cli/_<name>.py`` exposing
``HELP``, ``add_arguments(parser)``, ``run(args) -> int`` and optionally ``NEEDS``,
the optional modules it imports with the extra that installs each. Modules keep
heavy imports (SymPy, matplotlib) inside ``run`` so ``softxent --help`` stays
fast; a missing extra is reported in one line with the pip command, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from collections.abc import Sequence

# Order here is the order in `softxent --help`.
COMMANDS: tuple[str, ...] = (
    "losses",
    "demo",
    "prove",
    "catalogue",
    "verify",
    "run",
    "ldl",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="softxent",
        description="Soft-target classification losses for JAX, verified with SymPy.",
    )
    parser.add_argument("--version", action="version", version=f"softxent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}._{name}")
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run, needs=getattr(module, "NEEDS", ()))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``softxent`` and ``python -m softxent``; returns the exit code."""
    from .._optional import MissingExtra, missing_extra, require

    args = build_parser().parse_args(argv)
    # Recorded in the results a command saves (see softxent/bench/_environment.py).
    args.command_line = shlex.join(["softxent", *(sys.argv[1:] if argv is None else argv)])
    try:
        for module, extra in args.needs:
            require(module, extra, "this command")
        return int(args.run(args) or 0)
    except MissingExtra as error:
        print(f"softxent {args.command}: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        missing = missing_extra(error, "this command")
        if missing is None:
            raise
        print(f"softxent {args.command}: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
