"""Fixtures for the emulator tests: a running emulator on fake time, a client session, tokens.

The emulator's clock is ``fake_time.wall`` (``tests/conftest.py``): a test moves it by hand with
``fake_time.advance`` (token expiry, rate windows). Helpers are in ``tests/helpers.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from importer.emulator import Emulator, EmulatorConfig, running_emulator
from tests.helpers import FakeTime, get_token


@pytest.fixture
async def emulator(fake_time: FakeTime) -> AsyncIterator[Emulator]:
    async with running_emulator(EmulatorConfig(clock=fake_time.wall, page_size=50)) as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def ti_token(session: aiohttp.ClientSession, emulator: Emulator) -> str:
    return await get_token(session, emulator)


@pytest.fixture
async def mde_token(session: aiohttp.ClientSession, emulator: Emulator) -> str:
    return await get_token(session, emulator, "https://api.securitycenter.microsoft.com")
