"""Fixtures for the importer's tests: a running emulator on loopback, and fake time.

``emulator`` starts the in-process emulator on a free port with the default ``EmulatorConfig``;
a test that needs another configuration parametrises it indirectly::

    @pytest.mark.parametrize("emulator", [EmulatorConfig(page_size=5)], indirect=True)

or opens its own: ``async with running_emulator(EmulatorConfig(...)) as emu``.

``fake_time`` is a virtual clock: ``sleep`` returns at once and moves the clock forward, and
``wall`` (an epoch clock) moves with it, so it can drive the emulator's clock too
(``EmulatorConfig(clock=fake_time.wall)``): tokens expire and throttle windows pass without
anyone waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig, running_emulator
from importer.transport.connection import ConnectionSettings, Secret


class FakeTime:
    """A monotonic clock and a sleep that only advance virtual time (recording every sleep)."""

    def __init__(self, start: float = 1000.0, epoch: float = 1_700_000_000.0) -> None:
        self.now = start
        self._epoch_offset = epoch - start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._epoch_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        # Sleepers that started together wake at their own deadlines: the clock moves to the
        # latest deadline reached so far, never backwards.
        self.sleeps.append(seconds)
        deadline = self.now + max(0.0, seconds)
        await asyncio.sleep(0)
        self.now = max(self.now, deadline)


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


class FastTime:
    """Real time sped up ``factor`` times: a clock that runs fast and sleeps that end early.

    For scenarios where many tasks sleep at once while requests are in flight (virtual time would
    let one sleeper jump the clock past everyone else's pending I/O): here time passes for all
    alike, only faster. ``wall`` is the matching epoch clock, for the emulator.
    """

    def __init__(self, factor: float = 100.0, start: float = 1000.0, epoch: float = 1_700_000_000.0) -> None:
        self.factor = factor
        self.start = start
        self._epoch = epoch
        self._real_start = time.monotonic()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.start + (time.monotonic() - self._real_start) * self.factor

    def wall(self) -> float:
        return self._epoch + self.clock() - self.start

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(max(0.0, seconds) / self.factor)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    config: EmulatorConfig | None = getattr(request, "param", None)
    async with running_emulator(config) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # `ti-import run` keeps a state journal under $XDG_STATE_HOME by default: never the user's own.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
