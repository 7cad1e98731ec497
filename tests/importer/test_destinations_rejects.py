"""One rejects file for a run of several destinations, and ``--retry-from`` sending each line back
where it failed, over loopback against the emulator: a ``ti`` destination (which has no URL type)
and an ``mde`` one (which takes no IPv6 zone), each under a quota that fails part of a feed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig, running_emulator
from importer.emulator.config import ClientApp
from tests.helpers import run_cli, sha256

FABRIKAM = ClientApp("fabrikam-importer", "fabrikam-secret-for-tests", "fabrikam")
HASHES = [sha256(n) for n in range(6)]
URL, ZONE = "http://evil.example/payload", "fe80::1%eth0"
# ti holds at most 3 indicators: its one batch of the six hashes (and the zone) is refused whole
# (507, failed); mde holds at most 4: of its seven (the hashes and the URL), three fail.
QUOTAS = EmulatorConfig(clients=(DEMO_CLIENT, FABRIKAM), max_iocs=3, mde_tenant_cap=4, mde_window_scale=0.01)
ROOMY = EmulatorConfig(clients=(DEMO_CLIENT, FABRIKAM), mde_window_scale=0.01)


def config(tmp_path: Path, emu: Emulator, *, feed: Path | None) -> Path:
    feeds = "" if feed is None else f'[[feed]]\nsource = "{feed}"\nname = "Mixed"\n'
    path = tmp_path / "destinations.toml"
    path.write_text(f"""
[target]
window_scale = 0.01

[[destination]]
name = "contoso-ti"
target = "ti"
api_url = "{emu.ti_url}"
auth_url = "{emu.auth_url(1, DEMO_CLIENT.tenant)}"
client_id_env = "CONTOSO_CLIENT_ID"
client_secret_env = "CONTOSO_CLIENT_SECRET"

[[destination]]
name = "fabrikam-mde"
target = "mde"
api_url = "{emu.mde_url}"
auth_url = "{emu.auth_url(1, FABRIKAM.tenant)}"
client_id_env = "FABRIKAM_CLIENT_ID"
client_secret_env = "FABRIKAM_CLIENT_SECRET"

