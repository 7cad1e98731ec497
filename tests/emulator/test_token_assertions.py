"""The token endpoint's client assertions: a certificate instead of a secret, checked strictly.

Assertions are made here by hand (PyJWT, or byte by byte where no library would sign them so),
and certificates are generated for the test: none is kept in the repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest

from importer.emulator import DEMO_CLIENT, ClientApp, Emulator, EmulatorConfig, running_emulator
from importer.emulator.cert import SelfSigned, demo_certificate_file, self_signed
from importer.emulator.config import DEMO_CERT_CLIENT_ID
from tests.helpers import FakeTime, auth

APP_ID = "cert-app"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MDE_SCOPE = "https://api.securitycenter.microsoft.com/.default"


@pytest.fixture(scope="module")
def app_cert() -> SelfSigned:
    return self_signed(APP_ID)


@pytest.fixture(scope="module")
def other_cert() -> SelfSigned:
    return self_signed("not-registered")


@pytest.fixture
async def emu(app_cert: SelfSigned, fake_time: FakeTime) -> AsyncIterator[Emulator]:
    app = ClientApp(APP_ID, "", DEMO_CLIENT.tenant, certificate=app_cert.der)
    async with running_emulator(EmulatorConfig(clients=(DEMO_CLIENT, app), clock=fake_time.wall)) as emulator:
        yield emulator


def x5t(der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()


def claims(emu: Emulator, fake: FakeTime, version: int = 2, **changes: Any) -> dict[str, Any]:
    """Good claims for APP_ID at ``emu``'s token URL, now; a change to None removes the claim."""
    now = int(fake.wall())
    values: dict[str, Any] = {
        "aud": emu.auth_url(version), "iss": APP_ID, "sub": APP_ID, "jti": str(uuid.uuid4()),
        "nbf": now, "iat": now, "exp": now + 300,
    }  # fmt: skip
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def sign(cert: SelfSigned, payload: dict[str, Any], *, thumbprint_of: SelfSigned | None = None,
         algorithm: str = "RS256", **header: Any) -> str:  # fmt: skip
    """``payload`` signed with ``cert``'s key, its header naming ``thumbprint_of``'s (default: its own)."""
    named = {"x5t": x5t((thumbprint_of or cert).der), **header}
    return jwt.encode(payload, cert.key, algorithm=algorithm, headers={k: v for k, v in named.items() if v})


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A JWT with ``alg: none``, which no library will make by accident."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


async def ask(session: aiohttp.ClientSession, emu: Emulator, assertion: str, version: int = 2,
              **form: str) -> tuple[int, Any]:  # fmt: skip
    body = {
        "grant_type": "client_credentials", "client_id": APP_ID,
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
        **({"scope": MDE_SCOPE} if version == 2 else {"resource": MDE_SCOPE.removesuffix("/.default")}),
        **form,
    }  # fmt: skip
    async with session.post(emu.auth_url(version), data=body) as response:
        return response.status, await response.json()


async def test_a_signed_assertion_gets_a_token_on_v1_and_v2(
    session: aiohttp.ClientSession, emu: Emulator, app_cert: SelfSigned, fake_time: FakeTime
) -> None:
    for version in (1, 2):
        status, body = await ask(session, emu, sign(app_cert, claims(emu, fake_time, version)), version)
        assert status == 200, body
        async with session.get(emu.mde_url + "indicators", headers=auth(body["access_token"])) as response:
            assert response.status == 200


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("another certificate, its own thumbprint", 700027),
        ("another key, the registered thumbprint", 700027),
        ("no x5t", 700027),
        ("RS512", 700027),
        ("alg none", 700027),
        ("iss another app", 700021),
        ("sub another app", 700021),
        ("aud the real service", 700023),
        ("aud the other version's URL", 700023),
        ("exp passed", 700024),
        ("exp now", 700024),
        ("nbf ahead", 700024),
        ("exp over ten minutes ahead", 700024),
        ("no jti", 50027),
        ("no exp", 50027),
        ("not a JWT", 50027),
    ],
)
async def test_each_flaw_is_refused_with_its_code(
    session: aiohttp.ClientSession, emu: Emulator, app_cert: SelfSigned, other_cert: SelfSigned,
    fake_time: FakeTime, case: str, code: int,
) -> None:  # fmt: skip
    now = int(fake_time.wall())
    good = claims(emu, fake_time)
    assertion = {
        "another certificate, its own thumbprint": lambda: sign(other_cert, good),
        "another key, the registered thumbprint": lambda: sign(other_cert, good, thumbprint_of=app_cert),
        "no x5t": lambda: sign(app_cert, good, x5t=None),
        "RS512": lambda: sign(app_cert, good, algorithm="RS512"),
        "alg none": lambda: unsigned({"alg": "none", "typ": "JWT", "x5t": x5t(app_cert.der)}, good),
        "iss another app": lambda: sign(app_cert, {**good, "iss": DEMO_CLIENT.client_id}),
        "sub another app": lambda: sign(app_cert, {**good, "sub": DEMO_CLIENT.client_id}),
        "aud the real service": lambda: sign(
            app_cert, {**good, "aud": "https://login.microsoftonline.com/contoso-demo/oauth2/v2.0/token"}
        ),
        "aud the other version's URL": lambda: sign(app_cert, {**good, "aud": emu.auth_url(1)}),
        "exp passed": lambda: sign(app_cert, {**good, "nbf": now - 400, "exp": now - 1}),
        "exp now": lambda: sign(app_cert, {**good, "exp": now}),
        "nbf ahead": lambda: sign(app_cert, {**good, "nbf": now + 60}),
        "exp over ten minutes ahead": lambda: sign(app_cert, {**good, "exp": now + 601}),
        "no jti": lambda: sign(app_cert, claims(emu, fake_time, jti=None)),
        "no exp": lambda: sign(app_cert, claims(emu, fake_time, exp=None)),
        "not a JWT": lambda: "not.a-jwt",
    }[case]()
    status, body = await ask(session, emu, assertion)
    assert (status, body["error"], body["error_codes"]) == (401, "invalid_client", [code]), body
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert assertion not in json.dumps(body)


