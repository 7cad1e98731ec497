"""The run report (buckets, exit code, JSON, summary) and the rejects file read back for a retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.model import Detection, Indicator, Kind, Rejected
from importer.errors import ConfigError
from importer.fields import COMMON, definition_from_json, definition_to_json
from importer.pipeline.rejects import RejectsWriter
from importer.report.counts import BUCKETS, FeedReport, RunReport
from importer.report.summary import summary
from importer.sources.retry import read_retry_groups, retry_indicators
from importer.targets.registry import package
from importer.transport.stats import TransportStats
from tests.helpers import spec_for

ROWS = COMMON + package("ti").fields

SPEC = spec_for(
    "feed A",
    title="T",
    description="D",
    severity="High",
    category="Malware",
    detection_function=Detection.EQUALS,
    expires_at=datetime(2030, 1, 1, tzinfo=UTC),
)


def feed(name: str = "a", **buckets: int) -> FeedReport:
    report = FeedReport(name=name, source=f"{name}.txt", **buckets)  # type: ignore[arg-type]
    report.records_read = sum(buckets.values())
    return report


def test_buckets_add_up_and_check_catches_a_lost_record() -> None:
    report = feed(imported=5, rejected=2, duplicate_in_feed=1)
    report.check()
    report.records_read += 1
    with pytest.raises(AssertionError, match="buckets add up to 8, 9 read"):
        report.check()


@pytest.mark.parametrize(
    ("feeds", "auth_error", "code"),
    [
        ([feed(imported=3, rejected=4, expired=1)], None, 0),
        ([feed(imported=3, failed=1)], None, 1),
        ([feed(imported=3, failed=1), FeedReport("b", "b", error="cannot read", config_error=True)], None, 2),
        ([feed(imported=3, failed=1)], "invalid client secret", 3),
    ],
)
def test_exit_code_priority(feeds: list[FeedReport], auth_error: str | None, code: int) -> None:
    run = RunReport(target="ti", mode="bulk", feeds=feeds, auth_error=auth_error)
    assert run.exit_code() == code


def test_json_report_and_summary(tmp_path: Path) -> None:
    stats = TransportStats(requests=12, retries=3, throttled=1, token_refreshes=2)
    run = RunReport(
        target="ti",
        mode="bulk",
        feeds=[feed("a", imported=10, failed=2), feed("b", already_present=7)],
        transport=stats,
        duration=2.0,
    )
    run.feeds[0].note_reason("HTTP 507", 2)
    path = tmp_path / "report.json"
    run.write_json(path)
    data = json.loads(path.read_text())
    assert data["exit_code"] == 1
    assert data["totals"]["imported"] == 10 and data["totals"]["records_read"] == 19
    assert set(BUCKETS) <= set(data["totals"])
    assert data["transport"]["retries"] == 3 and data["transport"]["throttled"] == 1
    assert data["indicators_per_second"] == 5.0
    assert data["feeds"][0]["reject_reasons"] == {"HTTP 507": 2}
    table = summary(run)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["feed", "imported"]
    assert lines[1].split()[:2] == ["a", "10"] and lines[4].split()[:2] == ["total", "10"]
    assert "12 requests, 3 retries, 1 throttled" in table


def test_rejects_file_round_trip_keeps_only_retryable_lines(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    writer = RejectsWriter(path)
    failed = Indicator(
        Kind.SHA256,
        "a" * 64,
        "f.txt:3",
        description="bad",
        labels=("x",),
        first_seen=datetime(2024, 5, 1, tzinfo=UTC),
    )
    writer.parse_reject("feed A", Rejected("f.txt:1", "zzz", "not an indicator"))
    writer.indicator(
        "feed A",
        Indicator(Kind.URL, "http://x.example/", "f.txt:2"),
        "no URL type",
        failed=False,
        definition=SPEC,
    )
    writer.indicator("feed A", failed, "HTTP 507: quota", failed=True, definition=SPEC)
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["bucket"] for line in lines] == ["rejected", "rejected", "failed"]
    assert all({"feed", "origin", "raw", "reason", "retryable"} <= set(line) for line in lines)
    assert [line["retryable"] for line in lines] == [False, False, True]

    (group,) = read_retry_groups(path, ROWS)
    assert group.definition == SPEC and group.count == 1
    assert list(retry_indicators(path, "feed A")) == [failed]
    assert definition_from_json(definition_to_json(SPEC), ROWS) == SPEC
    # A rejects file written before the options were named by the fields table reads the same.
    legacy = {**definition_to_json(SPEC), "detection": "Equals"}
    del legacy["detection_function"]
    assert definition_from_json(legacy, ROWS) == SPEC


def test_a_broken_rejects_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"retryable": true}\nnot json\n')
    with pytest.raises(ConfigError, match="lacks a valid 'definition'"):
        read_retry_groups(path, ROWS)
    with pytest.raises(ConfigError, match="does not exist"):
        read_retry_groups(tmp_path / "none.jsonl", ROWS)


def test_summary_names_the_commonest_reasons_across_feeds() -> None:
    run = RunReport(target="ti", mode="bulk", feeds=[feed("a", rejected=9), feed("b", rejected=5)])
    run.feeds[0].note_reason("the ti target has no URL indicator type", 4)
    run.feeds[1].note_reason("the ti target has no URL indicator type", 2)
    for n in range(1, 7):
        run.feeds[0 if n % 2 else 1].note_reason(f"reason {n}", 1)
    lines = summary(run).splitlines()
    start = lines.index("not imported, by reason (--rejects lists every record):")
    assert lines[start + 1].split(None, 1) == ["6", "the ti target has no URL indicator type"]
    assert [line.split(None, 1)[1] for line in lines[start + 2 : start + 6]] == [
        "reason 1",
        "reason 2",
        "reason 3",
        "reason 4",
    ]
    assert lines[start + 6].split(None, 1) == ["2", "2 other reasons"]
