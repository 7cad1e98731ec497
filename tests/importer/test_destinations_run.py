"""Several destinations in one run, over loopback against the emulator: two tenants (``mde`` for one,
``sentinel`` for the other, each with its own client app), three feeds served by a loopback HTTP
server that counts its GETs. Each feed is read once and lands in both; a wrong secret on one
destination leaves the other's import complete (exit 3); the metrics file says what the report says."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from importer.destinations.run import run_destinations
from importer.emulator import DEMO_CLIENT, DEMO_WORKSPACE, Emulator, EmulatorConfig, running_emulator
from importer.emulator.cert import self_signed
from importer.emulator.config import ClientApp, SentinelWorkspace
from importer.report.counts import BUCKETS
from importer.settings import CliOptions, StateOptions, load_destinations
from importer.state.host_lock import default_lock_dir, hold_tenant
from importer.state.store import tenant_key
from tests.helpers import RecordingServer, recording_server, run_cli, sha256

FABRIKAM = ClientApp("fabrikam-importer", "fabrikam-secret-for-tests", "fabrikam")
FABRIKAM_WORKSPACE = SentinelWorkspace(
    workspace_id="2f6c1e0a-8b7d-4c3e-9a1f-0d2e3c4b5a69",
    subscription_id="5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
    resource_group="fabrikam-rg",
    name="fabrikam-workspace",
    tenant="fabrikam",
)
TWO_TENANTS = EmulatorConfig(
    clients=(DEMO_CLIENT, FABRIKAM),
    sentinel_workspaces=(DEMO_WORKSPACE, FABRIKAM_WORKSPACE),
    mde_window_scale=0.01,
    sentinel_window_scale=0.01,
)
FEEDS = {"/one.txt": range(0, 120), "/two.txt": range(1000, 1090), "/three.txt": range(2000, 2150)}


@pytest.fixture
async def feeds() -> Any:
    """Three list feeds over loopback http; ``seen`` records every request."""

    async def serve(request: web.Request) -> web.StreamResponse:
        numbers = FEEDS.get(request.path)
        if numbers is None:
            return web.Response(status=404)
        return web.Response(text="".join(f"{sha256(n)}\n" for n in numbers))

    async with recording_server(serve) as server:
        yield server


def config(tmp_path: Path, emu: Emulator, server: RecordingServer) -> Path:
    feeds = "".join(
        f'[[feed]]\nsource = "{server.url(path)}"\nname = "Feed {path[1:-4]}"\ncategory = "Malware"\n\n'
        for path in FEEDS
    )  # category: the ti target's option, ignored by these two (said at -v)
    path = tmp_path / "destinations.toml"
    path.write_text(f"""
[target]
window_scale = 0.01

[tuning]
workers = 4

[[destination]]
name = "contoso-mde"
target = "mde"
api_url = "{emu.mde_url}"
auth_url = "{emu.auth_url(1, DEMO_CLIENT.tenant)}"
client_id_env = "CONTOSO_CLIENT_ID"
client_secret_env = "CONTOSO_CLIENT_SECRET"

[[destination]]
name = "fabrikam-sentinel"
target = "sentinel"
api_url = "{emu.sentinel_url}"
auth_url = "{emu.auth_url(1, FABRIKAM.tenant)}"
workspace_id = "{FABRIKAM_WORKSPACE.workspace_id}"
client_id_env = "FABRIKAM_CLIENT_ID"
client_secret_env = "FABRIKAM_CLIENT_SECRET"

