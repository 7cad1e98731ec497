"""The TI API's validation: every field of an alert definition, each IOC type's values, the bind."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from importer.emulator import Emulator
from tests.helpers import DEFINITION, auth, create_definition, post_json, sha1, ti_ioc


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
    status, body = await post_json(
        session, emulator.ti_url + "AlertDefinitions", ti_token, {**DEFINITION, **change}
    )
    assert status == 400 and body["error"]["code"] == "BadRequest" and body["error"]["target"] == target
    missing = {k: v for k, v in DEFINITION.items() if k != "Category"}
    status, body = await post_json(session, emulator.ti_url + "AlertDefinitions", ti_token, missing)
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
    definition_id = await create_definition(session, emulator, ti_token)
    body = {**ti_ioc(definition_id, value), "Type": ioc_type, "DetectionFunction": detection}
    status, answer = await post_json(session, emulator.ti_url + "IndicatorsOfCompromise", ti_token, body)
    assert status == (201 if valid else 400), answer
    if not valid:
        assert answer["error"]["code"] == "BadRequest" and answer["error"]["message"]


async def test_ioc_bind_must_name_an_existing_definition(
    session: aiohttp.ClientSession, emulator: Emulator, ti_token: str
) -> None:
    url = emulator.ti_url + "IndicatorsOfCompromise"
    for bind in ("AlertDefinitions(99)", "AlertDefinition(1)", "1", None):
        body = {**ti_ioc(1, sha1(1)), "AlertDefinition@odata.bind": bind}
        status, answer = await post_json(session, url, ti_token, body)
        assert status == 400 and answer["error"]["target"] == "AlertDefinition@odata.bind"
    body = {k: v for k, v in ti_ioc(1, sha1(1)).items() if k != "AlertDefinition@odata.bind"}
    assert (await post_json(session, url, ti_token, body))[0] == 400
    async with session.post(
        url, data="{not json", headers={**auth(ti_token), "Content-Type": "application/json"}
    ) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "BadRequest"
