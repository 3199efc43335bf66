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

from . import _interrupt
from ._paths import UsageError

# Order here is the order in `softxent --help`.
COMMANDS: tuple[str, ...] = (
    "losses",
    "demo",
    "prove",
    "catalogue",
    "analyze",
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
    parser.add_argument("--debug", action="store_true", default=False, help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plugins = argparse.ArgumentParser(add_help=False)
    plugins.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                         help="import MODULE (a module name or a .py file) first, so the "
                         "losses it registers are available (repeatable)")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}._{name}")
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[plugins],
        )
        module.add_arguments(command)
        # SUPPRESS: the subcommand's default must not overwrite `softxent --debug CMD`.
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=_DEBUG_HELP)
        command.set_defaults(run=module.run, needs=getattr(module, "NEEDS", ()))
    return parser


_DEBUG_HELP = "show the traceback of an error instead of its one-line message"


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that report a user's mistake (exit status 2)."""
    from .._optional import MissingExtra
    from ..experiments import ConfigError
    from ..ldl import LDLDataError

    return UsageError, ConfigError, LDLDataError, MissingExtra


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``softxent`` and ``python -m softxent``; returns the exit code.

    A user's mistake (a bad path, config or data file, a missing optional
    dependency) is one line on stderr and exit status 2; any other failure is
    one line naming it and exit status 1; ``--debug`` shows the traceback
    instead. SIGINT and SIGTERM end the process with one line and exit status
    130 or 143 (see ``_interrupt``).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    for i, item in enumerate(argv[:-1]):
        if item == "--expr":  # a formula may start with '-', which argparse reads as an option
            argv[i : i + 2] = [f"--expr={argv[i + 1]}"]
            break
    command = next((a for a in argv if a in COMMANDS), "")
    with _interrupt.handled(command):
        args = build_parser().parse_args(argv)
        # Recorded in the results a command saves (see softxent/bench/_environment.py).
        args.command_line = shlex.join(["softxent", *argv])
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    from .._optional import missing_extra, require
    from .._plugins import PluginError, load_plugins

    prefix = f"softxent {args.command}"
    try:
        load_plugins(args.plugin)
    except PluginError as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        return 2
    try:
        for module, extra in args.needs:
            require(module, extra, "this command")
        return int(args.run(args) or 0)
    except ModuleNotFoundError as error:
        missing = missing_extra(error, "this command")
        if missing is None or args.debug:
            raise
        print(f"{prefix}: {missing}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if args.debug:
            raise
        if isinstance(error, _user_errors()):
            print(f"{prefix}: {_one_line(error)}", file=sys.stderr)
            return 2
        notes = "".join(f"; {note}" for note in getattr(error, "__notes__", ()))
        print(f"{prefix}: failed: {type(error).__name__}: {_one_line(error)}{notes} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split("\n"))
