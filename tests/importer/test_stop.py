"""Graceful stop: SIGTERM mid-run in a real ``python -m importer run`` process, then a rerun.

The first signal lets requests in flight finish — and starts none (counted at the emulator, in
bulk and single mode) —, commits the journal, writes the report and exits 130; a rerun completes
with no duplicates and, the journal being complete, without listing the tenant. A second signal
exits at once; the rerun then lists the definition once and still sends nothing twice.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from importer.report.counts import BUCKETS
from tests.helpers import (
    FEED_ARGS,
    EmulatorProcess,
    reached_before_exit,
    start_emulator,
    start_importer,
    stop_process,
    wait_until_sync,
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


@pytest.mark.parametrize("mode", ["bulk", "single"])
def test_sigint_after_the_first_batch_lets_at_most_workers_requests_finish(mode: str, tmp_path: Path) -> None:
    workers = 4
    emu = start_emulator("--latency-ms", "50")  # requests stay in flight long enough to be caught
    try:
        feed = write_list(tmp_path / "feed.txt", 20_000, seed=43)
        report = tmp_path / "report.json"
        argv = ("--name", "Stop", "--batch-size", "10", "--workers", str(workers), "--mode", mode)
        proc = start_importer(emu, tmp_path, str(feed), *argv, "--report", str(report))
        assert reached_before_exit(proc, lambda: emu.state()["totals"]["iocs"] >= 10), (
            "ended before the signal"
        )
        proc.send_signal(signal.SIGINT)
        err = tmp_path / "err.txt"
        # Counted from once the handler has run: whatever the emulator answers from here on was in
        # flight when the stop came, or (the bug) started after it.
        wait_until_sync(lambda: "finishing requests in flight" in err.read_text(), 10, what="the handler")
        at_signal = last = emu.requests()
        last_change = time.monotonic()

        def exited() -> bool:
            nonlocal last, last_change
            now = emu.requests()
            if now != last:
                last, last_change = now, time.monotonic()
            return proc.poll() is not None

        wait_until_sync(exited, 30, interval=0.005, what="the importer to exit")
        gap = time.monotonic() - last_change
        assert proc.returncode == 130
        assert last - at_signal <= workers, f"{last - at_signal} requests answered after the signal"
        assert gap < 1.0, f"exited {gap:.2f} s after the last answer"
        totals = json.loads(report.read_text())["totals"]
        assert sum(totals[bucket] for bucket in BUCKETS) == totals["records_read"]
        assert totals["not_attempted"] > 0 and totals["failed"] == 0
        assert totals["imported"] == emu.state()["totals"]["iocs"]
    finally:
        stop_process(emu.proc)
