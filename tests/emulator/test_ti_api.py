"""The TI API over loopback: CRUD, validation, filters, paging, bulk upload, quotas, tenancy."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from importer.emulator import DEMO_CLIENT, ClientApp, Emulator, EmulatorConfig, running_emulator

from .conftest import DEFINITION, FakeClock, auth, get_token, sha1


async def _post(session: aiohttp.ClientSession, url: str, token: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body, headers=auth(token)) as response:
        return response.status, (await response.json() if response.status != 204 else None)


async def _get(session: aiohttp.ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with session.get(url, headers=auth(token)) as response:
        return response.status, await response.json()


def _ioc(definition_id: int, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "Type": "Sha1",
        "Value": value,
        "DetectionFunction": "Equals",
        "Enabled": True,
        "AlertDefinition@odata.bind": f"AlertDefinitions({definition_id})",
        **extra,
    }


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
    async with session.patch(
        emulator.ti_url + f"AlertDefinitions({definition_id})",
        headers=auth(ti_token),
        json={"Severity": "High", "Name": "feed-b"},
    ) as response:
        assert response.status == 200
        patched = await response.json()
    assert (patched["Severity"], patched["Name"], patched["Title"]) == ("High", "feed-b", DEFINITION["Title"])
    ti = emulator.ti_url
    status, body = await _get(session, ti + "AlertDefinitions?$filter=Name eq 'FEED-B'", ti_token)
    assert [d["Id"] for d in body["value"]] == [definition_id]  # string eq is case-insensitive
    status, body = await _get(session, ti + "AlertDefinitions?$filter=Name eq 'feed-a'", ti_token)
    assert body["value"] == []
    async with session.delete(
        emulator.ti_url + f"AlertDefinitions({definition_id})", headers=auth(ti_token)
    ) as response:
        assert response.status == 204
    status, body = await _get(session, emulator.ti_url + f"AlertDefinitions({definition_id})", ti_token)
    assert status == 404 and body["error"]["code"] == "NotFound"


async def test_ioc_create_filter_and_duplicates(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    first = await _definition(session, emulator, ti_token)
    second = await _definition(session, emulator, ti_token, Name="feed-other")
    for definition_id, value in ((first, sha1(1)), (first, sha1(2)), (first, sha1(1)), (second, sha1(1))):
        status, body = await _post(
            session,
            emulator.ti_url + "IndicatorsOfCompromise",
            ti_token,
            _ioc(definition_id, value, Enabled="true"),
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
    status, body = await _get(session, url, ti_token)
    assert status == 200 and [i["AlertDefinitionId"] for i in body["value"]] == [second]
    url = emulator.ti_url + f"IndicatorsOfCompromise?$filter=AlertDefinition/Id eq {first}&$count=true"
    status, body = await _get(session, url, ti_token)
    assert body["@odata.count"] == 3 and len(body["value"]) == 3


async def test_paging_returns_every_entity_exactly_once(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    definition_id = await _definition(session, emulator, ti_token)
    status, _ = await _post(
        session,
        emulator.ti_url + "IndicatorsOfCompromise/Actions.BulkUpload",
        ti_token,
        {"iocs": [_ioc(definition_id, sha1(n)) for n in range(173)]},
    )
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


async def test_missing_and_bad_tokens_get_401(
    session: aiohttp.ClientSession, emulator: Emulator, clock: FakeClock
) -> None:
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


async def test_paths_are_case_insensitive_and_count_segment(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    definition_id = await _definition(session, emulator, ti_token)
    lower = emulator.base_url + "/v1.0/"
    status, body = await _post(
        session, lower + "indicatorsofcompromise", ti_token, _ioc(definition_id, sha1(7))
    )
    assert status == 201
    async with session.get(
        emulator.ti_url + "IndicatorsOfCompromise/$count", headers=auth(ti_token)
    ) as response:
        assert response.status == 200 and await response.text() == "1"
    status, body = await _get(session, lower + f"ALERTDEFINITIONS({definition_id})", ti_token)
    assert status == 200 and body["Id"] == definition_id
    status, body = await _get(session, emulator.ti_url + "Nonsense", ti_token)
    assert status == 404 and set(body["error"]) >= {"code", "message"}


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"Severity": "Critical"}, "Severity"),
        ({"Category": "Weird"}, "Category"),
        ({"Name": "n" * 101}, "Name"),
        ({"Title": ""}, "Title"),
        ({"UxDescription": "u" * 501}, "UxDescription"),
        ({"InternalDescription": "i" * 351}, "InternalDescription"),
        ({"RecommendedAction": "r" * 2001}, "RecommendedAction"),
        ({"Enabled": "yes"}, "Enabled"),
        ({"name": "lower-case property"}, "name"),
    ],
)
async def test_definition_validation(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str, change: dict[str, Any], target: str
) -> None:
    status, body = await _post(
        session, emulator.ti_url + "AlertDefinitions", ti_token, {**DEFINITION, **change}
    )
    assert status == 400 and body["error"]["code"] == "BadRequest" and body["error"]["target"] == target
    missing = {k: v for k, v in DEFINITION.items() if k != "Category"}
    status, body = await _post(session, emulator.ti_url + "AlertDefinitions", ti_token, missing)
    assert status == 400 and "Category" in body["error"]["message"]


@pytest.mark.parametrize(
    ("ioc_type", "value", "detection", "valid"),
    [
        ("Sha1", "A" * 40, "Equals", True),
        ("Sha1", "a" * 39, "Equals", False),
        ("Sha1", "g" * 40, "Equals", False),
        ("Sha256", "0" * 64, "Equals", True),
        ("Sha256", "0" * 40, "Equals", False),
        ("Md5", "f" * 32, "Equals", True),
        ("Md5", "f" * 33, "Equals", False),
        ("IpAddress", "203.0.113.7", "Equals", True),
        ("IpAddress", "2001:db8::1", "Equals", True),
        ("IpAddress", "203.0.113.0/24", "Equals", False),
        ("IpAddress", "300.1.1.1", "Equals", False),
        ("DomainName", "evil.example.com", "Equals", True),
        ("DomainName", "not a domain", "Equals", False),
        ("DomainName", "example.com", "EndWith", True),
        ("DomainName", "evil", "Contains", True),
        ("Url", "http://evil.example.com/", "Equals", False),
        ("Sha1", "a" * 40, "EndsWith", False),
    ],
)
async def test_ioc_value_valid_for_type(
    session: aiohttp.ClientSession,
    emulator: Emulator,
    ti_token: str,
    ioc_type: str,
    value: str,
    detection: str,
    valid: bool,
) -> None:
    definition_id = await _definition(session, emulator, ti_token)
    body = {**_ioc(definition_id, value), "Type": ioc_type, "DetectionFunction": detection}
    status, answer = await _post(session, emulator.ti_url + "IndicatorsOfCompromise", ti_token, body)
    assert status == (201 if valid else 400), answer
    if not valid:
        assert answer["error"]["code"] == "BadRequest" and answer["error"]["message"]


async def test_ioc_bind_must_name_an_existing_definition(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    url = emulator.ti_url + "IndicatorsOfCompromise"
    for bind in ("AlertDefinitions(99)", "AlertDefinition(1)", "1", None):
        body = {**_ioc(1, sha1(1)), "AlertDefinition@odata.bind": bind}
        status, answer = await _post(session, url, ti_token, body)
        assert status == 400 and answer["error"]["target"] == "AlertDefinition@odata.bind"
    body = {k: v for k, v in _ioc(1, sha1(1)).items() if k != "AlertDefinition@odata.bind"}
    assert (await _post(session, url, ti_token, body))[0] == 400
    async with session.post(
        url, data="{not json", headers={**auth(ti_token), "Content-Type": "application/json"}
    ) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "BadRequest"


async def test_ioc_patch_delete_and_delete_iocs(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    ti = emulator.ti_url
    first = await _definition(session, emulator, ti_token)
    second = await _definition(session, emulator, ti_token, Name="second")
    ids = [
        (await _post(session, ti + "IndicatorsOfCompromise", ti_token, _ioc(first, sha1(n))))[1]["Id"]
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
    status, _ = await _post(session, ti + f"AlertDefinitions({first})/Actions.DeleteIOCs", ti_token, None)
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
    }
    async with session.put(ti + "AlertDefinitions", headers=auth(ti_token), json={}) as response:
        assert response.status == 405


async def test_bulk_upload_is_all_or_nothing(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    ti = emulator.ti_url
    status, body = await _post(
        session,
        ti + "AlertDefinitions/Actions.BulkUpload",
        ti_token,
        {"alertDefinitions": [DEFINITION, {**DEFINITION, "Name": "b"}]},
    )
    assert status == 200 and [d["Name"] for d in body["value"]] == ["feed-a", "b"]
    definition_id = body["value"][0]["Id"]
    status, body = await _post(
        session,
        ti + "AlertDefinitions/Actions.BulkUpload",
        ti_token,
        {"alertDefinitions": [DEFINITION, {**DEFINITION, "Severity": "Nope"}]},
    )
    assert status == 400 and "alertDefinitions[1]" in body["error"]["message"]
    iocs = [_ioc(definition_id, sha1(n)) for n in range(10)]
    bad = [*iocs[:5], _ioc(definition_id, "xyz"), *iocs[5:]]
    status, body = await _post(
        session, ti + "IndicatorsOfCompromise/Actions.BulkUpload", ti_token, {"iocs": bad}
    )
    assert status == 400 and "iocs[5]" in body["error"]["message"]
    assert emulator.state()["totals"]["iocs"] == 0
    status, body = await _post(
        session,
        ti + "IndicatorsOfCompromise/Actions.BulkUpload",
        ti_token,
        {"iocs": [_ioc(definition_id, sha1(1))] * 5001},
    )
    assert status == 400 and emulator.state()["totals"]["iocs"] == 0
    status, body = await _post(
        session, ti + "IndicatorsOfCompromise/Actions.BulkUpload", ti_token, {"iocs": iocs}
    )
    assert status == 200 and len(body["value"]) == 10 and emulator.state()["totals"]["iocs"] == 10


async def test_a_full_bulk_upload_of_several_megabytes_is_accepted(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    definition_id = await _definition(session, emulator, ti_token)
    iocs = [{**_ioc(definition_id, f"{n:064x}", Type="Sha256"), "ExpiresAt": None} for n in range(5000)]
    assert len(str(iocs)) > 1024 * 1024  # beyond aiohttp's default limit of a request body
    status, body = await _post(
        session, emulator.ti_url + "IndicatorsOfCompromise/Actions.BulkUpload", ti_token, {"iocs": iocs}
    )
    assert status == 200 and len(body["value"]) == 5000


async def test_quotas_answer_507(session: aiohttp.ClientSession) -> None:
    config = EmulatorConfig(max_alert_definitions=2, max_iocs=5, max_non_equals_iocs=1)
    async with running_emulator(config) as emu:
        token = await get_token(session, emu)
        ti = emu.ti_url
        status, body = await _post(
            session, ti + "AlertDefinitions/Actions.BulkUpload", token, {"alertDefinitions": [DEFINITION] * 3}
        )
        assert status == 507 and body["error"]["code"] == "InsufficientStorage"
        definition_id = await _definition(session, emu, token)
        await _definition(session, emu, token, Name="two")
        assert (await _post(session, ti + "AlertDefinitions", token, DEFINITION))[0] == 507
        status, _ = await _post(
            session,
            ti + "IndicatorsOfCompromise/Actions.BulkUpload",
            token,
            {"iocs": [_ioc(definition_id, sha1(n)) for n in range(6)]},
        )
        assert status == 507 and emu.state()["totals"]["iocs"] == 0  # atomic: nothing stored
        contains = {**_ioc(definition_id, "abc"), "DetectionFunction": "Contains"}
        assert (await _post(session, ti + "IndicatorsOfCompromise", token, contains))[0] == 201
        assert (await _post(session, ti + "IndicatorsOfCompromise", token, contains))[0] == 507
        for n in range(4):
            assert (await _post(session, ti + "IndicatorsOfCompromise", token, _ioc(definition_id, sha1(n))))[
                0
            ] == 201
        status, body = await _post(
            session, ti + "IndicatorsOfCompromise", token, _ioc(definition_id, sha1(9))
        )
        assert status == 507 and "quota" in body["error"]["message"]


async def test_tenants_are_isolated(session: aiohttp.ClientSession) -> None:
    other = ClientApp("other-app", "other-secret", "fabrikam")
    async with running_emulator(EmulatorConfig(clients=(DEMO_CLIENT, other))) as emu:
        demo_token = await get_token(session, emu)
        other_token = await get_token(
            session, emu, client_id="other-app", secret="other-secret", tenant="fabrikam"
        )
        definition_id = await _definition(session, emu, demo_token)
        status, body = await _get(session, emu.ti_url + "AlertDefinitions", other_token)
        assert status == 200 and body["value"] == []
        assert (await _get(session, emu.ti_url + f"AlertDefinitions({definition_id})", other_token))[0] == 404
        status, _ = await _post(
            session, emu.ti_url + "IndicatorsOfCompromise", other_token, _ioc(definition_id, sha1(1))
        )
        assert status == 400  # the bind names a definition of another tenant
        assert set(emu.state()["tenants"]) == {"contoso-demo", "fabrikam"}


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
        status, body = await _get(session, ti + "AlertDefinitions?" + query, ti_token)
        assert status == 400 and body["error"]["code"] == "BadRequest", query
    status, body = await _get(
        session, ti + "AlertDefinitions?$filter=Name eq 'it''s' and Enabled eq true", ti_token
    )
    assert status == 200 and body["value"] == []
