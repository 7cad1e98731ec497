"""Graceful stop: SIGTERM mid-run in a real ``python -m importer run`` process, then a rerun.

The first signal lets requests in flight finish, commits the journal, writes the report and exits
130; a rerun completes with no duplicates and, the journal being complete, without listing the
tenant. A second signal exits at once; the rerun then lists the definition once and still sends
nothing twice.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.helpers import (
    FEED_ARGS,
    EmulatorProcess,
    reached_before_exit,
    start_emulator,
    start_importer,
    stop_process,
    write_list,
)


def test_sigterm_mid_run_exits_130_with_a_report_then_the_rerun_completes(
    slow_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    emu = slow_emulator
    feed = write_list(tmp_path / "feed.txt", 3000, seed=41)
    report = tmp_path / "report.json"
    proc = start_importer(emu, tmp_path, str(feed), *FEED_ARGS, "--report", str(report))
    reached = reached_before_exit(proc, lambda: emu.state()["totals"]["iocs"] >= 800)
    assert reached, "the run ended before the signal"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 130
    assert "finishing requests in flight" in (tmp_path / "err.txt").read_text()
    first = json.loads(report.read_text())
    assert first["exit_code"] == 130 and first["stopped_by_signal"] is True
    totals = first["totals"]
    assert totals["records_read"] < 3000 and totals["failed"] == 0
    assert totals["imported"] == emu.state()["totals"]["iocs"]  # every acknowledged one was counted

    proc = start_importer(emu, tmp_path, str(feed), *FEED_ARGS, "--report", str(report))
    assert proc.wait(60) == 0
    second = json.loads(report.read_text())
    assert second["journal"]["resumed_after_interrupted_run"] is False  # the stop committed everything
    assert second["totals"]["imported"] == 3000 - totals["imported"]
    state = emu.state()
    assert state["totals"]["iocs"] == 3000 and state["totals"]["duplicate_iocs"] == 0


def test_a_second_signal_stops_at_once_and_the_rerun_sends_nothing_twice(tmp_path: Path) -> None:
    # 300 ms a request: the first signal's graceful stop is still waiting when the second comes.
    emu = start_emulator("--latency-ms", "300")
    try:
        feed = write_list(tmp_path / "feed.txt", 600, seed=42)
        proc = start_importer(emu, tmp_path, str(feed), *FEED_ARGS)
        assert reached_before_exit(proc, lambda: emu.state()["totals"]["iocs"] >= 100), (
            "the run ended before the signal"
        )
        err = tmp_path / "err.txt"
        proc.send_signal(signal.SIGINT)
        assert reached_before_exit(proc, lambda: "finishing requests in flight" in err.read_text())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        assert "second signal" in err.read_text()
        report = tmp_path / "report.json"
        proc = start_importer(emu, tmp_path, str(feed), *FEED_ARGS, "--report", str(report))
        assert proc.wait(60) == 0
        assert json.loads(report.read_text())["journal"]["resumed_after_interrupted_run"] is True
        state = emu.state()
        assert state["totals"]["iocs"] == 600 and state["totals"]["duplicate_iocs"] == 0
    finally:
        stop_process(emu.proc)
