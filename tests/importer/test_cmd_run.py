"""``ti-import run`` end to end against the emulator: every exit code, report and rejects files, retry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importer.cli import main
from importer.emulator import Emulator, EmulatorConfig, running_emulator
from tests.helpers import run_cli, use_emulator, write_list


async def test_exit_0_with_report_rejects_and_summary(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "hashes.txt", 100, bad_every=50)
    report, rejects = tmp_path / "report.json", tmp_path / "rejects.jsonl"
    code = await run_cli(
        str(feed),
        "--name",
        "Hashes",
        "--severity",
        "High",
        "--report",
        str(report),
        "--rejects",
        str(rejects),
    )
    assert code == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[1].split()[:2] == ["Hashes", "100"]
    assert out.err == ""  # quiet by default
    data = json.loads(report.read_text())
    assert data["exit_code"] == 0 and data["totals"]["imported"] == 100 and data["totals"]["rejected"] == 4
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(lines) == 4 and not any(line["retryable"] for line in lines)
    (definition,) = emulator.state()["tenants"]["contoso-demo"]["alert_definitions"]
    assert definition["name"] == "Hashes" and definition["ioc_count"] == 100

    assert await run_cli(str(feed), "--name", "Hashes", "--severity", "High", "--quiet") == 0  # rerun
    assert capsys.readouterr().out == ""
    assert emulator.state()["totals"]["iocs"] == 100


async def test_exit_1_on_quota_then_retry_from_the_rejects_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = write_list(tmp_path / "hashes.txt", 120)
    rejects = tmp_path / "rejects.jsonl"
    async with running_emulator(EmulatorConfig(max_iocs=50)) as small:
        use_emulator(monkeypatch, small)
        code = await run_cli(
            str(feed), "--batch-size", "10", "--workers", "1", "--rejects", str(rejects), "-q"
        )
        assert code == 1
        assert small.state()["totals"]["iocs"] == 50
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(lines) == 70 and all(line["retryable"] and line["bucket"] == "failed" for line in lines)
    # The failed ones, and only they, can be sent again (here: to a tenant with room).
    async with running_emulator() as roomy:
        use_emulator(monkeypatch, roomy)
        assert await run_cli("--retry-from", str(rejects), "-q") == 0
        (definition,) = roomy.state()["tenants"]["contoso-demo"]["alert_definitions"]
        assert definition["name"] == "hashes.txt" and definition["ioc_count"] == 70


async def test_exit_2_for_bad_config_and_unreadable_feed(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    config = tmp_path / "feeds.toml"
    config.write_text("[[feed]]\nsource = 'x.txt'\nseverity = 'Severe'\n")
    assert await run_cli("--config", str(config)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ti-import: {config}: [[feed]] #1: key 'severity'") and err.count("\n") == 1

    assert await run_cli(str(tmp_path / "missing.txt"), "-q") == 2
    err = capsys.readouterr().err
    assert "missing.txt" in err and "Traceback" not in err
    assert emulator.state()["totals"]["alert_definitions"] == 0

    with pytest.raises(SystemExit) as caught:  # there is no way to give a secret on the command line
        main(["run", "x.txt", "--client-secret", "s"])
    assert caught.value.code == 2


async def test_exit_3_for_a_wrong_secret_which_is_never_printed(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator, secret="wrong-secret-value")
    report = tmp_path / "report.json"
    assert await run_cli(str(write_list(tmp_path / "h.txt", 10)), "--report", str(report)) == 3
    captured = capsys.readouterr()
    assert "authentication failed" in captured.err and "Traceback" not in captured.err
    assert "wrong-secret-value" not in captured.out + captured.err + report.read_text()
    assert json.loads(report.read_text())["exit_code"] == 3
    assert emulator.state()["totals"]["iocs"] == 0


async def test_dry_run_writes_nothing(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    assert await run_cli(str(write_list(tmp_path / "h.txt", 30)), "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[0].split()[1:3] == ["would", "import"]
    assert emulator.state()["totals"]["alert_definitions"] == 0


class _ClosedPipe:
    """A stdout whose reader has gone (``| head`` after its lines): every write is EPIPE."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


async def test_a_closed_stdout_ends_quietly_with_141_after_the_import(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "hashes.txt", 20)
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert await run_cli(str(feed), "--no-state") == 141  # what a shell reports for SIGPIPE
    assert capsys.readouterr().err == ""  # no traceback
    assert emulator.state()["totals"]["iocs"] == 20  # the import itself was done
