"""STIX versioning across pulls: a newer version of an id naming another value replaces the old one.

Against the real TAXII server of the TAXII tests (OASIS medallion on loopback) and the emulator's
``ti`` API with a state journal, as nightly runs: the first run imports what an id's pattern names,
a later incremental run pulls a newer version of that id naming another value and takes the old
one off the target, a revocation takes off what the id produced — whatever its own pattern says —
and a value another id of the feed still produces stays. Then the journal's ``versions`` on their
own: a full pull forgets the ids it did not see, a version that cannot be read keeps what it had.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feeds.model import Kind
from feeds.options import FeedOptions
from importer.emulator import Emulator
from importer.report.counts import FeedReport
from importer.run import run_import
from importer.settings import OutputOptions, RunSettings, StateOptions, Tuning
from importer.settings.feeds import feed_of
from importer.sources.pull import PulledVersions
from importer.sources.taxii_read import Spool, read_spool
from importer.state.journal import Journal
from importer.state.schema import SCHEMA_VERSION
from importer.state.store import tenant_key
from importer.targets.registry import all_fields, package
from tests.helpers import (
    FakeTime,
    as_schema,
    checked_run,
    connection_settings,
    held_values,
    mde_held,
    schema_version,
    table_settings,
)
from tests.helpers.taxii import (
    PASSWORD,
    USER,
    TaxiiServer,
    at,
    serve_taxii,
    sha256_indicator,
    sha256_value,
)

A, B = sha256_value(1000), sha256_value(2000)  # the values a test's ids name
LATER = ("2026-01-02T00:00:00.000Z", "2026-01-03T00:00:00.000Z")


@pytest.fixture(scope="module")
def taxii() -> Iterator[TaxiiServer]:
    with serve_taxii(max_page_size=1000) as server:
        yield server


def naming(n: int, value: str, **extra: Any) -> dict[str, Any]:
    """Version of the synthetic indicator ``n`` whose pattern names the SHA-256 ``value``."""
    return sha256_indicator(n, pattern=f"[file:hashes.'SHA-256' = '{value}']", **extra)


async def run(emu: Emulator, state: Path, source: str, **table: Any) -> FeedReport:
    given = {"source": source, "format": "taxii", "name": "Collection", "page_size": 5, **table}
    given.update(username=USER, password_env="TAXII_PASSWORD")
    settings = table_settings(emu, given, {"TAXII_PASSWORD": PASSWORD}, workers=2)
    (feed_report,) = (await checked_run(settings, state)).feeds
    assert feed_report.error is None and feed_report.delete_failed == 0
    return feed_report


async def held(emu: Emulator) -> set[str]:
    """What the definition holds, listed through the API."""
    return await held_values(emu, "Collection")


def recorded(emu: Emulator, state: Path) -> set[tuple[str, str]]:
    """The journal's ``versions`` of the feed: (object id, value)."""
    with Journal.open(state, target="ti", tenant=tenant_key(emu.ti_url, "ti-importer-demo")) as journal:
        db = journal._db  # the test reads the table itself: no interface lists it whole
        rows = db.conn.execute("SELECT object_id, value FROM versions WHERE feed_name = 'Collection'")
        return {(object_id, value) for object_id, value in rows}


