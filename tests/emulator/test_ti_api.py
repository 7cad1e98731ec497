"""The TI API over loopback: definition and IOC CRUD, filters, paging, paths, tokens, query options."""

from __future__ import annotations

import aiohttp

from importer.emulator import DEMO_CLIENT, Emulator
from tests.helpers import (
    DEFINITION,
    FakeTime,
    auth,
    create_definition,
    get_json,
    get_token,
    post_json,
    sha1,
    ti_ioc,
)


async def test_definition_crud(session: aiohttp.ClientSession, emulator: Emulator, ti_token: str) -> None:
    status, body = await get_json(session, emulator.ti_url + "AlertDefinitions", ti_token)
    assert status == 200 and body["value"] == [] and "@odata.context" in body
    definition_id = await create_definition(session, emulator, ti_token, Enabled="false")
    status, body = await get_json(session, emulator.ti_url + f"alertdefinitions({definition_id})", ti_token)
    assert status == 200 and body["Name"] == "feed-a" and body["Enabled"] is False
    assert body["CreatedBy"] == DEMO_CLIENT.client_id
    async with session.patch(
        emulator.ti_url + f"AlertDefinitions({definition_id})",
        headers=auth(ti_token),
        json={"Severity": "High", "Name": "feed-b"},
    ) as response:
        assert response.status == 200
        patched = await response.json()
    assert (patched["Severity"], patched["Name"], patched["Title"]) == ("High", "feed-b", DEFINITION["Title"])
    ti = emulator.ti_url
    status, body = await get_json(session, ti + "AlertDefinitions?$filter=Name eq 'FEED-B'", ti_token)
    assert [d["Id"] for d in body["value"]] == [definition_id]  # string eq is case-insensitive
    status, body = await get_json(session, ti + "AlertDefinitions?$filter=Name eq 'feed-a'", ti_token)
    assert body["value"] == []
    async with session.delete(
        emulator.ti_url + f"AlertDefinitions({definition_id})", headers=auth(ti_token)
    ) as response:
        assert response.status == 204
    status, body = await get_json(session, emulator.ti_url + f"AlertDefinitions({definition_id})", ti_token)
    assert status == 404 and body["error"]["code"] == "NotFound"


