"""Exactly once across crashes: the importer killed with SIGKILL mid-run, then rerun, against an emulator
in its own process (its state outlives the importer's death), checked through ``/_emulator/state``.

Feeds are a few thousand indicators and the emulator adds latency, so a run lasts about a second
and each kill point falls inside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from importer.emulator import DEMO_CLIENT
from tests.importer.test_pipeline import write_list

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class EmulatorProcess:
    proc: subprocess.Popen[str]
    base: str
    auth_url: str
    ti_url: str

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/_emulator/state", timeout=5) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    def requests(self) -> int:
        return sum(self.state()["requests_by_status"].values())


def _read_urls(proc: subprocess.Popen[str]) -> tuple[str, str, str]:
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    while len(urls) < 3:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator exited: {proc.wait()}")
        if "listening on" in line:
            urls["base"] = line.split()[-1]
        elif "token endpoint (v1)" in line:
            urls["auth"] = line.split()[-1]
        elif "TI API" in line:
            urls["ti"] = line.split()[-1]
    return urls["base"], urls["auth"], urls["ti"]


_FAST_EMULATOR = """
import asyncio, json, sys, time
from importer.emulator import EmulatorConfig, Faults, running_emulator
factor, faults, lifetime = float(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
start, epoch = time.monotonic(), time.time()
def clock():
    return epoch + (time.monotonic() - start) * factor
async def main():
    token = Faults(token_lifetime=lifetime)
    config = EmulatorConfig(clock=clock, api_faults=Faults(**faults), token_faults=token)
    async with running_emulator(config, port=0) as emu:
        print("ti-import emulator listening on", emu.base_url)
        print("  token endpoint (v1):", emu.auth_url(1))
        print("  TI API:", emu.ti_url, flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""

# The real ``execute`` with time sped up ``factor`` times (sleeps end early, the clock runs fast),
# so Retry-After waits of the fast emulator's sliding minute pass in a fraction of a second.
_FAST_IMPORTER = """
import asyncio, sys, time
from pathlib import Path
from importer.run import run_import
from importer.settings import OutputOptions, StateOptions
from importer.settings import CliOptions, load_run_settings
factor, config, state, report = float(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
start = time.monotonic()
def clock():
    return 1000.0 + (time.monotonic() - start) * factor
async def sleep(seconds):
    await asyncio.sleep(max(0.0, seconds) / factor)
settings = load_run_settings(CliOptions(config=config))
result = asyncio.run(run_import(settings, OutputOptions(progress=False, report=report), sleep=sleep,
                             clock=clock, state=StateOptions(path=state)))
sys.exit(result.exit_code())
"""


def start_emulator(*flags: str, fast: tuple[float, dict[str, Any], int] | None = None) -> EmulatorProcess:
    """``ti-import emulator --port 0 FLAGS`` in its own process (or, with ``fast``, one on a fast clock)."""
    if fast is None:
        command = [sys.executable, "-m", "importer", "emulator", "--port", "0", *flags]
    else:
        factor, faults, lifetime = fast
        command = [sys.executable, "-c", _FAST_EMULATOR, str(factor), json.dumps(faults), str(lifetime)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        base, auth, ti = _read_urls(proc)
    except BaseException:
        proc.kill()
        raise
    return EmulatorProcess(proc, base, auth, ti)


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorProcess]:
    """A plain emulator process; 20 ms per request makes a 3,000-indicator run last about a second."""
    emu = start_emulator("--latency-ms", "20", "--page-size", "500")
    try:
        yield emu
    finally:
        stop_process(emu.proc)


def importer_env(emu: EmulatorProcess, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
    env.update(
        TI_CLIENT_ID=DEMO_CLIENT.client_id,
        TI_CLIENT_SECRET=DEMO_CLIENT.client_secret,
        TI_AUTH_URL=emu.auth_url,
        TI_API_URL=emu.ti_url,
        XDG_STATE_HOME=str(home),
    )
    return env


def start_importer(emu: EmulatorProcess, tmp: Path, *argv: str) -> subprocess.Popen[str]:
    """``python -m importer run`` with the journal in ``tmp``; stdout/stderr to files there."""
    command = [sys.executable, "-m", "importer", "run", "--no-progress", "-q",
               "--state", str(tmp / "state.sqlite"), *argv]  # fmt: skip
    with (tmp / "out.txt").open("a") as out, (tmp / "err.txt").open("a") as err:
        env = importer_env(emu, tmp)
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)


def wait_until(proc: subprocess.Popen[str], condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds (True) or the process ended first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError("timed out waiting for the importer")


def kill_when(emu: EmulatorProcess, proc: subprocess.Popen[str], iocs: int) -> bool:
    """SIGKILL the importer once the tenant holds ``iocs`` indicators; False if it finished first."""
    reached = wait_until(proc, lambda: emu.state()["totals"]["iocs"] >= iocs)
    if reached:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return reached


def definition_state(emu: EmulatorProcess, name: str) -> dict[str, Any]:
    (found,) = [d for d in emu.state()["tenants"]["contoso-demo"]["alert_definitions"] if d["name"] == name]
    assert isinstance(found, dict)
    return found


FEED_ARGS = ("--name", "Resume", "--batch-size", "50", "--workers", "2")


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
        command = [sys.executable, "-c", _FAST_IMPORTER, str(factor), str(config),
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
