"""``ti-import demo``: run ``importer.demo`` and print its two summaries and the emulator's state."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from importer.cli.logs import configure_logging
from importer.demo import demo
from importer.errors import ConfigError
from importer.report.summary import summary

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="import the bundled sample feeds into an in-process emulator",
        description="Start the emulated TI API in-process, import every bundled sample feed through "
        "the real pipeline, and print the summary and the emulator's state. Needs nothing else.",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    try:
        first, second, state = asyncio.run(demo(progress=not args.no_progress))
    except ConfigError as exc:
        print(f"ti-import: {exc}", file=sys.stderr)
        return 2
    print(summary(first))
    print()
    print(_state_table(state))
    print()
    totals = second.totals()
    print(
        f"rerun: {totals['imported']} imported, {totals['already_present']} already present "
        f"— nothing is posted twice."
    )
    return first.exit_code() or second.exit_code()


def _state_table(state: dict[str, Any]) -> str:
    lines = ["emulator state (GET /_emulator/state):"]
    for tenant, held in state.get("tenants", {}).items():
        lines.append(
            f"  tenant {tenant}: {held.get('iocs', 0)} IOCs, {held.get('duplicate_iocs', 0)} duplicates"
        )
        for definition in held.get("alert_definitions", []):
            lines.append(
                f"    alert definition {definition['id']:>3}  {definition['name']:<40} "
                f"{definition['ioc_count']:>5} IOCs"
            )
    requests = ", ".join(
        f"{status}: {count}" for status, count in sorted(state.get("requests_by_status", {}).items())
    )
    lines.append(f"  requests by status: {requests}; tokens issued: {state.get('tokens_issued', 0)}")
    return "\n".join(lines)
