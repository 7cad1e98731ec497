"""The emulator's API called by hand (tokens, JSON requests, entity bodies), for the emulator's tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from importer.emulator import DEMO_CLIENT, Emulator

# --- the emulator's API by hand ------------------------------------------------------------------
DEFINITION: dict[str, Any] = {
    "Name": "feed-a",
    "Title": "Known bad from feed A",
    "Severity": "Medium",
    "Category": "Malware",
    "InternalDescription": "Imported by ti-importer",
    "UxDescription": "An indicator from feed A was seen",
    "RecommendedAction": "Isolate the machine",
    "Enabled": True,
}


async def get_token(
    session: aiohttp.ClientSession,
    emu: Emulator,
    resource: str = "https://graph.windows.net",
    *,
    client_id: str = DEMO_CLIENT.client_id,
    secret: str = DEMO_CLIENT.client_secret,
    tenant: str | None = None,
) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "resource": resource,
    }
    async with session.post(emu.auth_url(1, tenant), data=form) as response:
        body = await response.json()
        assert response.status == 200, body
        token: str = body["access_token"]
        return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


async def post_json(session: aiohttp.ClientSession, url: str, token: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body, headers=auth(token)) as response:
        return response.status, (await response.json() if response.status != 204 else None)


async def get_json(session: aiohttp.ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with session.get(url, headers=auth(token)) as response:
        return response.status, await response.json()


def ti_ioc(definition_id: int, value: str, **extra: Any) -> dict[str, Any]:
    """A TI API IndicatorOfCompromise body: a SHA-1 ``value`` bound to the definition."""
    return {
        "Type": "Sha1",
        "Value": value,
        "DetectionFunction": "Equals",
        "Enabled": True,
        "AlertDefinition@odata.bind": f"AlertDefinitions({definition_id})",
        **extra,
    }


async def create_definition(session: aiohttp.ClientSession, emu: Emulator, token: str, **extra: Any) -> int:
    """POST ``DEFINITION`` (with ``extra`` fields) to the TI API; its id."""
    status, body = await post_json(session, emu.ti_url + "AlertDefinitions", token, {**DEFINITION, **extra})
    assert status == 201, body
    definition_id: int = body["Id"]
    return definition_id


# --- what a tenant holds, read through the API as any client would --------------------------------
MDE_RESOURCE = "https://api.securitycenter.microsoft.com"


def mde_indicator(value: str, kind: str = "FileSha1", **extra: Any) -> dict[str, Any]:
    """An MDE Indicator body with the required fields (``extra`` adds or replaces some)."""
    return {
        "indicatorValue": value,
        "indicatorType": kind,
        "action": "Alert",
        "title": "feed-a",
        "description": "from feed A",
        "severity": "Medium",
        **extra,
    }


async def mde_call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: Any = None
) -> tuple[int, Any, Mapping[str, str]]:
    """One MDE API call: its status, JSON body (None for a 204) and headers."""
    async with session.request(method, url, json=body, headers=auth(token)) as response:
        payload = await response.json() if response.status != 204 else None
        return response.status, payload, response.headers


async def mde_held(emu: Emulator) -> list[dict[str, Any]]:
    """Every mde indicator of the demo tenant (one page of up to 10,000)."""
    async with aiohttp.ClientSession() as session:
        token = await get_token(session, emu, MDE_RESOURCE)
        status, body = await get_json(session, emu.mde_url + "indicators?$top=10000", token)
        assert status == 200, body
        value: list[dict[str, Any]] = body["value"]
        return value


async def mde_delete(emu: Emulator, ids: list[str]) -> None:
    """Delete mde indicators as an analyst in the portal would (BatchDelete)."""
    async with aiohttp.ClientSession() as session:
        token = await get_token(session, emu, MDE_RESOURCE)
        url = emu.mde_url + "indicators/BatchDelete"
        status, body = await post_json(session, url, token, {"IndicatorIds": ids})
        assert status in (200, 204), body


async def ti_held(emu: Emulator) -> list[dict[str, Any]]:
    """Every ti IOC of the demo tenant (each page followed)."""
    found: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        token = await get_token(session, emu)
        url: str | None = emu.ti_url + "IndicatorsOfCompromise"
        while url is not None:
            status, body = await get_json(session, url, token)
            assert status == 200, body
            found.extend(body["value"])
            url = body.get("@odata.nextLink")
    return found


# --- Microsoft Sentinel: the STIX objects upload API and ARM's queryIndicators -------------------
SENTINEL_RESOURCE = "https://management.azure.com/"
STIX_TIME = "2026-01-01T00:00:00.000Z"


def stix_id(kind: str, n: int) -> str:
    """A fixed STIX id of type ``kind`` numbered ``n`` (``indicator--00000000-...-<n>``)."""
    return f"{kind}--00000000-0000-4000-8000-{n:012d}"


def stix_indicator(n: int, **extra: Any) -> dict[str, Any]:
    """A valid STIX 2.1 indicator numbered ``n`` (its id and pattern follow ``n``); ``extra`` adds or
    replaces properties (``None`` removes one)."""
    body: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": stix_id("indicator", n),
        "created": STIX_TIME,
        "modified": STIX_TIME,
        "pattern": f"[domain-name:value = 'host{n}.example.com']",
        "pattern_type": "stix",
        "valid_from": STIX_TIME,
        "name": f"indicator {n}",
        **extra,
    }
    return {k: v for k, v in body.items() if v is not None}


async def sentinel_upload(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    objects: list[Any] | None = None,
    *,
    source: str = "ti-importer",
    body: Any = None,
) -> tuple[int, Any, Mapping[str, str]]:
    """POST one upload (``body`` as given, else ``{"sourcesystem": source, "stixobjects": objects}``):
    its status, JSON body (None when empty) and headers."""
    payload = body if body is not None else {"sourcesystem": source, "stixobjects": objects or []}
    async with session.post(url, json=payload, headers=auth(token)) as response:
        text = await response.text()
        return response.status, (json.loads(text) if text else None), response.headers


async def sentinel_query(
    session: aiohttp.ClientSession, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    """POST ARM's queryIndicators (``body`` None: no body at all): its status and JSON body."""
    async with session.post(url, json=body, headers=auth(token)) as response:
        return response.status, await response.json()


