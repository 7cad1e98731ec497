"""Certificate credentials over loopback: ``TI_CLIENT_CERT`` (or ``[auth] client_cert``) instead of a
secret, a client assertion signed for every token request, and one sentence for every way the
certificate file or its password can be wrong. Certificates are generated here, none is committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from importer.emulator import DEMO_CLIENT, ClientApp, Emulator, EmulatorConfig, running_emulator
from importer.emulator.cert import SelfSigned, self_signed
from importer.emulator.config import DEMO_CERT_CLIENT_ID
from importer.errors import ConfigError
from importer.targets.registry import package
from importer.transport.assertion import load_certificate
from importer.transport.connection import NO_SECRET, ConnectionSettings, Secret
from importer.transport.http import open_http
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, run_cli, start_emulator, stop_process, write_list

APP = "ti-importer-cert-test"
PASSWORD = "correct-horse-battery"  # a test key's password


@pytest.fixture(scope="module")
def app_cert() -> SelfSigned:
    return self_signed(APP)


@pytest.fixture(scope="module")
def other_cert() -> SelfSigned:
    return self_signed("an-unregistered-certificate")


@pytest.fixture
async def emu(app_cert: SelfSigned) -> AsyncIterator[Emulator]:
    app = ClientApp(APP, "", DEMO_CLIENT.tenant, certificate=app_cert.der)
    async with running_emulator(EmulatorConfig(clients=(DEMO_CLIENT, app))) as emulator:
        yield emulator


def pem_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def use_cert(monkeypatch: pytest.MonkeyPatch, emu: Emulator, pem: Path | None, api_url: str) -> None:
    """The certificate app's environment for ``emu`` (``pem``: TI_CLIENT_CERT, or unset)."""
    for name in ("TI_CLIENT_SECRET", "TI_CLIENT_CERT", "TI_CLIENT_CERT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TI_CLIENT_ID", APP)
    monkeypatch.setenv("TI_AUTH_URL", emu.auth_url(1))
    monkeypatch.setenv("TI_API_URL", api_url)
    if pem is not None:
        monkeypatch.setenv("TI_CLIENT_CERT", str(pem))


def fatal_line(err: str) -> dict[str, Any]:
    """The one JSON line a run that could not start writes: one sentence, its exit code."""
    (line,) = [json.loads(text) for text in err.splitlines()]
    assert line["level"] == "error" and "Traceback" not in line["message"]
    message: str = line["message"]
    assert message.count(". ") == 0 and "\n" not in message  # one sentence
    return line


