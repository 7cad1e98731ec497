"""The sentinel target driven directly against the emulator, on one fake clock: uploads paced ahead
by the 100-a-minute window, a 429 waiting the seconds its message names, per-object errors, a
request refused whole, lost answers, and the token going to the upload and ARM origins only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from feeds.model import Indicator, Kind
from importer.emulator import DEMO_WORKSPACE, Emulator, EmulatorConfig, Faults, running_emulator
from importer.errors import ConfigError
from importer.model import ResolvedDefinition
from importer.targets.sentinel.rules import SentinelPace
from importer.targets.sentinel.target import SentinelTarget, open_sentinel_target
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, recording_server, sha1s, spec_for

SPEC = spec_for("feed.txt", "sentinel")
OPTIONS = (("workspace_id", DEMO_WORKSPACE.workspace_id), ("source_system", "ti-importer"))


@asynccontextmanager
async def sentinel(
    fake: FakeTime, stats: TransportStats, *, pace: SentinelPace | None = None, **config: Any
) -> AsyncIterator[tuple[Emulator, SentinelTarget]]:
    """An emulator and the target on ``fake``'s clock (the emulator's windows pass as our sleeps do)."""
    async with running_emulator(EmulatorConfig(clock=fake.wall, **config)) as emu:
        settings = connection_settings(emu, version=2, api_url=emu.sentinel_url, target_options=OPTIONS)
        async with open_sentinel_target(
            settings, stats, sleep=fake.sleep, clock=fake.clock, pace=pace, wall=fake.wall
        ) as target:
            yield emu, target


async def resolved(target: SentinelTarget) -> ResolvedDefinition:
    return await target.resolve_definition(SPEC, dry_run=False)


def uploads(emu: Emulator) -> int:
    return sum(emu.state()["requests_by_status"].values())


async def test_uploads_are_paced_ahead_by_the_window_and_never_meet_a_429(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with sentinel(
        fake_time, stats, pace=SentinelPace(uploads_per_minute=3), sentinel_uploads_per_minute=3
    ) as (
        emu,
        target,
    ):
        definition = await resolved(target)
        started = fake_time.now
        for part in range(5):  # the identity and five batches: six uploads, three a minute
            result = await target.send(definition, sha1s(2, start=2 * part))
            assert len(result.imported) == 2
        statuses = emu.state()["requests_by_status"]
    assert statuses.get("429") is None and stats.throttled == 0
    assert fake_time.now - started >= 60.0  # the fourth upload waited for the window


async def test_a_429_waits_the_seconds_its_message_names_and_loses_nothing(fake_time: FakeTime) -> None:
    stats = TransportStats()
    # Our pace believes 100 a minute; the service allows 2: it throttles, and we wait as told.
    async with sentinel(fake_time, stats, sentinel_uploads_per_minute=2) as (emu, target):
        definition = await resolved(target)
        results = [await target.send(definition, sha1s(3, start=3 * part)) for part in range(3)]
        held = emu.state()["totals"]["sentinel_indicators"]
    assert all(len(r.imported) == 3 and not r.failed for r in results) and held == 9
    assert stats.throttled >= 1 and max(fake_time.sleeps) >= 59  # "Try again in 60 seconds." (or less)


async def test_per_object_errors_reject_those_objects_and_import_the_rest(fake_time: FakeTime) -> None:
    stats = TransportStats()
    seen, gone = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    bad = Indicator(
        Kind.DOMAIN, "late.example", "f:2", first_seen=seen, expires=gone
    )  # ends before it starts
    good = [Indicator(Kind.DOMAIN, "a.example", "f:1"), Indicator(Kind.DOMAIN, "b.example", "f:3")]
    async with sentinel(fake_time, stats) as (emu, target):
        definition = await resolved(target)
        mixed = await target.send(definition, [good[0], bad, good[1]])
        alone = await target.send(definition, [bad])  # every object refused: a 400 naming it
        held = emu.state()["totals"]["sentinel_indicators"]
    assert [i.value for i, _ in mixed.imported] == ["a.example", "b.example"] and held == 2
    (refused,) = mixed.rejected
    assert refused[0] is bad and "valid_until must be later than valid_from" in refused[1]
    assert not alone.imported and alone.rejected[0][0] is bad
    assert "valid_until must be later than valid_from" in alone.rejected[0][1]


async def test_a_lost_answer_is_sent_again_and_makes_no_second_object(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with sentinel(fake_time, stats) as (emu, target):
        definition = await resolved(target)
        await target.send(definition, sha1s(1))  # the identity goes first, with a first indicator
        emu.set_api_faults(Faults(lost_after_write_rate=0.5, seed=3))
        result = await target.send(definition, sha1s(50, start=1))
        emu.set_api_faults(Faults())
        held = emu.state()["totals"]
    assert len(result.imported) == 50 and not result.failed
    assert held["sentinel_indicators"] == 51 and held["sentinel_duplicate_patterns"] == 0
    assert stats.lost_writes_recovered >= 1


async def test_a_value_sent_again_is_a_later_version_of_the_same_object(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with sentinel(fake_time, stats) as (emu, target):
        definition = await resolved(target)
        (first,) = (await target.send(definition, sha1s(1))).imported
        fake_time.advance(5)
        (again,) = (await target.update(definition, [(first[0], first[1])])).imported
        held = emu.state()["totals"]
    assert again[1] == first[1] and held["sentinel_indicators"] == 1


async def test_revoking_uploads_a_revoked_version_of_each_item(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with sentinel(fake_time, stats) as (emu, target):
        definition = await resolved(target)
        sent = (await target.send(definition, sha1s(120))).imported
        fake_time.advance(1)
        items = [(i.kind, i.value, remote_id) for i, remote_id in sent[:105]]
        revoked = await target.delete(definition, items)  # two uploads: 100 and 5
        held = emu.state()["totals"]
    assert sorted(revoked) == sorted(remote_id for _, _, remote_id in items)
    assert held["sentinel_revoked"] == 105 and held["sentinel_indicators"] == 120


async def test_the_token_goes_to_arms_origin_and_a_page_elsewhere_is_refused(fake_time: FakeTime) -> None:
    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response({"value": []})

    async def arm(request: web.Request) -> web.Response:
        return web.json_response({"value": [], "nextLink": other.url("/page2")})

    async with (
        recording_server(elsewhere) as other,
        recording_server(arm) as arm_server,
        running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu,
    ):
        coordinates = (
            ("subscription_id", DEMO_WORKSPACE.subscription_id), ("resource_group", "rg"),
            ("workspace_name", "ws"), ("arm_url", arm_server.url("/")),
        )  # fmt: skip
        settings = connection_settings(
            emu, version=2, api_url=emu.sentinel_url, target_options=OPTIONS + coordinates
        )
        async with open_sentinel_target(settings, TransportStats(), sleep=fake_time.sleep) as target:
            definition = await resolved(target)
            with pytest.raises(ConfigError, match="another origin"):
                _ = [r async for r in target.existing(definition)]
    (asked,) = arm_server.seen
    assert asked.authorization is not None and asked.authorization.startswith("Bearer ")
    assert "queryIndicators" in asked.path_qs and not other.seen  # the next page was never asked for
