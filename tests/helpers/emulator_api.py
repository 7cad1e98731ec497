"""The emulator's API called by hand (tokens, JSON requests, entity bodies), for the emulator's tests."""

from __future__ import annotations

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
