"""TAXII 2.1 collections as feeds, pulled from a real TAXII server (OASIS medallion) on loopback.

Each test has its own collection on one medallion for the module, and imports into the emulator's
``ti`` API with a state journal, as a nightly job would: a first run pulls the collection in
pages, a second one asks only what was added after the cursor the first one kept, and a revoked
version removes what it names from the target.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feeds import FORMATS, FeedOptions, Indicator
from importer.emulator import Emulator
from importer.errors import ConfigError
from importer.report.counts import RunReport
from importer.run import run_import
from importer.settings import OutputOptions, RunSettings, StateOptions
from importer.state.journal import Journal
from importer.state.store import tenant_key
from tests.helpers import checked_run, held_values, run_cli, table_settings, use_emulator
from tests.helpers.taxii import (
    PASSWORD,
    USER,
    TaxiiServer,
    at,
    basic_header,
    serve_taxii,
    sha256_indicator,
    sha256_value,
    stix_indicators,
)

ENV = {"TAXII_PASSWORD": PASSWORD, "TAXII_TOKEN": basic_header()}


@pytest.fixture(scope="module")
def taxii() -> Iterator[TaxiiServer]:
    with serve_taxii(max_page_size=1000) as server:
        yield server


def settings(emu: Emulator, source: str, env: dict[str, str] | None = None, **table: Any) -> RunSettings:
    """One TAXII feed, "Collection", as a ``[[feed]]`` table says it (Basic auth unless ``headers``)."""
    given = {"source": source, "format": "taxii", "name": "Collection", "page_size": 7, **table}
    if "headers" not in given and "username" not in given:
        given.update(username=USER, password_env="TAXII_PASSWORD")
    return table_settings(emu, given, env or ENV)


async def run(emu: Emulator, state: Path, source: str, **table: Any) -> RunReport:
    return await checked_run(settings(emu, source, **table), state)


def expected(objects: list[dict[str, Any]]) -> set[str]:
    """What the STIX reader itself makes of ``objects``: the values a pull must import."""
    text = io.StringIO(json.dumps({"type": "bundle", "id": "bundle--x", "objects": objects}))
    return {r.value for r in FORMATS["stix"](text, "x", FeedOptions()) if isinstance(r, Indicator)}


def cursor(emu: Emulator, state: Path, source: str) -> str | None:
    with Journal.open(state, target="ti", tenant=tenant_key(emu.ti_url, "ti-importer-demo")) as journal:
        return journal.cursor("Collection", source)


async def test_pages_then_only_what_was_added_then_revocations(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = tmp_path / "state.sqlite", taxii.new_collection()
    real = stix_indicators()
    synthetic = [sha256_indicator(n) for n in range(10)]
    taxii.add(source, real, at(1))
    taxii.add(source, synthetic, at(2))
    first = await run(emulator, state, source)
    wanted = expected(real) | {sha256_value(n) for n in range(10)}
    assert first.exit_code() in (0, 1) and first.feeds[0].error is None
    assert first.feeds[0].imported == len(wanted) and await held_values(emulator, "Collection") == wanted
    pages = taxii.objects_requests(source)
    total = len(real) + len(synthetic)
    assert len(pages) == -(-total // 7)  # limit 7: every page asked, none twice
    assert all(p.query["limit"] == "7" and p.query["match[type]"] == "indicator" for p in pages)
    assert "added_after" not in pages[0].query and all("next" in p.query for p in pages[1:])
    assert cursor(emulator, state, source) == "2026-01-02T00:00:00.000000Z"

    # Nothing added: one request, asking after the cursor; nothing read, nothing sent.
    taxii.asked.clear()
    second = await run(emulator, state, source)
    (asked,) = taxii.objects_requests(source)
    assert asked.query["added_after"] == "2026-01-02T00:00:00.000000Z"
    assert second.feeds[0].records_read == 0 and second.exit_code() == 0

    # Three added, one revoked by a newer version, one expired: 3 imported, 2 removed.
    taxii.asked.clear()
    later = "2026-01-03T00:00:00.000Z"
    taxii.add(source, [sha256_indicator(n) for n in (100, 101, 102)], at(3))
    taxii.add(source, [sha256_indicator(0, modified=later, revoked=True)], at(3, 1))
    taxii.add(source, [sha256_indicator(1, modified=later, valid_until="2026-01-03T00:00:00Z")], at(3, 2))
    third = await run(emulator, state, source)
    feed = third.feeds[0]
    assert (feed.imported, feed.expired, feed.removed, feed.delete_failed) == (3, 2, 2, 0)
    assert await held_values(emulator, "Collection") == (wanted - {sha256_value(0), sha256_value(1)}) | {
        sha256_value(n) for n in (100, 101, 102)
    }
    assert len(taxii.objects_requests(source)) == 1
    assert cursor(emulator, state, source) == "2026-01-03T02:00:00.000000Z"
    assert third.as_dict()["feeds"][0]["removed"] == 2


async def test_within_one_pull_the_newest_version_wins(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    source = taxii.new_collection()
    later = "2026-01-05T00:00:00.000Z"
    taxii.add(source, [sha256_indicator(n) for n in range(3)], at(1))
    # Two newer versions: one revoked, one with a new description. --full reads every version.
    taxii.add(source, [sha256_indicator(0, modified=later, revoked=True)], at(2))
    taxii.add(source, [sha256_indicator(1, modified=later, description="second version")], at(2))
    report = await run(emulator, tmp_path / "s.sqlite", source, full=True)
    feed = report.feeds[0]
    # medallion answers the last version of each object (match[version] defaults to "last").
    assert (feed.imported, feed.expired) == (2, 1)
    assert await held_values(emulator, "Collection") == {sha256_value(1), sha256_value(2)}


async def test_full_reads_the_whole_collection_again(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = tmp_path / "state.sqlite", taxii.new_collection()
    taxii.add(source, [sha256_indicator(n) for n in range(5)], at(1))
    await run(emulator, state, source)
    taxii.asked.clear()
    again = await run(emulator, state, source, full=True)
    assert "added_after" not in taxii.objects_requests(source)[0].query
    assert again.feeds[0].already_present == 5


async def test_a_failed_pull_keeps_the_old_cursor(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = tmp_path / "state.sqlite", taxii.new_collection()
    taxii.add(source, [sha256_indicator(n) for n in range(20)], at(1))
    taxii.asked.clear()
    taxii.failures[2] = 400  # the second page: a permanent failure
    failed = await run(emulator, state, source)
    assert failed.exit_code() == 2 and "HTTP 400" in (failed.feeds[0].error or "")
    assert cursor(emulator, state, source) is None
    taxii.asked.clear()
    taxii.failures[2] = 503  # retried (on fake time), then the pull completes
    report = await run(emulator, state, source)
    assert report.feeds[0].imported == 20 and report.exit_code() == 0
    assert len(taxii.objects_requests(source)) == 4  # 3 pages + the retry
    assert cursor(emulator, state, source) == "2026-01-01T00:00:00.000000Z"


async def test_header_auth_and_wrong_password(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = taxii.new_collection()
    taxii.add(source, [sha256_indicator(n) for n in range(3)], at(1))
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": "env:TAXII_TOKEN"}
    ok = await run(emulator, tmp_path / "a.sqlite", source, headers=headers)
    assert ok.feeds[0].imported == 3
    wrong = "not-the-password-0xdeadbeef"
    refused = await run_import(
        settings(emulator, source, env={"TAXII_PASSWORD": wrong}), OutputOptions(progress=False),
        state=StateOptions(path=tmp_path / "b.sqlite"),
    )  # fmt: skip
    assert refused.exit_code() == 2 and "HTTP 401" in (refused.feeds[0].error or "")
    shown = (
        json.dumps(refused.as_dict())
        + caplog.text
        + repr(settings(emulator, source, env={"TAXII_PASSWORD": wrong}))
    )
    assert wrong not in shown and PASSWORD not in shown and basic_header() not in shown


def test_mirror_needs_a_full_pull_and_secrets_come_from_the_environment(emulator: Emulator) -> None:
    with pytest.raises(ConfigError, match="TAXII_PASSWORD, which is not set"):
        settings(emulator, "https://taxii.example/api1/collections/x/", env={"OTHER": "1"})
    with pytest.raises(ConfigError, match="env:VARIABLE"):
        settings(emulator, "https://taxii.example/api1/collections/x/", headers={"Authorization": "Bearer x"})
    with pytest.raises(ConfigError, match="collection URL"):
        settings(emulator, "/tmp/collection.json")


async def test_mirror_with_an_incremental_pull_is_refused(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    source = taxii.new_collection()
    with pytest.raises(ConfigError, match="mirror mode needs the whole TAXII collection"):
        await run(emulator, tmp_path / "s.sqlite", source, mirror=True)
    taxii.add(source, [sha256_indicator(n) for n in range(4)], at(1))
    report = await run(emulator, tmp_path / "s.sqlite", source, mirror=True, full=True)
    assert report.feeds[0].imported == 4 and report.feeds[0].mirror


async def test_from_the_command_line(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = taxii.new_collection()
    taxii.add(source, [sha256_indicator(n) for n in range(5)], at(1))
    use_emulator(monkeypatch, emulator)
    monkeypatch.setenv("TAXII_PASSWORD", PASSWORD)
    flags = ("--format", "taxii", "--username", USER, "--password-env", "TAXII_PASSWORD", "--page-size", "2")
    state = str(tmp_path / "s.sqlite")
    assert await run_cli("-q", "--state", state, *flags, source) == 0
    taxii.asked.clear()
    assert await run_cli("-q", "--state", state, *flags, "--full", source) == 0
    pages = taxii.objects_requests(source)
    assert len(pages) == 3 and "added_after" not in pages[0].query


async def test_a_page_is_read_whole_however_large(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    source = taxii.new_collection()
    taxii.add(source, [sha256_indicator(n) for n in range(400)], at(1))  # one page of ~150 kB
    report = await run(emulator, tmp_path / "s.sqlite", source, page_size=1000)
    assert report.feeds[0].imported == 400 and len(taxii.objects_requests(source)) == 1
