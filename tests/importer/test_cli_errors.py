"""What ``ti-import run`` says when it ends badly or has nothing to do: fatal lines in the log's
format, a retry with nothing retryable, and the exit codes in ``run --help``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from importer.cli import main
from importer.cli.logs import JsonFormatter
from importer.emulator import Emulator
from tests.helpers import run_cli, use_emulator, write_list

# The keys of a JSON log line; a fatal line has these and its exit code.
LOG_KEYS = set(json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "m"}))))


def json_lines(err: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines()]  # every line of stderr is JSON
    assert lines and all(set(line) == LOG_KEYS | {"exit_code"} for line in lines)
    return lines


async def test_a_fatal_settings_error_is_a_json_line(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    config = tmp_path / "feeds.toml"
    config.write_text("[[feed]]\nsource = 'x.txt'\nseverity = 'Severe'\n")
    assert await run_cli("-q", "--config", str(config), "--log-format", "json") == 2
    (line,) = json_lines(capsys.readouterr().err)
    assert line["level"] == "error" and line["exit_code"] == 2
    assert line["message"].startswith(f"{config}: [[feed]] #1: key 'severity'")


async def test_the_problems_of_a_run_are_json_lines(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    good = write_list(tmp_path / "good.txt", 5)
    assert await run_cli("-q", str(good), str(tmp_path / "missing.txt"), "--log-format", "json") == 2
    (line,) = json_lines(capsys.readouterr().err)
    assert line["exit_code"] == 2 and "missing.txt" in line["message"]


async def test_a_refused_lock_is_a_json_line_too(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    state = tmp_path / "state.sqlite"
    state.mkdir()
    feed = write_list(tmp_path / "h.txt", 5)
    assert await run_cli("-q", str(feed), "--state", str(state), "--log-format", "json") == 2
    (line,) = json_lines(capsys.readouterr().err)
    assert "is a folder" in line["message"]


async def test_text_logs_keep_text_fatal_lines(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    assert await run_cli("-q", str(tmp_path / "missing.txt")) == 2
    err = capsys.readouterr().err
    assert err.startswith("ti-import: missing.txt: ") and err.count("\n") == 1


async def test_a_retry_with_nothing_retryable_says_so_and_exits_0(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    rejects = tmp_path / "rejects.jsonl"
    rejects.write_text(json.dumps({"bucket": "rejected", "retryable": False, "value": "not one"}) + "\n")
    assert await run_cli("-q", "--retry-from", str(rejects)) == 0
    assert f"nothing to retry in {rejects}" in capsys.readouterr().err
    assert emulator.state()["totals"]["alert_definitions"] == 0


def test_run_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    table = help_text[help_text.index("exit codes:") :].splitlines()[1:]
    codes = [line.split()[0] for line in table if line[:5].strip().isdigit()]
    assert codes == ["0", "1", "2", "3", "130", "141"]
