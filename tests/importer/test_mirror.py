"""Mirror mode, its guard, ``--reconcile`` after drift, and the mde headroom hooks, against the emulator.

Each run is ``execute`` with a state journal in ``tmp_path``, as ``ti-import run`` calls it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from importer.emulator import Emulator, EmulatorConfig, running_emulator
from importer.errors import ConfigError
from importer.model import ResolvedDefinition
from importer.report.counts import RunReport
from importer.report.summary import headroom_line, summary
from importer.run import run_import
from importer.settings import OutputOptions, StateOptions
from importer.state.journal import Journal
from importer.state.store import tenant_key
from importer.targets.registry import open_target
from importer.transport.stats import TransportStats
from tests.helpers import (
    FakeTime,
    connection_settings,
    feed_spec,
    journaled_run,
    journaled_settings,
    sha256,
    write_feed,
)


def held(emu: Emulator) -> int:
    (definition,) = emu.state()["tenants"]["contoso-demo"]["alert_definitions"]
    count: int = definition["ioc_count"]
    assert definition["duplicate_iocs"] == 0
    return count


async def values(emu: Emulator, report: RunReport) -> set[str]:
    """What the definition holds, listed through the API."""
    definition_id = report.feeds[0].definition_id
    assert definition_id is not None
    async with open_target("ti", connection_settings(emu), TransportStats()) as target:
        resolved = ResolvedDefinition(definition_id, feed_spec("Mirrored"), "found")
        return {remote.value async for remote in target.existing(resolved)}


async def test_mirror_deletes_exactly_the_stale_ones(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    first = await journaled_run(emulator, write_feed(tmp_path / "a.txt", range(100)), state, mirror=True)
    assert first.exit_code() == 0 and held(emulator) == 100
    today = [*range(20, 100), *range(200, 210)]  # 20 gone, 10 new
    report = await journaled_run(emulator, write_feed(tmp_path / "b.txt", today), state, mirror=True)
    feed = report.feeds[0]
    assert report.exit_code() == 0
    assert (feed.imported, feed.already_present, feed.stale, feed.deleted) == (10, 80, 20, 20)
    assert await values(emulator, report) == {sha256(n) for n in today}
    with Journal.open(state, target="ti", tenant=tenant_key(emulator.ti_url, "ti-importer-demo")) as journal:
        assert feed.definition_id is not None and journal.count(feed.definition_id) == 90
    again = await journaled_run(emulator, write_feed(tmp_path / "b.txt", today), state, mirror=True)
    assert again.feeds[0].deleted == 0 and again.feeds[0].imported == 0 and held(emulator) == 90


async def test_the_guard_refuses_a_large_deletion_until_forced(emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    await journaled_run(emulator, write_feed(tmp_path / "a.txt", range(100)), state)
    truncated = write_feed(tmp_path / "t.txt", range(30))  # a download cut short, say
    report = await journaled_run(emulator, truncated, state, mirror=True)
    feed = report.feeds[0]
    assert feed.stale == 70 and feed.deleted == 0 and feed.mirror_refused is not None
    assert "70 of 100" in feed.mirror_refused
    assert report.exit_code() == 1 and held(emulator) == 100  # nothing deleted at all
    assert report.as_dict()["feeds"][0]["mirror"]["refused"] == feed.mirror_refused
    # A higher share lets it through, as does --force.
    forced = await journaled_run(emulator, truncated, state, mirror=True, force=True)
    assert forced.feeds[0].deleted == 70 and forced.exit_code() == 0 and held(emulator) == 30


async def test_mirror_deletes_nothing_when_the_feed_was_not_read_completely(
    emulator: Emulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    await journaled_run(emulator, write_feed(tmp_path / "a.txt", range(50)), state)
    report = await journaled_run(emulator, tmp_path / "missing.txt", state, mirror=True, force=True)
    assert report.feeds[0].deleted == 0 and held(emulator) == 50


async def test_reconcile_repairs_drift_from_the_portal(emulator: Emulator, tmp_path: Path) -> None:
    state, feed = tmp_path / "state.sqlite", write_feed(tmp_path / "a.txt", range(60))
    first = await journaled_run(emulator, feed, state)
    listed = await values(emulator, first)
    assert len(listed) == 60
    # Someone deletes ten in the portal (through the API).
    definition_id = first.feeds[0].definition_id
    assert definition_id is not None
    async with open_target("ti", connection_settings(emulator), TransportStats()) as target:
        resolved = ResolvedDefinition(definition_id, feed_spec("Mirrored"), "found")
        doomed = [(r.kind, r.value, r.remote_id) async for r in target.existing(resolved)][:10]
        assert len(await target.delete(resolved, doomed)) == 10
    assert held(emulator) == 50
    plain = await journaled_run(emulator, feed, state)  # the journal still claims them: nothing sent
    assert plain.feeds[0].already_present == 60 and held(emulator) == 50
    repaired = await journaled_run(emulator, feed, state, reconcile=True)
    assert repaired.feeds[0].imported == 10 and repaired.exit_code() == 0 and held(emulator) == 60
    assert repaired.journal is not None and repaired.journal["listed_definitions"] == {definition_id: 50}


async def test_mde_dry_run_shows_the_headroom(tmp_path: Path, fake_time: FakeTime) -> None:
    state = tmp_path / "state.sqlite"
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await journaled_run(emu, write_feed(tmp_path / "a.txt", range(120)), state, api="mde", fake=fake_time)
        later = write_feed(tmp_path / "b.txt", range(100, 150))
        report = await journaled_run(emu, later, state, api="mde", dry_run=True, fake=fake_time)
        assert emu.state()["totals"]["mde_indicators"] == 120  # a dry run writes nothing
    assert report.headroom is not None and (report.headroom.held, report.headroom.free) == (120, 14_880)
    line = headroom_line(report)
    assert line == "15,000 cap: 120 held, 14,880 free; this run would add 30"
    assert line in summary(report)
    assert report.as_dict()["headroom"] == {"cap": 15_000, "held": 120, "free": 14_880, "this_run_adds": 30}


async def test_mde_past_the_cap_imports_up_to_it_and_exits_1(tmp_path: Path, fake_time: FakeTime) -> None:
    async with running_emulator(EmulatorConfig(mde_tenant_cap=50, clock=fake_time.wall)) as emu:
        source = write_feed(tmp_path / "a.txt", range(80))
        report = await journaled_run(emu, source, tmp_path / "s.sqlite", api="mde", fake=fake_time)
        assert emu.state()["totals"]["mde_indicators"] == 50
    feed = report.feeds[0]
    assert (feed.imported, feed.failed) == (50, 30) and report.exit_code() == 1
    assert any("cap" in reason.lower() or "limit" in reason.lower() for reason in feed.reject_reasons)


async def test_mirror_needs_the_journal(emulator: Emulator, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs the state journal"):
        await run_import(
            journaled_settings(emulator, write_feed(tmp_path / "a.txt", range(3)), mirror=True),
            OutputOptions(progress=False),
            state=dataclasses.replace(StateOptions(), path=None),
        )
