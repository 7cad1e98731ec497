"""``/_emulator/state`` and ``/_emulator/reset`` over HTTP, and ``ti-import emulator`` as a process."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import aiohttp

from importer.emulator import DEMO_CLIENT, Emulator
from tests.helpers import DEFINITION, auth


async def test_state_and_reset_over_http(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    async with session.post(
        emulator.ti_url + "AlertDefinitions", json=DEFINITION, headers=auth(ti_token)
    ) as r:
        assert r.status == 201
    async with session.get(emulator.base_url + "/_emulator/state") as response:
        state = await response.json()
    assert state == emulator.state()
    assert state["tenants"][DEMO_CLIENT.tenant]["alert_definitions"][0]["name"] == "feed-a"
    assert state["requests_by_status"] == {"200": 1, "201": 1} and state["tokens_issued"] == 1
    assert set(state["faults_injected"]) == {"latency", "error", "throttle", "reset", "lost_after_write"}
    async with session.post(emulator.base_url + "/_emulator/reset") as response:
        assert response.status == 204
    state = emulator.state()
    assert state["totals"] == {"alert_definitions": 0, "iocs": 0, "duplicate_iocs": 0, "mde_indicators": 0,
                               "sentinel_objects": 0, "sentinel_indicators": 0, "sentinel_revoked": 0,
                               "sentinel_duplicate_patterns": 0}
    assert state["requests_by_status"] == {} and state["tokens_issued"] == 0
    async with session.get(emulator.ti_url + "AlertDefinitions", headers=auth(ti_token)) as response:
        assert response.status == 200  # tokens survive a reset


def _ti_import() -> list[str]:
    found = shutil.which("ti-import", path=str(Path(sys.executable).parent)) or shutil.which("ti-import")
    return [found] if found else [sys.executable, "-m", "importer"]


async def test_cli_serves_and_exits_zero_on_sigterm(session: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        *_ti_import(),
        "emulator",
        "--port",
        "0",
        "--page-size",
        "10",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        match = re.fullmatch(r"ti-import emulator listening on (http://127\.0\.0\.1:\d+)\n", first)
        if match is None:
            _, errors = await asyncio.wait_for(process.communicate(), 10)
            raise AssertionError(f"first line {first!r}; stderr: {errors.decode()[-2000:]}")
        async with session.get(match[1] + "/_emulator/state") as response:
            assert response.status == 200 and DEMO_CLIENT.tenant in (await response.json())["tenants"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        rest, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, errors.decode()
    assert DEMO_CLIENT.client_id in rest.decode() and b"Traceback" not in errors