async def test_ioc_create_filter_and_duplicates(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    first = await create_definition(session, emulator, ti_token)
    second = await create_definition(session, emulator, ti_token, Name="feed-other")
    for definition_id, value in ((first, sha1(1)), (first, sha1(2)), (first, sha1(1)), (second, sha1(1))):
        status, body = await post_json(
            session,
            emulator.ti_url + "IndicatorsOfCompromise",
            ti_token,
            ti_ioc(definition_id, value, Enabled="true"),
        )
        assert status == 201, body
        assert body["Enabled"] is True and body["AlertDefinitionId"] == definition_id
    tenant = emulator.state()["tenants"][DEMO_CLIENT.tenant]
    assert tenant["iocs"] == 4 and tenant["duplicate_iocs"] == 1  # same Type+Value under `first` twice
    assert [d["duplicate_iocs"] for d in tenant["alert_definitions"]] == [1, 0]
    url = (
        emulator.ti_url + f"IndicatorsOfCompromise?$filter=Type eq 'Sha1' and Value eq '{sha1(1)}'"
        f" and AlertDefinitionId eq {second}"
    )
    status, body = await get_json(session, url, ti_token)
    assert status == 200 and [i["AlertDefinitionId"] for i in body["value"]] == [second]
    url = emulator.ti_url + f"IndicatorsOfCompromise?$filter=AlertDefinition/Id eq {first}&$count=true"
    status, body = await get_json(session, url, ti_token)
    assert body["@odata.count"] == 3 and len(body["value"]) == 3


async def test_paging_returns_every_entity_exactly_once(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    definition_id = await create_definition(session, emulator, ti_token)
    status, _ = await post_json(
        session,
        emulator.ti_url + "IndicatorsOfCompromise/Actions.BulkUpload",
        ti_token,
        {"iocs": [ti_ioc(definition_id, sha1(n)) for n in range(173)]},
    )
    assert status == 200
    seen: list[int] = []
    url: str | None = emulator.ti_url + "IndicatorsOfCompromise"
    pages = 0
    while url is not None:
        status, body = await get_json(session, url, ti_token)
        assert status == 200 and len(body["value"]) <= 50  # page_size of the fixture
        seen.extend(i["Id"] for i in body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 4 and len(seen) == 173 and len(set(seen)) == 173
    # $top/$skip paging by the client, and $top beyond the page size continued by nextLink.
    status, body = await get_json(
        session, emulator.ti_url + "IndicatorsOfCompromise?$top=10&$skip=170", ti_token
    )
    assert [i["Id"] for i in body["value"]] == seen[170:] and "@odata.nextLink" not in body
    status, body = await get_json(
        session, emulator.ti_url + "IndicatorsOfCompromise?$top=70&$skip=5", ti_token
    )
    assert [i["Id"] for i in body["value"]] == seen[5:55]
    status, body = await get_json(session, body["@odata.nextLink"], ti_token)
    assert [i["Id"] for i in body["value"]] == seen[55:75] and "@odata.nextLink" not in body


async def test_missing_and_bad_tokens_get_401(
    session: aiohttp.ClientSession, emulator: Emulator, fake_time: FakeTime
) -> None:
    url = emulator.ti_url + "AlertDefinitions"
    async with session.get(url) as response:
        assert response.status == 401 and (await response.json())["error"]["code"] == "Unauthorized"
    status, _ = await get_json(session, url, "not-a-token")
    assert status == 401
    mde_token = await get_token(session, emulator, "https://api.securitycenter.microsoft.com")
    status, _ = await get_json(session, url, mde_token)
    assert status == 401  # wrong audience
    token = await get_token(session, emulator)
    assert (await get_json(session, url, token))[0] == 200
    fake_time.advance(3600)
    status, body = await get_json(session, url, token)
    assert status == 401 and "expired" in body["error"]["message"]


async def test_paths_are_case_insensitive_and_count_segment(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    definition_id = await create_definition(session, emulator, ti_token)
    lower = emulator.base_url + "/v1.0/"
    status, body = await post_json(
        session, lower + "indicatorsofcompromise", ti_token, ti_ioc(definition_id, sha1(7))
    )
    assert status == 201
    async with session.get(
        emulator.ti_url + "IndicatorsOfCompromise/$count", headers=auth(ti_token)
    ) as response:
        assert response.status == 200 and await response.text() == "1"
    status, body = await get_json(session, lower + f"ALERTDEFINITIONS({definition_id})", ti_token)
    assert status == 200 and body["Id"] == definition_id
    status, body = await get_json(session, emulator.ti_url + "Nonsense", ti_token)
    assert status == 404 and set(body["error"]) >= {"code", "message"}


async def test_ioc_patch_delete_and_delete_iocs(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    ti = emulator.ti_url
    first = await create_definition(session, emulator, ti_token)
    second = await create_definition(session, emulator, ti_token, Name="second")
    ids = [
        (await post_json(session, ti + "IndicatorsOfCompromise", ti_token, ti_ioc(first, sha1(n))))[1]["Id"]
        for n in range(3)
    ]
    async with session.patch(
        ti + f"IndicatorsOfCompromise({ids[0]})",
        headers=auth(ti_token),
        json={"Enabled": False, "AlertDefinition@odata.bind": f"AlertDefinitions({second})"},
    ) as response:
        assert response.status == 200
        patched = await response.json()
    assert (
        patched["Enabled"] is False and patched["AlertDefinitionId"] == second and patched["Value"] == sha1(0)
    )
    async with session.patch(
        ti + f"IndicatorsOfCompromise({ids[0]})", headers=auth(ti_token), json={"Value": "short"}
    ) as response:
        assert response.status == 400
    async with session.delete(ti + f"IndicatorsOfCompromise({ids[1]})", headers=auth(ti_token)) as response:
        assert response.status == 204
    async with session.delete(ti + f"IndicatorsOfCompromise({ids[1]})", headers=auth(ti_token)) as response:
        assert response.status == 404
    status, _ = await post_json(session, ti + f"AlertDefinitions({first})/Actions.DeleteIOCs", ti_token, None)
    assert status == 204
    state = emulator.state()["tenants"][DEMO_CLIENT.tenant]
    assert [(d["id"], d["ioc_count"]) for d in state["alert_definitions"]] == [(first, 0), (second, 1)]
    # Deleting a definition deletes its IOCs too.
    async with session.delete(ti + f"AlertDefinitions({second})", headers=auth(ti_token)) as response:
        assert response.status == 204
    assert emulator.state()["totals"] == {
        "alert_definitions": 1,
        "iocs": 0,
        "duplicate_iocs": 0,
        "mde_indicators": 0,
        "sentinel_objects": 0,
        "sentinel_indicators": 0,
        "sentinel_revoked": 0,
        "sentinel_duplicate_patterns": 0,
    }
    async with session.put(ti + "AlertDefinitions", headers=auth(ti_token), json={}) as response:
        assert response.status == 405


async def test_query_option_errors(session: aiohttp.ClientSession, emulator: Emulator, ti_token: str) -> None:
    ti = emulator.ti_url
    for query in (
        "$top=-1",
        "$skip=x",
        "$filter=Name ne 'a'",
        "$filter=Nope eq 'a'",
        "$filter=Name eq a",
        "$orderby=Name",
        "$count=maybe",
        "$filter=Name eq 'a' or Title eq 'b'",
    ):
        status, body = await get_json(session, ti + "AlertDefinitions?" + query, ti_token)
        assert status == 400 and body["error"]["code"] == "BadRequest", query
    status, body = await get_json(
        session, ti + "AlertDefinitions?$filter=Name eq 'it''s' and Enabled eq true", ti_token
    )
    assert status == 200 and body["value"] == []
