"""Helpers the test modules share (no test module imports another): the one injected test clock,
polling waits, definitions and settings for the emulator, feeds written to disk, the emulator's API
by hand, miniatures of the pipeline, and the importer and emulator run as child processes.

Fixtures live in the ``conftest.py`` files and build on these.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from feeds.model import Indicator, Kind
from importer.emulator import DEMO_CLIENT, Emulator
from importer.fields import COMMON, MIRROR, build_definition
from importer.model import BatchResult, DefinitionSpec, InFlight, Options, ResolvedDefinition
from importer.report.counts import RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions, Tuning
from importer.targets.base import Target
from importer.targets.registry import open_target, package
from importer.transport.connection import ConnectionSettings, Secret
from importer.transport.stats import TransportStats

ROOT = Path(__file__).resolve().parent.parent


# --- time ----------------------------------------------------------------------------------------
class FakeTime:
    """The tests' one notion of injected time: ``clock`` (monotonic), ``wall`` (epoch seconds,
    moving with it) and ``sleep`` (recording every wait in ``sleeps``), handed to the code under
    test in place of ``time.monotonic``, ``time.time`` and ``asyncio.sleep`` - and to the emulator
    as ``EmulatorConfig(clock=fake.wall)``, so both sides of a test live on the same time.

    Its time is ``start + moved + speedup * (real seconds since it was made)``, where ``moved`` is
    what ``advance`` and sleeps added. One parameter chooses how time passes:

    * virtual (``speedup=None``, the default): time stands still unless something moves it.
      ``advance(s)`` jumps it; ``sleep(s)`` yields to the event loop once and returns with the
      clock at its deadline (never earlier than it already is: sleepers that started together
      each wake at their own deadline, and the clock never goes back). Tokens expire and
      Retry-After minutes pass without anyone waiting, and every instant is exact.
    * sped up (``speedup=k``): time also flows by itself, ``k`` times faster than real time, and
      ``sleep(s)`` really waits ``s / k``. For scenarios where many tasks sleep while requests are
      in flight: in virtual time one sleeper's jump would carry the clock past everyone else's
      pending I/O (a whole throttle window passing during a single request), while here time
      passes for all alike, only faster. ``advance`` still jumps it.

    The same class runs in child processes too (the importer and emulator of ``FAST_IMPORTER`` and
    ``FAST_EMULATOR``), sped up.
    """

    def __init__(
        self, start: float = 1000.0, epoch: float = 1_700_000_000.0, *, speedup: float | None = None
    ) -> None:
        if speedup is not None and speedup <= 0:
            raise ValueError("speedup is a positive factor (or None: virtual time)")
        self.start = start
        self.speedup = speedup
        self.sleeps: list[float] = []
        self._moved_to = start  # start plus whatever advance() and virtual sleeps added
        self._epoch_offset = epoch - start
        self._real_start = time.monotonic()

    def clock(self) -> float:
        if self.speedup is None:
            return self._moved_to
        return self._moved_to + (time.monotonic() - self._real_start) * self.speedup

    @property
    def now(self) -> float:
        """``clock()``, as a value to read in assertions."""
        return self.clock()

    def wall(self) -> float:
        return self.clock() + self._epoch_offset

    def advance(self, seconds: float) -> None:
        self._moved_to += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.speedup is not None:
            await asyncio.sleep(max(0.0, seconds) / self.speedup)
            return
        deadline = self._moved_to + max(0.0, seconds)
        await asyncio.sleep(0)
        self._moved_to = max(self._moved_to, deadline)


async def wait_until(
    condition: Callable[[], object],
    timeout: float = 5.0,
    *,
    what: str = "the condition",
    fail: bool = True,
    interval: float = 0.001,
) -> bool:
    """Poll ``condition`` (letting the event loop run in between) until it is true: True.

    After ``timeout`` seconds of real time: AssertionError naming ``what`` - or, with
    ``fail=False``, False (a gate that lets a straggler through rather than wait for ever).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            if fail:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            return False
        await asyncio.sleep(interval)
    return True


async def settle(steps: int = 50) -> None:
    """Let every ready task take up to ``steps`` more steps of the event loop; no time passes on a
    ``FakeTime`` and no real waiting is involved, so the outcome is the same on any machine.

    For asserting that something did *not* happen: first ``wait_until`` the event it would follow
    (a task reaching the point where it must block), then ``settle``, then assert.
    """
    for _ in range(steps):
        await asyncio.sleep(0)