async def test_an_assertion_expires_on_the_emulators_clock(
    session: aiohttp.ClientSession, emu: Emulator, app_cert: SelfSigned, fake_time: FakeTime
) -> None:
    assertion = sign(app_cert, claims(emu, fake_time))
    fake_time.advance(300)
    status, body = await ask(session, emu, assertion)
    assert (status, body["error_codes"]) == (401, [700024])
    assert "not within its valid time range" in body["error_description"]


async def test_a_replayed_assertion_is_refused_and_a_fresh_one_is_not(
    session: aiohttp.ClientSession, emu: Emulator, app_cert: SelfSigned, fake_time: FakeTime
) -> None:
    assertion = sign(app_cert, claims(emu, fake_time))
    assert (await ask(session, emu, assertion))[0] == 200
    status, body = await ask(session, emu, assertion)
    assert (status, body["error_codes"]) == (401, [50027]) and "already used" in body["error_description"]
    assert (await ask(session, emu, sign(app_cert, claims(emu, fake_time))))[0] == 200


async def test_each_app_takes_only_its_own_kind_of_credential(
    session: aiohttp.ClientSession, emu: Emulator, app_cert: SelfSigned, fake_time: FakeTime
) -> None:
    # The certificate app has no secret: an empty one (or any) is a wrong secret.
    for secret in ("", "anything"):
        form = {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": secret,
                "scope": MDE_SCOPE}  # fmt: skip
        async with session.post(emu.auth_url(2), data=form) as response:
            assert (response.status, (await response.json())["error_codes"]) == (401, [7000215])
    # The secret app has no certificate: a perfectly signed assertion names none it has.
    assertion = sign(app_cert, claims(emu, fake_time, iss=DEMO_CLIENT.client_id, sub=DEMO_CLIENT.client_id))
    status, body = await ask(session, emu, assertion, client_id=DEMO_CLIENT.client_id)
    assert (status, body["error_codes"]) == (401, [700027]) and "not registered" in body["error_description"]


async def test_malformed_requests(
    session: aiohttp.ClientSession, emu: Emulator, app_cert: SelfSigned, fake_time: FakeTime
) -> None:
    good = sign(app_cert, claims(emu, fake_time))
    status, body = await ask(session, emu, good, client_secret="also-a-secret")
    assert (status, body["error"]) == (400, "invalid_request")
    assert "one method only" in body["error_description"]
    status, body = await ask(session, emu, good, client_assertion_type="urn:something:else")
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await ask(session, emu, "")
    assert (status, body["error_codes"]) == (400, [900144])


def test_the_demo_certificate_file_is_private_and_removed() -> None:
    with demo_certificate_file(DEMO_CLIENT.tenant) as (app, path):
        assert app.client_id == DEMO_CERT_CLIENT_ID and app.client_secret == ""
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        pem = path.read_bytes()
        assert b"-----BEGIN CERTIFICATE-----" in pem and b"-----BEGIN PRIVATE KEY-----" in pem
        assert app.certificate is not None and x5t(app.certificate)
    assert not path.exists()
