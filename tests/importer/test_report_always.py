"""With ``--report``, the report is written however the run ends — bad settings, a failure while
opening, authentication — and says when, which version, where, and why, with the exit code the
process ends with; yesterday's report never stands in for today's."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from importer import __version__
from importer.emulator import DEMO_CLIENT, Emulator
from importer.errors import ConfigError
from importer.run import failure, run_import
from importer.settings import OutputOptions
from importer.state.store import tenant_key
from tests.helpers import FakeTime, journaled_settings, run_cli, use_emulator, write_list

YESTERDAY = {"exit_code": 0, "totals": {"imported": 5000}}


def stale_report(tmp_path: Path) -> Path:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(YESTERDAY))
    return report


def read_report(path: Path, secret: str = DEMO_CLIENT.client_secret) -> dict[str, Any]:
    text = path.read_text()
    assert secret not in text
    data: dict[str, Any] = json.loads(text)
    assert data["version"] == __version__
    started, finished = (datetime.fromisoformat(data[key]) for key in ("started_at", "finished_at"))
    assert started.utcoffset() is not None and started.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert started <= finished
    return data


def fatal_line(err: str) -> str:
    (line,) = err.splitlines()
    assert line.startswith("ti-import: ")
    return line.removeprefix("ti-import: ")


async def test_bad_settings_replace_yesterdays_report(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    config = tmp_path / "feeds.toml"
    config.write_text("[[feed]]\nsource = 'x.txt'\nseverity = 'Severe'\n")
    report = stale_report(tmp_path)
    assert await run_cli("-q", "--config", str(config), "--report", str(report)) == 2
    data = read_report(report)
    assert data["exit_code"] == 2 and data["error"] == fatal_line(capsys.readouterr().err)
    assert data["target"] is None and data["tenant_key"] is None  # the settings never named them
    assert data["totals"]["imported"] == 0


async def test_a_failure_while_opening_writes_the_report(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "h.txt", 10)
    report = stale_report(tmp_path)
    (tmp_path / "journal").mkdir()
    assert await run_cli("-q", str(feed), "--state", str(tmp_path / "journal"), "--report", str(report)) == 2
    data = read_report(report)
    assert data["exit_code"] == 2 and data["error"] == fatal_line(capsys.readouterr().err)
    assert "is a folder" in data["error"]
    assert data["target"] == "ti"
    assert data["tenant_key"] == tenant_key(emulator.ti_url, DEMO_CLIENT.client_id)
    assert emulator.state()["totals"]["iocs"] == 0


async def test_authentication_failure_says_why_and_never_the_secret(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_emulator(monkeypatch, emulator, secret="wrong-secret-value")
    report = stale_report(tmp_path)
    assert await run_cli("-q", str(write_list(tmp_path / "h.txt", 10)), "--report", str(report)) == 3
    data = read_report(report, secret="wrong-secret-value")
    assert data["exit_code"] == 3 and data["error"].startswith("authentication failed")


async def test_a_finished_run_stamps_its_report(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_emulator(monkeypatch, emulator)
    report = stale_report(tmp_path)
    assert await run_cli("-q", str(write_list(tmp_path / "h.txt", 10)), "--report", str(report)) == 0
    data = read_report(report)
    assert data["exit_code"] == 0 and data["error"] is None and data["totals"]["imported"] == 10
    assert data["target"] == "ti" and data["tenant_key"] == tenant_key(emulator.ti_url, DEMO_CLIENT.client_id)


async def test_run_import_writes_the_report_before_it_raises(emulator: Emulator, tmp_path: Path) -> None:
    fake = FakeTime(epoch=1_750_000_000.0)
    report = stale_report(tmp_path)
    settings = journaled_settings(emulator, write_list(tmp_path / "h.txt", 10), mirror=True)
    with pytest.raises(ConfigError, match="mirror mode needs the state journal"):
        # No journal given: mirror mode cannot tell what the feed dropped.
        await run_import(settings, OutputOptions(progress=False, report=report), wall=fake.wall)
    data = read_report(report)
    assert data["exit_code"] == 2 and data["error"].startswith("mirror mode needs the state journal")
    assert data["started_at"] == "2025-06-15T15:06:40.000+00:00"


def test_an_unknown_error_is_named_by_its_type_only() -> None:
    code, sentence = failure(RuntimeError("token=abc123 leaked into a message"))
    assert code == 1 and "RuntimeError" in sentence and "abc123" not in sentence
    assert failure(ConfigError("the config file x.toml does not exist")) == (
        2,
        "the config file x.toml does not exist",
    )
    assert failure(KeyboardInterrupt())[0] == failure(asyncio.CancelledError())[0] == 130