def sentinel_objects(state: Mapping[str, Any], tenant: str = DEMO_CLIENT.tenant) -> dict[str, int]:
    """A tenant's Sentinel counters from ``/_emulator/state``: objects, indicators, revoked, duplicates."""
    held = state["tenants"][tenant]
    return {key: held[key] for key in held if key.startswith("sentinel_") and key != "sentinel_workspaces"}


# --- changing what a tenant holds, as an analyst in the portal would --------------------------------
async def mde_change(emu: Emulator, entities: list[dict[str, Any]], **changes: Any) -> None:
    """Submit each listed mde indicator again (``POST indicators``, an upsert) with ``changes``
    (e.g. ``severity="Low"``), keeping the rest of what it holds."""
    kept = ("indicatorValue", "indicatorType", "action", "title", "description", "severity",
            "expirationTime", "externalId", "generateAlert", "recommendedActions")  # fmt: skip
    async with aiohttp.ClientSession() as session:
        token = await get_token(session, emu, MDE_RESOURCE)
        for entity in entities:
            body = {key: entity[key] for key in kept if entity.get(key) is not None}
            status, answer, _ = await mde_call(session, "POST", emu.mde_url + "indicators", token,
                                               {**body, **changes})  # fmt: skip
            assert status == 200, answer


async def ti_change(emu: Emulator, ids: list[int], **changes: Any) -> None:
    """PATCH each ti IOC with ``changes`` (e.g. ``Enabled=False``)."""
    async with aiohttp.ClientSession() as session:
        token = await get_token(session, emu)
        for ioc_id in ids:
            url = f"{emu.ti_url}IndicatorsOfCompromise({ioc_id})"
            async with session.patch(url, json=changes, headers=auth(token)) as response:
                assert response.status in (200, 204), await response.text()


async def ti_delete(emu: Emulator, ids: list[int]) -> None:
    """DELETE each ti IOC, as an analyst in the portal would."""
    async with aiohttp.ClientSession() as session:
        token = await get_token(session, emu)
        for ioc_id in ids:
            url = f"{emu.ti_url}IndicatorsOfCompromise({ioc_id})"
            async with session.delete(url, headers=auth(token)) as response:
                assert response.status == 204, await response.text()
