"""The TI API over loopback: CRUD, validation, filters, paging, bulk upload, quotas, tenancy."""

from __future__ import annotations

from typing import Any

import aiohttp

from importer.emulator import DEMO_CLIENT, Emulator

from .conftest import DEFINITION, FakeClock, auth, get_token, sha1


async def _post(session: aiohttp.ClientSession, url: str, token: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body, headers=auth(token)) as response:
        return response.status, (await response.json() if response.status != 204 else None)


async def _get(session: aiohttp.ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with session.get(url, headers=auth(token)) as response:
        return response.status, await response.json()


def _ioc(definition_id: int, value: str, **extra: Any) -> dict[str, Any]:
    return {"Type": "Sha1", "Value": value, "DetectionFunction": "Equals", "Enabled": True,
            "AlertDefinition@odata.bind": f"AlertDefinitions({definition_id})", **extra}


async def _definition(session: aiohttp.ClientSession, emu: Emulator, token: str, **extra: Any) -> int:
    status, body = await _post(session, emu.ti_url + "AlertDefinitions", token, {**DEFINITION, **extra})
    assert status == 201, body
    definition_id: int = body["Id"]
    return definition_id


async def test_definition_crud(session: aiohttp.ClientSession, emulator: Emulator, ti_token: str) -> None:
    status, body = await _get(session, emulator.ti_url + "AlertDefinitions", ti_token)
    assert status == 200 and body["value"] == [] and "@odata.context" in body
    definition_id = await _definition(session, emulator, ti_token, Enabled="false")
    status, body = await _get(session, emulator.ti_url + f"alertdefinitions({definition_id})", ti_token)
    assert status == 200 and body["Name"] == "feed-a" and body["Enabled"] is False
    assert body["CreatedBy"] == DEMO_CLIENT.client_id
    async with session.patch(emulator.ti_url + f"AlertDefinitions({definition_id})", headers=auth(ti_token),
                             json={"Severity": "High", "Name": "feed-b"}) as response:
        assert response.status == 200
        patched = await response.json()
    assert patched["Severity"] == "High" and patched["Name"] == "feed-b" and patched["Title"] == DEFINITION["Title"]
    status, body = await _get(session, emulator.ti_url + "AlertDefinitions?$filter=Name eq 'feed-b'", ti_token)
    assert [d["Id"] for d in body["value"]] == [definition_id]
    status, body = await _get(session, emulator.ti_url + "AlertDefinitions?$filter=Name eq 'feed-a'", ti_token)
    assert body["value"] == []
    async with session.delete(emulator.ti_url + f"AlertDefinitions({definition_id})",
                              headers=auth(ti_token)) as response:
        assert response.status == 204
    status, body = await _get(session, emulator.ti_url + f"AlertDefinitions({definition_id})", ti_token)
    assert status == 404 and body["error"]["code"] == "NotFound"


async def test_ioc_create_filter_and_duplicates(session: aiohttp.ClientSession, emulator: Emulator,
                                                ti_token: str) -> None:
    first = await _definition(session, emulator, ti_token)
    second = await _definition(session, emulator, ti_token, Name="feed-other")
    for definition_id, value in ((first, sha1(1)), (first, sha1(2)), (first, sha1(1)), (second, sha1(1))):
        status, body = await _post(session, emulator.ti_url + "IndicatorsOfCompromise", ti_token,
                                   _ioc(definition_id, value, Enabled="true"))
        assert status == 201, body
        assert body["Enabled"] is True and body["AlertDefinitionId"] == definition_id
    tenant = emulator.state()["tenants"][DEMO_CLIENT.tenant]
    assert tenant["iocs"] == 4 and tenant["duplicate_iocs"] == 1  # same Type+Value under `first` twice
    assert [d["duplicate_iocs"] for d in tenant["alert_definitions"]] == [1, 0]
    url = (emulator.ti_url + f"IndicatorsOfCompromise?$filter=Type eq 'Sha1' and Value eq '{sha1(1)}'"
           f" and AlertDefinitionId eq {second}")
    status, body = await _get(session, url, ti_token)
    assert status == 200 and [i["AlertDefinitionId"] for i in body["value"]] == [second]
    status, body = await _get(session, emulator.ti_url + f"IndicatorsOfCompromise?$filter=AlertDefinition/Id eq "
                              f"{first}&$count=true", ti_token)
    assert body["@odata.count"] == 3 and len(body["value"]) == 3


async def test_paging_returns_every_entity_exactly_once(session: aiohttp.ClientSession, emulator: Emulator,
                                                         ti_token: str) -> None:
    definition_id = await _definition(session, emulator, ti_token)
    status, _ = await _post(session, emulator.ti_url + "IndicatorsOfCompromise/Actions.BulkUpload", ti_token,
                            {"iocs": [_ioc(definition_id, sha1(n)) for n in range(173)]})
    assert status == 200
    seen: list[int] = []
    url: str | None = emulator.ti_url + "IndicatorsOfCompromise"
    pages = 0
    while url is not None:
        status, body = await _get(session, url, ti_token)
        assert status == 200 and len(body["value"]) <= 50  # page_size of the fixture
        seen.extend(i["Id"] for i in body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
    assert pages == 4 and len(seen) == 173 and len(set(seen)) == 173
    # $top/$skip paging by the client, and $top beyond the page size continued by nextLink.
    status, body = await _get(session, emulator.ti_url + "IndicatorsOfCompromise?$top=10&$skip=170", ti_token)
    assert [i["Id"] for i in body["value"]] == seen[170:] and "@odata.nextLink" not in body
    status, body = await _get(session, emulator.ti_url + "IndicatorsOfCompromise?$top=70&$skip=5", ti_token)
    assert [i["Id"] for i in body["value"]] == seen[5:55]
    status, body = await _get(session, body["@odata.nextLink"], ti_token)
    assert [i["Id"] for i in body["value"]] == seen[55:75] and "@odata.nextLink" not in body


async def test_missing_and_bad_tokens_get_401(session: aiohttp.ClientSession, emulator: Emulator,
                                              clock: FakeClock) -> None:
    url = emulator.ti_url + "AlertDefinitions"
    async with session.get(url) as response:
        assert response.status == 401 and (await response.json())["error"]["code"] == "Unauthorized"
    status, _ = await _get(session, url, "not-a-token")
    assert status == 401
    mde_token = await get_token(session, emulator, "https://api.securitycenter.microsoft.com")
    status, _ = await _get(session, url, mde_token)
    assert status == 401  # wrong audience
    token = await get_token(session, emulator)
    assert (await _get(session, url, token))[0] == 200
    clock.advance(3600)
    status, body = await _get(session, url, token)
    assert status == 401 and "expired" in body["error"]["message"]
