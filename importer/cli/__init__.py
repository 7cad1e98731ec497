"""The ``ti-import`` command line: one sub-command per module of this package, dispatched from here.

Each command module offers ``add_parser(subparsers)``, which registers its options and sets
``handler`` to a function ``(argparse.Namespace) -> int`` returning the exit code. The command
line only parses, calls, and renders: the work is in ``importer.run`` and the rooms below it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from importer import __version__
from importer.cli import collector, demo, emulator, parse, run, verify
from importer.cli.logs import fatal

__all__ = ["main"]

_EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE
_EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

_COMMANDS = (run, verify, parse, emulator, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ti-import",
        description="Import threat-intelligence indicators from CSV, STIX 2.x and plain-list "
        "feeds into Microsoft Defender.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the process's own command line, not a caller's (tests): see ``collector``
        collector.tune()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        fatal("interrupted", _EXIT_INTERRUPTED)
        return _EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (``| head``): stop quietly, as SIGPIPE would
        _silence_stdout()
        return _EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush cannot fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file descriptor (tests)
        pass

