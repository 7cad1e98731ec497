"""Our mde client against the emulator as strict as the API (issue 14): IPv6 with all 8 segments on the
wire and the feeds' form in the journal, ``externalId`` on every import (another tool's indicators
left alone), ``application`` out of what decides an update, a ``BatchDelete`` answered 404 settled,
the BatchDelete hourly window kept, expired indicators neither listed nor counted — and mirror mode
converging in one run over a tenant whose indicators were partly deleted in the portal.

Runs are ``run_import`` (what ``ti-import run`` calls) against the in-process emulator, on fake time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from feeds.model import Indicator, Kind
from importer.emulator import Emulator, EmulatorConfig, Faults, running_emulator
from importer.model import Headroom, Options, ResolvedDefinition
from importer.report.counts import FeedReport, RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions, Tuning
from importer.targets.mde.client import external_id, indicator_body, indicator_stamp
from importer.targets.mde.rules import DEFAULT_AUDIENCE, MdePace
from importer.targets.mde.target import MdeTarget, open_mde_target
from importer.transport.stats import TransportStats
from tests.helpers import (
    FakeTime,
    connection_settings,
    get_token,
    mde_delete,
    mde_held,
    post_json,
    sha1,
    sha1s,
    sha256,
    spec_for,
    write_feed,
)

TITLE = "Feed A"
SPEC = spec_for("feed-a", "mde", title=TITLE, description="from feed A")
# Canonical (as the feeds write them) and as the API takes and lists them: all 8 segments.
IPV6 = {
    "2001:db8::7": "2001:0db8:0000:0000:0000:0000:0000:0007",
    "2001:db8:0:1::abcd": "2001:0db8:0000:0001:0000:0000:0000:abcd",
    "::1": "0000:0000:0000:0000:0000:0000:0000:0001",
    "fe80::1:2:3:4": "fe80:0000:0000:0000:0001:0002:0003:0004",
}


# --- runs and targets --------------------------------------------------------------------------------
def settings(emu: Emulator, feed: Path, **given: Any) -> RunSettings:
    """One feed (titled ``TITLE`` unless given) to ``emu``'s mde API; ``mirror`` is the feed's option."""
    options = {"title": TITLE, "description": "from feed A", **given}
    mirror = options.pop("mirror", False)
    return RunSettings(
        target="mde",
        connection=connection_settings(emu, api="mde"),
        feeds=(FeedSettings(str(feed), spec_for("feed-a", "mde", **options), Options({"mirror": mirror})),),
        tuning=Tuning(batch_size=50, workers=4),
    )


async def run(emu: Emulator, fake: FakeTime, feed: Path, state: Path | None, *, reconcile: bool = False,
              mirror_max_share: float = 0.9, **given: Any) -> FeedReport:  # fmt: skip
    """One run of ``settings``; the mirror guard is loosened (its own tests are elsewhere)."""
    report: RunReport = await run_import(
        settings(emu, feed, **given),
        OutputOptions(progress=False),
        state=StateOptions(path=state, reconcile=reconcile, mirror_max_share=mirror_max_share),
        sleep=fake.sleep,
        clock=fake.clock,
    )
    (feed_report,) = report.feeds
    feed_report.check()  # the buckets still add up
    assert report.exit_code() == 0, (feed_report.error, feed_report.reasons)
    return feed_report


def counts(feed: FeedReport) -> tuple[int, int, int]:
    return feed.imported, feed.updated, feed.already_present


@asynccontextmanager
async def mde_target(
    fake: FakeTime, stats: TransportStats, *, pace: MdePace | None = None, **config: Any
) -> AsyncIterator[tuple[Emulator, MdeTarget]]:
    """An emulator on ``fake``'s clock and the mde target on the same clock (and cap)."""
    async with running_emulator(EmulatorConfig(clock=fake.wall, **config)) as emu:
        settings = connection_settings(emu, api="mde")
        cap = emu.config.mde_tenant_cap
        opened = open_mde_target(settings, stats, sleep=fake.sleep, clock=fake.clock, pace=pace, cap=cap)
        async with opened as target:
            yield emu, target


async def submit_by_hand(emu: Emulator, value: str, **extra: Any) -> None:
    """An indicator made by another tool (or an analyst) under our title."""
    body = {"indicatorValue": value, "indicatorType": "FileSha1", "action": "Block", "title": TITLE,
            "description": "someone else's", **extra}  # fmt: skip
    async with aiohttp.ClientSession() as session:
        token = await get_token(session, emu, DEFAULT_AUDIENCE)
        status, answer = await post_json(session, emu.mde_url + "indicators", token, body)
    assert status == 200, answer