async def test_a_new_version_with_another_value_replaces_it_and_a_revocation_takes_it_off(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = tmp_path / "state.sqlite", taxii.new_collection()
    x = naming(0, A)
    taxii.add(source, [x, sha256_indicator(1)], at(1))
    first = await run(emulator, state, source)
    assert first.imported == 2 and await held(emulator) == {A, sha256_value(1)}
    assert recorded(emulator, state) == {(x["id"], A), (sha256_indicator(1)["id"], sha256_value(1))}

    # The producer corrected X's hash: the incremental run imports B and takes A off.
    taxii.asked.clear()
    taxii.add(source, [naming(0, B, modified=LATER[0])], at(2))
    second = await run(emulator, state, source)
    assert "added_after" in taxii.objects_requests(source)[0].query
    assert (second.records_read, second.imported, second.removed) == (1, 1, 1)
    assert await held(emulator) == {B, sha256_value(1)}
    assert (x["id"], A) not in recorded(emulator, state) and (x["id"], B) in recorded(emulator, state)

    # X revoked, in a version whose pattern still names A: what X produced (B) is taken off.
    taxii.add(source, [naming(0, A, modified=LATER[1], revoked=True)], at(3))
    third = await run(emulator, state, source)
    assert (third.expired, third.removed) == (1, 1)
    assert await held(emulator) == {sha256_value(1)}
    assert {object_id for object_id, _ in recorded(emulator, state)} == {sha256_indicator(1)["id"]}


async def test_a_value_another_id_still_lists_stays(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = tmp_path / "state.sqlite", taxii.new_collection()
    taxii.add(source, [naming(0, A), naming(1, A)], at(1))  # X and Y both name A
    first = await run(emulator, state, source)
    assert (first.imported, first.duplicate_in_feed) == (1, 1) and await held(emulator) == {A}

    # X now names B: A stays, Y (pulled in an earlier run) still lists it.
    taxii.add(source, [naming(0, B, modified=LATER[0])], at(2))
    second = await run(emulator, state, source)
    assert (second.imported, second.removed) == (1, 0) and await held(emulator) == {A, B}

    # Y revoked: nobody lists A any more, so it goes; B is X's and stays.
    taxii.add(source, [naming(1, A, modified=LATER[1], revoked=True)], at(3))
    third = await run(emulator, state, source)
    assert (third.expired, third.removed) == (1, 1) and await held(emulator) == {B}


async def test_a_revoked_id_keeps_a_value_an_id_of_an_earlier_run_lists(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = tmp_path / "state.sqlite", taxii.new_collection()
    taxii.add(source, [naming(0, A), naming(1, A), naming(2, B)], at(1))
    await run(emulator, state, source)
    # X revoked: its own pattern names A, but Y (not in this pull) still lists A.
    taxii.add(source, [naming(0, A, modified=LATER[0], revoked=True)], at(2))
    second = await run(emulator, state, source)
    assert (second.expired, second.removed) == (1, 0) and await held(emulator) == {A, B}


async def test_a_full_pull_with_mirror_deletes_the_old_value_once(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = tmp_path / "state.sqlite", taxii.new_collection()
    taxii.add(source, [naming(0, A), sha256_indicator(1), sha256_indicator(2)], at(1))
    await run(emulator, state, source, full=True, mirror=True)
    taxii.add(source, [naming(0, B, modified=LATER[0])], at(2))
    again = await run(emulator, state, source, full=True, mirror=True)
    # A is stale to mirror mode too (no object lists it): mirror deletes it, the source's retiring
    # then finds it gone from the journal — one delete, counted once.
    assert (again.imported, again.deleted, again.removed, again.delete_failed) == (1, 1, 0, 0)
    assert await held(emulator) == {B, sha256_value(1), sha256_value(2)}


def pulled(full: bool, **ids: tuple[str, ...] | None) -> PulledVersions:
    """A pull that read ``ids``: each with the values its version produced (None: unreadable)."""
    versions = PulledVersions(full=full)
    for object_id, values in ids.items():
        for value in values or ():
            versions.produced(object_id, Kind.SHA256, value)
        versions.read(object_id, replaced=values is not None)
    return versions


def test_the_record_of_versions_full_or_not(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "s.sqlite", target="ti", tenant="t") as journal:
        versions = journal.versions
        versions.keep("F", pulled(True, x=(A,), y=(A,), z=("c",)))
        # Incremental: X names B; Y (not pulled) still lists A, so nothing is retired.
        assert versions.retired("F", pulled(False, x=(B,))) == set()
        # Full: only X was seen, naming B: Y is gone from the collection, so A is retired too.
        assert versions.retired("F", pulled(True, x=(B,))) == {(Kind.SHA256, A)}
        # A version that cannot be read keeps what the id had; so does an id not pulled.
        assert versions.retired("F", pulled(True, x=None, y=(A,), z=("c",))) == set()
        versions.keep("F", pulled(True, x=None, z=("c",)))  # y unseen by a full pull: forgotten
        assert versions.retired("F", pulled(False, x=())) == {(Kind.SHA256, A)}  # x revoked
        # Another feed's record is its own.
        assert versions.retired("G", pulled(False, x=())) == set()


def test_a_schema_6_journal_gains_the_table(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"
    with Journal.open(state, target="ti", tenant="t"):
        pass
    as_schema(state, 6, "DROP TABLE versions")
    with Journal.open(state, target="ti", tenant="t") as journal:
        journal.versions.keep("F", pulled(False, x=(A,)))
        assert journal.versions.retired("F", pulled(False, x=(B,))) == {(Kind.SHA256, A)}
    assert schema_version(state) == SCHEMA_VERSION


async def mde_values(emu: Emulator) -> set[str]:
    """Every indicator value of the demo tenant on ``mde``, read through the API."""
    return {item["indicatorValue"] for item in await mde_held(emu)}


async def test_on_mde_a_value_another_feed_lists_stays(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, one, two = tmp_path / "state.sqlite", taxii.new_collection(), taxii.new_collection()
    taxii.add(one, [naming(0, A)], at(1))
    taxii.add(two, [naming(1, A), naming(2, B)], at(1))
    rows = {row.key: row for row in all_fields()}

    async def both() -> tuple[FeedReport, ...]:
        feeds = tuple(
            feed_of({"source": source, "format": "taxii", "name": name, "username": USER,
                     "password_env": "TAXII_PASSWORD"}, f"test.toml: [[feed]] #{n}", datetime.now(UTC),
                    package("mde"), rows, env={"TAXII_PASSWORD": PASSWORD})
            for n, (name, source) in enumerate((("One", one), ("Two", two)))
        )  # fmt: skip
        settings = RunSettings("mde", connection_settings(emulator, api="mde", version=2), feeds, Tuning())
        report = await run_import(
            settings, OutputOptions(progress=False), state=StateOptions(path=state), sleep=FakeTime().sleep
        )
        for feed in report.feeds:
            feed.check()
        return tuple(report.feeds)

    await both()
    assert await mde_values(emulator) == {A, B}
    # Feed One's X now names B: A stays on the tenant (feed Two lists it), whichever feed owned it.
    taxii.add(one, [naming(0, B, modified=LATER[0])], at(2))
    first, _ = await both()
    assert first.deleted == 0 and await mde_values(emulator) == {A, B}
    # Feed Two's Y revoked: nobody lists A any more (One's listing was forgotten, owned or not):
    # it goes, even when its owner (One) dropped it first and Two never took it over by sending it.
    taxii.add(two, [naming(1, A, modified=LATER[0], revoked=True)], at(2))
    _, second = await both()
    assert (second.expired, second.removed, second.deleted, second.kept_shared) == (1, 1, 1, 0)
    assert await mde_values(emulator) == {B}


def test_what_each_kept_version_tells_the_record() -> None:
    spool = Spool(io.StringIO())
    readable, revoked = naming(0, A), naming(1, B, revoked=True)
    unreadable = sha256_indicator(2, pattern="[email-addr:value = 'x@example.org']")
    for obj in (naming(0, B, modified="2025-12-01T00:00:00.000Z"), readable, revoked, unreadable):
        spool.add(obj)
    spool.out.seek(0)
    versions = PulledVersions(full=False)
    records = list(read_spool(spool.out, spool.newest, "c", FeedOptions(), set(), versions=versions))
    assert [type(r).__name__ for r in records] == ["Skipped", "Indicator", "Expired", "Rejected"]
    ids = [readable["id"], revoked["id"], unreadable["id"]]
    # The newest version of X names A (the older B is skipped); Y revoked names nothing; Z's
    # version cannot be read, so what Z produced before stays.
    assert versions.states(ids) == {ids[0]: True, ids[1]: True, ids[2]: False}
    assert versions.keys_of(ids) == {ids[0]: {(Kind.SHA256, A)}}
