"""The mde target against the emulator: a mixed feed (URLs, IPv6), per-item rejects, pacing under
the documented limits, the tenant cap, BatchDelete, existing() paging, lost answers without duplicates."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from feeds.model import Detection, Indicator, Kind
from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig, Faults, running_emulator
from importer.errors import AuthError, ConfigError
from importer.model import Headroom, InFlight
from importer.targets.base import HasHeadroom
from importer.targets.mde.rules import MdePace
from importer.targets.mde.target import MdeTarget, open_mde_target
from importer.targets.registry import open_target
from importer.transport.connection import Secret
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, send_all, sha1s, spec_for

SPEC = spec_for(
    "feed-a",
    "mde",
    title="Feed A",
    description="Indicators from feed A",
    severity="High",
    recommended_action="Isolate the device",
    rbac_groups=("SOC",),
    application="ti-import",
)
MIXED = [
    Indicator(Kind.MD5, "d41d8cd98f00b204e9800998ecf8427e", "mixed.csv:1"),
    Indicator(Kind.SHA1, "da39a3ee5e6b4b0d3255bfef95601890afd80709", "mixed.csv:2"),
    Indicator(Kind.SHA256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "mixed.csv:3"),
    Indicator(Kind.IPV4, "203.0.113.7", "mixed.csv:4"),
    Indicator(Kind.IPV6, "2001:db8::dead:beef", "mixed.csv:5"),
    Indicator(Kind.DOMAIN, "evil.example", "mixed.csv:6"),
    Indicator(Kind.URL, "http://evil.example/payload.exe", "mixed.csv:7"),
    Indicator(Kind.URL, "https://[2001:db8::1]/c2", "mixed.csv:8"),
]


@asynccontextmanager
async def emulated(fake: FakeTime, **config: Any) -> AsyncIterator[Emulator]:
    """An emulator whose clock is ``fake``'s: its rate windows pass as the target's sleeps do."""
    async with running_emulator(EmulatorConfig(clock=fake.wall, **config)) as emu:
        yield emu


@asynccontextmanager
async def mde_target(
    emu: Emulator,
    fake: FakeTime,
    stats: TransportStats,
    *,
    bulk: bool = True,
    page_size: int = 10000,
    **overrides: Any,
) -> AsyncIterator[MdeTarget]:
    settings = connection_settings(emu, api="mde", **overrides)
    async with open_mde_target(
        settings,
        stats,
        sleep=fake.sleep,
        clock=fake.clock,
        bulk=bulk,
        cap=emu.config.mde_tenant_cap,
        page_size=page_size,
    ) as target:
        yield target


def indicators(emu: Emulator) -> int:
    count: int = emu.state()["tenants"][DEMO_CLIENT.tenant]["mde_indicators"]
    return count


async def test_a_mixed_feed_with_urls_and_ipv6_is_imported_with_the_definition_stamped(
    fake_time: FakeTime,
) -> None:
    async with emulated(fake_time) as emu, mde_target(emu, fake_time, TransportStats()) as target:
        assert all(target.unsupported(i) is None for i in MIXED)
        assert target.unsupported(
            Indicator(Kind.DOMAIN, "evil.example", "f:1", detection=Detection.ENDS_WITH)
        )
        planned = await target.resolve_definition(SPEC, dry_run=True)
        created = await target.resolve_definition(SPEC, dry_run=False)
        result = await target.send(created, MIXED)
        found = await target.resolve_definition(SPEC, dry_run=False)
        held = {(r.kind, r.value): r.remote_id async for r in target.existing(found)}
        entities = [e async for page in target._client.titled("Feed A") for e in page]
    assert (planned.id, planned.outcome) == ("Feed A", "planned")
    assert created.outcome == "created" and found.outcome == "found" and found.id == "Feed A"
    assert len(result.imported) == len(MIXED) and not result.rejected and not result.failed
    assert held == {(i.kind, i.value): remote_id for i, remote_id in result.imported}
    assert indicators(emu) == len(MIXED)
    for entity in entities:
        assert (entity["action"], entity["generateAlert"], entity["severity"]) == ("Audit", True, "High")
        assert entity["recommendedActions"] == "Isolate the device"
        assert entity["rbacGroupNames"] == ["SOC"] and entity["application"] == "ti-import"
        assert entity["description"] == "Indicators from feed A"


async def test_a_definition_the_api_would_refuse_is_a_config_error(fake_time: FakeTime) -> None:
    async with emulated(fake_time) as emu, mde_target(emu, fake_time, TransportStats()) as target:
        with pytest.raises(ConfigError, match="Audit requires generate_alert"):
            await target.resolve_definition(
                spec_for("f", "mde", title="t", description="d", generate_alert=False), dry_run=False
            )


async def test_per_item_failures_become_rejects_with_the_servers_reason(fake_time: FakeTime) -> None:
    bad = {
        "feed.txt:3": Indicator(Kind.SHA1, "zz" * 20, "feed.txt:3"),
        "feed.txt:7": Indicator(Kind.IPV4, "10.0.0.0/8", "feed.txt:7"),
        "feed.txt:9": Indicator(Kind.DOMAIN, "-bad-.example-", "feed.txt:9"),
    }
    items = [bad.get(i.origin, i) for i in sha1s(12)]
    stats = TransportStats()
    async with emulated(fake_time) as emu, mde_target(emu, fake_time, stats) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        result = await target.send(definition, items)
    reasons = {i.origin: reason for i, reason in result.rejected}
    assert sorted(reasons) == sorted(bad)
    assert reasons["feed.txt:3"].startswith("InvalidHashValue")
    assert reasons["feed.txt:7"].startswith("InvalidIpAddress")
    assert reasons["feed.txt:9"].startswith("InvalidDomainName")
    assert len(result.imported) == 9 and not result.failed
    assert indicators(emu) == 9
    assert stats.retries == 0  # per-item refusals are answers, not errors


async def test_the_cap_imports_up_to_it_and_fails_the_rest_with_the_reason(fake_time: FakeTime) -> None:
    async with (
        emulated(fake_time, mde_tenant_cap=120) as emu,
        mde_target(emu, fake_time, TransportStats()) as t,
    ):
        assert isinstance(t, HasHeadroom)
        before = await t.headroom()
        definition = await t.resolve_definition(SPEC, dry_run=False)
        first = await t.send(definition, sha1s(100))
        over = [*sha1s(50, start=100), Indicator(Kind.URL, "not a url", "feed.txt:999")]
        second = await t.send(definition, over)
        after = await t.headroom()
        # At the cap, indicators the tenant already holds still update (an upsert takes no room).
        again = await t.send(definition, sha1s(5))
    assert before == Headroom(0, 120) and before.free == 120
    assert len(first.imported) == 100
    assert len(second.imported) == 20 and len(second.failed) == 30
    assert all(reason.startswith("IndicatorLimitExceeded") for _, reason in second.failed)
    assert [i.origin for i, _ in second.rejected] == ["feed.txt:999"]  # invalid stays a reject
    assert after == Headroom(120, 120) and after.free == 0
    assert len(again.imported) == 5 and indicators(emu) == 120


async def test_batch_delete_in_chunks_of_500(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with emulated(fake_time) as emu, mde_target(emu, fake_time, stats) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        items, step = sha1s(1200), target.max_batch
        ids = [
            remote_id
            for start in range(0, len(items), step)
            for _, remote_id in (await target.send(definition, items[start : start + step])).imported
        ]
        requests = stats.requests
        deleted = await target.delete(definition, [(Kind.SHA1, "", i) for i in ids[:1100]])
        delete_calls = stats.requests - requests
        left = [r.remote_id async for r in target.existing(definition)]
    assert len(ids) == 1200 and len(set(ids)) == 1200
    assert sorted(deleted) == sorted(ids[:1100])
    assert delete_calls == 3
    assert sorted(left) == sorted(ids[1100:]) and indicators(emu) == 100


async def test_existing_pages_through_the_title_only(fake_time: FakeTime) -> None:
    other = spec_for("feed-b", "mde", title="Feed B", description="from B")
    stats = TransportStats()
    async with emulated(fake_time) as emu, mde_target(emu, fake_time, stats, page_size=7) as target:
        a = await target.resolve_definition(SPEC, dry_run=False)
        b = await target.resolve_definition(other, dry_run=False)
        await target.send(a, sha1s(30))
        await target.send(b, sha1s(5, start=30))
        requests = stats.requests
        held = [r async for r in target.existing(a)]
        listing_calls = stats.requests - requests
    assert sorted(r.value for r in held) == sorted(i.value for i in sha1s(30))
    assert len({r.remote_id for r in held}) == 30
    assert listing_calls == 5  # 7 + 7 + 7 + 7 + 2


async def test_lost_answers_leave_no_duplicates(fake_time: FakeTime) -> None:
    faults = Faults(lost_after_write_rate=0.1, reset_rate=0.03, seed=5)
    stats = TransportStats()
    items = [*sha1s(2900), *MIXED]
    async with (
        emulated(fake_time, api_faults=faults) as emu,
        mde_target(emu, fake_time, stats, max_attempts=8) as target,
    ):
        definition = await target.resolve_definition(SPEC, dry_run=False)
        result = await send_all(target, definition, items, batch=100, workers=6)
        listed = {r.remote_id: r.value async for r in target.existing(definition)}
        state = emu.state()
    assert state["faults_injected"]["lost_after_write"] >= 2
    assert len(result.imported) == len(items) and not result.failed and not result.rejected
    assert state["totals"]["mde_indicators"] == len(items)  # one indicator per value: nothing twice
    assert {remote_id: i.value for i, remote_id in result.imported} == listed
    assert stats.lost_writes_recovered >= 1


async def test_single_mode_submits_one_at_a_time(fake_time: FakeTime) -> None:
    async with (
        emulated(fake_time, mde_tenant_cap=2) as emu,
        mde_target(emu, fake_time, TransportStats(), bulk=False) as target,
    ):
        assert target.max_batch == 1
        definition = await target.resolve_definition(SPEC, dry_run=False)
        good = await target.send(definition, MIXED[:2])
        bad = await target.send(definition, [Indicator(Kind.SHA1, "zz" * 20, "f:3")])
        full = await target.send(definition, [MIXED[6]])
    assert len(good.imported) == 2
    assert len(bad.rejected) == 1 and "InvalidHashValue" in bad.rejected[0][1]
    assert len(full.failed) == 1 and "IndicatorLimitExceeded" in full.failed[0][1]
    assert indicators(emu) == 2


async def test_an_auth_error_escapes_send(fake_time: FakeTime) -> None:
    async with emulated(fake_time) as emu:
        async with mde_target(emu, fake_time, TransportStats()) as target:
            definition = await target.resolve_definition(SPEC, dry_run=False)
        async with mde_target(emu, fake_time, TransportStats(), client_secret=Secret("wrong")) as target:
            with pytest.raises(AuthError, match="AADSTS7000215"):
                await target.send(definition, sha1s(3))


async def test_open_target_gives_the_mde_target(emulator: Emulator) -> None:
    async with open_target("mde", connection_settings(emulator, api="mde", version=2), TransportStats()) as t:
        assert t.name == "mde" and t.max_batch == 500
        definition = await t.resolve_definition(SPEC, dry_run=False)
        result = await t.send(definition, MIXED)
    assert len(result.imported) == len(MIXED)


async def test_a_429_pauses_every_sender_and_all_still_arrive(fake_time: FakeTime) -> None:
    # The tenant allows 5 imports a minute but we were told 30 (another tool shares the quota):
    # the server's 429s pace us; each pauses the whole lane, so there is no storm of retries.
    stats = TransportStats()
    async with (
        emulated(fake_time, mde_import_per_minute=5) as emu,
        # 20 calls at 5 a minute take 4 minutes: the per-request retry budget must cover the wait.
        mde_target(emu, fake_time, stats, max_retry_seconds=900.0) as target,
    ):
        definition = await target.resolve_definition(SPEC, dry_run=False)
        result = await send_all(target, definition, sha1s(400), batch=20, workers=8)
        throttled = emu.state()["requests_by_status"].get("429", 0)
    assert len(result.imported) == 400 and not result.failed
    assert throttled == stats.throttled > 0
    assert throttled <= 2 * 20  # at most about one refusal per call, not one per worker per second


@pytest.mark.parametrize("scale", [0.01])
async def test_the_documented_pace_meets_no_429s_scaled(scale: float) -> None:
    # Real time, scaled: the emulator's minute and the target's minute both last 60 * scale s.
    calls, per_call = 45, 20
    stats = TransportStats()
    async with running_emulator(EmulatorConfig(mde_window_scale=scale)) as emu:
        settings = connection_settings(emu, api="mde")
        async with open_mde_target(
            settings, stats, pace=MdePace(scale=scale), in_flight=InFlight(8)
        ) as target:
            definition = await target.resolve_definition(SPEC, dry_run=False)
            started = time.monotonic()
            result = await send_all(target, definition, sha1s(calls * per_call), batch=per_call, workers=8)
            elapsed = time.monotonic() - started
        statuses = emu.state()["requests_by_status"]
    assert len(result.imported) == calls * per_call and not result.failed
    assert statuses.get("429", 0) == 0 and stats.throttled == 0
    minute = 60 * scale
    # 45 calls at 30 a minute: the first 30 at once, the rest once the first answers are a minute old.
    assert minute <= elapsed <= minute * 3  # (loose above: a loaded CI machine is slow)
