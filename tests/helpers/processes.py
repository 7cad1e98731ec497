"""The emulator and the importer as child processes (for kill -9, signals and real-time tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.emulator import DEMO_CLIENT
from tests.helpers.clock import wait_until_sync

ROOT = Path(__file__).resolve().parents[2]


# --- the emulator and the importer as child processes --------------------------------------------
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


# An emulator on sped-up time: argv is the factor, the API faults (JSON) and the token lifetime.
FAST_EMULATOR = """
import asyncio, json, sys, time
from importer.emulator import EmulatorConfig, Faults, running_emulator
from tests.helpers import FakeTime
factor, faults, lifetime = float(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
fast = FakeTime(epoch=time.time(), speedup=factor)
async def main():
    token = Faults(token_lifetime=lifetime)
    config = EmulatorConfig(clock=fast.wall, api_faults=Faults(**faults), token_faults=token)
    async with running_emulator(config, port=0) as emu:
        print("ti-import emulator listening on", emu.base_url)
        print("  token endpoint (v1):", emu.auth_url(1))
        print("  TI API:", emu.ti_url, flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""

# The real ``run_import`` on sped-up time (sleeps end early, the clock runs fast), so Retry-After
# waits of the fast emulator's sliding minute pass in a fraction of a second. argv: the factor,
# the config file, the state journal, the report.
FAST_IMPORTER = """
import asyncio, sys
from pathlib import Path
from importer.run import run_import
from importer.settings import CliOptions, OutputOptions, StateOptions, load_run_settings
from tests.helpers import FakeTime
factor, config, state, report = float(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
fast = FakeTime(speedup=factor)
settings = load_run_settings(CliOptions(config=config))
result = asyncio.run(run_import(settings, OutputOptions(progress=False, report=report), sleep=fast.sleep,
                             clock=fast.clock, state=StateOptions(path=state)))
sys.exit(result.exit_code())
"""


def start_emulator(*flags: str, fast: tuple[float, dict[str, Any], int] | None = None) -> EmulatorProcess:
    """``ti-import emulator --port 0 FLAGS`` in its own process (or, with ``fast``: the factor, the
    API faults and the token lifetime, ``FAST_EMULATOR``)."""
    if fast is None:
        command = [sys.executable, "-m", "importer", "emulator", "--port", "0", *flags]
    else:
        factor, faults, lifetime = fast
        command = [sys.executable, "-c", FAST_EMULATOR, str(factor), json.dumps(faults), str(lifetime)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        base, auth_url, ti = _read_urls(proc)
    except BaseException:
        proc.kill()
        raise
    return EmulatorProcess(proc, base, auth_url, ti)


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def importer_env(emu: EmulatorProcess, home: Path) -> dict[str, str]:
    """This environment without TI_* variables, plus the demo client's against ``emu``; the
    default state journal under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
    env.update(
        TI_CLIENT_ID=DEMO_CLIENT.client_id,
        TI_CLIENT_SECRET=DEMO_CLIENT.client_secret,
        TI_AUTH_URL=emu.auth_url,
        TI_API_URL=emu.ti_url,
        XDG_STATE_HOME=str(home),
    )
    return env


# The feed options of the process tests: small batches and two workers, so a run takes a while.
FEED_ARGS = ("--name", "Resume", "--batch-size", "50", "--workers", "2")


def start_importer(emu: EmulatorProcess, tmp: Path, *argv: str) -> subprocess.Popen[str]:
    """``python -m importer run`` with the journal in ``tmp``; stdout/stderr to files there."""
    command = [sys.executable, "-m", "importer", "run", "--no-progress", "-q",
               "--state", str(tmp / "state.sqlite"), *argv]  # fmt: skip
    with (tmp / "out.txt").open("a") as out, (tmp / "err.txt").open("a") as err:
        env = importer_env(emu, tmp)
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)


def reached_before_exit(
    proc: subprocess.Popen[str], condition: Callable[[], bool], timeout: float = 30.0
) -> bool:
    """Poll ``condition`` until it holds (True) or ``proc`` ended first (False)."""
    return wait_until_sync(
        condition, timeout, give_up=lambda: proc.poll() is not None, what="the importer to get there"
    )


def kill_when(emu: EmulatorProcess, proc: subprocess.Popen[str], iocs: int) -> bool:
    """SIGKILL the importer once the tenant holds ``iocs`` indicators; False if it finished first."""
    reached = reached_before_exit(proc, lambda: emu.state()["totals"]["iocs"] >= iocs)
    if reached:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return reached
