"""The terminal summary: its columns, what a dry run would do to definitions and in mirror mode, and a
mirror refusal said once — from hand-made reports and from ``ti-import run`` against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.emulator import Emulator
from importer.report.counts import FeedReport, RunReport
from importer.report.summary import definitions_line, mirror_lines, summary
from tests.helpers import run_cli, use_emulator, write_feed


def feed(name: str, **counts: int) -> FeedReport:
    report = FeedReport(name=name, source=f"{name}.txt", **counts)  # type: ignore[arg-type]
    report.records_read = sum(report.buckets().values())
    return report


def header(table: str) -> str:
    return table.splitlines()[0]


def test_rarely_filled_columns_appear_only_when_some_feed_has_one() -> None:
    plain = summary(RunReport(target="ti", mode="bulk", feeds=[feed("a", imported=5, already_present=2)]))
    assert header(plain).split() == [
        "feed", "imported", "present", "dup", "expired", "skipped", "rejected", "failed", "read"
    ]  # fmt: skip
    busy = RunReport(
        target="ti",
        mode="bulk",
        feeds=[feed("a", imported=5, updated=3), feed("b", imported=1, not_attempted=40)],
    )
    table = summary(busy)
    assert header(table).split() == [
        "feed", "imported", "updated", "present", "dup", "expired", "skipped", "rejected", "failed",
        "not", "sent", "read",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:4] if not line.startswith("-")}
    assert rows["a"] == ["5", "3", "0", "0", "0", "0", "0", "0", "0", "8"]
    assert rows["b"] == ["1", "0", "0", "0", "0", "0", "0", "0", "40", "41"]
    dry = RunReport(target="ti", mode="bulk", dry_run=True, feeds=[feed("a", would_import=2, would_update=7)])
    assert header(summary(dry)).split()[:5] == ["feed", "would", "import", "would", "update"]


def test_a_dry_run_names_the_definitions_it_would_create_and_update() -> None:
    feeds = [feed("new"), feed("changed"), feed("same"), feed("other new")]
    for report, outcome in zip(feeds, ("planned", "would_update", "found", "planned"), strict=True):
        report.definition_outcome = outcome
    run = RunReport(target="ti", mode="bulk", dry_run=True, feeds=feeds)
    line = "alert definitions: would create 'new', 'other new'; would update 'changed'"
    assert definitions_line(run) == line and line in summary(run).splitlines()
    feeds[0].definition_outcome, feeds[1].definition_outcome, feeds[3].definition_outcome = (
        "created",
        "updated",
        "found",
    )
    assert definitions_line(RunReport(target="ti", mode="bulk", feeds=feeds)) == (
        "alert definitions: created 'new'; updated 'changed'"
    )
    assert definitions_line(RunReport(target="ti", mode="bulk", feeds=[feed("same")])) is None


def test_mirror_lines_say_would_delete_in_a_dry_run_and_leave_a_refusal_to_the_problems() -> None:
    mirrored = feed("a")
    mirrored.mirror, mirrored.stale = True, 20
    dry = RunReport(target="ti", mode="bulk", dry_run=True, feeds=[mirrored])
    assert mirror_lines(dry) == ["a: mirror mode would delete 20 stale indicators"]
    mirrored.deleted = 18
    assert mirror_lines(RunReport(target="ti", mode="bulk", feeds=[mirrored])) == [
        "a: mirror mode deleted 18 of 20 stale indicators"
    ]
    mirrored.deleted, mirrored.mirror_refused = 0, "mirror mode refused to delete 20 of 21 indicators"
    assert mirror_lines(RunReport(target="ti", mode="bulk", feeds=[mirrored])) == []


# --- through the command line -------------------------------------------------------------------


async def test_dry_run_after_a_change_says_would_update_would_create_and_would_delete(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    held = write_feed(tmp_path / "held.txt", range(100))
    assert await run_cli(str(held), "--quiet") == 0
    write_feed(held, range(20, 100))  # 20 gone from the feed
    fresh = write_feed(tmp_path / "fresh.txt", range(500, 510))
    capsys.readouterr()
    assert await run_cli(str(held), str(fresh), "--severity", "High", "--mirror", "--dry-run") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "alert definitions: would create 'fresh.txt'; would update 'held.txt'" in lines
    # The changed definition still holds what it holds: its indicators are present, not new.
    assert next(line for line in lines if line.startswith("held.txt")).split()[1:3] == ["0", "80"]
    assert "held.txt: mirror mode would delete 20 stale indicators" in lines
    assert "deleted 0" not in out
    assert emulator.state()["totals"]["iocs"] == 100  # a dry run writes nothing


async def test_a_mirror_refusal_is_printed_once(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    source = write_feed(tmp_path / "feed.txt", range(100))
    assert await run_cli(str(source), "--quiet") == 0
    write_feed(source, range(30))  # a download cut short, say
    capsys.readouterr()
    assert await run_cli(str(source), "--mirror") == 1
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert both.count("mirror mode refused to delete 70 of 100 indicators") == 1, both
    assert "ti-import: feed.txt: mirror mode refused" in captured.err
    assert emulator.state()["totals"]["iocs"] == 100
