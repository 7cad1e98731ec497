"""The cap's choice on ``mde``: two feeds over the tenant cap keep the higher-priority one's indicators, the
rest fail with the reason, and a dry run shows the choice without sending anything.

The emulator's cap is made small (``mde_tenant_cap``) and the importer told so (the ``cap`` target
option, ``--mde-cap``); runs are ``run_import`` over loopback, on fake time.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from importer.emulator import EmulatorConfig, running_emulator
from importer.model import Options
from importer.report.summary import summary
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions, Tuning
from importer.transport.connection import ConnectionSettings
from tests.helpers import FakeTime, connection_settings, sha256, spec_for, write_feed
from tests.helpers.emulator_api import mde_held

CAP = 50


def settings(connection: ConnectionSettings, *feeds: tuple[Path, str, int]) -> RunSettings:
    """``feeds``: (path, title, priority) each, to mde with the cap set to ``CAP``."""
    return RunSettings(
        target="mde",
        connection=replace(connection, target_options=(("cap", str(CAP)),)),
        feeds=tuple(
            FeedSettings(
                str(path), spec_for(title, "mde", title=title, description="d", priority=rank), Options()
            )
            for path, title, rank in feeds
        ),
        tuning=Tuning(batch_size=20, workers=2),
    )


async def test_two_feeds_over_the_cap_keep_the_higher_priority_one(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    low = write_feed(tmp_path / "low.txt", range(40))
    high = write_feed(tmp_path / "high.txt", range(100, 140))
    rejects = tmp_path / "rejects.jsonl"
    async with running_emulator(EmulatorConfig(clock=fake_time.wall, mde_tenant_cap=CAP)) as emu:
        run = settings(connection_settings(emu, api="mde"), (low, "Low", 1), (high, "High", 5))

        planned = await run_import(
            replace(run, dry_run=True),
            OutputOptions(progress=False),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        assert planned.cap_choice == {
            "cap": CAP, "held": 0, "room": CAP, "new": 80, "kept": CAP, "failed": 30,
            "reason": "cap: lower priority than 50 kept", "failed_by_feed": {"Low": 30},
        }  # fmt: skip
        assert planned.as_dict()["cap_choice"]["failed_by_feed"] == {"Low": 30}
        assert (
            "cap's choice: 50 of 80 new kept (by feed priority, confidence, first seen); "
            "would fail: Low 30 (cap: lower priority than 50 kept)"
        ) in summary(planned).splitlines()
        assert await mde_held(emu) == []  # a dry run sends nothing

        report = await run_import(
            run,
            OutputOptions(progress=False, rejects=rejects),
            state=StateOptions(path=tmp_path / "s.sqlite"),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
        held = {i["indicatorValue"]: i["title"] for i in await mde_held(emu)}
    by_name = {feed.name: feed for feed in report.feeds}
    assert (by_name["High"].imported, by_name["High"].failed) == (40, 0)
    assert (by_name["Low"].imported, by_name["Low"].failed) == (10, 30)
    assert report.exit_code() == 1  # what did not fit is failed: a later run with room sends it
    assert len(held) == CAP and {held[sha256(n)] for n in range(100, 140)} == {"High"}
    # Among equals (no confidence, no first-seen date) the order is the values': the same every night.
    kept_low = sorted(sha256(n) for n in range(40))[:10]
    assert {v for v, title in held.items() if title == "Low"} == set(kept_low)
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(lines) == 30 and {line["reason"] for line in lines} == {"cap: lower priority than 50 kept"}


async def test_nothing_is_chosen_while_everything_fits(tmp_path: Path, fake_time: FakeTime) -> None:
    async with running_emulator(EmulatorConfig(clock=fake_time.wall, mde_tenant_cap=CAP)) as emu:
        run = settings(
            connection_settings(emu, api="mde"),
            (write_feed(tmp_path / "a.txt", range(20)), "A", 1),
            (write_feed(tmp_path / "b.txt", range(10, 40)), "B", 0),  # 10..19 shared: 40 distinct
        )
        report = await run_import(
            run, OutputOptions(progress=False), sleep=fake_time.sleep, clock=fake_time.clock
        )
    assert report.cap_choice is None and report.exit_code() == 0


async def test_within_one_priority_higher_confidence_then_the_most_recent_first_seen_win(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    feed = tmp_path / "scored.csv"
    rows = [  # n, confidence, first seen
        (0, 90, "2026-01-01"), (1, 90, "2026-03-01"), (2, 50, "2026-05-01"), (3, None, "2026-06-01"),
        (4, 70, None), (5, 70, "2026-02-01"), (6, 10, "2026-07-01"),
    ]  # fmt: skip
    feed.write_text(
        "sha256,confidence,first_seen\n"
        + "".join(f"{sha256(n)},{'' if c is None else c},{seen or ''}\n" for n, c, seen in rows)
    )
    async with running_emulator(EmulatorConfig(clock=fake_time.wall, mde_tenant_cap=4)) as emu:
        run = settings(connection_settings(emu, api="mde"), (feed, "Scored", 0))
        run = replace(run, connection=replace(run.connection, target_options=(("cap", "4"),)))
        report = await run_import(
            run, OutputOptions(progress=False), sleep=fake_time.sleep, clock=fake_time.clock
        )
        held = {i["indicatorValue"] for i in await mde_held(emu)}
    assert report.feeds[0].imported == 4 and report.feeds[0].failed == 3
    # 90 (March before January), then 70 (February before no date); 50, 10 and no confidence fail.
    assert held == {sha256(n) for n in (1, 0, 5, 4)}
