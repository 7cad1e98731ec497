"""``ti-import demo``: the bundled samples through the real pipeline into the in-process emulator."""

from __future__ import annotations

import pytest

from importer.cli import main
from importer.demo import demo, sample_files


def test_demo_imports_every_sample_once_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    if not sample_files():
        pytest.skip("no sample feeds in feeds/samples yet")
    assert main(["demo", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "emulator state" in out and "0 duplicates" in out
    assert "rerun: 0 imported" in out


async def test_demo_reports_add_up_and_match_the_emulator() -> None:
    files = sample_files()
    if not files:
        pytest.skip("no sample feeds in feeds/samples yet")
    first, second, state = await demo()
    assert len(first.feeds) == len(files)
    for feed in first.feeds:
        assert sum(feed.buckets().values()) == feed.records_read > 0
    imported = first.totals()["imported"]
    assert imported > 0 and first.exit_code() == 0
    assert state["totals"]["iocs"] == imported and state["totals"]["duplicate_iocs"] == 0
    assert second.totals()["imported"] == 0 and second.totals()["already_present"] == imported
