"""The Sentinel STIX objects upload API: audience, workspace, envelope and per-object validation,
per-object errors by recordIndex, and STIX versioning (later replaces, revoked is permanent)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from importer.emulator import (
    DEMO_WORKSPACE,
    ClientApp,
    Emulator,
    EmulatorConfig,
    SentinelWorkspace,
    running_emulator,
)
from tests.helpers import FakeTime, get_token
from tests.helpers.emulator_api import (
    SENTINEL_RESOURCE,
    mde_call,
    sentinel_upload,
    stix_id,
    stix_indicator,
)

MDE = "https://api.securitycenter.microsoft.com"
LATER = "2026-02-01T00:00:00Z"


@pytest.fixture
async def token(session: aiohttp.ClientSession, emulator: Emulator) -> str:
    return await get_token(session, emulator, SENTINEL_RESOURCE)


def counts(emulator: Emulator) -> dict[str, int]:
    totals: dict[str, int] = emulator.state()["totals"]
    return {k: v for k, v in totals.items() if k.startswith("sentinel_")}


async def test_a_valid_upload_is_an_empty_200_and_is_counted(
    session: aiohttp.ClientSession, emulator: Emulator, token: str
) -> None:
    status, body, _ = await sentinel_upload(
        session, emulator.sentinel_upload_url(), token, [stix_indicator(n) for n in range(3)]
    )
    assert (status, body) == (200, None)
    assert counts(emulator) == {
        "sentinel_objects": 3,
        "sentinel_indicators": 3,
        "sentinel_revoked": 0,
        "sentinel_duplicate_patterns": 0,
    }
    # The workspace id is matched case-insensitively (it is a GUID).
    status, _, _ = await sentinel_upload(
        session, emulator.sentinel_upload_url(DEMO_WORKSPACE.workspace_id.upper()), token, [stix_indicator(9)]
    )
    assert status == 200 and counts(emulator)["sentinel_objects"] == 4


@pytest.mark.parametrize(
    "resource",
    [
        "https://management.azure.com",
        "https://management.core.windows.net/",
        "https://management.core.windows.net",
    ],
)
async def test_management_audiences_are_accepted_v1_and_v2(
    session: aiohttp.ClientSession, emulator: Emulator, resource: str
) -> None:
    token = await get_token(session, emulator, resource)
    status, _, _ = await sentinel_upload(session, emulator.sentinel_upload_url(), token, [stix_indicator(1)])
    assert status == 200
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.config.clients[0].client_id,
        "client_secret": emulator.config.clients[0].client_secret,
        "scope": resource.rstrip("/") + "/.default",
    }
    async with session.post(emulator.auth_url(2), data=form) as response:
        v2 = (await response.json())["access_token"]
    status, _, _ = await sentinel_upload(session, emulator.sentinel_upload_url(), v2, [stix_indicator(2)])
    assert status == 200


async def test_a_token_for_the_emulators_own_url_is_good_for_sentinel_too(
    session: aiohttp.ClientSession, emulator: Emulator
) -> None:
    token = await get_token(session, emulator, emulator.base_url + "/")
    status, _, _ = await sentinel_upload(session, emulator.sentinel_upload_url(), token, [stix_indicator(1)])
    assert status == 200
    status, _, _ = await mde_call(session, "GET", emulator.mde_url + "indicators", token)
    assert status == 200


async def test_other_audiences_are_401_both_ways(
    session: aiohttp.ClientSession, emulator: Emulator, token: str, mde_token: str, ti_token: str
) -> None:
    for other in (mde_token, ti_token):
        status, body, headers = await sentinel_upload(
            session, emulator.sentinel_upload_url(), other, [stix_indicator(1)]
        )
        assert status == 401 and "WWW-Authenticate" in headers, body
        async with session.post(
            emulator.query_indicators_url(), json={}, headers={"Authorization": f"Bearer {other}"}
        ) as r:
            assert r.status == 401
    status, _, _ = await mde_call(session, "GET", emulator.mde_url + "indicators", token)
    assert status == 401
    async with session.get(
        emulator.ti_url + "AlertDefinitions", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 401
    status, _, _ = await sentinel_upload(session, emulator.sentinel_upload_url(), "", [stix_indicator(1)])
    assert status == 401
    assert counts(emulator)["sentinel_objects"] == 0


async def test_a_workspace_of_another_tenant_or_none_is_404(fake_time: FakeTime) -> None:
    fabrikam = ClientApp("fabrikam-app", "fabrikam-secret", "fabrikam")
    theirs = SentinelWorkspace("11111111-2222-4333-8444-555555555555", "sub-f", "rg-f", "ws-f", "fabrikam")
    config = EmulatorConfig(
        clock=fake_time.wall,
        clients=(EmulatorConfig().clients[0], fabrikam),
        sentinel_workspaces=(DEMO_WORKSPACE, theirs),
    )
    async with running_emulator(config) as emu, aiohttp.ClientSession() as session:
        ours = await get_token(session, emu, SENTINEL_RESOURCE)
        for workspace in (theirs.workspace_id, "99999999-2222-4333-8444-555555555555"):
            status, body, _ = await sentinel_upload(
                session, emu.sentinel_upload_url(workspace), ours, [stix_indicator(1)]
            )
            assert status == 404 and body["error"]["code"] == "WorkspaceNotFound"
        other = await get_token(
            session,
            emu,
            SENTINEL_RESOURCE,
            client_id="fabrikam-app",
            secret="fabrikam-secret",
            tenant="fabrikam",
        )
        status, _, _ = await sentinel_upload(
            session, emu.sentinel_upload_url(theirs), other, [stix_indicator(1)]
        )
        assert status == 200
        state = emu.state()
        assert state["tenants"]["fabrikam"]["sentinel_objects"] == 1
        assert state["tenants"]["contoso-demo"]["sentinel_objects"] == 0


async def test_the_envelope_is_refused_whole(
    session: aiohttp.ClientSession, emulator: Emulator, token: str
) -> None:
    url = emulator.sentinel_upload_url()
    one = [stix_indicator(1)]
    cases: list[Any] = [
        {"stixobjects": one},
        {"sourcesystem": "", "stixobjects": one},
        {"sourcesystem": 7, "stixobjects": one},
        {"sourcesystem": "Microsoft Sentinel", "stixobjects": one},
        {"sourcesystem": "microsoft sentinel ", "stixobjects": one},
        {"sourcesystem": "feed"},
        {"sourcesystem": "feed", "stixobjects": []},
        {"sourcesystem": "feed", "stixobjects": {"id": "x"}},
        {"sourcesystem": "feed", "stixobjects": [stix_indicator(n) for n in range(101)]},
        ["not", "an", "object"],
    ]
    for body in cases:
        status, answer, _ = await sentinel_upload(session, url, token, body=body)
        assert status == 400 and "error" in answer, body
    status, _, _ = await sentinel_upload(session, url, token, [stix_indicator(n) for n in range(100)])
    assert status == 200
    async with session.post(url, data=b"{not json", headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "InvalidRequestBody"
    for query in ("", "?api-version=2023-12-01-preview"):
        bare = url.split("?")[0] + query
        status, answer, _ = await sentinel_upload(session, bare, token, [stix_indicator(1)])
        assert status == 400 and "ApiVersion" in answer["error"]["code"]
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 405


def _without(prop: str) -> dict[str, Any]:
    return stix_indicator(1, **{prop: None})


BAD_OBJECTS: list[tuple[dict[str, Any] | Any, str, str]] = [
    (_without("id"), "id", "Error for Property=id: Required property is missing. Actual value: NULL."),
    (_without("type"), "type", "Required property is missing"),
    (_without("created"), "created", "Required property is missing"),
    (_without("modified"), "modified", "Required property is missing"),
    (_without("pattern"), "pattern", "Required property is missing"),
    (_without("pattern_type"), "pattern_type", "Required property is missing"),
    (_without("valid_from"), "valid_from", "Required property is missing"),
    (stix_indicator(1, id="indicator--42"), "id", "Actual value: indicator--42."),
    (stix_indicator(1, id=stix_id("identity", 1)), "id", "does not match the object's type"),
    (stix_indicator(1, type="malware", id=stix_id("malware", 1)), "type", "Unsupported object type"),
    (stix_indicator(1, created="yesterday"), "created", "Invalid timestamp"),
    (stix_indicator(1, modified="2026-02-30T00:00:00Z"), "modified", "Invalid timestamp"),
    (stix_indicator(1, modified="2026-01-01 00:00:00"), "modified", "Invalid timestamp"),
    (stix_indicator(1, spec_version="3.0"), "spec_version", "spec_version"),
    (stix_indicator(1, pattern_type="regex"), "pattern_type", "Unsupported pattern type"),
    (stix_indicator(1, pattern="ipv4 198.51.100.1"), "pattern", "Invalid STIX pattern"),
    (stix_indicator(1, valid_until="2025-12-31T00:00:00Z"), "valid_until", "later than valid_from"),
    (stix_indicator(1, valid_until="2026-01-01T00:00:00Z"), "valid_until", "later than valid_from"),
    (stix_indicator(1, confidence=101), "confidence", "Actual value: 101."),
    (stix_indicator(1, confidence=-1), "confidence", "0 to 100"),
    (stix_indicator(1, confidence="high"), "confidence", "0 to 100"),
    (stix_indicator(1, confidence=True), "confidence", "0 to 100"),
    (stix_indicator(1, revoked="yes"), "revoked", "boolean"),
    (stix_indicator(1, labels="a,b"), "labels", "list of strings"),
    (stix_indicator(1, created_by_ref="feed-a"), "created_by_ref", "identity"),
    (
        {"type": "identity", "id": stix_id("identity", 1), "created": LATER, "modified": LATER},
        "name",
        "missing",
    ),
    ("not an object", "stixobject", "Expected a JSON object"),
]


@pytest.mark.parametrize(("obj", "prop", "text"), BAD_OBJECTS)
async def test_each_invalid_object_is_refused_by_property(
    session: aiohttp.ClientSession, emulator: Emulator, token: str, obj: Any, prop: str, text: str
) -> None:
    status, body, _ = await sentinel_upload(
        session, emulator.sentinel_upload_url(), token, [stix_indicator(2), obj]
    )
    assert status == 200, body
    [error] = body["errors"]
    assert error["recordIndex"] == 1
    assert any(m.startswith(f"Error for Property={prop}: ") and text in m for m in error["errorMessages"]), (
        error
    )
    assert counts(emulator)["sentinel_objects"] == 1  # the valid one is stored


async def test_all_invalid_is_400_with_the_same_errors_and_extras_are_ignored(
    session: aiohttp.ClientSession, emulator: Emulator, token: str
) -> None:
    bad = [stix_indicator(1, confidence=500), stix_indicator(2, pattern=None, valid_from=None)]
    status, body, _ = await sentinel_upload(session, emulator.sentinel_upload_url(), token, bad)
    assert status == 400
    assert [e["recordIndex"] for e in body["errors"]] == [0, 1]
    assert len(body["errors"][1]["errorMessages"]) == 2  # every error of an object, not the first only
    assert counts(emulator)["sentinel_objects"] == 0
    fine = [
        stix_indicator(3, x_custom={"a": 1}, extensions={"x": {}}, spec_version="2.0", confidence=0),
        stix_indicator(4, pattern="rule x { condition: true }", pattern_type="yara", valid_until=LATER),
        {
            "type": "identity",
            "id": stix_id("identity", 1),
            "created": LATER,
            "modified": LATER,
            "name": "feed",
        },
        {
            "type": "attack-pattern",
            "id": stix_id("attack-pattern", 1),
            "created": LATER,
            "modified": LATER,
            "name": "T1566",
        },
        {
            "type": "threat-actor",
            "id": stix_id("threat-actor", 1),
            "created": LATER,
            "modified": LATER,
            "name": "APT0",
        },
        {
            "type": "relationship",
            "id": stix_id("relationship", 1),
            "created": LATER,
            "modified": LATER,
            "relationship_type": "indicates",
            "source_ref": stix_id("indicator", 3),
            "target_ref": stix_id("threat-actor", 1),
        },
    ]
    status, body, _ = await sentinel_upload(session, emulator.sentinel_upload_url(), token, fine)
    assert (status, body) == (200, None)
    assert counts(emulator)["sentinel_objects"] == 6 and counts(emulator)["sentinel_indicators"] == 2


async def test_stix_versioning_later_replaces_equal_or_earlier_is_ignored(
    session: aiohttp.ClientSession, emulator: Emulator, token: str
) -> None:
    url = emulator.sentinel_upload_url()
    first = stix_indicator(1, modified="2026-01-10T00:00:00Z", name="first")
    assert (await sentinel_upload(session, url, token, [first]))[0] == 200
    same = stix_indicator(1, modified="2026-01-10T00:00:00.000Z", name="same time")
    earlier = stix_indicator(1, modified="2026-01-09T23:59:59.999Z", name="earlier")
    status, body, _ = await sentinel_upload(session, url, token, [same, earlier])
    assert (status, body) == (200, None)  # accepted, no error, but nothing replaced
    held = await query_names(session, emulator, token)
    assert held == {stix_id("indicator", 1): "first"}
    later = stix_indicator(1, modified="2026-01-10T00:00:00.001+00:00", name="later")
    assert (await sentinel_upload(session, url, token, [later], source="other-tool"))[0] == 200
    assert await query_names(session, emulator, token) == {stix_id("indicator", 1): "later"}
    assert counts(emulator)["sentinel_objects"] == 1


async def test_revoked_is_permanent(session: aiohttp.ClientSession, emulator: Emulator, token: str) -> None:
    url = emulator.sentinel_upload_url()
    await sentinel_upload(session, url, token, [stix_indicator(1), stix_indicator(2)])
    revoked = stix_indicator(1, modified="2026-01-02T00:00:00Z", revoked=True)
    assert (await sentinel_upload(session, url, token, [revoked]))[0] == 200
    assert counts(emulator)["sentinel_revoked"] == 1
    back = stix_indicator(1, modified="2026-01-03T00:00:00Z", revoked=False, name="back")
    status, body, _ = await sentinel_upload(session, url, token, [back])
    assert (status, body) == (200, None)
    assert counts(emulator) == {
        "sentinel_objects": 2,
        "sentinel_indicators": 2,
        "sentinel_revoked": 1,
        "sentinel_duplicate_patterns": 0,
    }
    assert await query_names(session, emulator, token) == {stix_id("indicator", 2): "indicator 2"}
    everything = await query_names(session, emulator, token, includeDisabled=True)
    assert everything[stix_id("indicator", 1)] == "indicator 1"  # the revoked version, not "back"


async def query_names(
    session: aiohttp.ClientSession, emulator: Emulator, token: str, **criteria: Any
) -> dict[str, str]:
    async with session.post(
        emulator.query_indicators_url(), json=criteria, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        body = await response.json()
        assert response.status == 200, body
    return {i["properties"]["externalId"]: i["properties"]["displayName"] for i in body["value"]}
