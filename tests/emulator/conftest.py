"""Fixtures for the emulator tests: a running emulator on loopback, a client session, tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig, running_emulator


class FakeClock:
    """A clock the test moves by hand (token expiry, rate windows)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[Emulator]:
    async with running_emulator(EmulatorConfig(clock=clock, page_size=50)) as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


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


@pytest.fixture
async def ti_token(session: aiohttp.ClientSession, emulator: Emulator) -> str:
    return await get_token(session, emulator)


@pytest.fixture
async def mde_token(session: aiohttp.ClientSession, emulator: Emulator) -> str:
    return await get_token(session, emulator, "https://api.securitycenter.microsoft.com")


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


def sha1(n: int) -> str:
    return f"{n:040x}"
