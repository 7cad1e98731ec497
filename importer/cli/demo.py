"""``ti-import demo``: the emulator in-process, every bundled sample feed through the real pipeline.

Needs no credentials, network or configuration: it starts the emulator on a free loopback port,
imports each file of ``feeds/samples/`` under its own alert definition with the demo client's
credentials, prints the summary and what the emulated tenant now holds, then imports again to
show that a rerun adds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import feeds
from importer.cli.logs import configure_logging
from importer.cli.run import OutputOptions, execute
from importer.emulator import DEMO_CLIENT
from importer.errors import ConfigError
from importer.model import DefinitionSpec
from importer.report.counts import RunReport
from importer.settings import FeedSettings, RunSettings, Tuning, default_definition_name
from importer.transport.connection import ConnectionSettings, Secret

__all__ = ["add_parser", "demo", "sample_files"]


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


def sample_files() -> list[Path]:
    """The bundled sample feeds (not their expected outputs), in name order."""
    folder = Path(feeds.__file__).resolve().parent / "samples"
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "README")))


def _handle(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    try:
        first, second, state = asyncio.run(demo(progress=not args.no_progress))
    except ConfigError as exc:
        print(f"ti-import: {exc}", file=sys.stderr)
        return 2
    print(first.summary())
    print()
    print(_state_table(state))
    print()
    totals = second.totals()
    print(
        f"rerun: {totals['imported']} imported, {totals['already_present']} already present "
        f"— nothing is posted twice."
    )
    return first.exit_code() or second.exit_code()


async def demo(*, progress: bool = False) -> tuple[RunReport, RunReport, dict[str, Any]]:
    """Import the samples twice into a fresh emulator; the two reports and the final state."""
    from importer.emulator import running_emulator  # noqa: PLC0415 -- aiohttp.web only for the demo

    files = sample_files()
    if not files:
        raise ConfigError("no sample feeds found in the installed feeds package")
    async with running_emulator() as emulator:
        connection = ConnectionSettings(
            auth_url=emulator.auth_url(1, tenant=DEMO_CLIENT.tenant),
            api_url=emulator.ti_url,
            client_id=DEMO_CLIENT.client_id,
            client_secret=Secret(DEMO_CLIENT.client_secret),
        )
        settings = RunSettings(
            target="ti",
            connection=connection,
            feeds=tuple(_sample_feed(path) for path in files),
            tuning=Tuning(),
        )
        first = await execute(settings, OutputOptions(progress=progress))
        second = await execute(settings, OutputOptions(progress=False))
        return first, second, emulator.state()


def _sample_feed(path: Path) -> FeedSettings:
    name = f"demo {default_definition_name(str(path))}"
    spec = DefinitionSpec(
        name=name,
        title=f"Demo: indicators from the sample feed {path.name}",
        description=f"Bundled sample feed {path.name}, imported by ti-import demo.",
        severity="Medium",
        category="Malware",
    )
    return FeedSettings(source=str(path), definition=spec)


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
