"""The MDE Indicators API: submit/upsert, import with per-item results, list, delete, limits, cap."""

from __future__ import annotations

import aiohttp

from importer.emulator import Emulator, EmulatorConfig, running_emulator
from tests.helpers import FakeTime, get_token, sha1
from tests.helpers.emulator_api import mde_call, mde_indicator

MDE = "https://api.securitycenter.microsoft.com"


async def test_submit_upserts_by_value_and_type(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    url = emulator.mde_url + "indicators"
    status, body, _ = await mde_call(session, "POST", url, mde_token, mde_indicator(sha1(1)))
    assert status == 200 and body["indicatorValue"] == sha1(1) and body["id"]
    status, again, _ = await mde_call(
        session, "POST", url, mde_token, mde_indicator(sha1(1).upper(), title="renamed")
    )
    assert status == 200 and again["id"] == body["id"] and again["title"] == "renamed"
    status, other, _ = await mde_call(session, "POST", url, mde_token, mde_indicator("1.2.3.4", "IpAddress"))
    assert other["id"] != body["id"]
    assert emulator.state()["totals"]["mde_indicators"] == 2
    status, listed, _ = await mde_call(
        session, "GET", url + f"?$filter=indicatorValue eq '{sha1(1)}'", mde_token
    )
    assert status == 200 and [i["id"] for i in listed["value"]] == [body["id"]]
    status, listed, _ = await mde_call(
        session, "GET", url + "?$filter=indicatorType eq 'IpAddress'&$top=5", mde_token
    )
    assert [i["indicatorValue"] for i in listed["value"]] == ["1.2.3.4"]
    status, _, _ = await mde_call(session, "GET", url + "?$top=10001", mde_token)
    assert status == 400


async def test_submit_validation_codes(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    url = emulator.mde_url + "indicators"
    cases = [
        (mde_indicator("abc"), "InvalidHashValue"),
        (mde_indicator("10.0.0.0/8", "IpAddress"), "InvalidIpAddress"),
        (mde_indicator("bad domain", "DomainName"), "InvalidDomainName"),
        (mde_indicator("not a url", "Url"), "InvalidUrl"),
        ({k: v for k, v in mde_indicator(sha1(1)).items() if k != "title"}, "MissingRequiredParameter"),
        ({**mde_indicator(sha1(1)), "IndicatorValue": sha1(2)}, "InvalidRequestBody"),
        (mde_indicator(sha1(1), action="Audit"), "InvalidRequestBody"),
        (mde_indicator(sha1(1), action="Nuke"), "InvalidRequestBody"),
    ]
    for body, code in cases:
        status, answer, _ = await mde_call(session, "POST", url, mde_token, body)
        assert (status, answer["error"]["code"]) == (400, code), body
    status, _, _ = await mde_call(
        session, "POST", url, mde_token, mde_indicator(sha1(1), action="Audit", generateAlert=True)
    )
    assert status == 200
    status, _, _ = await mde_call(
        session, "POST", url, mde_token, mde_indicator("https://evil.example.com/x", "Url", action="Block")
    )
    assert status == 200


async def test_import_per_item_results_and_batch_limit(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    url = emulator.mde_url + "indicators/import"
    items = [mde_indicator(sha1(1)), mde_indicator("nope"), mde_indicator("evil.example.com", "DomainName")]
    status, body, _ = await mde_call(session, "POST", url, mde_token, {"Indicators": items})
    assert status == 200
    results = body["value"]
    assert [r["isFailed"] for r in results] == [False, True, False]
    assert results[1]["failureReason"].startswith("InvalidHashValue") and results[1]["id"] is None
    assert results[0]["indicator"] == sha1(1) and results[0]["failureReason"] is None
    status, body, _ = await mde_call(
        session, "POST", url, mde_token, {"Indicators": [mde_indicator(sha1(n)) for n in range(501)]}
    )
    assert status == 400 and body["error"]["code"] == "MaximumBatchSizeExceeded"
    assert "Received: 501, allowed: 500" in body["error"]["message"]
    status, body, _ = await mde_call(session, "POST", url, mde_token, {"indicators": items})
    assert status == 400 and body["error"]["code"] == "MissingRequiredParameter"
    assert emulator.state()["totals"]["mde_indicators"] == 2


async def test_delete_and_batch_delete(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    status, body, _ = await mde_call(
        session,
        "POST",
        emulator.mde_url + "indicators/import",
        mde_token,
        {"Indicators": [mde_indicator(sha1(n)) for n in range(5)]},
    )
    ids = [r["id"] for r in body["value"]]
    status, _, _ = await mde_call(session, "DELETE", emulator.mde_url + f"indicators/{ids[0]}", mde_token)
    assert status == 204
    status, body, _ = await mde_call(session, "DELETE", emulator.mde_url + f"indicators/{ids[0]}", mde_token)
    assert status == 404 and body["error"]["code"] == "NotFound"
    status, _, _ = await mde_call(
        session, "POST", emulator.mde_url + "indicators/BatchDelete", mde_token, {"IndicatorIds": ids[1:3]}
    )
    assert status == 204
    status, body, _ = await mde_call(
        session, "POST", emulator.mde_url + "indicators/BatchDelete", mde_token, {"IndicatorIds": ["1"] * 501}
    )
    assert status == 400 and body["error"]["code"] == "MaximumBatchSizeExceeded"
    status, body, _ = await mde_call(session, "GET", emulator.mde_url + "indicators", mde_token)
    assert sorted(i["id"] for i in body["value"]) == sorted(ids[3:])


async def test_rate_limits_with_a_scaled_window(session: aiohttp.ClientSession, fake_time: FakeTime) -> None:
    config = EmulatorConfig(
        clock=fake_time.wall,
        mde_import_per_minute=2,
        mde_calls_per_minute=3,
        mde_calls_per_hour=4,
        mde_window_scale=0.01,
    )
    async with running_emulator(config) as emu:
        token = await get_token(session, emu, MDE)
        url = emu.mde_url + "indicators/import"
        body = {"Indicators": [mde_indicator(sha1(1))]}
        assert (await mde_call(session, "POST", url, token, body))[0] == 200
        assert (await mde_call(session, "POST", url, token, body))[0] == 200
        status, answer, headers = await mde_call(session, "POST", url, token, body)
        assert (status, answer["error"]["code"], headers["Retry-After"]) == (429, "TooManyRequests", "1")
        fake_time.advance(0.3)
        # Sooner than the window: 429 again.
        assert (await mde_call(session, "POST", url, token, body))[0] == 429
        fake_time.advance(0.3)  # a scaled minute (0.6 s) has passed
        assert (await mde_call(session, "POST", url, token, body))[0] == 200
        listing = emu.mde_url + "indicators"
        for _ in range(3):
            assert (await mde_call(session, "GET", listing, token))[0] == 200
        assert (await mde_call(session, "GET", listing, token))[0] == 429
        fake_time.advance(0.6)
        assert (await mde_call(session, "GET", listing, token))[0] == 200
        fake_time.advance(0.6)
        status, _, headers = await mde_call(session, "GET", listing, token)
        assert status == 429 and int(headers["Retry-After"]) >= 1  # the hourly window (36 s scaled) is full


async def test_tenant_cap(session: aiohttp.ClientSession) -> None:
    async with running_emulator(EmulatorConfig(mde_tenant_cap=3)) as emu:
        token = await get_token(session, emu, MDE)
        status, body, _ = await mde_call(
            session,
            "POST",
            emu.mde_url + "indicators/import",
            token,
            {"Indicators": [mde_indicator(sha1(n)) for n in range(5)]},
        )
        assert status == 200
        assert [r["isFailed"] for r in body["value"]] == [False, False, False, True, True]
        assert body["value"][3]["failureReason"].startswith("IndicatorLimitExceeded")
        status, body, _ = await mde_call(
            session, "POST", emu.mde_url + "indicators", token, mde_indicator(sha1(9))
        )
        assert status == 400 and body["error"]["code"] == "IndicatorLimitExceeded"
        # Updating an existing indicator is still allowed at the cap.
        status, _, _ = await mde_call(
            session, "POST", emu.mde_url + "indicators", token, mde_indicator(sha1(0))
        )
        assert status == 200


async def test_mde_needs_an_mde_token(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    status, body, _ = await mde_call(session, "GET", emulator.mde_url + "indicators", ti_token)
    assert status == 401 and body["error"]["code"] == "Unauthorized"
