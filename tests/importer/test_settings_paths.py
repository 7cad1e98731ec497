"""Where a feed is read from (a config file's relative ``source`` is the file's neighbour, as cron
needs), which formats take ``columns``, and type mistakes in words a person uses."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from importer.cli import main
from importer.emulator import DEMO_CLIENT, Emulator
from importer.errors import ConfigError
from importer.settings import CliOptions, load_run_settings
from tests.helpers import write_feed

ENV = {
    "TI_CLIENT_ID": "app-id",
    "TI_CLIENT_SECRET": "s3cret-value",
    "TI_AUTH_URL": "https://login.windows.net/contoso/oauth2/token",
}
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feeds.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def sources(cli: CliOptions) -> list[str]:
    return [feed.source for feed in load_run_settings(cli, ENV, now=NOW).feeds]


def test_a_relative_source_in_a_config_file_is_read_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc, home = tmp_path / "etc" / "ti-import", tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)  # cron starts in $HOME, not where the file is
    monkeypatch.setenv("HOME", str(home))
    path = config(
        etc,
        '[[feed]]\nsource = "feeds/a.txt"\n'
        '[[feed]]\nsource = "/var/lib/feeds/b.txt"\n'
        '[[feed]]\nsource = "-"\n'
        '[[feed]]\nsource = "https://example.org/c.csv"\n'
        '[[feed]]\nsource = "~/d.txt"\n',
    )
    assert sources(CliOptions(config=path)) == [
        str(etc / "feeds" / "a.txt"),
        "/var/lib/feeds/b.txt",
        "-",
        "https://example.org/c.csv",
        str(home / "d.txt"),
    ]
    # The definition's default name is still the file's name, wherever it is read from.
    (feed, *_) = load_run_settings(CliOptions(config=path), ENV, now=NOW).feeds
    assert feed.definition.name == "a.txt"
    # A config file named by a relative path: its folder is taken from where the run starts.
    first = sources(CliOptions(config=Path("../etc/ti-import/feeds.toml")))[0]
    assert Path(first).is_absolute() and Path(first).resolve() == (etc / "feeds" / "a.txt").resolve()


def test_a_relative_feed_argument_stays_relative_to_the_current_folder() -> None:
    assert sources(CliOptions(feeds=("feeds/a.txt", "-"))) == ["feeds/a.txt", "-"]


async def test_a_cron_style_run_finds_the_feed_beside_its_config_file(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    etc, home = tmp_path / "etc", tmp_path / "home"
    (etc / "feeds").mkdir(parents=True)
    write_feed(etc / "feeds" / "hashes.txt", range(25))
    path = config(etc, '[[feed]]\nsource = "feeds/hashes.txt"\n')
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("TI_CLIENT_ID", DEMO_CLIENT.client_id)
    monkeypatch.setenv("TI_CLIENT_SECRET", DEMO_CLIENT.client_secret)
    monkeypatch.setenv("TI_AUTH_URL", emulator.auth_url(1))
    monkeypatch.setenv("TI_API_URL", emulator.ti_url)
    code = await asyncio.to_thread(main, ["run", "--no-progress", "--no-state", "--config", str(path)])
    assert code == 0, capsys.readouterr().err
    assert emulator.state()["totals"]["iocs"] == 25


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[feed]]\nsource = "a.json"\nformat = "stix"\ncolumns = "1=sha256"\n',
            "[[feed]] #1: key 'columns' applies to CSV feeds only, and feed 'a.json' has format 'stix'",
        ),
        (
            '[[feed]]\nsource = "a.txt"\nname = "Hashes"\nformat = "list"\ncolumns = "1=sha256"\n',
            "key 'columns' applies to CSV feeds only, and feed 'Hashes' has format 'list'",
        ),
    ],
)
def test_columns_on_a_feed_of_another_format_is_a_config_error(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(CliOptions(config=config(tmp_path, text)), ENV, now=NOW)
    assert message in str(caught.value)


def test_columns_on_a_csv_or_detected_feed_is_accepted(tmp_path: Path) -> None:
    text = (
        '[[feed]]\nsource = "a.csv"\nformat = "csv"\ncolumns = "1=sha256"\n'
        '[[feed]]\nsource = "b"\ncolumns = "2=md5"\n'  # auto: the reader decides (another test)
    )
    assert len(load_run_settings(CliOptions(config=config(tmp_path, text)), ENV, now=NOW).feeds) == 2


async def test_columns_on_a_feed_detected_as_a_list_stops_that_feed_with_exit_2(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TI_CLIENT_ID", DEMO_CLIENT.client_id)
    monkeypatch.setenv("TI_CLIENT_SECRET", DEMO_CLIENT.client_secret)
    monkeypatch.setenv("TI_AUTH_URL", emulator.auth_url(1))
    monkeypatch.setenv("TI_API_URL", emulator.ti_url)
    feed = write_feed(tmp_path / "hashes.txt", range(10))
    argv = ["run", "--no-progress", "--no-state", "--quiet", str(feed), "--columns", "1=sha256"]
    assert await asyncio.to_thread(main, argv) == 2
    err = capsys.readouterr().err
    assert "is a list feed; --columns applies to CSV feeds only (give --format csv if it is CSV)." in err
    assert emulator.state()["totals"]["alert_definitions"] == 0  # refused before anything was sent
    flagged = ["run", "--no-progress", "--no-state", str(feed), "--format", "list", "--columns", "1=sha256"]
    assert await asyncio.to_thread(main, flagged) == 2
    assert (
        "the command line: key 'columns' applies to CSV feeds only, and feed 'hashes.txt' has format 'list'"
        in (capsys.readouterr().err)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[tuning]\nbatch_size = 'ten'\n[[feed]]\nsource = 'a'\n",
            "key 'batch_size' must be an integer, got 'ten'",
        ),
        ("[tuning]\nworkers = true\n[[feed]]\nsource = 'a'\n", "key 'workers' must be an integer, got True"),
        (
            "[tuning]\nrate = true\n[[feed]]\nsource = 'a'\n",
            "key 'rate' must be a string or a number, got True",
        ),
        ("[[feed]]\nsource = 'a'\nexpire_days = 1.5\n", "key 'expire_days' must be an integer, got 1.5"),
        ("[[feed]]\nsource = 'a'\ntitle = 3\n", "key 'title' must be a string, got 3"),
    ],
)
def test_type_mistakes_are_said_in_words(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(CliOptions(config=config(tmp_path, text)), ENV, now=NOW)
    assert message in str(caught.value)
    assert not re.search(r"\ba (int|str|float|bool)\b", str(caught.value))