def wait_until_sync(
    condition: Callable[[], object],
    timeout: float = 30.0,
    *,
    give_up: Callable[[], object] | None = None,
    what: str = "the condition",
    interval: float = 0.01,
) -> bool:
    """Blocking ``wait_until``: True once ``condition`` holds; False if ``give_up`` holds first
    (say, the process being watched has exited); AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if give_up is not None and give_up():
            return False
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- definitions and settings --------------------------------------------------------------------
def spec_for(
    name: str, target: str = "ti", *, expires_at: datetime | None = None, **given: Any
) -> DefinitionSpec:
    """A definition for ``target`` with the given option values (unchecked) and defaults for the rest."""
    spec = build_definition(COMMON + package(target).fields, name, **given)
    return spec if expires_at is None else replace(spec, expires_at=expires_at)


def feed_spec(name: str) -> DefinitionSpec:
    """The ti definition of a test feed called ``name`` (a title and description derived from it)."""
    return spec_for(name, title=f"Test {name}", description=f"test feed {name}")


def connection_settings(
    emu: Emulator, *, api: str = "ti", version: int = 1, **overrides: object
) -> ConnectionSettings:
    """Settings for the demo client against ``emu`` (``api``: "ti" or "mde"); any field overridable."""
    values: dict[str, object] = {
        "auth_url": emu.auth_url(version),
        "api_url": emu.ti_url if api == "ti" else emu.mde_url,
        "client_id": DEMO_CLIENT.client_id,
        "client_secret": Secret(DEMO_CLIENT.client_secret),
        "max_attempts": 4,
        "max_retry_seconds": 120.0,
        "total_timeout": 10.0,
        "connect_timeout": 2.0,
    }
    values.update(overrides)
    return ConnectionSettings(**values)  # type: ignore[arg-type]


# --- feeds and indicators ------------------------------------------------------------------------
def md5(n: int) -> str:
    return f"{n:032x}"


def md5_items(start: int, stop: int) -> list[tuple[Kind, str, str]]:
    """Acknowledged ``(kind, value, remote id)`` items, as the journal records them."""
    return [(Kind.MD5, md5(n), f"r{n}") for n in range(start, stop)]


def md5_keys(start: int, stop: int) -> list[tuple[Kind, str]]:
    return [(Kind.MD5, md5(n)) for n in range(start, stop)]


def sha1(n: int) -> str:
    return f"{n:040x}"


def sha256(n: int) -> str:
    return f"{n:064x}"


def sha1s(n: int, start: int = 0) -> list[Indicator]:
    """``n`` SHA-1 indicators numbered from ``start``, each from its line of ``feed.txt``."""
    return [Indicator(Kind.SHA1, sha1(i), f"feed.txt:{i + 1}") for i in range(start, start + n)]


def write_list(path: Path, count: int, *, seed: int = 1, bad_every: int = 0) -> Path:
    """A list feed of ``count`` random SHA-256 hashes; with ``bad_every``, a non-indicator line and
    a URL (which the ti target rejects) after every ``bad_every``-th hash."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(count):
            out.write(f"{rng.getrandbits(256):064x}\n")
            if bad_every and i % bad_every == 0:
                out.write(f"definitely not an indicator\nhttp://url.example/{i}\n")
    return path


def write_feed(path: Path, numbers: Sequence[int]) -> Path:
    """A list feed of ``sha256(n)`` for each of ``numbers``."""
    path.write_text("".join(f"{sha256(n)}\n" for n in numbers))
    return path


# --- the emulator's API by hand ------------------------------------------------------------------
DEFINITION: dict[str, Any] = {
    "Name": "feed-a",
    "Title": "Known bad from feed A",
    "Severity": "Medium",
    "Category": "Malware",
    "InternalDescription": "Imported by ti-importer",
    "UxDescription": "An indicator from feed A was seen",
    "RecommendedAction": "Isolate the machine",
    "Enabled": True,
}


async def get_token(
    session: aiohttp.ClientSession,
    emu: Emulator,
    resource: str = "https://graph.windows.net",
    *,
    client_id: str = DEMO_CLIENT.client_id,
    secret: str = DEMO_CLIENT.client_secret,
    tenant: str | None = None,
) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "resource": resource,
    }
    async with session.post(emu.auth_url(1, tenant), data=form) as response:
        body = await response.json()
        assert response.status == 200, body
        token: str = body["access_token"]
        return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


