"""The per-feed options table: each row is a flag, a config key, a rejects key and a report key, and
a new row needs nothing else (the recipe of ARCHITECTURE.md, tried end to end)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from importer.checks import one_of
from importer.cli import build_parser, main
from importer.emulator import DEMO_CLIENT, Emulator
from importer.fields import COMMON, MIRROR, definition_from_json, definition_to_json
from importer.model import Field
from importer.settings import CliOptions, load_run_settings
from importer.targets import registry
from importer.targets.registry import TARGETS, all_fields

ENV = {"TI_CLIENT_ID": "app", "TI_CLIENT_SECRET": "s", "TI_AUTH_URL": "https://login.example/t/oauth2/token"}
# An option no target has yet, added as a new row of the ti target only.
TLP: Field[str] = Field("tlp", "ti: the feed's TLP marking", one_of(("clear", "green", "amber")), "clear",
                        target="ti")  # fmt: skip


def run_parser() -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = subparsers.choices["run"]
    return parser


@pytest.fixture
def with_tlp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ti target's entry with one more row: the only change the recipe asks for."""
    ti = TARGETS["ti"]
    monkeypatch.setitem(registry.TARGETS, "ti", dataclasses.replace(ti, fields=(*ti.fields, TLP)))  # type: ignore[index]


def test_every_row_is_a_flag_unless_config_only_and_every_key_is_known() -> None:
    flags = {option for action in run_parser()._actions for option in action.option_strings}
    rows = all_fields()
    assert len({row.key for row in rows}) == len(rows)  # one name per option
    for row in rows:
        if row is MIRROR:
            continue  # config only per feed; --mirror is the run-wide flag (every feed)
        assert (row.flag in flags) is row.cli, row.key
    config_only = [row.key for row in rows if not row.cli]
    assert sorted(config_only) == ["enabled", "generate_alert", "headers", "mirror"]


def test_a_definition_round_trips_through_the_rejects_json() -> None:
    (feed,) = load_run_settings(
        CliOptions(feeds=("a.csv",), target="mde", feed_options={"action": "Block", "rbac_groups": ["SOC"]}),
        ENV,
    ).feeds
    rows = COMMON + TARGETS["mde"].fields
    text = json.dumps(definition_to_json(feed.definition))
    assert definition_from_json(json.loads(text), rows) == feed.definition


@pytest.mark.usefixtures("with_tlp")
def test_a_new_row_is_a_flag_a_config_key_and_reaches_the_definition(tmp_path: Path) -> None:
    args = run_parser().parse_args(["a.csv", "--tlp", "amber"])
    assert args.feed_option_tlp == "amber"
    (flagged,) = load_run_settings(CliOptions(feeds=("a.csv",), feed_options={"tlp": "amber"}), ENV).feeds
    assert flagged.definition[TLP] == "amber"
    config = tmp_path / "feeds.toml"
    config.write_text('[[feed]]\nsource = "a.csv"\ntlp = "green"\n[[feed]]\nsource = "b.csv"\n')
    configured, defaulted = load_run_settings(CliOptions(config=config), ENV).feeds
    assert (configured.definition[TLP], defaulted.definition[TLP]) == ("green", "clear")
    config.write_text('[[feed]]\nsource = "a.csv"\ntlp = "red"\n')
    with pytest.raises(Exception, match=r"#1: key 'tlp' must be one of clear, green, amber, got 'red'"):
        load_run_settings(CliOptions(config=config), ENV)
    with pytest.raises(Exception, match=r"key 'tlp' applies to the ti target only"):
        load_run_settings(CliOptions(feeds=("a.csv",), target="mde", feed_options={"tlp": "amber"}), ENV)


@pytest.mark.usefixtures("with_tlp")
async def test_a_new_row_reaches_the_json_report_end_to_end(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "TI_CLIENT_ID": DEMO_CLIENT.client_id,
        "TI_CLIENT_SECRET": DEMO_CLIENT.client_secret,
        "TI_AUTH_URL": emulator.auth_url(1),
        "TI_API_URL": emulator.ti_url,
    }.items():
        monkeypatch.setenv(name, value)
    feed = tmp_path / "hashes.txt"
    feed.write_text(f"{1:064x}\n{2:064x}\nnot a hash\n")
    report = tmp_path / "report.json"
    argv = ["run", "--no-progress", "-q", "--no-state", str(feed), "--tlp", "amber", "--report", str(report)]
    assert await asyncio.to_thread(main, argv) == 0
    (feed_report,) = json.loads(report.read_text())["feeds"]
    definition: dict[str, Any] = feed_report["definition"]
    assert definition["tlp"] == "amber" and definition["name"] == "hashes.txt"
    assert feed_report["imported"] == 2 and feed_report["rejected"] == 1
