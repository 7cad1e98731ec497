"""Fixtures for the importer's tests: a running emulator on loopback (in process, or as a process),
and a private state home.

``emulator`` starts the in-process emulator on a free port with the default ``EmulatorConfig``;
a test that needs another configuration parametrises it indirectly::

    @pytest.mark.parametrize("emulator", [EmulatorConfig(page_size=5)], indirect=True)

or opens its own: ``async with running_emulator(EmulatorConfig(...)) as emu``. Fake time is the
``fake_time`` fixture of ``tests/conftest.py``; helpers are in ``tests/helpers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from importer.emulator import Emulator, EmulatorConfig, running_emulator
from tests.helpers import EmulatorProcess, start_emulator, stop_process


@pytest.fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    config: EmulatorConfig | None = getattr(request, "param", None)
    async with running_emulator(config) as emu:
        yield emu


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorProcess]:
    """A plain emulator process; 20 ms per request makes a 3,000-indicator run last about a second."""
    emu = start_emulator("--latency-ms", "20", "--page-size", "500")
    try:
        yield emu
    finally:
        stop_process(emu.proc)


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # `ti-import run` keeps a state journal under $XDG_STATE_HOME by default: never the user's own.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
    # Nor the user's runtime folder for the run locks: they fall back to the private state home.
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    # Nor the user's cache (--no-state keeps the warning lists' tables there): one for the session.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache-home"))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A journal path in folders that do not exist yet (the journal creates them)."""
    return tmp_path / "deep" / "er" / "state.sqlite"
