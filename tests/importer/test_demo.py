"""``ti-import demo``: the bundled samples through the real pipeline into the in-process emulator,
for the legacy TI API and for a Sentinel workspace."""

from __future__ import annotations

import pytest

from importer.cli import main
from importer.demo import DEMO_TARGETS, demo, sample_files


def test_demo_imports_every_sample_once_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    if not sample_files():
        pytest.skip("no sample feeds in feeds/samples yet")
    assert main(["demo", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "== ti:" in out and "== sentinel:" in out
    assert "emulator state" in out and "0 duplicates" in out and "0 duplicate patterns" in out
    assert out.count("rerun: 0 imported") == len(DEMO_TARGETS)


async def test_demo_reports_add_up_and_match_the_emulator() -> None:
    files = sample_files()
    if not files:
        pytest.skip("no sample feeds in feeds/samples yet")
    runs, state = await demo()
    assert [run.target for run in runs] == list(DEMO_TARGETS)
    for run in runs:
        assert len(run.first.feeds) == len(files)
        for feed in run.first.feeds:
            assert sum(feed.buckets().values()) == feed.records_read > 0
        assert run.first.totals()["imported"] > 0 and run.first.exit_code() == 0
        rerun = run.rerun.totals()
        assert rerun["imported"] == rerun["updated"] == 0, run.target
        assert rerun["already_present"] == run.first.totals()["imported"]
    ti, sentinel = runs
    totals = state["totals"]
    assert totals["iocs"] == ti.first.totals()["imported"] and totals["duplicate_iocs"] == 0
    assert totals["sentinel_duplicate_patterns"] == 0 and totals["sentinel_revoked"] == 0
    # Sentinel keeps one object per value: a value two samples share counts as imported by each.
    shared = sentinel.first.totals()["imported"] - totals["sentinel_indicators"]
    assert 0 <= shared < totals["sentinel_indicators"]
