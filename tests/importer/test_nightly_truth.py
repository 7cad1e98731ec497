"""The nightly path tells the truth: changed metadata and expiry reach indicators already imported,
rolling expiry keeps listed indicators alive, the tenant wins over the journal, and on ``mde`` a
value shared by two feeds survives one feed's mirror.

Every run is ``run_import`` with a state journal against the in-process emulator, on fake time;
what the tenant holds is read back through the API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importer.emulator import Emulator, EmulatorConfig, running_emulator
from importer.model import Options
from importer.report.counts import FeedReport, RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions, Tuning
from tests.helpers import (
    FakeTime,
    connection_settings,
    create_definition,
    get_token,
    mde_delete,
    mde_held,
    post_json,
    sha1,
    sha256,
    spec_for,
    ti_held,
    ti_ioc,
    write_feed,
)

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def settings(emu: Emulator, target: str, *feeds: tuple[Path, dict[str, Any]]) -> RunSettings:
    """A run of ``feeds`` (path, per-feed options incl. ``name``) to ``target`` of ``emu``."""
    return RunSettings(
        target=target,
        connection=connection_settings(emu, api=target),
        feeds=tuple(
            FeedSettings(
                str(path),
                spec_for(
                    given["name"], target, **{k: v for k, v in given.items() if k not in ("name", "mirror")}
                ),
                Options({k: v for k, v in given.items() if k not in ("name", "now")}),
            )
            for path, given in feeds
        ),
        tuning=Tuning(batch_size=50, workers=4),
    )


async def run(
    emu: Emulator, state: Path | None, fake: FakeTime, target: str, *feeds: tuple[Path, dict[str, Any]],
    **journal: Any,
) -> RunReport:  # fmt: skip
    report = await run_import(
        settings(emu, target, *feeds),
        OutputOptions(progress=False),
        state=StateOptions(path=state, **journal),
        sleep=fake.sleep,
        clock=fake.clock,
    )
    for feed in report.feeds:
        feed.check()  # the buckets still add up
    return report


def counts(feed: FeedReport) -> tuple[int, int, int]:
    return feed.imported, feed.updated, feed.already_present


def mde_options(title: str = "Feed A", **extra: Any) -> dict[str, Any]:
    return {"name": title, "title": title, "description": "d", **extra}


# --- 1. changed metadata reaches existing mde indicators ---------------------------------------------
async def test_a_changed_severity_and_action_reach_every_mde_indicator_once(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    state, feed = tmp_path / "state.sqlite", write_feed(tmp_path / "a.txt", range(30))
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        first = await run(emu, state, fake_time, "mde", (feed, mde_options()))
        assert counts(first.feeds[0]) == (30, 0, 0)
        assert {(i["severity"], i["action"]) for i in await mde_held(emu)} == {("Medium", "Audit")}

        changed = mde_options(severity="High", action="Block", recommended_action="Isolate")
        second = await run(emu, state, fake_time, "mde", (feed, changed))
        assert counts(second.feeds[0]) == (0, 30, 0) and second.exit_code() == 0
        held = await mde_held(emu)
        assert {(i["severity"], i["action"], i["recommendedActions"]) for i in held} == {
            ("High", "Block", "Isolate")
        }
        assert len(held) == 30  # updated in place, nothing twice

        # Unchanged now: present, from the journal and from a listing alike (the stamp the
        # service lists back equals the one that was sent).
        third = await run(emu, state, fake_time, "mde", (feed, changed))
        listed = await run(emu, None, fake_time, "mde", (feed, changed))
    assert counts(third.feeds[0]) == counts(listed.feeds[0]) == (0, 0, 30)


async def test_a_dry_run_counts_what_would_be_updated(tmp_path: Path, fake_time: FakeTime) -> None:
    state, feed = tmp_path / "state.sqlite", write_feed(tmp_path / "a.txt", range(10))
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, state, fake_time, "mde", (feed, mde_options()))
        report = await run_import(
            replace(settings(emu, "mde", (feed, mde_options(severity="Low"))), dry_run=True),
            OutputOptions(progress=False),
            state=StateOptions(path=state),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        assert {i["severity"] for i in await mde_held(emu)} == {"Medium"}  # nothing sent
    feed_report = report.feeds[0]
    assert (feed_report.would_update, feed_report.updated, feed_report.already_present) == (10, 0, 0)


# --- 2. a changed expiry reaches indicators already imported (both targets) -------------------------
def write_stix(path: Path, valid_until: str) -> Path:
    stamp = "2026-01-01T00:00:00Z"
    objects = [
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=n)}",
         "created": stamp, "modified": stamp, "valid_from": stamp, "valid_until": valid_until,
         "pattern": f"[file:hashes.'SHA-256' = '{sha256(n)}']", "pattern_type": "stix"}
        for n in range(5)
    ]  # fmt: skip
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.UUID(int=99)}", "objects": objects}))
    return path


@pytest.mark.parametrize("target", ["ti", "mde"])
async def test_a_moved_valid_until_reaches_the_tenant(
    target: str, tmp_path: Path, fake_time: FakeTime
) -> None:
    state = tmp_path / "state.sqlite"
    options = mde_options() if target == "mde" else {"name": "Feed A"}
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        first = await run(
            emu, state, fake_time, target, (write_stix(tmp_path / "1.json", "2030-06-01T00:00:00Z"), options)
        )
        assert counts(first.feeds[0]) == (5, 0, 0)
        moved = write_stix(tmp_path / "2.json", "2031-06-01T00:00:00Z")
        second = await run(emu, state, fake_time, target, (moved, options))
        assert counts(second.feeds[0]) == (0, 5, 0) and second.exit_code() == 0
        held = await (mde_held(emu) if target == "mde" else ti_held(emu))
        expiry = "expirationTime" if target == "mde" else "ExpiresAt"
        assert len(held) == 5 and {i[expiry][:10] for i in held} == {"2031-06-01"}
        again = await run(emu, None, fake_time, target, (moved, options))  # listed: the same stamps
    assert counts(again.feeds[0]) == (0, 0, 5)


# --- rolling expiry ------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["ti", "mde"])
async def test_rolling_expiry_is_pushed_forward_once_half_of_it_is_gone(
    target: str, tmp_path: Path, fake_time: FakeTime
) -> None:
    state, feed = tmp_path / "state.sqlite", write_feed(tmp_path / "a.txt", range(8))
    base = mde_options() if target == "mde" else {"name": "Feed A"}

    def on(day: int) -> dict[str, Any]:  # the feed's settings as loaded on that day
        return {**base, "expire_days": 10, "now": NOW + timedelta(days=day)}

    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        assert counts((await run(emu, state, fake_time, target, (feed, on(0)))).feeds[0]) == (8, 0, 0)
        # 6 of 10 days left: more than half, nothing is sent.
        assert counts((await run(emu, state, fake_time, target, (feed, on(4)))).feeds[0]) == (0, 0, 8)
        # 4 of 10 days left: every listed one gets today's expiry, once.
        assert counts((await run(emu, state, fake_time, target, (feed, on(6)))).feeds[0]) == (0, 8, 0)
        assert counts((await run(emu, state, fake_time, target, (feed, on(7)))).feeds[0]) == (0, 0, 8)
        held = await (mde_held(emu) if target == "mde" else ti_held(emu))
    expiry = "expirationTime" if target == "mde" else "ExpiresAt"
    assert {i[expiry][:10] for i in held} == {(NOW + timedelta(days=16)).date().isoformat()}


# --- 3. the tenant wins: portal deletion, and values shared by two mde feeds ----------------------------
@pytest.mark.parametrize("reconcile", [False, True])
async def test_indicators_deleted_in_the_portal_are_imported_again(
    reconcile: bool, tmp_path: Path, fake_time: FakeTime
) -> None:
    state, feed = tmp_path / "state.sqlite", write_feed(tmp_path / "a.txt", range(17))
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, state, fake_time, "mde", (feed, mde_options()))
        await mde_delete(emu, [i["id"] for i in await mde_held(emu)])
        again = await run(emu, state, fake_time, "mde", (feed, mde_options()), reconcile=reconcile)
        assert counts(again.feeds[0]) == (17, 0, 0)
        assert len(await mde_held(emu)) == 17


async def test_reconcile_takes_the_tenants_metadata_over_the_journals(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    """An analyst changed severity in the portal: the journal's stamp no longer says what the tenant
    holds, so ``--reconcile`` (which lists it) makes the feed's metadata true again."""
    state, feed = tmp_path / "state.sqlite", write_feed(tmp_path / "a.txt", range(4))
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, state, fake_time, "mde", (feed, mde_options()))
        portal = settings(emu, "mde", (feed, mde_options(severity="Low")))
        await run_import(portal, OutputOptions(progress=False), state=StateOptions(path=None),
                         sleep=fake_time.sleep, clock=fake_time.clock)  # fmt: skip
        trusting = await run(emu, state, fake_time, "mde", (feed, mde_options()))
        assert counts(trusting.feeds[0]) == (0, 0, 4)  # the journal alone cannot know
        reconciled = await run(emu, state, fake_time, "mde", (feed, mde_options()), reconcile=True)
        assert counts(reconciled.feeds[0]) == (0, 4, 0)
        assert {i["severity"] for i in await mde_held(emu)} == {"Medium"}