# --- IPv6: exploded on the wire, canonical in the journal --------------------------------------------
async def test_ipv6_is_sent_with_all_8_segments_and_listed_back_as_the_feed_wrote_it(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    feed = tmp_path / "v6.txt"
    feed.write_text("".join(f"{value}\n" for value in IPV6))
    state = tmp_path / "state.sqlite"
    # Documentation, loopback, link-local addresses, on MISP's lists too: kept for this test only.
    private = {"allow_private": True, "warninglists": False}
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        first = await run(emu, fake_time, feed, state, **private)
        assert counts(first) == (4, 0, 0) and not first.rejected
        held = await mde_held(emu)
        # A listing (no journal; --reconcile) finds each one held as it was sent: nothing is sent
        # again, and nothing counts as stale for mirror mode.
        listed = await run(emu, fake_time, feed, None, **private)
        reconciled = await run(emu, fake_time, feed, state, reconcile=True, mirror=True, **private)
    assert {i["indicatorValue"] for i in held} == set(IPV6.values())
    assert counts(listed) == counts(reconciled) == (0, 0, 4)
    assert (reconciled.stale, reconciled.deleted) == (0, 0)


async def test_an_ipv6_zone_is_refused_before_it_is_sent(fake_time: FakeTime) -> None:
    async with mde_target(fake_time, TransportStats()) as (_, target):
        reason = target.unsupported(Indicator(Kind.IPV6, "fe80::1%eth0", "f:1"))
    assert reason is not None and "zone" in reason


# --- externalId --------------------------------------------------------------------------------------
async def test_every_import_carries_a_stable_external_id_and_other_tools_indicators_are_left_alone(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    state = tmp_path / "state.sqlite"
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, fake_time, write_feed(tmp_path / "a.txt", range(6)), state)
        ids = {i["indicatorValue"]: i["externalId"] for i in await mde_held(emu)}
        # Another tool uses our title for its own indicator (its own externalId); an analyst made
        # one by hand (none: it may be ours from before externalId was sent, as mirror assumes).
        await submit_by_hand(emu, sha1(100), externalId="other-tool:42")
        await submit_by_hand(emu, sha1(101))
        # The feed drops 0..2; the listing (--reconcile) sees the hand-made ones too.
        mirrored = await run(emu, fake_time, write_feed(tmp_path / "b.txt", range(3, 6)), state,
                             reconcile=True, mirror=True)  # fmt: skip
        left = {i["indicatorValue"]: i.get("externalId") for i in await mde_held(emu)}
    assert ids == {sha256(n): external_id(TITLE, "FileSha256", sha256(n)) for n in range(6)}
    assert all(len(value) <= 40 for value in ids.values())
    assert (mirrored.stale, mirrored.deleted) == (4, 4)  # 0..2 and the one without an externalId
    assert left == {**{sha256(n): ids[sha256(n)] for n in range(3, 6)}, sha1(100): "other-tool:42"}


# --- application: only a new indicator takes it -------------------------------------------------------
async def test_a_changed_application_is_not_sent_again_on_every_run(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    state, feed = tmp_path / "state.sqlite", write_feed(tmp_path / "a.txt", range(5))
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, fake_time, feed, state, application="scanner-1")
        # The API keeps an indicator's first application: were it in the stamp, every listing run
        # would see "scanner-1", want "scanner-2" and send all five again, forever.
        for _ in range(2):
            assert counts(await run(emu, fake_time, feed, None, application="scanner-2")) == (0, 0, 5)
        reconciled = await run(emu, fake_time, feed, state, reconcile=True, application="scanner-2")
        journaled = await run(emu, fake_time, feed, state, application="scanner-2")
        grown = await run(emu, fake_time, write_feed(tmp_path / "b.txt", range(6)), state,
                          application="scanner-2")  # fmt: skip
        applications = {i["indicatorValue"]: i["application"] for i in await mde_held(emu)}
    assert counts(reconciled) == counts(journaled) == (0, 0, 5)
    assert counts(grown) == (1, 0, 5)
    assert applications == {**{sha256(n): "scanner-1" for n in range(5)}, sha256(5): "scanner-2"}


async def test_the_stamp_taken_once_per_definition_equals_the_stamp_of_each_body(fake_time: FakeTime) -> None:
    later = datetime(2031, 5, 6, 7, 8, 9, 999, tzinfo=UTC)
    items = [
        *sha1s(2),
        Indicator(Kind.IPV6, "2001:db8::7", "f"),
        Indicator(Kind.SHA1, sha1(9), "f", expires=later),
    ]
    specs = [SPEC, spec_for("feed-a", "mde", title=TITLE, description="d", application="x", severity="High"),
             replace(SPEC, expires_at=later - timedelta(days=1))]  # fmt: skip
    async with mde_target(fake_time, TransportStats()) as (_, target):
        for spec in specs:  # the same definition id, its settings changed between runs
            definition = ResolvedDefinition(TITLE, spec, "found")
            for indicator in items:
                wanted = indicator_stamp(indicator_body(indicator, spec))
                assert target.stamp(definition, indicator) == wanted


# --- BatchDelete answered 404 ------------------------------------------------------------------------
async def test_a_batch_delete_answered_404_is_settled_with_one_listing(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with mde_target(fake_time, stats) as (emu, target):
        definition = await target.resolve_definition(SPEC, dry_run=False)
        ids = [remote_id for part in (sha1s(500), sha1s(300, start=500))
               for _, remote_id in (await target.send(definition, part)).imported]  # fmt: skip
        gone = [ids[7], ids[499], ids[650]]  # in both chunks of 500
        await mde_delete(emu, gone)
        before = stats.requests
        # A duplicate is sent once.
        deleted = await target.delete(definition, [(Kind.SHA1, "", i) for i in [*ids, ids[3]]])
        calls = stats.requests - before
        statuses = emu.state()["requests_by_status"]
        left = await mde_held(emu)
    assert sorted(deleted) == sorted(ids) and left == []
    # The first chunk's 404, one listing shared by both chunks, then each chunk without what is gone.
    assert calls == 4 and statuses.get("404") == 1 and statuses.get("400") is None


async def test_a_single_id_answered_404_needs_no_listing(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with mde_target(fake_time, stats) as (emu, target):
        definition = await target.resolve_definition(SPEC, dry_run=False)
        (indicator_id,) = [i for _, i in (await target.send(definition, sha1s(1))).imported]
        await mde_delete(emu, [indicator_id])
        before = stats.requests
        deleted = await target.delete(definition, [(Kind.SHA1, "", indicator_id)])
        nothing = await target.delete(definition, [])  # no call at all: an empty list is a 400
    assert deleted == [indicator_id] and nothing == []
    assert stats.requests - before == 1


async def test_a_batch_delete_whose_answer_was_lost_is_settled(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with mde_target(fake_time, stats) as (emu, target):
        definition = await target.resolve_definition(SPEC, dry_run=False)
        ids = [i for _, i in (await target.send(definition, sha1s(20))).imported]
        emu.set_api_faults(Faults(lost_after_write_rate=1.0))  # applied, then the answer dropped
        deleted = await target.delete(definition, [(Kind.SHA1, "", i) for i in ids])
        emu.set_api_faults(Faults())
        left = await mde_held(emu)
    # The retry met a 404 (the first call had deleted them all); the listing said none is left.
    assert sorted(deleted) == sorted(ids) and left == [] and stats.connection_errors == 1


async def test_batch_deletes_keep_to_their_hourly_window(fake_time: FakeTime) -> None:
    stats = TransportStats()
    pace = MdePace(batch_deletes_per_hour=2)
    async with mde_target(fake_time, stats, pace=pace, mde_batch_delete_per_hour=2) as (emu, target):
        definition = await target.resolve_definition(SPEC, dry_run=False)
        ids = [i for _, i in (await target.send(definition, sha1s(3))).imported]
        started = fake_time.now
        for indicator_id in ids:  # three calls: the third waits for the hour, and is not refused
            assert await target.delete(definition, [(Kind.SHA1, "", indicator_id)]) == [indicator_id]
        statuses = emu.state()["requests_by_status"]
    assert fake_time.now - started >= 3600 and statuses.get("429") is None and stats.throttled == 0


# --- expired indicators ------------------------------------------------------------------------------
async def test_expired_indicators_are_neither_listed_nor_counted_and_a_feed_brings_them_back(
    fake_time: FakeTime,
) -> None:
    soon = datetime.fromtimestamp(fake_time.wall(), UTC) + timedelta(hours=1)
    short = [Indicator(Kind.SHA1, sha1(n), "f", expires=soon) for n in range(4)]
    renewed = Indicator(Kind.SHA1, sha1(0), "f", expires=soon + timedelta(days=30))
    async with mde_target(fake_time, TransportStats(), mde_tenant_cap=10) as (_, target):
        definition = await target.resolve_definition(SPEC, dry_run=False)
        await target.send(definition, [*short, *sha1s(3, start=10)])
        fake_time.advance(2 * 3600)
        room = await target.headroom()
        listed = {r.value async for r in target.existing(definition)}
        again = await target.send(definition, [renewed])  # the feed moved its expiry: active again
        after = await target.headroom()
    assert room == Headroom(3, 10) and listed == {sha1(n) for n in range(10, 13)}  # active ones only
    assert len(again.imported) == 1 and after == Headroom(4, 10)


# --- acceptance: mirror over a tenant partly deleted in the portal ------------------------------------
async def test_mirror_converges_in_one_run_when_the_portal_deleted_some_and_then_deletes_nothing(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    state = tmp_path / "state.sqlite"
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, fake_time, write_feed(tmp_path / "a.txt", range(1200)), state, mirror=True)
        by_value = {i["indicatorValue"]: i["id"] for i in await mde_held(emu)}
        # An analyst deletes some of what the feed is about to drop (0..599), in every 500-id chunk.
        await mde_delete(emu, [by_value[sha256(n)] for n in range(0, 600, 7)])
        today = write_feed(tmp_path / "b.txt", range(600, 1200))
        mirrored = await run(emu, fake_time, today, state, mirror=True)
        again = await run(emu, fake_time, today, state, mirror=True)
        left = {i["indicatorValue"] for i in await mde_held(emu)}
    assert (mirrored.stale, mirrored.deleted, mirrored.delete_failed) == (600, 600, 0)
    assert (again.stale, again.deleted) == (0, 0) and counts(again) == (0, 0, 600)
    assert left == {sha256(n) for n in range(600, 1200)}
