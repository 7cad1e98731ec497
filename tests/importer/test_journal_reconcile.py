"""The state journal repaired from a target's listing (reconcile), and the listing a killed run owes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from feeds.model import Kind
from importer.model import RemoteIndicator
from importer.state.journal import Journal, ReconcileResult
from importer.state.schema import SCHEMA_VERSION
from tests.helpers import as_schema, md5, schema_version
from tests.helpers import md5_items as items
from tests.helpers import md5_keys as keys

MD5 = Kind.MD5


# -- reconcile -------------------------------------------------------------------------------------


def remote(*pairs: tuple[int, str]) -> list[RemoteIndicator]:
    return [RemoteIndicator(MD5, md5(n), rid) for n, rid in pairs]


def test_replace_from_remote_repairs_drift(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        run = journal.begin_run()
        journal.record_imported("D", items(0, 5), run)  # r0..r4
        journal.record_imported("E", items(0, 5), run)  # another definition: untouched
        listing = remote((1, "r1"), (2, "moved"), (3, "r3"), (7, "r7"), (8, "r8"), (8, "r8-dup"))
        result = journal.replace_from_remote("D", listing)
        assert result == ReconcileResult(listed=6, added=2, removed=2, updated=1, duplicates=1)
        assert journal.present("D", keys(0, 10)) == set(keys(1, 4)) | set(keys(7, 9))
        assert sorted(rid for *_, rid in journal.stale("D", run + 1)) == ["moved", "r1", "r3", "r7", "r8"]
        assert journal.count("E") == 5
        # Reconciling again changes nothing.
        again = journal.replace_from_remote("D", listing)
        assert (again.added, again.removed, again.updated) == (0, 0, 0)
        assert journal.replace_from_remote("D", []).removed == 5  # the target holds nothing now


def test_interrupted_listing_changes_nothing(state: Path) -> None:
    def broken() -> Iterator[RemoteIndicator]:
        yield from remote(*[(n, f"x{n}") for n in range(1500)])
        raise ConnectionError("listing lost")

    with Journal.open(state, target="ti", tenant="t") as journal:
        journal.record_imported("D", items(5000, 5003), journal.begin_run())
        with pytest.raises(ConnectionError):
            journal.replace_from_remote("D", broken())
        assert journal.present("D", keys(0, 6000)) == set(keys(5000, 5003))
        # The leftover staging rows of the broken attempt do not leak into the next one.
        assert journal.replace_from_remote("D", remote((1, "a"))) == ReconcileResult(1, 1, 3, 0, 0)


async def test_areplace_from_remote_streams_an_async_listing(state: Path) -> None:
    async def listing() -> AsyncIterator[RemoteIndicator]:
        for n in range(2100):
            yield RemoteIndicator(Kind.IPV4, f"10.0.{n // 256}.{n % 256}", str(n))

    with Journal.open(state, target="ti", tenant="t") as journal:
        result = await journal.areplace_from_remote("D", listing())
        assert result == ReconcileResult(listed=2100, added=2100, removed=0, updated=0, duplicates=0)
        assert journal.count("D") == 2100
        assert journal.present("D", [(Kind.IPV4, "10.0.8.51")]) == {(Kind.IPV4, "10.0.8.51")}


# -- runs that never finished ----------------------------------------------------------------------


def test_a_killed_run_needs_listing_per_definition_until_each_is_listed(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        killed = journal.begin_run()
        journal.note_writing("A", killed)
        journal.note_writing("B", killed)
        journal.record_imported("A", items(0, 10), killed)
        assert not journal.needs_listing("A")  # this journal's own run is not "earlier"
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.unfinished_runs() == [killed]
        assert journal.needs_listing("A") and journal.needs_listing("B")
        assert not journal.needs_listing("C")  # never written to by the killed run
        run = journal.begin_run()
        journal.note_writing("A", run)
        journal.settle("A")
        assert not journal.needs_listing("A") and journal.needs_listing("B")
        journal.finish_run(run)
        assert journal.unfinished_runs() == [killed]  # still owes a listing of B
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.needs_listing("B") and not journal.needs_listing("A")
        journal.begin_run()
        journal.settle("B")
        assert not journal.needs_listing("B")
        assert journal.unfinished_runs() == []


def test_a_run_killed_before_writing_owes_nothing(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        journal.record_imported("A", items(0, 5), journal.begin_run())  # an earlier run, unfinished too
        journal.begin_run()
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert len(journal.unfinished_runs()) == 2
        assert not journal.needs_listing("A")  # neither noted a write to A
        journal.settle("A")
        assert journal.unfinished_runs() == []


# What schema 3 added: taken off again to make a file as an older version wrote it.
SCHEMA_3_COLUMNS = {
    "indicators": ("meta", "expires", "owned"),
    "log": ("meta", "expires", "owned"),
    "reconcile_stage": ("meta", "expires"),
}


def test_schema_1_upgrades_taking_unfinished_runs_to_have_written_everywhere(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        done = journal.begin_run()
        journal.record_imported("A", items(0, 5), done)
        journal.record_imported("B", items(5, 10), done)
        journal.finish_run(done)
        journal.begin_run()  # killed under schema 1, which did not note where runs wrote
    drops = (f"ALTER TABLE {table} DROP COLUMN {c}" for table, cs in SCHEMA_3_COLUMNS.items() for c in cs)
    as_schema(state, 1, "DROP TABLE run_scopes", *drops)
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.needs_listing("A") and journal.needs_listing("B")
        assert journal.count("A") == 5
    assert schema_version(state) == SCHEMA_VERSION
