"""The Sentinel upload API's limit (100 requests a minute per client app, a scaled sliding window on
the injected clock), and the fault flags on both Sentinel routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from importer.emulator import DEMO_CLIENT, ClientApp, Emulator, EmulatorConfig, Faults, running_emulator
from tests.helpers import FakeTime, get_token
from tests.helpers.emulator_api import SENTINEL_RESOURCE, sentinel_query, sentinel_upload, stix_indicator

SECOND_APP = ClientApp("second-app", "second-secret", DEMO_CLIENT.tenant)


@pytest.fixture
async def scaled(fake_time: FakeTime) -> AsyncIterator[Emulator]:
    """An emulator whose Sentinel minute lasts 30 s of its (fake) clock, with a second app."""
    config = EmulatorConfig(
        clock=fake_time.wall, sentinel_window_scale=0.5, clients=(DEMO_CLIENT, SECOND_APP)
    )
    async with running_emulator(config) as emu:
        yield emu


def limited(seconds: int) -> dict[str, object]:
    return {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} seconds."}


async def test_100_requests_a_window_per_app_then_429_naming_the_wait(
    session: aiohttp.ClientSession, scaled: Emulator, fake_time: FakeTime
) -> None:
    token = await get_token(session, scaled, SENTINEL_RESOURCE)
    url = scaled.sentinel_upload_url()
    for n in range(50):
        assert (await sentinel_upload(session, url, token, [stix_indicator(n)]))[0] == 200
    fake_time.advance(10)
    for n in range(50, 100):
        assert (await sentinel_upload(session, url, token, [stix_indicator(n)]))[0] == 200
    status, body, headers = await sentinel_upload(session, url, token, [stix_indicator(100)])
    assert (status, body, headers["Retry-After"]) == (429, limited(20), "20")  # the first 50 leave at 30 s
    # Refused calls do not count, and every call counts whatever its answer (a 400 here).
    assert (await sentinel_upload(session, url, token, body={"bad": 1}))[0] == 429
    fake_time.advance(19.5)
    status, body, headers = await sentinel_upload(session, url, token, [stix_indicator(100)])
    assert (status, body, headers["Retry-After"]) == (429, limited(1), "1")  # whole seconds, at least 1
    fake_time.advance(0.5)
    assert (await sentinel_upload(session, url, token, [stix_indicator(100)]))[0] == 200
    assert (await sentinel_upload(session, url, token, body={"bad": 1}))[0] == 400
    for _ in range(48):  # 400s: had the two 429s above counted, the last two would be 429s
        assert (await sentinel_upload(session, url, token, body={"bad": 1}))[0] == 400
    assert (await sentinel_upload(session, url, token, [stix_indicator(101)]))[0] == 429
    # Another app of the same tenant has a window of its own; ARM reads are not counted.
    other = await get_token(
        session, scaled, SENTINEL_RESOURCE, client_id=SECOND_APP.client_id, secret=SECOND_APP.client_secret
    )
    assert (await sentinel_upload(session, url, other, [stix_indicator(101)]))[0] == 200
    assert (await sentinel_query(session, scaled.query_indicators_url(), token, {}))[0] == 200
    assert scaled.state()["totals"]["sentinel_objects"] == 102


async def test_reset_forgets_objects_and_windows(session: aiohttp.ClientSession, fake_time: FakeTime) -> None:
    config = EmulatorConfig(clock=fake_time.wall, sentinel_uploads_per_minute=1)
    async with running_emulator(config) as emu:
        token = await get_token(session, emu, SENTINEL_RESOURCE)
        url = emu.sentinel_upload_url()
        assert (await sentinel_upload(session, url, token, [stix_indicator(1)]))[0] == 200
        status, body, _ = await sentinel_upload(session, url, token, [stix_indicator(2)])
        assert (status, body) == (429, limited(60))
        async with session.post(emu.base_url + "/_emulator/reset") as response:
            assert response.status == 204
        assert emu.state()["totals"]["sentinel_objects"] == 0
        assert (await sentinel_upload(session, url, token, [stix_indicator(2)]))[0] == 200
        assert emu.state()["totals"]["sentinel_objects"] == 1


async def test_fault_flags_apply_to_both_routes(session: aiohttp.ClientSession, emulator: Emulator) -> None:
    token = await get_token(session, emulator, SENTINEL_RESOURCE)
    upload, query = emulator.sentinel_upload_url(), emulator.query_indicators_url()
    emulator.set_api_faults(Faults(error_rate=1.0, seed=3))
    assert (await sentinel_upload(session, upload, token, [stix_indicator(1)]))[0] in (500, 503)
    assert (await sentinel_query(session, query, token, {}))[0] in (500, 503)
    emulator.set_api_faults(Faults(throttle_per_minute=1))
    assert (await sentinel_upload(session, upload, token, [stix_indicator(1)]))[0] == 200
    status, body, headers = await sentinel_upload(session, upload, token, [stix_indicator(2)])
    assert (status, body, headers["Retry-After"]) == (429, limited(60), "60")  # in the upload API's words
    async with session.post(query, json={}, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "60"
        assert (await response.json())["error"]["code"] == "TooManyRequests"  # ARM's words
    emulator.set_api_faults(Faults(reset_rate=1.0))
    with pytest.raises(aiohttp.ClientError):
        await sentinel_upload(session, upload, token, [stix_indicator(3)])
    assert emulator.state()["totals"]["sentinel_objects"] == 1  # dropped before it was applied
    emulator.set_api_faults(Faults(lost_after_write_rate=1.0))
    with pytest.raises(aiohttp.ClientError):
        await sentinel_upload(session, upload, token, [stix_indicator(4)])
    assert emulator.state()["totals"]["sentinel_objects"] == 2  # applied, then the answer lost
    emulator.set_api_faults(Faults(latency_ms=1))
    assert (await sentinel_upload(session, upload, token, [stix_indicator(5)]))[0] == 200
    faults = emulator.state()["faults_injected"]
    assert faults == {"latency": 1, "error": 2, "throttle": 2, "reset": 1, "lost_after_write": 1}