{feeds}""")
    return path


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("TI_CLIENT_ID", "TI_CLIENT_SECRET", "TI_AUTH_URL", "TI_API_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CONTOSO_CLIENT_ID", DEMO_CLIENT.client_id)
    monkeypatch.setenv("CONTOSO_CLIENT_SECRET", DEMO_CLIENT.client_secret)
    monkeypatch.setenv("FABRIKAM_CLIENT_ID", FABRIKAM.client_id)
    monkeypatch.setenv("FABRIKAM_CLIENT_SECRET", FABRIKAM.client_secret)


async def run(tmp_path: Path, cfg: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    report = tmp_path / "report.json"
    code = await run_cli("--config", str(cfg), "--state", str(tmp_path / "state.sqlite"), "--report",
                         str(report), "-q", *argv)  # fmt: skip
    return code, json.loads(report.read_text())


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def section(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(part for part in report["destinations"] if part["name"] == name)


def tenant(emu: Emulator, name: str) -> dict[str, Any]:
    tenants: dict[str, Any] = emu.state()["tenants"]
    return tenants[name]


async def first_run(tmp_path: Path) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """The run of both destinations under their quotas, with ``--rejects``: code, report, lines."""
    feed = tmp_path / "mixed.txt"
    feed.write_text("".join(f"{value}\n" for value in (*HASHES, URL, ZONE)))
    rejects = tmp_path / "rejects.jsonl"
    async with running_emulator(QUOTAS) as emu:
        code, report = await run(tmp_path, config(tmp_path, emu, feed=feed), "--rejects", str(rejects))
    return code, report, lines_of(rejects)


async def test_one_rejects_file_lists_each_record_under_the_destination_that_refused_it(
    tmp_path: Path,
) -> None:
    code, report, lines = await first_run(tmp_path)
    assert code == 1 == report["exit_code"], report["error"]  # failures for a rerun, nothing fatal
    by = {
        name: [line for line in lines if line["destination"] == name]
        for name in ("contoso-ti", "fabrikam-mde")
    }
    assert len(lines) == sum(len(each) for each in by.values())  # every line names one of the two
    rejected = {
        name: {line["value"] for line in each if line["bucket"] == "rejected"} for name, each in by.items()
    }
    assert URL in rejected["contoso-ti"] and URL not in rejected["fabrikam-mde"]
    assert ZONE in rejected["fabrikam-mde"]
    for name, each in by.items():
        part = section(report, name)
        failed = [line for line in each if line["bucket"] == "failed"]
        assert len(failed) == part["totals"]["failed"] > 0 and all(line["retryable"] for line in failed)
        assert len(each) == part["totals"]["rejected"] + part["totals"]["failed"]  # nothing left unsaid
    assert section(report, "fabrikam-mde")["totals"]["failed"] == 3
    assert not list(tmp_path.glob("rejects.jsonl.*"))  # no temporary file left beside it


async def test_retry_from_sends_each_line_only_to_the_destination_it_names(tmp_path: Path) -> None:
    _, _, lines = await first_run(tmp_path)
    failed = {name: {line["value"] for line in lines if line["destination"] == name and line["retryable"]}
              for name in ("contoso-ti", "fabrikam-mde")}  # fmt: skip
    assert failed["contoso-ti"] and failed["fabrikam-mde"] and failed["contoso-ti"] != failed["fabrikam-mde"]
    # A destination since removed from the config: its line is counted, sent nowhere.
    gone = {**next(line for line in lines if line["retryable"]), "destination": "gone-destination"}
    rejects = tmp_path / "rejects.jsonl"
    rejects.write_text(rejects.read_text() + json.dumps(gone) + "\n")
    async with running_emulator(ROOMY) as emu:  # room for everything now
        cfg = config(tmp_path, emu, feed=None)
        code, report = await run(tmp_path, cfg, "--retry-from", str(rejects))
        assert code == 0, report["error"]
        assert report["retry_not_sent"] == {"gone-destination": 1}
        assert section(report, "contoso-ti")["totals"]["imported"] == len(failed["contoso-ti"])
        assert section(report, "fabrikam-mde")["totals"]["imported"] == len(failed["fabrikam-mde"])
        assert tenant(emu, DEMO_CLIENT.tenant)["iocs"] == len(failed["contoso-ti"])
        assert tenant(emu, FABRIKAM.tenant)["mde_indicators"] == len(failed["fabrikam-mde"])
        assert tenant(emu, DEMO_CLIENT.tenant)["mde_indicators"] == tenant(emu, FABRIKAM.tenant)["iocs"] == 0


async def test_a_run_of_several_refuses_lines_that_name_no_destination(tmp_path: Path) -> None:
    _, _, lines = await first_run(tmp_path)
    rejects = tmp_path / "single.jsonl"  # as a run without [[destination]] tables writes them
    rejects.write_text("".join(json.dumps({k: v for k, v in line.items() if k != "destination"}) + "\n"
                               for line in lines))  # fmt: skip
    async with running_emulator(ROOMY) as emu:
        cfg = config(tmp_path, emu, feed=None)
        code, report = await run(tmp_path, cfg, "--retry-from", str(rejects))
        assert (
            code == 2 and "name no destination" in report["error"] and "--destination NAME" in report["error"]
        )
        assert tenant(emu, DEMO_CLIENT.tenant)["iocs"] == tenant(emu, FABRIKAM.tenant)["mde_indicators"] == 0
        # One destination picked: it takes every line that names none.
        code, report = await run(tmp_path, cfg, "--retry-from", str(rejects), "--destination", "fabrikam-mde")
        retryable = {line["value"] for line in lines if line["retryable"]}  # a value failed by both: once
        assert code == 0 and report["totals"]["imported"] == len(retryable)
