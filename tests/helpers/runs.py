"""Targets and whole runs against the emulator, and a miniature of the pipeline's senders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feeds.model import Indicator
from importer.emulator import DEMO_CLIENT, Emulator
from importer.fields import MIRROR
from importer.model import BatchResult, InFlight, Options, ResolvedDefinition
from importer.report.counts import RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions, Tuning
from importer.settings.feeds import feed_of
from importer.targets.base import Target
from importer.targets.registry import all_fields, open_target, package
from importer.transport.stats import TransportStats
from tests.helpers.clock import FakeTime
from tests.helpers.data import connection_settings, feed_spec


# --- targets and runs ----------------------------------------------------------------------------
@asynccontextmanager
async def ti_target(
    emu: Emulator,
    fake: FakeTime,
    stats: TransportStats,
    *,
    bulk: bool = True,
    workers: int = 16,
    **overrides: Any,
) -> AsyncIterator[Target]:
    """The ti target against ``emu``, on ``fake``'s time; ``overrides``: connection settings."""
    settings = connection_settings(emu, **overrides)
    async with open_target(
        "ti", settings, stats, sleep=fake.sleep, clock=fake.clock, bulk=bulk, in_flight=InFlight(workers)
    ) as t:
        yield t


def tenant(emu: Emulator) -> dict[str, Any]:
    """The demo tenant's part of the emulator's state."""
    state: dict[str, Any] = emu.state()["tenants"][DEMO_CLIENT.tenant]
    return state


async def send_all(
    target: Target, definition: ResolvedDefinition, items: list[Indicator], batch: int, workers: int
) -> BatchResult:
    """A miniature of the pipeline: ``workers`` concurrent senders over batches of ``batch``."""
    total = BatchResult()
    queue: asyncio.Queue[list[Indicator]] = asyncio.Queue()
    for start in range(0, len(items), batch):
        queue.put_nowait(items[start : start + batch])

    async def worker() -> None:
        while not queue.empty():
            result = await target.send(definition, queue.get_nowait())
            total.imported += result.imported
            total.rejected += result.rejected
            total.failed += result.failed

    await asyncio.gather(*(worker() for _ in range(workers)))
    return total


def journaled_settings(
    emu: Emulator, feed: Path, *, mirror: bool = False, api: str = "ti", **kw: Any
) -> RunSettings:
    """One feed, "Mirrored", to ``api`` of ``emu``: batches of 40, four workers."""
    return RunSettings(
        target="mde" if api == "mde" else "ti",
        connection=connection_settings(emu, api=api),
        feeds=(FeedSettings(str(feed), feed_spec("Mirrored"), Options({MIRROR.key: mirror})),),
        tuning=Tuning(batch_size=40, workers=4),
        **kw,
    )


async def journaled_run(
    emu: Emulator, feed: Path, state: Path, *, mirror: bool = False, fake: FakeTime | None = None, **kw: Any
) -> RunReport:
    """``run_import`` of ``journaled_settings`` with the state journal at ``state``, as ``ti-import
    run`` calls it (on ``fake``'s time if given); ``reconcile``, ``force`` and ``mirror_max_share``
    go to the journal's options, anything else to the settings."""
    options = {k: kw.pop(k) for k in ("reconcile", "force", "mirror_max_share") if k in kw}
    timing: dict[str, Any] = {} if fake is None else {"sleep": fake.sleep, "clock": fake.clock}
    return await run_import(
        journaled_settings(emu, feed, mirror=mirror, **kw),
        OutputOptions(progress=False),
        state=StateOptions(path=state, **options),
        **timing,
    )


def table_settings(
    emu: Emulator, table: Mapping[str, Any], env: Mapping[str, str] | None = None, *, workers: int = 4
) -> RunSettings:
    """One feed as a config file's ``[[feed]]`` table gives it (its secrets from ``env``), to the ti
    target of ``emu``: batches of 40."""
    rows = {row.key: row for row in all_fields()}
    feed = feed_of(table, "test.toml: [[feed]] #1", datetime.now(UTC), package("ti"), rows, env=env or {})
    return RunSettings("ti", connection_settings(emu), (feed,), Tuning(batch_size=40, workers=workers))


async def held_values(emu: Emulator, name: str) -> set[str]:
    """What the demo tenant's one ti alert definition, the feed ``name``'s, holds, listed through the API."""
    (definition,) = tenant(emu)["alert_definitions"]
    async with open_target("ti", connection_settings(emu), TransportStats()) as target:
        resolved = ResolvedDefinition(definition["id"], feed_spec(name), "found")
        return {remote.value async for remote in target.existing(resolved)}


async def checked_run(settings: RunSettings, state: Path) -> RunReport:
    """``run_import`` of ``settings`` with the state journal at ``state``, on fake time, every feed's
    counts checked to add up (``FeedReport.check``)."""
    report = await run_import(
        settings, OutputOptions(progress=False), state=StateOptions(path=state), sleep=FakeTime().sleep
    )
    for feed in report.feeds:
        feed.check()
    return report
