"""``cert_sha1`` end to end: an SSL-certificate blacklist imported on mde as CertificateThumbprint,
rejected on ti with the reason (issue 17)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from importer.cli import main
from importer.emulator import DEMO_CLIENT, Emulator
from tests.helpers import mde_held

SAMPLE = Path(__file__).resolve().parents[2] / "feeds" / "samples" / "sample_ssl_certificates.csv"


async def cli(*argv: str) -> int:
    # The command runs its own event loop; the emulator keeps serving from this one.
    return await asyncio.to_thread(main, ["run", "--no-progress", "--no-state", "-q", *argv])


def use(monkeypatch: pytest.MonkeyPatch, emu: Emulator, api_url: str) -> None:
    monkeypatch.setenv("TI_CLIENT_ID", DEMO_CLIENT.client_id)
    monkeypatch.setenv("TI_CLIENT_SECRET", DEMO_CLIENT.client_secret)
    monkeypatch.setenv("TI_AUTH_URL", emu.auth_url(2))
    monkeypatch.setenv("TI_API_URL", api_url)


async def mde_types(emu: Emulator) -> list[tuple[str, str]]:
    """(indicatorType, indicatorValue) of every indicator of the demo tenant, read through the API."""
    return sorted((e["indicatorType"], e["indicatorValue"]) for e in await mde_held(emu))


async def test_certificates_go_to_mde_as_thumbprints_and_are_rejected_by_ti(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    use(monkeypatch, emulator, emulator.ti_url)
    assert await cli(str(SAMPLE), "--rejects", str(rejects)) == 0  # rejected kinds are no failure
    assert emulator.state()["totals"]["iocs"] == 0
    reasons = [json.loads(line)["reason"] for line in rejects.read_text().splitlines()]
    assert reasons.count("the ti API has no certificate indicators; use --target mde or sentinel") == 4

    use(monkeypatch, emulator, emulator.mde_url)
    assert await cli("--target", "mde", str(SAMPLE), "--rejects", str(rejects)) == 0
    stored = await mde_types(emulator)
    assert len(stored) == 4 and {kind for kind, _ in stored} == {"CertificateThumbprint"}
    assert ("CertificateThumbprint", "3f786850e387550fdab836ed7e6dc881de23001b") in stored
