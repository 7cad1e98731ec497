"""Microsoft's documented Python sample flow, driven by a plain synchronous client, URLs changed only."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from typing import Any

from importer.emulator import DEMO_CLIENT, Emulator


def _sample_flow(auth_url: str, api_url: str) -> dict[str, Any]:
    # Step 1: the token, a v1 form POST with the legacy samples' resource.
    payload = {
        "resource": "https://graph.windows.net",
        "client_id": DEMO_CLIENT.client_id,
        "client_secret": DEMO_CLIENT.client_secret,
        "grant_type": "client_credentials",
    }
    request = urllib.request.Request(auth_url, data=urllib.parse.urlencode(payload).encode())
    with urllib.request.urlopen(request, timeout=5) as response:
        token = json.loads(response.read())["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }

    def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=5) as r:
            return r.status, json.loads(r.read())

    # Step 3: list the alert definitions (empty on first use).
    listed = call(api_url + "AlertDefinitions")
    # Step 4: create an alert definition.
    alert_definition = {
        "Name": "The alert's name",
        "Severity": "Low",
        "InternalDescription": "An internal description of the alert",
        "Title": "The Title",
        "UxDescription": "Description of the alerts",
        "RecommendedAction": "The alert's recommended action",
        "Category": "Trojan",
        "Enabled": True,
    }
    created = call(api_url + "AlertDefinitions", alert_definition)
    alert_definition_id = created[1]["Id"]
    # Step 5: create a Sha1 IOC bound to it.
    ioc = {
        "Type": "Sha1",
        "Value": "dead1111eeaabbccddeeaabbccddee11ffffffff",
        "DetectionFunction": "Equals",
        "Enabled": True,
        "AlertDefinition@odata.bind": f"AlertDefinitions({alert_definition_id})",
    }
    ioc_created = call(api_url + "IndicatorsOfCompromise", ioc)
    return {"listed": listed, "created": created, "ioc": ioc_created}


async def test_microsoft_sample_flow_with_a_synchronous_client(emulator: Emulator) -> None:
    result = await asyncio.to_thread(_sample_flow, emulator.auth_url(1), emulator.ti_url)
    assert result["listed"][0] == 200 and result["listed"][1]["value"] == []
    assert result["created"][0] == 201 and isinstance(result["created"][1]["Id"], int)
    status, ioc = result["ioc"]
    assert status == 201
    assert ioc["Value"] == "dead1111eeaabbccddeeaabbccddee11ffffffff" and isinstance(ioc["Id"], int)
    tenant = emulator.state()["tenants"][DEMO_CLIENT.tenant]
    assert tenant["alert_definitions"] == [
        {"id": result["created"][1]["Id"], "name": "The alert's name", "ioc_count": 1, "duplicate_iocs": 0}
    ]
    assert tenant["iocs"] == 1
