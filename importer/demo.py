"""The embedded default: the emulator in-process and every bundled sample feed through the real pipeline.

Needs no credentials, network or configuration: ``demo()`` starts the emulator on a free loopback
port and, for each demo target (the legacy TI API, then a Microsoft Sentinel workspace), imports
each file of ``feeds/samples/`` under its own definition with the demo client's credentials, then
imports again to show that a rerun adds nothing. ``ti-import demo`` prints what it returns.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import feeds
from importer.emulator import DEMO_CLIENT, DEMO_WORKSPACE
from importer.errors import ConfigError
from importer.fields import COMMON, build_definition, default_definition_name
from importer.report.counts import RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions
from importer.settings.target_options import target_options_of, tenant_scope_of
from importer.targets.registry import package
from importer.transport.connection import ConnectionSettings, Secret
from importer.transport.urls import url_problem

if TYPE_CHECKING:  # the server module (aiohttp.web) is imported only when the demo runs
    from importer.emulator import Emulator

__all__ = ["DEMO_TARGETS", "DemoRun", "demo", "sample_files"]

DEMO_TARGETS = ("ti", "sentinel")


class DemoRun(NamedTuple):
    """One target's two imports of the samples."""

    target: str
    first: RunReport
    rerun: RunReport


def sample_files() -> list[Path]:
    """The bundled sample feeds (not their expected outputs), in name order."""
    folder = Path(feeds.__file__).resolve().parent / "samples"
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "README")))


async def demo(*, progress: bool = False) -> tuple[list[DemoRun], dict[str, Any]]:
    """Import the samples twice into each demo target of a fresh emulator; the runs and the final state."""
    from importer.emulator import running_emulator  # noqa: PLC0415 -- aiohttp.web only for the demo

    files = sample_files()
    if not files:
        raise ConfigError("no sample feeds found in the installed feeds package")
    runs = []
    # A journal of its own, as a nightly run keeps one (thrown away after): reruns are answered from
    # it, and on Sentinel a value two samples share has one owner instead of changing hands.
    with tempfile.TemporaryDirectory(prefix="ti-import-demo-") as folder:
        state = StateOptions(path=Path(folder) / "state.sqlite", lock_dir=Path(folder))
        async with running_emulator() as emulator:
            for target in DEMO_TARGETS:
                settings = RunSettings(
                    target=target,
                    connection=_connection(emulator, target),
                    feeds=tuple(_sample_feed(path, target) for path in files),
                )
                first = await run_import(settings, OutputOptions(progress=progress), state=state)
                rerun = await run_import(settings, OutputOptions(progress=False), state=state)
                runs.append(DemoRun(target, first, rerun))
            return runs, emulator.state()


def _connection(emulator: Emulator, target: str) -> ConnectionSettings:
    """The demo client's connection to ``target`` on the emulator; Sentinel's is the demo workspace,
    with ARM's read-back on the emulator too (so a rerun without a journal finds what it holds)."""
    if target == "ti":
        return ConnectionSettings(
            auth_url=emulator.auth_url(1, tenant=DEMO_CLIENT.tenant),
            api_url=emulator.ti_url,
            client_id=DEMO_CLIENT.client_id,
            client_secret=Secret(DEMO_CLIENT.client_secret),
        )
    workspace = {
        "workspace_id": DEMO_WORKSPACE.workspace_id,
        "subscription_id": DEMO_WORKSPACE.subscription_id,
        "resource_group": DEMO_WORKSPACE.resource_group,
        "workspace_name": DEMO_WORKSPACE.name,
        "arm_url": emulator.sentinel_url,
    }
    entry = package(target)
    options = target_options_of(entry, flags={}, env={}, table=workspace, where="the demo",
                                check_url=_loopback_url)  # fmt: skip
    return ConnectionSettings(
        auth_url=emulator.auth_url(1, tenant=DEMO_WORKSPACE.tenant),
        api_url=emulator.sentinel_url,
        client_id=DEMO_CLIENT.client_id,
        client_secret=Secret(DEMO_CLIENT.client_secret),
        target_options=options,
        tenant_scope=tenant_scope_of(entry, options),
    )


def _loopback_url(url: str, named: str) -> None:
    problem = url_problem(url, allow_http=False)
    if problem is not None:  # the emulator's own URLs: a bug if ever
        raise ConfigError(f"{named} {problem}")


def _sample_feed(path: Path, target: str) -> FeedSettings:
    name = f"demo {default_definition_name(str(path))}"
    extras: dict[str, Any] = {"category": "Malware"} if target == "ti" else {}
    spec = build_definition(
        COMMON + package(target).fields,
        name,
        title=f"Demo: indicators from the sample feed {path.name}",
        description=f"Bundled sample feed {path.name}, imported by ti-import demo.",
        **extras,
    )
    return FeedSettings(source=str(path), definition=spec)
