"""The Azure AD token endpoint: v1 and v2 shapes, and the errors Azure AD answers with."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import pytest

from importer.emulator import DEMO_CLIENT, ClientApp, Emulator, EmulatorConfig, running_emulator
from tests.helpers import FakeTime, auth

MDE = "https://api.securitycenter.microsoft.com"
GOOD = {
    "grant_type": "client_credentials",
    "client_id": DEMO_CLIENT.client_id,
    "client_secret": DEMO_CLIENT.client_secret,
}


async def _token(session: aiohttp.ClientSession, url: str, form: dict[str, str]) -> tuple[int, Any]:
    async with session.post(url, data=form) as response:
        return response.status, await response.json()


async def test_v1_numbers_as_strings(
    session: aiohttp.ClientSession, emulator: Emulator, fake_time: FakeTime
) -> None:
    status, body = await _token(
        session, emulator.auth_url(1), {**GOOD, "resource": "https://graph.windows.net"}
    )
    assert status == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == "3600"
    assert (
        body["expires_on"] == str(int(fake_time.wall()) + 3600)
        and body["resource"] == "https://graph.windows.net"
    )
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32


async def test_v2_integer_expiry_and_scopes(session: aiohttp.ClientSession, emulator: Emulator) -> None:
    url = emulator.auth_url(2)
    status, body = await _token(
        session, url, {**GOOD, "scope": "https://api.securitycenter.microsoft.com/.default"}
    )
    assert status == 200 and body["expires_in"] == 3600 and "expires_on" not in body
    async with session.get(emulator.mde_url + "indicators", headers=auth(body["access_token"])) as response:
        assert response.status == 200
    async with session.get(
        emulator.ti_url + "AlertDefinitions", headers=auth(body["access_token"])
    ) as response:
        assert response.status == 401  # an MDE token is not a TI token
    # The emulator's own base URL is accepted as an audience for both APIs.
    status, body = await _token(session, url, {**GOOD, "scope": emulator.base_url + "/.default"})
    assert status == 200
    async with session.get(
        emulator.ti_url + "AlertDefinitions", headers=auth(body["access_token"])
    ) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("version", "change", "status", "error", "code"),
    [
        (1, {"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        (2, {"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        (1, {"client_secret": ""}, 401, "invalid_client", 7000218),
        (1, {"client_id": "nobody"}, 400, "unauthorized_client", 700016),
        (1, {"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        (1, {"grant_type": ""}, 400, "invalid_request", 900144),
        (1, {"resource": "https://example.com"}, 400, "invalid_resource", 500011),
        (1, {"resource": ""}, 400, "invalid_request", 900144),
        (
            2,
            {"resource": "https://graph.windows.net", "scope": "https://graph.windows.net/.default"},
            400,
            "invalid_request",
            901002,
        ),
        (2, {"scope": "https://api.securitycenter.microsoft.com"}, 400, "invalid_scope", 1002012),
        (2, {"scope": "https://example.com/.default"}, 400, "invalid_scope", 70011),
    ],
)
async def test_errors_shaped_like_azure_ad(
    session: aiohttp.ClientSession,
    emulator: Emulator,
    version: int,
    change: dict[str, str],
    status: int,
    error: str,
    code: int,
) -> None:
    form = {
        **GOOD,
        **(
            {"resource": "https://graph.windows.net"}
            if version == 1
            else {"scope": "https://graph.windows.net/.default"}
        ),
        **change,
    }
    form = {k: v for k, v in form.items() if v != ""}
    got_status, body = await _token(session, emulator.auth_url(version), form)
    assert (got_status, body["error"], body["error_codes"]) == (status, error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    assert body["trace_id"] and body["correlation_id"] and body["timestamp"]
    assert DEMO_CLIENT.client_secret not in str(body)
    assert emulator.state()["tokens_issued"] == 0


async def test_unknown_tenant_expired_secret_and_other_tenant(session: aiohttp.ClientSession) -> None:
    expired = ClientApp("old-app", "old-secret", "contoso-demo", secret_expired=True)
    other = ClientApp("other-app", "other-secret", "fabrikam")
    async with running_emulator(EmulatorConfig(clients=(DEMO_CLIENT, expired, other))) as emu:
        resource = {"resource": "https://graph.windows.net"}
        status, body = await _token(session, emu.auth_url(1, "nowhere"), {**GOOD, **resource})
        assert (status, body["error_codes"]) == (400, [90002])
        status, body = await _token(
            session,
            emu.auth_url(1),
            {**GOOD, **resource, "client_id": "old-app", "client_secret": "old-secret"},
        )
        assert (status, body["error"], body["error_codes"]) == (401, "invalid_client", [7000222])
        # A client of one tenant cannot get a token in another tenant.
        status, body = await _token(session, emu.auth_url(1, "fabrikam"), {**GOOD, **resource})
        assert (status, body["error_codes"]) == (400, [700016])


async def test_token_lifetime_is_configurable(session: aiohttp.ClientSession, fake_time: FakeTime) -> None:
    async with running_emulator(EmulatorConfig(token_lifetime=120, clock=fake_time.wall)) as emu:
        status, body = await _token(
            session, emu.auth_url(2), {**GOOD, "scope": "https://graph.windows.net/.default"}
        )
        assert status == 200
        assert body["expires_in"] == 120
        fake_time.advance(119)
        async with session.get(
            emu.ti_url + "AlertDefinitions", headers=auth(body["access_token"])
        ) as response:
            assert response.status == 200
        fake_time.advance(1)
        async with session.get(
            emu.ti_url + "AlertDefinitions", headers=auth(body["access_token"])
        ) as response:
            assert response.status == 401
        assert emu.state()["tokens_issued"] == 1


def _basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic as RFC 6749 section 2.3.1 has it: each part form-urlencoded, then base64."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def _token_with(
    session: aiohttp.ClientSession, url: str, form: dict[str, str], headers: dict[str, str]
) -> tuple[int, Any, Mapping[str, str]]:
    async with session.post(url, data=form, headers=headers) as response:
        return response.status, await response.json(), response.headers


async def test_client_secret_in_http_basic_auth(session: aiohttp.ClientSession) -> None:
    # A secret with characters that form-urlencoding changes proves the parts are decoded.
    app = ClientApp("basic-app", "s3cret+/=:%&", "contoso-demo")
    async with running_emulator(EmulatorConfig(clients=(DEMO_CLIENT, app))) as emu:
        scope = {
            "grant_type": "client_credentials",
            "scope": "https://api.securitycenter.microsoft.com/.default",
        }
        status, body, _ = await _token_with(
            session, emu.auth_url(2), scope, _basic(app.client_id, app.client_secret)
        )
        assert status == 200, body
        async with session.get(emu.mde_url + "indicators", headers=auth(body["access_token"])) as response:
            assert response.status == 200
        # v1, with the client_id repeated in the form (allowed when it is the same).
        form = {"grant_type": "client_credentials", "client_id": app.client_id, "resource": MDE}
        status, body, _ = await _token_with(
            session, emu.auth_url(1), form, _basic(app.client_id, app.client_secret)
        )
        assert status == 200 and body["resource"] == MDE
        # A wrong secret in the header: 401 with the challenge RFC 6749 section 5.2 asks for.
        status, body, headers = await _token_with(
            session, emu.auth_url(2), scope, _basic(app.client_id, "wrong")
        )
        assert (status, body["error"], body["error_codes"]) == (401, "invalid_client", [7000215])
        assert headers["WWW-Authenticate"].startswith("Basic") and "error_uri" in body
        refusals = [
            # Two methods at once (RFC 6749: a client MUST NOT use more than one).
            ({**scope, "client_secret": app.client_secret}, _basic(app.client_id, app.client_secret)),
            ({**scope, "client_id": DEMO_CLIENT.client_id}, _basic(app.client_id, app.client_secret)),
            (scope, {"Authorization": "Basic not*base64"}),
            (scope, {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}),
        ]
        for form, headers in refusals:
            status, body, _ = await _token_with(session, emu.auth_url(2), form, headers)
            assert (status, body["error"], body["error_codes"]) == (400, "invalid_request", [9002313])
        assert emu.state()["tokens_issued"] == 2


@pytest.mark.parametrize("version", [1, 2])
async def test_ti_token_for_graph_microsoft_com(
    session: aiohttp.ClientSession, emulator: Emulator, version: int
) -> None:
    resource = "https://graph.microsoft.com"
    asked = {"resource": resource} if version == 1 else {"scope": resource + "/.default"}
    status, body = await _token(session, emulator.auth_url(version), {**GOOD, **asked})
    assert status == 200, body
    token = body["access_token"]
    async with session.get(emulator.ti_url + "AlertDefinitions", headers=auth(token)) as response:
        assert response.status == 200
    async with session.get(emulator.mde_url + "indicators", headers=auth(token)) as response:
        assert response.status == 401  # a TI audience, not an MDE one
