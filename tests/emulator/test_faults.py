"""Each injected fault does what it says, only where it is configured, reproducibly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig, Faults, running_emulator
from importer.emulator import server as emulator_server
from importer.emulator.faults import FaultInjector
from importer.emulator.state import EmulatorState
from tests.helpers import DEFINITION, FakeTime, auth, get_token, sha1, ti_ioc, wait_until

_DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


async def _setup(session: aiohttp.ClientSession, emu: Emulator) -> tuple[str, int]:
    token = await get_token(session, emu)
    async with session.post(
        emu.ti_url + "AlertDefinitions", json=DEFINITION, headers=auth(token)
    ) as response:
        assert response.status == 201
        return token, (await response.json())["Id"]


async def test_lost_after_write_applies_then_drops(
    session: aiohttp.ClientSession, emulator: Emulator
) -> None:
    token, definition_id = await _setup(session, emulator)
    emulator.set_api_faults(Faults(lost_after_write_rate=1.0))
    with pytest.raises(_DROPPED):
        async with session.post(
            emulator.ti_url + "IndicatorsOfCompromise",
            json=ti_ioc(definition_id, sha1(1)),
            headers=auth(token),
        ) as response:
            await response.read()
    state = emulator.state()
    assert state["totals"]["iocs"] == 1  # the write was applied although no answer came
    assert state["faults_injected"]["lost_after_write"] == 1
    # Reads are never "lost after write".
    async with session.get(emulator.ti_url + "IndicatorsOfCompromise", headers=auth(token)) as response:
        assert response.status == 200 and len((await response.json())["value"]) == 1


async def test_reset_drops_before_applying(session: aiohttp.ClientSession, emulator: Emulator) -> None:
    token, definition_id = await _setup(session, emulator)
    emulator.set_api_faults(Faults(reset_rate=1.0))
    with pytest.raises(_DROPPED):
        async with session.post(
            emulator.ti_url + "IndicatorsOfCompromise",
            json=ti_ioc(definition_id, sha1(1)),
            headers=auth(token),
        ) as response:
            await response.read()
    state = emulator.state()
    assert state["totals"]["iocs"] == 0 and state["faults_injected"]["reset"] == 1
    # The inspection surface is never faulted, and neither is the token endpoint by API faults.
    async with session.get(emulator.base_url + "/_emulator/state") as response:
        assert response.status == 200
    assert await get_token(session, emulator)


async def test_error_rate_answers_5xx_without_applying(
    session: aiohttp.ClientSession, emulator: Emulator
) -> None:
    token, _ = await _setup(session, emulator)
    emulator.set_api_faults(Faults(error_rate=1.0, seed=3))
    statuses = set()
    for _ in range(12):
        async with session.post(
            emulator.ti_url + "AlertDefinitions", json=DEFINITION, headers=auth(token)
        ) as response:
            statuses.add(response.status)
            assert "error" in await response.json()
    assert statuses == {500, 503}
    state = emulator.state()
    assert state["totals"]["alert_definitions"] == 1 and state["faults_injected"]["error"] == 12


async def test_faults_are_reproducible_from_the_seed(session: aiohttp.ClientSession) -> None:
    async def run() -> list[int]:
        faults = Faults(error_rate=0.5, seed=42)
        async with running_emulator(EmulatorConfig(api_faults=faults)) as emu:
            token = await get_token(session, emu)
            out = []
            for _ in range(20):
                async with session.get(emu.ti_url + "AlertDefinitions", headers=auth(token)) as response:
                    out.append(response.status)
            return out

    first, second = await run(), await run()
    assert first == second and 200 in first and (500 in first or 503 in first)


async def test_throttle_answers_429_with_retry_after(
    session: aiohttp.ClientSession, emulator: Emulator, fake_time: FakeTime
) -> None:
    token, _ = await _setup(session, emulator)
    emulator.set_api_faults(Faults(throttle_per_minute=2))
    url = emulator.ti_url + "AlertDefinitions"
    for _ in range(2):
        async with session.get(url, headers=auth(token)) as response:
            assert response.status == 200
    fake_time.advance(20)
    async with session.get(url, headers=auth(token)) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "40"
    fake_time.advance(39)
    async with session.get(url, headers=auth(token)) as response:
        assert response.status == 429  # retrying sooner than told gets another 429
    fake_time.advance(1)
    async with session.get(url, headers=auth(token)) as response:
        assert response.status == 200
    assert emulator.state()["faults_injected"]["throttle"] == 2


async def test_latency(session: aiohttp.ClientSession, emulator: Emulator) -> None:
    token, _ = await _setup(session, emulator)
    emulator.set_api_faults(Faults(latency_ms=80, jitter_ms=20))
    started = time.perf_counter()
    async with session.get(emulator.ti_url + "AlertDefinitions", headers=auth(token)) as response:
        assert response.status == 200
    assert 0.08 <= time.perf_counter() - started < 1.0
    assert emulator.state()["faults_injected"]["latency"] == 1


async def test_token_faults_are_separate(session: aiohttp.ClientSession, emulator: Emulator) -> None:
    token, _ = await _setup(session, emulator)
    emulator.set_token_faults(Faults(error_rate=1.0, token_lifetime=5))
    form = {
        "grant_type": "client_credentials",
        "client_id": DEMO_CLIENT.client_id,
        "client_secret": DEMO_CLIENT.client_secret,
        "resource": "https://graph.windows.net",
    }
    async with session.post(emulator.auth_url(), data=form) as response:
        assert response.status in (500, 503)
        body = await response.json()
        assert body["error"] in ("server_error", "temporarily_unavailable") and body["error_codes"]
    async with session.get(emulator.ti_url + "AlertDefinitions", headers=auth(token)) as response:
        assert response.status == 200  # the API is not affected by token faults
    emulator.set_token_faults(Faults(token_lifetime=5))
    async with session.post(emulator.auth_url(), data=form) as response:
        assert (await response.json())["expires_in"] == "5"
    emulator.set_token_faults(Faults(reset_rate=1.0))
    with pytest.raises(_DROPPED):
        async with session.post(emulator.auth_url(), data=form) as response:
            await response.read()


def test_latency_runs_from_arrival() -> None:
    """The answer is due ``latency`` after the request arrived, whatever the emulator did meanwhile."""
    injector = FaultInjector(Faults(latency_ms=50), clock=lambda: 0.0, counters=Counter())
    early, due = injector.admit(arrived=100.0)
    assert early is None
    assert due == pytest.approx(100.05)
    quiet = FaultInjector(Faults(), clock=lambda: 0.0, counters=Counter())
    assert quiet.admit(arrived=100.0) == (None, 100.0)


async def test_answer_waits_latency_but_the_write_is_applied_on_arrival(
    session: aiohttp.ClientSession, emulator: Emulator
) -> None:
    token, definition_id = await _setup(session, emulator)
    # A latency far longer than the request takes to arrive, so the window is there on a busy machine.
    emulator.set_api_faults(Faults(latency_ms=2000))
    body = {
        "Type": "Sha1",
        "Value": sha1(1),
        "DetectionFunction": "Equals",
        "Enabled": True,
        "AlertDefinition@odata.bind": f"AlertDefinitions({definition_id})",
    }
    posting = asyncio.ensure_future(
        session.post(emulator.ti_url + "IndicatorsOfCompromise", json=body, headers=auth(token))
    )
    # The write lands within milliseconds of arriving, long before the answer is due.
    await wait_until(lambda: emulator.state()["totals"]["iocs"], timeout=2.0, what="the write")
    assert emulator.state()["totals"]["iocs"] == 1  # stored, though the answer is still on its way
    assert not posting.done()
    posting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await posting


async def test_a_client_gone_mid_body_is_not_an_error(
    session: aiohttp.ClientSession,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A killed client (kill -9 mid-upload) is routine under fault tests: no traceback in the log."""
    token = await get_token(session, emulator)
    # Watch the emulator's request dispatch: the request reaching it, and the task serving the
    # connection (aiohttp's, which logs whatever the handler raises) - done once all is handled.
    served: list[asyncio.Task[None]] = []
    dispatch = emulator_server._dispatch

    async def watched(request: web.BaseRequest, state: EmulatorState) -> web.StreamResponse:
        served.append(request.task)
        return await dispatch(request, state)

    monkeypatch.setattr(emulator_server, "_dispatch", watched)
    host, port = emulator.base_url.removeprefix("http://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /V1.0/IndicatorsOfCompromise HTTP/1.1\r\nHost: emulator\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\nAuthorization: Bearer " + token.encode() + b'\r\n\r\n{"Type": '
    )
    await writer.drain()
    await wait_until(lambda: served, what="the handler to start on the request")  # now short of its body
    writer.close()
    await writer.wait_closed()
    await wait_until(served[0].done, what="the emulator to finish with the connection")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert emulator.state()["totals"]["iocs"] == 0
