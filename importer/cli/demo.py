"""``ti-import demo``: run ``importer.demo``; print each target's summary and rerun, and the final state."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from importer.cli.logs import configure_logging
from importer.demo import DemoRun, demo
from importer.errors import ConfigError
from importer.report.summary import summary

__all__ = ["add_parser"]

_NAMES = {"ti": "the legacy TI API", "sentinel": "a Microsoft Sentinel workspace"}


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="import the bundled sample feeds into an in-process emulator",
        description="Start the emulated Defender TI API and Sentinel workspace in-process, import every "
        "bundled sample feed into each through the real pipeline, and print the summaries and the "
        "emulator's state. Needs nothing else.",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    try:
        runs, state = asyncio.run(demo(progress=not args.no_progress))
    except ConfigError as exc:
        print(f"ti-import: {exc}", file=sys.stderr)
        return 2
    for run in runs:
        _print_run(run, state)
    print("emulator state (GET /_emulator/state):")
    print(_state_table(state))
    return max((code for run in runs for code in (run.first.exit_code(), run.rerun.exit_code())), default=0)


def _print_run(run: DemoRun, state: dict[str, Any]) -> None:
    print(f"== {run.target}: the samples into {_NAMES.get(run.target, run.target)} ==")
    print(summary(run.first))
    totals = run.rerun.totals()
    print(
        f"rerun: {totals['imported']} imported, {totals['already_present']} already present "
        f"— nothing is posted twice."
    )
    print()


def _state_table(state: dict[str, Any]) -> str:
    lines = []
    for tenant, held in state.get("tenants", {}).items():
        lines.append(
            f"  tenant {tenant}: {held.get('iocs', 0)} TI IOCs, {held.get('duplicate_iocs', 0)} duplicates"
        )
        for definition in held.get("alert_definitions", []):
            lines.append(
                f"    alert definition {definition['id']:>3}  {definition['name']:<40} "
                f"{definition['ioc_count']:>5} IOCs"
            )
        lines.append(
            f"  Sentinel: {held.get('sentinel_indicators', 0)} indicators "
            f"({held.get('sentinel_objects', 0)} STIX objects with the feeds' identities), "
            f"{held.get('sentinel_revoked', 0)} revoked, "
            f"{held.get('sentinel_duplicate_patterns', 0)} duplicate patterns"
        )
    requests = ", ".join(
        f"{status}: {count}" for status, count in sorted(state.get("requests_by_status", {}).items())
    )
    lines.append(f"  requests by status: {requests}; tokens issued: {state.get('tokens_issued', 0)}")
    return "\n".join(lines)
