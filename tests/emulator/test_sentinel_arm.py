"""ARM's queryIndicators on the emulator: the indicator shape, exact paging by skip token (in the body
or in nextLink), the filters, its refusals; and the Sentinel counters of ``/_emulator/state``."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from importer.emulator import DEMO_WORKSPACE, Emulator
from tests.helpers import get_token
from tests.helpers.emulator_api import (
    SENTINEL_RESOURCE,
    sentinel_objects,
    sentinel_query,
    sentinel_upload,
    stix_id,
    stix_indicator,
)


@pytest.fixture
async def token(session: aiohttp.ClientSession, emulator: Emulator) -> str:
    return await get_token(session, emulator, SENTINEL_RESOURCE)


async def upload(
    session: aiohttp.ClientSession, emulator: Emulator, token: str, objects: list[Any], source: str = "feeds"
) -> None:
    for start in range(0, len(objects), 100):
        status, body, _ = await sentinel_upload(
            session, emulator.sentinel_upload_url(), token, objects[start : start + 100], source=source
        )
        assert status == 200 and body is None, body


def skip_token(next_link: str) -> str:
    [token] = parse_qs(urlsplit(next_link).query)["$skipToken"]
    return token


async def test_an_indicator_as_arm_lists_it(
    session: aiohttp.ClientSession, emulator: Emulator, token: str
) -> None:
    identity = {
        "type": "identity",
        "id": stix_id("identity", 1),
        "created": "2026-01-01T00:00:00Z",
        "modified": "2026-01-01T00:00:00Z",
        "name": "feed-a",
    }
    indicator = stix_indicator(
        7,
        description="seen in phishing",
        confidence=80,
        labels=["feed-a", "phishing"],
        valid_until="2026-03-01T00:00:00Z",
        created_by_ref=stix_id("identity", 1),
        indicator_types=["malicious-activity"],
        kill_chain_phases=[{"kill_chain_name": "mitre-attack", "phase_name": "initial-access"}],
        external_references=[{"source_name": "feed-a", "url": "https://feed.example/7"}],
        object_marking_refs=["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"],
    )
    await upload(session, emulator, token, [identity, indicator], source="ti-importer")
    status, body = await sentinel_query(session, emulator.query_indicators_url(), token)  # no body at all
    assert status == 200 and "nextLink" not in body
    [item] = body["value"]  # the identity is not an indicator
    workspace = (
        f"/subscriptions/{DEMO_WORKSPACE.subscription_id}/resourceGroups/{DEMO_WORKSPACE.resource_group}"
        f"/providers/Microsoft.OperationalInsights/workspaces/{DEMO_WORKSPACE.name}"
    )
    assert item["id"] == (
        f"{workspace}/providers/Microsoft.SecurityInsights/threatIntelligence/main/indicators/{item['name']}"
    )
    assert item["kind"] == "indicator" and item["name"] != stix_id("indicator", 7)
    props = item["properties"]
    assert props == {
        **props,
        "pattern": "[domain-name:value = 'host7.example.com']",
        "patternType": "stix",
        "source": "ti-importer",
        "displayName": "indicator 7",
        "description": "seen in phishing",
        "confidence": 80,
        "labels": ["feed-a", "phishing"],
        "threatIntelligenceTags": ["feed-a", "phishing"],
        "validFrom": "2026-01-01T00:00:00.000Z",
        "validUntil": "2026-03-01T00:00:00Z",
        "revoked": False,
        "externalId": stix_id("indicator", 7),
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "createdByRef": stix_id("identity", 1),
        "indicatorTypes": ["malicious-activity"],
        "killChainPhases": [{"killChainName": "mitre-attack", "phaseName": "initial-access"}],
        "externalReferences": [{"sourceName": "feed-a", "url": "https://feed.example/7"}],
        "objectMarkingRefs": ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"],
    }
    assert props["lastUpdatedTimeUtc"].endswith("Z")
    # Names are case-insensitive, as ARM's are; ids select by ARM name or STIX id.
    upper = emulator.query_indicators_url().replace(DEMO_WORKSPACE.name, DEMO_WORKSPACE.name.upper())
    for ids in ([item["name"]], [stix_id("indicator", 7).upper()]):
        status, again = await sentinel_query(
            session, upper.replace("/resourceGroups/", "/RESOURCEGROUPS/"), token, {"ids": ids}
        )
        assert status == 200 and [i["name"] for i in again["value"]] == [item["name"]]


async def test_paging_is_exact_in_stix_id_order_either_way_the_token_is_sent(
    session: aiohttp.ClientSession, emulator: Emulator, token: str
) -> None:
    numbers = list(range(1, 251))
    random.Random(5).shuffle(numbers)
    await upload(session, emulator, token, [stix_indicator(n) for n in numbers])
    url = emulator.query_indicators_url()
    criteria = {"pageSize": 100, "sources": ["FEEDS"]}
    status, first = await sentinel_query(session, url, token, criteria)
    assert status == 200 and len(first["value"]) == 100
    assert first["nextLink"].startswith(url + "&$skipToken=")
    # New objects between pages: one before the boundary is not listed, one after it is.
    await upload(session, emulator, token, [stix_indicator(0), stix_indicator(999)])
    status, second = await sentinel_query(
        session, url, token, {**criteria, "skipToken": skip_token(first["nextLink"])}
    )
    assert status == 200 and len(second["value"]) == 100
    status, third = await sentinel_query(session, second["nextLink"], token, criteria)  # nextLink as is
    assert status == 200 and "nextLink" not in third
    listed = [i["properties"]["externalId"] for page in (first, second, third) for i in page["value"]]
    assert listed == sorted(stix_id("indicator", n) for n in [*range(1, 251), 999])
    status, answer = await sentinel_query(
        session, second["nextLink"], token, {"skipToken": skip_token(first["nextLink"])}
    )
    assert status == 400 and "differ" in answer["error"]["message"]


async def test_filters(session: aiohttp.ClientSession, emulator: Emulator, token: str) -> None:
    await upload(
        session,
        emulator,
        token,
        [
            stix_indicator(1, labels=["Phishing"]),
            stix_indicator(2, valid_until="2026-01-05T00:00:00Z"),
            stix_indicator(3, valid_until="2026-06-01T00:00:00Z", description="a PHISHING kit"),
        ],
    )
    await upload(session, emulator, token, [stix_indicator(4)], source="other")
    revoked = stix_indicator(1, modified="2026-01-02T00:00:00Z", revoked=True, labels=["Phishing"])
    await upload(session, emulator, token, [revoked])

    async def numbers(criteria: dict[str, Any]) -> list[int]:
        status, body = await sentinel_query(session, emulator.query_indicators_url(), token, criteria)
        assert status == 200, body
        return [int(i["properties"]["externalId"][-12:]) for i in body["value"]]

    assert await numbers({}) == [2, 3, 4]
    assert await numbers({"includeDisabled": True}) == [1, 2, 3, 4]
    assert await numbers({"sources": ["Other"]}) == [4]
    assert await numbers({"keywords": "phishing", "includeDisabled": True}) == [1, 3]
    assert await numbers({"keywords": "host4.example"}) == [4]
    assert await numbers({"minValidUntil": "2026-02-01T00:00:00Z"}) == [3, 4]  # none: never expires
    assert await numbers({"ids": [stix_id("indicator", 2), stix_id("indicator", 1)]}) == [2]
    assert await numbers({"pageSize": 1, "sources": ["feeds"]}) == [2]


@pytest.mark.parametrize(
    "criteria",
    [
        {"pageSize": 101},
        {"pageSize": 0},
        {"pageSize": "10"},
        {"sources": "feeds"},
        {"ids": [1]},
        {"keywords": 3},
        {"includeDisabled": "yes"},
        {"minValidUntil": "soon"},
        {"skipToken": "%%%"},
        {"skipToken": 4},
        [],
    ],
)
async def test_bad_criteria_are_400(
    session: aiohttp.ClientSession, emulator: Emulator, token: str, criteria: Any
) -> None:
    status, body = await sentinel_query(session, emulator.query_indicators_url(), token, criteria)
    assert status == 400 and body["error"]["code"] == "BadRequest", body


async def test_refusals_of_the_route(session: aiohttp.ClientSession, emulator: Emulator, token: str) -> None:
    url = emulator.query_indicators_url()
    base = url.split("?")[0]
    for wrong in (base, base + "?api-version=2024-02-01-preview"):
        status, body = await sentinel_query(session, wrong, token, {})
        assert status == 400 and "ApiVersion" in body["error"]["code"]
    for part in (DEMO_WORKSPACE.subscription_id, DEMO_WORKSPACE.resource_group, DEMO_WORKSPACE.name):
        status, body = await sentinel_query(session, url.replace(part, "elsewhere"), token, {})
        assert status == 404 and body["error"]["code"] == "ResourceNotFound"
    async with session.post(url, data=b"{", headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 405
    status, body = await sentinel_query(session, url.replace("queryIndicators", "indicators"), token, {})
    assert status == 404


async def test_state_counts_objects_revoked_and_duplicate_patterns(
    session: aiohttp.ClientSession, emulator: Emulator, token: str
) -> None:
    same = "[ipv4-addr:value = '203.0.113.9']"
    await upload(session, emulator, token, [stix_indicator(1, pattern=same), stix_indicator(2, pattern=same)])
    await upload(session, emulator, token, [stix_indicator(3, pattern=same)], source="another-tool")
    identity = {"type": "identity", "id": stix_id("identity", 1), "created": "2026-01-01T00:00:00Z",
                "modified": "2026-01-01T00:00:00Z", "name": "feed"}  # fmt: skip
    await upload(session, emulator, token, [identity, stix_indicator(4)])
    state = emulator.state()
    expected = {
        "sentinel_objects": 5,
        "sentinel_indicators": 4,
        "sentinel_revoked": 0,
        "sentinel_duplicate_patterns": 1,  # 1 and 2: one source, one pattern; 3 is another source's
    }
    assert sentinel_objects(state) == expected
    assert {k: state["totals"][k] for k in expected} == expected
    [workspace] = state["tenants"]["contoso-demo"]["sentinel_workspaces"]
    assert workspace == {"workspace_id": DEMO_WORKSPACE.workspace_id, "name": DEMO_WORKSPACE.name, **expected}
    revoke = stix_indicator(2, pattern=same, modified="2026-01-02T00:00:00Z", revoked=True)
    await upload(session, emulator, token, [revoke])
    assert sentinel_objects(emulator.state()) == {
        **expected,
        "sentinel_revoked": 1,
        "sentinel_duplicate_patterns": 0,
    }
    # A new version with another pattern moves the indicator out of the pattern's group.
    await upload(
        session,
        emulator,
        token,
        [stix_indicator(5, pattern=same), stix_indicator(1, modified="2026-01-03T00:00:00Z")],
    )
    assert sentinel_objects(emulator.state())["sentinel_duplicate_patterns"] == 0
    emulator.reset()
    assert sentinel_objects(emulator.state()) == dict.fromkeys(expected, 0)
