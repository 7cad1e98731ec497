"""The embedded default: the emulator in-process and every bundled sample feed through the real pipeline.

Needs no credentials, network or configuration: ``demo()`` starts the emulator on a free loopback
port, imports each file of ``feeds/samples/`` under its own alert definition with the demo
client's credentials, then imports again to show that a rerun adds nothing. ``ti-import demo``
prints what it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import feeds
from importer.emulator import DEMO_CLIENT
from importer.errors import ConfigError
from importer.fields import COMMON, build_definition, default_definition_name
from importer.report.counts import RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings
from importer.targets.registry import package
from importer.transport.connection import ConnectionSettings, Secret

__all__ = ["demo", "sample_files"]

_TARGET = "ti"


def sample_files() -> list[Path]:
    """The bundled sample feeds (not their expected outputs), in name order."""
    folder = Path(feeds.__file__).resolve().parent / "samples"
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "README")))


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
            target=_TARGET, connection=connection, feeds=tuple(_sample_feed(path) for path in files)
        )
        first = await run_import(settings, OutputOptions(progress=progress))
        second = await run_import(settings, OutputOptions(progress=False))
        return first, second, emulator.state()


def _sample_feed(path: Path) -> FeedSettings:
    name = f"demo {default_definition_name(str(path))}"
    spec = build_definition(
        COMMON + package(_TARGET).fields,
        name,
        title=f"Demo: indicators from the sample feed {path.name}",
        description=f"Bundled sample feed {path.name}, imported by ti-import demo.",
        category="Malware",
    )
    return FeedSettings(source=str(path), definition=spec)