async def test_a_value_two_mde_feeds_list_survives_one_feeds_mirror(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    state = tmp_path / "state.sqlite"
    a, b = mde_options("Feed A"), mde_options("Feed B")
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, state, fake_time, "mde", (write_feed(tmp_path / "a.txt", range(10)), a))
        b_feed = write_feed(tmp_path / "b.txt", range(5, 15))
        first_b = await run(emu, state, fake_time, "mde", (b_feed, b))
        # 5..9 belong to feed A already: B counts them present and does not retitle them.
        assert counts(first_b.feeds[0]) == (5, 0, 5)
        titles = {i["indicatorValue"]: i["title"] for i in await mde_held(emu)}
        assert {titles[sha256(n)] for n in range(5, 10)} == {"Feed A"}

        # A drops 5..9 in mirror mode: B still lists them, so they stay in the tenant.
        mirrored = await run(emu, state, fake_time, "mde",
                             (write_feed(tmp_path / "a2.txt", range(5)), {**a, "mirror": True}))  # fmt: skip
        feed = mirrored.feeds[0]
        assert (feed.stale, feed.deleted, feed.kept_shared, feed.delete_failed) == (5, 0, 5, 0)
        assert len(await mde_held(emu)) == 15
        # B's rerun takes them over (sends them under its own title): what it says is true.
        second_b = await run(emu, state, fake_time, "mde", (b_feed, b))
        assert counts(second_b.feeds[0]) == (5, 0, 5)
        titles = {i["indicatorValue"]: i["title"] for i in await mde_held(emu)}
        assert {titles[sha256(n)] for n in range(5, 15)} == {"Feed B"}
        # And nothing goes back and forth afterwards.
        both = await run(emu, state, fake_time, "mde",
                         (write_feed(tmp_path / "a3.txt", range(5)), a), (b_feed, b))  # fmt: skip
    assert [counts(f) for f in both.feeds] == [(0, 0, 5), (0, 0, 10)]


