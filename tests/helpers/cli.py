"""``ti-import run`` called in-process against an emulator, as a user would from a shell."""

from __future__ import annotations

import asyncio

import pytest

from importer.cli import main
from importer.emulator import DEMO_CLIENT, Emulator


def use_emulator(
    monkeypatch: pytest.MonkeyPatch,
    emu: Emulator,
    *,
    secret: str = DEMO_CLIENT.client_secret,
    api_url: str | None = None,
) -> None:
    """The demo client's environment for ``emu`` (``api_url``: default its ti API)."""
    monkeypatch.setenv("TI_CLIENT_ID", DEMO_CLIENT.client_id)
    monkeypatch.setenv("TI_CLIENT_SECRET", secret)
    monkeypatch.setenv("TI_AUTH_URL", emu.auth_url(1))
    monkeypatch.setenv("TI_API_URL", api_url or emu.ti_url)


async def run_cli(*argv: str) -> int:
    """``ti-import run --no-progress ARGV...``; its exit code.

    The command runs its own event loop in a thread; the emulator keeps serving from this one."""
    return await asyncio.to_thread(main, ["run", "--no-progress", *argv])
