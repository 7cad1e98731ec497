"""Exactly once across crashes: the importer killed with SIGKILL mid-run, then rerun, against an emulator
in its own process (its state outlives the importer's death), checked through ``/_emulator/state``.

Feeds are a few thousand indicators and the emulator adds latency, so a run lasts about a second
and each kill point falls inside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import (
    FAST_IMPORTER,
    FEED_ARGS,
    ROOT,
    EmulatorProcess,
    importer_env,
    kill_when,
    start_emulator,
    start_importer,
    stop_process,
    write_list,
)


def definition_state(emu: EmulatorProcess, name: str) -> dict[str, Any]:
    (found,) = [d for d in emu.state()["tenants"]["contoso-demo"]["alert_definitions"] if d["name"] == name]
    assert isinstance(found, dict)
    return found


def test_kill9_at_several_points_then_rerun_leaves_each_indicator_once(
    slow_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    emu = slow_emulator
    feed = write_list(tmp_path / "feed.txt", 3000, seed=21)
    killed = 0
    for point in (300, 1400, 2600):
        proc = start_importer(emu, tmp_path, str(feed), *FEED_ARGS)
        killed += kill_when(emu, proc, point)
        assert emu.state()["totals"]["duplicate_iocs"] == 0
    assert killed >= 2, "the runs ended before the kill points: slow the emulator down"
    report = tmp_path / "report.json"
    proc = start_importer(emu, tmp_path, str(feed), *FEED_ARGS, "--report", str(report))
    assert proc.wait(60) == 0, (tmp_path / "err.txt").read_text()
    state = emu.state()
    assert state["totals"]["iocs"] == 3000 and state["totals"]["duplicate_iocs"] == 0
    data = json.loads(report.read_text())
    assert data["journal"]["resumed_after_interrupted_run"] is True  # so it listed the definition once
    assert data["totals"]["imported"] + data["totals"]["already_present"] == 3000

    # A rerun after success asks the journal, not the tenant: a token and the definition, no listing.
    before = emu.requests()
    proc = start_importer(emu, tmp_path, str(feed), *FEED_ARGS, "--report", str(report))
    assert proc.wait(60) == 0
    data = json.loads(report.read_text())
    assert data["totals"]["already_present"] == 3000 and data["totals"]["imported"] == 0
    assert data["journal"]["listed_definitions"] == {}
    assert emu.requests() - before <= 3
    assert emu.state()["totals"]["iocs"] == 3000


def test_acceptance_combined_faults_and_kill9_half_way_two_runs_exactly_once(tmp_path: Path) -> None:
    # 5xx, a sliding-minute throttle with Retry-After, lost answers after writes, resets: both the
    # emulator and the importer run 50x fast, so a throttled "minute" passes in 1.2 s.
    factor = 50.0
    # Rates high enough that each fault fires in ~150 requests whatever the kill point (the
    # interleaving, and so which request draws which fault, varies from run to run).
    faults = {"error_rate": 0.05, "throttle_per_minute": 40, "lost_after_write_rate": 0.05,
              "reset_rate": 0.05, "latency_ms": 10.0, "seed": 7}  # fmt: skip
    emu = start_emulator(fast=(factor, faults, 120))
    try:
        feed = write_list(tmp_path / "feed.txt", 3000, seed=33)
        config = tmp_path / "feeds.toml"
        config.write_text(
            "[tuning]\nbatch_size = 25\nworkers = 4\nmax_attempts = 12\nmax_retry_seconds = 3600.0\n"
            f'[[feed]]\nsource = "{feed}"\nname = "Acceptance"\n'
        )
        env = importer_env(emu, tmp_path)
        report = tmp_path / "report.json"
        command = [sys.executable, "-c", FAST_IMPORTER, str(factor), str(config),
                   str(tmp_path / "state.sqlite"), str(report)]  # fmt: skip
        first = subprocess.Popen(command, cwd=ROOT, env=env, text=True)
        assert kill_when(emu, first, 1500), "the first run ended before the kill point"
        second = subprocess.Popen(command, cwd=ROOT, env=env, text=True)
        assert second.wait(90) == 0
        state = emu.state()
        assert state["totals"]["iocs"] == 3000, state
        assert state["totals"]["duplicate_iocs"] == 0
        assert definition_state(emu, "Acceptance")["ioc_count"] == 3000
        injected = state["faults_injected"]
        assert all(injected[kind] for kind in ("error", "throttle", "lost_after_write", "reset")), injected
        assert json.loads(report.read_text())["journal"]["resumed_after_interrupted_run"] is True
    finally:
        stop_process(emu.proc)