async def test_two_mde_feeds_sharing_values_in_one_run_settle_on_one_owner(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    state = tmp_path / "state.sqlite"
    a = (write_feed(tmp_path / "a.txt", range(20)), mde_options("Feed A"))
    b = (write_feed(tmp_path / "b.txt", range(10, 30)), mde_options("Feed B"))
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        await run(emu, state, fake_time, "mde", a, b)  # both may send 10..19: the last import wins
        for _ in range(2):  # afterwards nobody retitles anything
            again = await run(emu, state, fake_time, "mde", a, b)
            assert [f.imported + f.updated for f in again.feeds] == [0, 0]
        assert len(await mde_held(emu)) == 30


# --- 8. two definitions of one name (a race between hosts, or the past) ---------------------------------
async def test_reconcile_merges_a_second_definition_of_the_same_name(
    tmp_path: Path, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.sqlite"
    feed = tmp_path / "a.txt"
    feed.write_text("".join(f"{sha1(n)}\n" for n in range(6)))
    options = {"name": "feed-a"}
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        async with aiohttp.ClientSession() as session:
            token = await get_token(session, emu)
            kept = await create_definition(session, emu, token)
            extra = await create_definition(session, emu, token)
            for definition, numbers in ((kept, range(0, 3)), (extra, range(2, 8))):
                for n in numbers:
                    status, _ = await post_json(session, emu.ti_url + "IndicatorsOfCompromise", token,
                                                ti_ioc(definition, sha1(n)))  # fmt: skip
                    assert status == 201
        warned = await run(emu, state, fake_time, "ti", (feed, options))
        assert f"Id {extra} is extra" in caplog.text and "--reconcile" in caplog.text
        assert warned.feeds[0].definition_id == str(kept)

        merged = await run(emu, state, fake_time, "ti", (feed, options), reconcile=True)
        assert merged.journal is not None and merged.journal["merged_definitions"] == {
            str(kept): [str(extra)]
        }
        (definition,) = emu.state()["tenants"]["contoso-demo"]["alert_definitions"]
        assert definition["id"] == kept and definition["duplicate_iocs"] == 0
        # 0..5 from the feed, 6 and 7 moved from the extra definition (mirror mode decides on those).
        assert {i["Value"] for i in await ti_held(emu)} == {sha1(n) for n in range(8)}
        again = await run(emu, state, fake_time, "ti", (feed, options))
    assert counts(again.feeds[0]) == (0, 0, 6)


@pytest.mark.parametrize("target", ["ti", "mde"])
async def test_an_api_url_without_the_collection_is_a_configuration_error(
    target: str, tmp_path: Path, fake_time: FakeTime
) -> None:
    feed = write_feed(tmp_path / "a.txt", range(3))
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        wrong = settings(emu, target, (feed, mde_options() if target == "mde" else {"name": "Feed A"}))
        wrong = replace(wrong, connection=replace(wrong.connection, api_url=emu.base_url + "/nothing/here/"))
        report = await run_import(
            wrong, OutputOptions(progress=False), sleep=fake_time.sleep, clock=fake_time.clock
        )
    assert report.exit_code() == 2
    assert "HTTP 404" in (report.feeds[0].error or "") and "check TI_API_URL" in (report.feeds[0].error or "")
    assert report.feeds[0].failed == 3  # nothing silently dropped