async def post_json(session: aiohttp.ClientSession, url: str, token: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body, headers=auth(token)) as response:
        return response.status, (await response.json() if response.status != 204 else None)


async def get_json(session: aiohttp.ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with session.get(url, headers=auth(token)) as response:
        return response.status, await response.json()


def ti_ioc(definition_id: int, value: str, **extra: Any) -> dict[str, Any]:
    """A TI API IndicatorOfCompromise body: a SHA-1 ``value`` bound to the definition."""
    return {
        "Type": "Sha1",
        "Value": value,
        "DetectionFunction": "Equals",
        "Enabled": True,
        "AlertDefinition@odata.bind": f"AlertDefinitions({definition_id})",
        **extra,
    }


async def create_definition(session: aiohttp.ClientSession, emu: Emulator, token: str, **extra: Any) -> int:
    """POST ``DEFINITION`` (with ``extra`` fields) to the TI API; its id."""
    status, body = await post_json(session, emu.ti_url + "AlertDefinitions", token, {**DEFINITION, **extra})
    assert status == 201, body
    definition_id: int = body["Id"]
    return definition_id


# --- targets and runs ----------------------------------------------------------------------------
@asynccontextmanager
async def ti_target(
    emu: Emulator,
    fake: FakeTime,
    stats: TransportStats,
    *,
    bulk: bool = True,
    workers: int = 16,
    **overrides: Any,
) -> AsyncIterator[Target]:
    """The ti target against ``emu``, on ``fake``'s time; ``overrides``: connection settings."""
    settings = connection_settings(emu, **overrides)
    async with open_target(
        "ti", settings, stats, sleep=fake.sleep, clock=fake.clock, bulk=bulk, in_flight=InFlight(workers)
    ) as t:
        yield t


def tenant(emu: Emulator) -> dict[str, Any]:
    """The demo tenant's part of the emulator's state."""
    state: dict[str, Any] = emu.state()["tenants"][DEMO_CLIENT.tenant]
    return state


async def send_all(
    target: Target, definition: ResolvedDefinition, items: list[Indicator], batch: int, workers: int
) -> BatchResult:
    """A miniature of the pipeline: ``workers`` concurrent senders over batches of ``batch``."""
    total = BatchResult()
    queue: asyncio.Queue[list[Indicator]] = asyncio.Queue()
    for start in range(0, len(items), batch):
        queue.put_nowait(items[start : start + batch])

    async def worker() -> None:
        while not queue.empty():
            result = await target.send(definition, queue.get_nowait())
            total.imported += result.imported
            total.rejected += result.rejected
            total.failed += result.failed

    await asyncio.gather(*(worker() for _ in range(workers)))
    return total


def journaled_settings(
    emu: Emulator, feed: Path, *, mirror: bool = False, api: str = "ti", **kw: Any
) -> RunSettings:
    """One feed, "Mirrored", to ``api`` of ``emu``: batches of 40, four workers."""
    return RunSettings(
        target="mde" if api == "mde" else "ti",
        connection=connection_settings(emu, api=api),
        feeds=(FeedSettings(str(feed), feed_spec("Mirrored"), Options({MIRROR.key: mirror})),),
        tuning=Tuning(batch_size=40, workers=4),
        **kw,
    )


async def journaled_run(
    emu: Emulator, feed: Path, state: Path, *, mirror: bool = False, fake: FakeTime | None = None, **kw: Any
) -> RunReport:
    """``run_import`` of ``journaled_settings`` with the state journal at ``state``, as ``ti-import
    run`` calls it (on ``fake``'s time if given); ``reconcile``, ``force`` and ``mirror_max_share``
    go to the journal's options, anything else to the settings."""
    options = {k: kw.pop(k) for k in ("reconcile", "force", "mirror_max_share") if k in kw}
    timing: dict[str, Any] = {} if fake is None else {"sleep": fake.sleep, "clock": fake.clock}
    return await run_import(
        journaled_settings(emu, feed, mirror=mirror, **kw),
        OutputOptions(progress=False),
        state=StateOptions(path=state, **options),
        **timing,
    )


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