{feeds}""")
    return path


def credentials(monkeypatch: pytest.MonkeyPatch, *, fabrikam_secret: str = FABRIKAM.client_secret) -> None:
    for variable in ("TI_CLIENT_ID", "TI_CLIENT_SECRET", "TI_AUTH_URL", "TI_API_URL", "TI_WORKSPACE_ID"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CONTOSO_CLIENT_ID", DEMO_CLIENT.client_id)
    monkeypatch.setenv("CONTOSO_CLIENT_SECRET", DEMO_CLIENT.client_secret)
    monkeypatch.setenv("FABRIKAM_CLIENT_ID", FABRIKAM.client_id)
    monkeypatch.setenv("FABRIKAM_CLIENT_SECRET", fabrikam_secret)


def cert_config(
    tmp_path: Path,
    emu: Emulator,
    server: RecordingServer,
    monkeypatch: pytest.MonkeyPatch,
    app: ClientApp,
    pem: bytes,
) -> Path:
    """``config`` with fabrikam's destination authenticating as ``app`` with the certificate and key
    ``pem`` (FABRIKAM_CLIENT_CERT, a file only its owner reads) instead of a secret."""
    path = tmp_path / "fabrikam.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    credentials(monkeypatch)
    monkeypatch.setenv("FABRIKAM_CLIENT_ID", app.client_id)
    monkeypatch.setenv("FABRIKAM_CLIENT_CERT", str(path))
    cfg = config(tmp_path, emu, server)
    cfg.write_text(cfg.read_text().replace('client_secret_env = "FABRIKAM_CLIENT_SECRET"',
                                           'client_cert_env = "FABRIKAM_CLIENT_CERT"'))  # fmt: skip
    return cfg


async def run(tmp_path: Path, cfg: Path, *argv: str) -> tuple[int, dict[str, Any], Path]:
    report, metrics = tmp_path / "report.json", tmp_path / "ti_import.prom"
    code = await run_cli("--config", str(cfg), "--state", str(tmp_path / "state.sqlite"), "--report",
                         str(report), "--metrics-file", str(metrics), "-q", *argv)  # fmt: skip
    return code, json.loads(report.read_text()), metrics


def gets(server: RecordingServer) -> dict[str, int]:
    counted: dict[str, int] = {}
    for seen in server.seen:
        if seen.method == "GET":
            counted[seen.path_qs] = counted.get(seen.path_qs, 0) + 1
    return counted


def tenant(emu: Emulator, name: str) -> dict[str, Any]:
    tenants: dict[str, Any] = emu.state()["tenants"]
    return tenants[name]


def section(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(part for part in report["destinations"] if part["name"] == name)


EVERY = sum(len(numbers) for numbers in FEEDS.values())


@pytest.mark.parametrize("emulator", [TWO_TENANTS], indirect=True)
async def test_each_feed_read_once_and_imported_into_both(
    tmp_path: Path, emulator: Emulator, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch)
    code, report, _ = await run(tmp_path, config(tmp_path, emulator, feeds))
    assert code == 0, report
    assert gets(feeds) == dict.fromkeys(FEEDS, 1)  # one download per feed, for both destinations
    assert [part["name"] for part in report["destinations"]] == ["contoso-mde", "fabrikam-sentinel"]
    for part in report["destinations"]:
        assert part["exit_code"] == 0 and part["error"] is None
        assert part["totals"]["imported"] == part["totals"]["records_read"] == EVERY
        assert len(part["feeds"]) == 3
    assert section(report, "contoso-mde")["target"] == "mde"
    assert section(report, "fabrikam-sentinel")["target"] == "sentinel"
    assert report["totals"]["imported"] == 2 * EVERY
    assert tenant(emulator, DEMO_CLIENT.tenant)["mde_indicators"] == EVERY
    assert tenant(emulator, FABRIKAM.tenant)["sentinel_indicators"] == EVERY
    assert tenant(emulator, DEMO_CLIENT.tenant)["sentinel_indicators"] == 0  # nothing in the demo workspace

    # The rerun finds everything in each journal scope: nothing sent, each feed read once more.
    code, report, _ = await run(tmp_path, config(tmp_path, emulator, feeds))
    assert code == 0
    assert gets(feeds) == dict.fromkeys(FEEDS, 2)
    for part in report["destinations"]:
        assert part["totals"]["already_present"] == EVERY and part["totals"]["imported"] == 0


@pytest.mark.parametrize("emulator", [TWO_TENANTS], indirect=True)
async def test_a_wrong_secret_on_one_destination_leaves_the_other_complete(
    tmp_path: Path, emulator: Emulator, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch, fabrikam_secret="not-the-secret")
    code, report, metrics = await run(tmp_path, config(tmp_path, emulator, feeds))
    assert code == 3 == report["exit_code"]
    assert gets(feeds) == dict.fromkeys(FEEDS, 1)
    good, bad = section(report, "contoso-mde"), section(report, "fabrikam-sentinel")
    assert good["exit_code"] == 0 and good["totals"]["imported"] == EVERY
    assert all(feed["imported"] == feed["records_read"] for feed in good["feeds"])
    assert bad["exit_code"] == 3 and "authentication failed" in bad["error"]
    assert "check FABRIKAM_CLIENT_SECRET" in bad["error"]  # the variable it reads, not TI_CLIENT_SECRET
    assert "not-the-secret" not in json.dumps(report) and "not-the-secret" not in metrics.read_text()
    assert tenant(emulator, DEMO_CLIENT.tenant)["mde_indicators"] == EVERY
    assert tenant(emulator, FABRIKAM.tenant)["sentinel_indicators"] == 0
    assert_metrics_match(metrics, report)


def assert_metrics_match(path: Path, report: dict[str, Any]) -> None:
    """Every number of the metrics file equals the JSON report's."""
    got: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            got[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert got[("ti_import_run_exit_code", ())] == report["exit_code"]
    for part in report["destinations"]:
        where = (("destination", part["name"]),)
        assert got[("ti_import_destination_exit_code", where)] == part["exit_code"]
        assert got[("ti_import_requests", where)] == part["transport"]["requests"]
        assert got[("ti_import_token_refreshes", where)] == part["transport"]["token_refreshes"]
        assert got[("ti_import_throttled_responses", where)] == part["transport"]["throttled"]
        for feed in part["feeds"]:
            labels = (*where, ("feed", feed["name"]))
            assert got[("ti_import_records_read", labels)] == feed["records_read"]
            for bucket in BUCKETS:
                assert got[("ti_import_indicators", (("bucket", bucket), *labels))] == feed[bucket]


@pytest.mark.parametrize("emulator", [TWO_TENANTS], indirect=True)
async def test_destination_flag_limits_the_run_and_the_report_stays_single(
    tmp_path: Path, emulator: Emulator, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch)
    cfg = config(tmp_path, emulator, feeds)
    code, report, metrics = await run(tmp_path, cfg, "--destination", "fabrikam-sentinel")
    assert code == 0
    assert "destinations" not in report and report["target"] == "sentinel"  # as a single-target run
    assert report["totals"]["imported"] == EVERY
    assert tenant(emulator, DEMO_CLIENT.tenant)["mde_indicators"] == 0
    assert 'destination="fabrikam-sentinel"' in metrics.read_text()


async def test_a_destination_with_a_certificate_beside_one_with_a_secret(
    tmp_path: Path, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = self_signed("fabrikam-cert-app")
    app = ClientApp("fabrikam-cert-app", "", FABRIKAM.tenant, certificate=cert.der)
    emulator_config = replace(TWO_TENANTS, clients=(DEMO_CLIENT, app))
    async with running_emulator(emulator_config) as emu:
        cfg = cert_config(tmp_path, emu, feeds, monkeypatch, app, cert.pem())
        code, report, _ = await run(tmp_path, cfg)
        assert code == 0, report["error"]
        assert tenant(emu, FABRIKAM.tenant)["sentinel_indicators"] == EVERY
        assert tenant(emu, DEMO_CLIENT.tenant)["mde_indicators"] == EVERY
        assert gets(feeds) == dict.fromkeys(FEEDS, 1)


async def test_a_certificate_destinations_advice_names_its_own_variable(
    tmp_path: Path, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered, other = self_signed("fabrikam-cert-app"), self_signed("not-the-registered-one")
    app = ClientApp("fabrikam-cert-app", "", FABRIKAM.tenant, certificate=registered.der)
    async with running_emulator(replace(TWO_TENANTS, clients=(DEMO_CLIENT, app))) as emu:
        cfg = cert_config(tmp_path, emu, feeds, monkeypatch, app, other.pem())
        code, report, _ = await run(tmp_path, cfg)
    assert code == 3
    bad, good = section(report, "fabrikam-sentinel"), section(report, "contoso-mde")
    assert "AADSTS700027" in bad["error"] and "or check FABRIKAM_CLIENT_CERT" in bad["error"]
    assert "TI_CLIENT_CERT" not in bad["error"] and good["totals"]["imported"] == EVERY


@pytest.mark.parametrize("emulator", [TWO_TENANTS], indirect=True)
async def test_a_destination_whose_tenant_another_run_holds_fails_alone(
    tmp_path: Path, emulator: Emulator, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch)
    cfg = config(tmp_path, emulator, feeds)
    held = next(d for d in load_destinations(CliOptions(config=cfg)) if d.name == "contoso-mde").settings
    key = tenant_key(held.connection.tenant_url, held.connection.client_id)
    with hold_tenant(default_lock_dir(), "mde", key):  # as another run on this host would
        code, report, _ = await run(tmp_path, cfg)
    assert code == 2
    busy, other = section(report, "contoso-mde"), section(report, "fabrikam-sentinel")
    assert (
        busy["exit_code"] == 2 and "another ti-import run is importing into this mde tenant" in busy["error"]
    )
    assert other["exit_code"] == 0 and other["totals"]["imported"] == EVERY
    assert gets(feeds) == dict.fromkeys(FEEDS, 1)


@pytest.mark.parametrize("emulator", [TWO_TENANTS], indirect=True)
async def test_what_a_run_of_several_refuses_before_reading(
    tmp_path: Path, emulator: Emulator, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch)
    cfg = config(tmp_path, emulator, feeds)
    folder = tmp_path / "rejects"
    folder.mkdir()
    code, report, metrics = await run(tmp_path, cfg, "--rejects", str(folder))  # a file, not a folder
    assert code == 2 == report["exit_code"] and "is a folder, not a regular file" in report["error"]
    assert "ti_import_run_exit_code 2.0" in metrics.read_text()
    # The same tenant twice under two names: every indicator would be posted twice.
    twice = cfg.read_text().replace(
        'name = "fabrikam-sentinel"\ntarget = "sentinel"', 'name = "contoso-again"\ntarget = "mde"'
    )
    twice = twice.replace(f'api_url = "{emulator.sentinel_url}"', f'api_url = "{emulator.mde_url}"')
    twice = twice.replace(f'workspace_id = "{FABRIKAM_WORKSPACE.workspace_id}"\n', "")
    for theirs, ours in (
        ("FABRIKAM_CLIENT_ID", "CONTOSO_CLIENT_ID"),
        ("FABRIKAM_CLIENT_SECRET", "CONTOSO_CLIENT_SECRET"),
    ):
        twice = twice.replace(theirs, ours)
    cfg.write_text(twice)
    code, report, _ = await run(tmp_path, cfg)
    assert code == 2 and "'contoso-mde' and 'contoso-again' are one mde tenant" in report["error"]
    assert gets(feeds) == {} and tenant(emulator, DEMO_CLIENT.tenant)["mde_indicators"] == 0


@pytest.mark.parametrize("emulator", [TWO_TENANTS], indirect=True)
async def test_a_stop_of_the_run_stops_every_destination(
    tmp_path: Path, emulator: Emulator, feeds: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials(monkeypatch)
    destinations = load_destinations(CliOptions(config=config(tmp_path, emulator, feeds)))
    stop = asyncio.Event()
    stop.set()  # as SIGTERM would, before anything was sent
    report = await run_destinations(
        destinations, state=StateOptions(path=tmp_path / "state.sqlite"), stop=stop
    )
    assert [part.stopped for part in report.destinations] == [True, True]
    assert report.totals()["imported"] == 0
    assert tenant(emulator, DEMO_CLIENT.tenant)["mde_indicators"] == 0
    assert tenant(emulator, FABRIKAM.tenant)["sentinel_indicators"] == 0