async def test_a_certificate_run_imports_into_ti_and_mde(
    emu: Emulator, app_cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pem = pem_file(tmp_path / "app.pem", app_cert.pem())
    feed = write_list(tmp_path / "hashes.txt", 30)
    report = tmp_path / "report.json"
    use_cert(monkeypatch, emu, pem, emu.ti_url)
    assert await run_cli("-q", "-vv", str(feed), "--report", str(report)) == 0
    assert emu.state()["totals"]["iocs"] == 30
    use_cert(monkeypatch, emu, pem, emu.mde_url)
    assert await run_cli("-q", "-vv", "--target", "mde", str(feed)) == 0
    assert emu.state()["totals"]["mde_indicators"] == 30
    # Neither the key nor an assertion (a JWT starts "eyJ") shows in the debug log or the report.
    shown = capsys.readouterr().err + report.read_text()
    key_line = app_cert.pem().decode().split("-----BEGIN PRIVATE KEY-----")[1].split()[0]
    assert "eyJ" not in shown and key_line not in shown


async def test_a_wrong_certificate_gets_aadsts700027_and_exit_3(
    emu: Emulator, other_cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pem = pem_file(tmp_path / "other.pem", other_cert.pem())
    use_cert(monkeypatch, emu, pem, emu.ti_url)
    code = await run_cli("-q", "--log-format", "json", str(write_list(tmp_path / "h.txt", 5)))
    assert code == 3
    err = capsys.readouterr().err
    lines = [json.loads(text) for text in err.splitlines()]
    refusal = [line["message"] for line in lines if "AADSTS700027" in line["message"]]
    assert refusal, err
    thumbprint = load_certificate(pem, None, named="test", password_from="-", now=datetime.now(UTC)).sha1_hex
    assert thumbprint in refusal[0] and "eyJ" not in err and "Traceback" not in err
    assert emu.state()["totals"]["iocs"] == 0


async def test_an_encrypted_key_opens_with_the_password_from_the_environment(
    emu: Emulator, app_cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pem_file(tmp_path / "app.pem", app_cert.pem(PASSWORD.encode()))
    feed = write_list(tmp_path / "h.txt", 10)
    use_cert(monkeypatch, emu, tmp_path / "app.pem", emu.ti_url)
    monkeypatch.setenv("TI_CLIENT_CERT_PASSWORD", PASSWORD)
    assert await run_cli("-q", str(feed)) == 0
    # From a config file: the path relative to it, the password in the variable it names.
    use_cert(monkeypatch, emu, None, emu.ti_url)
    monkeypatch.setenv("MY_KEY_PASSWORD", PASSWORD)
    config = tmp_path / "ti.toml"
    config.write_text('[auth]\nclient_cert = "app.pem"\nclient_cert_password_env = "MY_KEY_PASSWORD"\n')
    more = write_list(tmp_path / "more.txt", 10, seed=2)
    assert await run_cli("-q", "--config", str(config), str(more)) == 0
    assert emu.state()["totals"]["iocs"] == 20


async def test_a_missing_or_wrong_password_is_exit_2_naming_the_file_never_the_password(
    emu: Emulator, app_cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pem = pem_file(tmp_path / "app.pem", app_cert.pem(PASSWORD.encode()))
    feed = str(write_list(tmp_path / "h.txt", 5))
    use_cert(monkeypatch, emu, pem, emu.ti_url)
    assert await run_cli("-q", "--log-format", "json", feed) == 2
    message = fatal_line(capsys.readouterr().err)["message"]
    assert str(pem) in message and "is encrypted" in message and "TI_CLIENT_CERT_PASSWORD" in message
    monkeypatch.setenv("TI_CLIENT_CERT_PASSWORD", "not-" + PASSWORD)
    assert await run_cli("-q", "--log-format", "json", feed) == 2
    err = capsys.readouterr().err
    message = fatal_line(err)["message"]
    assert str(pem) in message and "cannot decrypt" in message and PASSWORD not in err
    assert emu.state()["tokens_issued"] == 0


async def test_exactly_one_credential_a_secret_or_a_certificate(
    emu: Emulator, app_cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pem = pem_file(tmp_path / "app.pem", app_cert.pem())
    feed = str(write_list(tmp_path / "h.txt", 5))
    use_cert(monkeypatch, emu, pem, emu.ti_url)
    monkeypatch.setenv("TI_CLIENT_SECRET", "some-secret-value")
    assert await run_cli("-q", "--log-format", "json", feed) == 2
    err = capsys.readouterr().err
    message = fatal_line(err)["message"]
    assert "TI_CLIENT_SECRET" in message and "TI_CLIENT_CERT" in message and "keep one" in message
    assert "some-secret-value" not in err
    use_cert(monkeypatch, emu, None, emu.ti_url)
    assert await run_cli("-q", "--log-format", "json", feed) == 2
    assert "TI_CLIENT_CERT" in fatal_line(capsys.readouterr().err)["message"]


def _expired(app_cert: SelfSigned) -> bytes:
    del app_cert
    return self_signed("old", not_before=datetime.now(UTC) - timedelta(days=3), days=1).pem()


def _ec_key(app_cert: SelfSigned) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return app_cert.certificate_pem + pem


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        (lambda cert: cert.certificate_pem, "holds no private key"),
        (lambda cert: cert.pem().split(b"-----END CERTIFICATE-----\n")[1], "holds no PEM certificate"),
        (lambda cert: cert.certificate_pem + self_signed("x").pem().split(b"-----END CERTIFICATE-----\n")[1],
         "matches its private key"),
        (_expired, "expired on"),
        (_ec_key, "not an RSA key"),
        (lambda cert: b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
         "not a readable PEM private key"),
    ],
    ids=["missing", "no key", "no certificate", "mismatched", "expired", "EC key", "garbage key"],
)
async def test_an_unusable_certificate_file_is_one_sentence_naming_it(
    emu: Emulator, app_cert: SelfSigned, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], content: Any, says: str,
) -> None:  # fmt: skip
    pem = tmp_path / "app.pem"
    if content is not None:
        pem_file(pem, content(app_cert))
    use_cert(monkeypatch, emu, pem, emu.ti_url)
    assert await run_cli("-q", "--log-format", "json", str(write_list(tmp_path / "h.txt", 5))) == 2
    message = fatal_line(capsys.readouterr().err)["message"]
    assert str(pem) in message and says in message


async def test_every_token_request_signs_a_new_assertion(
    app_cert: SelfSigned, fake_time: FakeTime, tmp_path: Path
) -> None:
    # The emulator refuses a replayed assertion: a refresh that re-sent the first one would fail.
    app = ClientApp(APP, "", DEMO_CLIENT.tenant, certificate=app_cert.der)
    pem = pem_file(tmp_path / "app.pem", app_cert.pem())
    credential = load_certificate(pem, None, named="TI_CLIENT_CERT", password_from="-", now=datetime.now(UTC))
    assert repr(credential) == f"ClientCertificate(path={str(pem)!r}, thumbprint={credential.sha1_hex!r})"
    config = EmulatorConfig(clients=(app,), clock=fake_time.wall)
    async with running_emulator(config) as emu:
        for version in (1, 2):
            settings = connection_settings(
                emu, version=version, client_id=APP, client_secret=NO_SECRET, client_cert=credential
            )
            assert "PRIVATE" not in repr(settings)
            async with open_http(
                settings, TransportStats(), default_audience=package("ti").default_audience,
                sleep=fake_time.sleep, clock=fake_time.clock, wall_clock=fake_time.wall,
            ) as http:  # fmt: skip
                for _ in range(3):
                    await http.request("GET", emu.ti_url + "AlertDefinitions")
                    fake_time.advance(3301)  # past the refresh point of a one-hour token
        assert emu.state()["tokens_issued"] == 6
        assert emu.state()["requests_by_status"].get("401", 0) == 0


def test_a_password_for_a_key_that_needs_none_is_ignored(app_cert: SelfSigned, tmp_path: Path) -> None:
    pem = pem_file(tmp_path / "app.pem", app_cert.pem())
    credential = load_certificate(pem, Secret("unused"), named="x", password_from="X", now=datetime.now(UTC))
    assert credential.path == str(pem)


def test_both_a_secret_and_a_certificate_in_the_settings_is_refused(
    app_cert: SelfSigned, tmp_path: Path
) -> None:
    pem = pem_file(tmp_path / "app.pem", app_cert.pem())
    credential = load_certificate(pem, None, named="x", password_from="X", now=datetime.now(UTC))
    with pytest.raises(ConfigError, match="keep one"):
        ConnectionSettings("https://login.example/t/oauth2/token", "https://api.example/", APP, Secret("s"),
                           client_cert=credential)  # fmt: skip


async def test_the_emulators_demo_certificate_from_its_banner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = start_emulator()
    try:
        assert emu.proc.stdout is not None
        pem = ""
        while not pem:
            line = emu.proc.stdout.readline()
            assert line, "the banner ended without the demo certificate's PEM file"
            if "demo cert PEM file:" in line:
                pem = line.split()[4]
        for name in ("TI_CLIENT_SECRET", "TI_CLIENT_CERT_PASSWORD"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("TI_CLIENT_ID", DEMO_CERT_CLIENT_ID)
        monkeypatch.setenv("TI_CLIENT_CERT", pem)
        monkeypatch.setenv("TI_AUTH_URL", emu.auth_url)
        monkeypatch.setenv("TI_API_URL", emu.ti_url)
        assert await run_cli("-q", str(write_list(tmp_path / "h.txt", 12))) == 0
        assert emu.state()["totals"]["iocs"] == 12
    finally:
        stop_process(emu.proc)
    assert emu.proc.returncode == 0 and not Path(pem).exists()


def test_a_certificate_near_its_end_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    soon = self_signed(APP, not_before=datetime.now(UTC) - timedelta(days=80), days=90)
    pem = pem_file(tmp_path / "app.pem", soon.pem())
    with caplog.at_level(logging.WARNING):
        load_certificate(pem, None, named="x", password_from="X", now=datetime.now(UTC))
    (warning,) = [r.getMessage() for r in caplog.records if "expires on" in r.getMessage()]
    assert str(pem) in warning and "in 9 days" in warning
