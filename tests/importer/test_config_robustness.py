"""Bad config files, flags and ``--retry-from`` files are refused in one sentence naming the file (and
the table and key), exit 2 — never a traceback, never silently ignored.

Found by fuzzing (issue 13, finding 8): a config file that is not UTF-8, TOML nested thousands
deep, ``expire_days = 3000000`` (a date overflow), a 5,000-digit number, NaN and infinite
timeouts, a wrong ``[tuning]`` or ``[target]`` value hidden by a flag or a variable, a rejects
file of random bytes, and ``parse`` given a URL.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from importer.cli import main
from importer.emulator import Emulator
from importer.errors import ConfigError
from importer.settings import CliOptions, load_run_settings
from tests.helpers import run_cli, use_emulator, write_list

ENV = {
    "TI_CLIENT_ID": "app-id",
    "TI_CLIENT_SECRET": "s3cret-value",
    "TI_AUTH_URL": "https://login.windows.net/contoso/oauth2/token",
}
FEED = "[[feed]]\nsource = 'feed.txt'\n"


def refusal(config: Path, env: dict[str, str] | None = None, **cli: object) -> str:
    with pytest.raises(ConfigError) as refused:
        load_run_settings(CliOptions(config=config, **cli), ENV if env is None else env)  # type: ignore[arg-type]
    return str(refused.value)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (random.Random(8).randbytes(300), "is not UTF-8 text"),
        (("[tuning]\nworkers = 4\n" + FEED).encode("utf-16"), "is not UTF-8 text"),
        (f"{FEED}x = {'[' * 5000}{']' * 5000}\n".encode(), "nests arrays or tables too deeply"),
        (f"{FEED}x = {'{a=' * 5000}{'}' * 5000}\n".encode(), "nests arrays or tables too deeply"),
        (f"[tuning]\nworkers = {'9' * 5000}\n{FEED}".encode(), "a number thousands of digits long"),
    ],
    ids=["random-bytes", "utf-16", "deep-arrays", "deep-inline-tables", "5000-digits"],
)
async def test_an_unreadable_config_file_is_one_sentence_naming_it(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    says: str,
) -> None:
    use_emulator(monkeypatch, emulator)
    config = tmp_path / "feeds.toml"
    config.write_bytes(content)
    assert await run_cli("-q", "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"ti-import: the config file {config} ") and says in err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            f"{FEED}expire_days = 3000000\n",
            "key 'expire_days' must be between 1 and 36,500 days, got 3,000,000",
        ),
        (f"[tuning]\nbatch_size = 0\n{FEED}", "[tuning]: key 'batch_size': the batch size must be between 1"),
        (f"[tuning]\nworkers = 999\n{FEED}", "[tuning]: key 'workers': the number of workers must be"),
        (f"[tuning]\nmode = 'fast'\n{FEED}", "[tuning]: key 'mode': the mode must be 'bulk' or 'single'"),
        (f"[tuning]\nrate = 'nan'\n{FEED}", "[tuning]: key 'rate': the rate must look like"),
        (f"[tuning]\nrate = '{'9' * 400}/s'\n{FEED}", "[tuning]: key 'rate': the rate must look like"),
        (f"[target]\nname = 'elsewhere'\n{FEED}", "[target]: key 'name': unknown target 'elsewhere'"),
        (
            f"[tuning]\nconnect_timeout = nan\n{FEED}",
            "key 'connect_timeout' must be a finite number, got nan",
        ),
        (f"[tuning]\ntotal_timeout = inf\n{FEED}", "key 'total_timeout' must be a finite number, got inf"),
        (
            f"[tuning]\ntotal_timeout = 0\n{FEED}",
            "key 'total_timeout' must be more than 0 and at most 86,400",
        ),
        (f"[tuning]\nconnect_timeout = {'9' * 400}\n{FEED}", "key 'connect_timeout' must be more than 0"),
        (f"[tuning]\nmax_retry_seconds = -inf\n{FEED}", "key 'max_retry_seconds' must be a finite number"),
        (f"[tuning]\nmax_attempts = 0\n{FEED}", "key 'max_attempts' must be from 1 to 1,000, got 0"),
        (f"{FEED}download_timeout = inf\n", "key 'download_timeout' must be a positive number of seconds"),
        (f"{FEED}download_timeout = {'9' * 400}\n", "key 'download_timeout' must be a positive number"),
        (f"{FEED}expire_refresh = nan\n", "key 'expire_refresh' must be between 0 and 1"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_file_table_and_key(
    tmp_path: Path, text: str, says: str
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(text)
    sentence = refusal(config)
    assert sentence.startswith(f"{config}: ") and says in sentence, sentence


@pytest.mark.parametrize(
    ("text", "cli", "env", "says"),
    [
        ("[target]\nname = 5\n", {"target": "ti"}, {}, "[target]: key 'name' must be a string, got 5"),
        ("[tuning]\nmode = 5\n", {"mode": "bulk"}, {}, "[tuning]: key 'mode' must be a string, got 5"),
        (
            "[tuning]\nrate = true\n",
            {"rate": "60/min"},
            {},
            "[tuning]: key 'rate' must be a string or a number",
        ),
        ("[tuning]\nworkers = 'x'\n", {"workers": 4}, {}, "[tuning]: key 'workers' must be an integer"),
        ("[auth]\nurl = 5\n", {}, {"TI_AUTH_URL": ENV["TI_AUTH_URL"]}, "[auth]: key 'url' must be a string"),
        (
            "[target]\napi_url = []\n",
            {},
            {"TI_API_URL": "https://x.example/"},
            "key 'api_url' must be a string",
        ),
    ],
)
def test_a_wrong_value_is_refused_even_when_a_flag_or_variable_overrides_it(
    tmp_path: Path, text: str, cli: dict[str, object], env: dict[str, str], says: str
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(text + FEED)
    assert says in refusal(config, {**ENV, **env}, **cli)


def test_flags_name_themselves_and_their_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "feed.txt", "--expire-days", "3000000"])
    assert "--expire-days: must be between 1 and 36,500 days, got 3,000,000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "feed.txt", "--download-timeout", "inf"])
    assert "--download-timeout: must be a positive number of seconds, got inf" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"^--batch-size: the batch size must be between 1 and"):
        load_run_settings(CliOptions(feeds=("feed.txt",), batch_size=6000), ENV)


@pytest.mark.parametrize(
    "content",
    [
        random.Random(3).randbytes(2000),
        b"[" * 100_000 + b"\n",
        b"1" * 5000 + b"\n",
        (
            json.dumps({"retryable": True, "definition": {"name": "A", "expire_days": 3_000_000}}) + "\n"
        ).encode(),
    ],
    ids=["random-bytes", "deep-json", "5000-digits", "expire-days-out-of-range"],
)
async def test_a_retry_file_that_is_not_a_rejects_file_is_one_sentence(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
) -> None:
    use_emulator(monkeypatch, emulator)
    retry = tmp_path / "rejects.jsonl"
    retry.write_bytes(content)
    assert await run_cli("-q", "--no-state", "--retry-from", str(retry)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(retry) in err


def test_parse_says_it_reads_local_files_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "https://feeds.example/list.txt"]) == 2
    err = capsys.readouterr().err
    assert "parse reads a local file or '-' (stdin) only" in err and "no such file" not in err


def test_parse_never_writes_its_rejects_over_the_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = write_list(tmp_path / "feed.txt", 10, bad_every=3)
    before = feed.read_bytes()
    assert main(["parse", str(feed), "--rejects", str(tmp_path / "." / "feed.txt")]) == 2
    assert "is the feed itself" in capsys.readouterr().err
    assert feed.read_bytes() == before
