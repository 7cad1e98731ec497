"""The MDE Indicator entity as real clients send and read it (issue 14): externalId and
lastUpdateTime, the other documented properties, application only on a new indicator, the listed
shape, $select and $filter, legacy actions, IPv6 with all 8 segments, and errors that carry a
correlation id."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from importer.emulator import Emulator, EmulatorConfig, Faults, running_emulator
from tests.helpers import FakeTime, auth, get_token, sha1
from tests.helpers.emulator_api import MDE_RESOURCE, mde_call, mde_indicator

# The listed entity, as the entity page documents it (API.md section 3), in its order.
DOCUMENTED = [
    "id",
    "indicatorValue",
    "indicatorType",
    "action",
    "application",
    "externalId",
    "sourceType",
    "createdBySource",
    "createdBy",
    "lastUpdatedBy",
    "creationTimeDateTimeUtc",
    "expirationTime",
    "lastUpdateTime",
    "severity",
    "title",
    "description",
    "recommendedActions",
    "rbacGroupNames",
    "rbacGroupIds",
    "generateAlert",
]


async def _listed(session: aiohttp.ClientSession, emu: Emulator, token: str, query: str = "") -> list[Any]:
    status, body, _ = await mde_call(session, "GET", emu.mde_url + "indicators" + query, token)
    assert status == 200, body
    value: list[Any] = body["value"]
    return value


async def test_external_id_and_other_documented_properties_are_stored_and_listed(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str, fake_time: FakeTime
) -> None:
    sent = mde_indicator(
        sha1(1),
        externalId="feed-a:1",
        lastUpdateTime="2023-11-01T10:00:00Z",
        rbacGroupIds=["17", "18"],
        rbacGroupNames=["servers"],
        educateUrl="https://intranet.example.com/why-blocked",
        application="demo-app",
        expirationTime="2030-01-01T00:00:00Z",
    )
    status, body, _ = await mde_call(
        session, "POST", emulator.mde_url + "indicators/import", mde_token, {"Indicators": [sent]}
    )
    assert status == 200 and body["value"][0]["isFailed"] is False, body
    status, submitted, _ = await mde_call(
        session, "POST", emulator.mde_url + "indicators", mde_token, mde_indicator(sha1(2), externalId="x:2")
    )
    assert status == 200 and list(submitted) == DOCUMENTED and submitted["externalId"] == "x:2"
    first, second = await _listed(session, emulator, mde_token)
    assert list(first) == DOCUMENTED and list(second) == DOCUMENTED
    assert first["externalId"] == "feed-a:1" and first["lastUpdateTime"] == "2023-11-01T10:00:00Z"
    assert first["rbacGroupIds"] == ["17", "18"] and first["rbacGroupNames"] == ["servers"]
    assert first["application"] == "demo-app" and first["expirationTime"] == "2030-01-01T00:00:00Z"
    assert (first["sourceType"], first["createdBySource"]) == ("AadApp", "ti-importer-demo")
    assert first["createdBy"] == first["lastUpdatedBy"] == "ti-importer-demo"
    # Without a lastUpdateTime of its own, the indicator carries the emulator's clock.
    assert second["lastUpdateTime"] == second["creationTimeDateTimeUtc"]
    assert second["lastUpdateTime"].startswith("2023-11-14T22:13:20")  # FakeTime's wall clock
    assert (second["application"], second["recommendedActions"], second["rbacGroupIds"]) == (None, None, [])
    bad = [
        mde_indicator(sha1(3), externalId=7),
        mde_indicator(sha1(3), lastUpdateTime="yesterday"),
        mde_indicator(sha1(3), rbacGroupIds="17"),
        mde_indicator(sha1(3), externalID="case matters"),
    ]
    for body in bad:
        status, answer, _ = await mde_call(session, "POST", emulator.mde_url + "indicators", mde_token, body)
        assert (status, answer["error"]["code"]) == (400, "InvalidRequestBody"), body


async def test_application_is_taken_only_when_the_indicator_is_new(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    url = emulator.mde_url + "indicators"
    status, created, _ = await mde_call(
        session, "POST", url, mde_token, mde_indicator(sha1(1), application="first", externalId="a")
    )
    assert status == 200 and created["application"] == "first"
    changed = mde_indicator(sha1(1), application="second", title="renamed", externalId="b")
    status, updated, _ = await mde_call(session, "POST", url, mde_token, changed)
    assert status == 200 and updated["id"] == created["id"]
    assert (updated["application"], updated["title"], updated["externalId"]) == ("first", "renamed", "b")
    status, body, _ = await mde_call(
        session, "POST", url + "/import", mde_token, {"Indicators": [{**changed, "application": "third"}]}
    )
    assert status == 200 and not body["value"][0]["isFailed"]
    (listed,) = await _listed(session, emulator, mde_token)
    assert listed["application"] == "first"


async def test_select_and_filters_keep_working(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    items = [
        mde_indicator(sha1(1), action="Alert", externalId="e1"),
        mde_indicator(sha1(2), action="AlertAndBlock", externalId="e2", generateAlert=True),
        mde_indicator("evil.example.com", "DomainName", action="Block", application="app"),
    ]
    status, body, _ = await mde_call(
        session, "POST", emulator.mde_url + "indicators/import", mde_token, {"Indicators": items}
    )
    # Alert and AlertAndBlock are legacy (retired January 2022 by the entity page) but still accepted.
    assert status == 200 and [r["isFailed"] for r in body["value"]] == [False, False, False]
    selected = await _listed(session, emulator, mde_token, "?$select=id,externalId")
    assert [sorted(e) for e in selected] == [["externalId", "id"]] * 3
    assert [e["externalId"] for e in selected] == ["e1", "e2", None]
    filtered = await _listed(session, emulator, mde_token, "?$filter=action eq 'AlertAndBlock'")
    assert [e["externalId"] for e in filtered] == ["e2"]
    filtered = await _listed(session, emulator, mde_token, "?$filter=generateAlert eq true&$select=id")
    assert filtered == [{"id": body["value"][1]["id"]}]
    filtered = await _listed(session, emulator, mde_token, "?$filter=application eq 'app'")
    assert [e["indicatorValue"] for e in filtered] == ["evil.example.com"]
    for query in ("?$select=source", "?$select=educateUrl", "?$filter=externalId eq 'e1'"):
        status, answer, _ = await mde_call(session, "GET", emulator.mde_url + "indicators" + query, mde_token)
        assert status == 400, (query, answer)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("2001:0db8:0000:0000:0000:0000:0000:0001", True),
        ("2001:db8:0:0:0:0:0:1", True),
        ("FE80:0:0:0:202:B3FF:FE1E:8329", True),
        ("203.0.113.7", True),
        ("2001:db8::1", False),
        ("::1", False),
        ("::", False),
        ("::ffff:203.0.113.7", False),
        ("0:0:0:0:0:ffff:203.0.113.7", False),
        ("2001:db8:0:0:0:0:1", False),
        ("2001:db8:0:0:0:0:0:0:1", False),
        ("2001:db8:0:0:0:0:0:12345", False),
        ("2001:db8:0:0:0:0:0:1/128", False),
        ("fe80:0:0:0:0:0:0:1%eth0", False),
    ],
)
async def test_ipv6_needs_all_eight_segments(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str, value: str, accepted: bool
) -> None:
    body = mde_indicator(value, "IpAddress")
    status, answer, _ = await mde_call(session, "POST", emulator.mde_url + "indicators", mde_token, body)
    if accepted:
        assert status == 200 and answer["indicatorValue"] == value
        return
    assert (status, answer["error"]["code"]) == (400, "InvalidIpAddress")
    status, answer, _ = await mde_call(
        session, "POST", emulator.mde_url + "indicators/import", mde_token, {"Indicators": [body]}
    )
    assert status == 200 and answer["value"][0]["failureReason"].startswith("InvalidIpAddress:")


def _correlation_id(answer: Any) -> str:
    error = answer["error"]
    assert set(error) == {"code", "message", "target"} and error["code"] and error["message"]
    target: str = error["target"]
    assert str(uuid.UUID(target)) == target
    return target


async def test_mde_errors_carry_a_fresh_correlation_id(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    config = EmulatorConfig(clock=fake_time.wall, mde_import_per_minute=1, mde_window_scale=0.01)
    async with running_emulator(config) as emu:
        token = await get_token(session, emu, MDE_RESOURCE)
        ti_token = await get_token(session, emu)
        url = emu.mde_url + "indicators"
        answers = [
            await mde_call(session, "POST", url, token, mde_indicator("nope")),  # 400
            await mde_call(session, "GET", url, ti_token),  # 401
            await mde_call(session, "DELETE", url + "/99", token),  # 404
            await mde_call(session, "GET", url + "/import", token),  # 405
            await mde_call(session, "POST", url + "/BatchDelete", token, {"IndicatorIds": ["1"]}),  # 404
            await mde_call(session, "POST", url + "/import", token, {"Indicators": []}),  # 429
        ]
        assert [status for status, _, _ in answers] == [400, 401, 404, 405, 404, 429]
        emu.set_api_faults(Faults(error_rate=1.0, seed=3))
        answers += [await mde_call(session, "GET", url, token) for _ in range(4)]  # injected 500/503
        assert {status for status, _, _ in answers[6:]} <= {500, 503}
        targets = [_correlation_id(answer) for _, answer, _ in answers]
        assert len(set(targets)) == len(targets)
        # The TI API keeps its own shape: target names the property at fault, or is absent.
        async with session.get(emu.ti_url + "AlertDefinitions", headers=auth(ti_token)) as response:
            assert response.status in (500, 503) and "target" not in (await response.json())["error"]
        emu.set_api_faults(Faults())
        async with session.post(
            emu.ti_url + "AlertDefinitions", json={"Bogus": 1}, headers=auth(ti_token)
        ) as response:
            assert response.status == 400 and (await response.json())["error"]["target"] == "Bogus"
