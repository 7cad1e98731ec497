"""What keeps the journal's cost flat in a feed's size, and the answers exact all the same.

A definition created in this run: its keys skip the in-memory index of the write log
(``Journal.created``), so they cost no memory and force no merge every ``merge_every`` keys;
``JournalPresent`` answers "holds nothing" for it without a look-up, except where values are unique
per tenant (``mde``: another definition may own a key). And no index by remote id (schema 4):
deletes go by key (``forget_keys``); ``forget`` by remote id still works, by reading the definition.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from feeds.model import Kind
from importer.model import ResolvedDefinition, Stamp
from importer.state.journal import Journal
from importer.state.schema import SCHEMA_VERSION
from importer.state.store import JournalPresent
from importer.targets.base import Target
from tests.helpers import as_schema, md5, schema_version, spec_for
from tests.helpers import md5_keys as keys

NO_TARGET = cast(Target, None)  # load() of a created definition lists nothing


def stamped(start: int, stop: int) -> list[tuple[Kind, str, str, Stamp | None]]:
    return [(Kind.MD5, md5(n), f"r{n}", Stamp(n, None)) for n in range(start, stop)]


def log_rows(state: Path) -> int:
    conn = sqlite3.connect(state)
    try:
        return int(conn.execute("SELECT count(*) FROM log").fetchone()[0])
    finally:
        conn.close()


def definition(definition_id: str, outcome: str) -> ResolvedDefinition:
    return ResolvedDefinition(
        definition_id, spec_for(f"feed {definition_id}", title="t", description="d"), outcome
    )


def test_a_created_definitions_keys_stay_in_the_log_and_are_found_exactly(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t", merge_every=10) as journal:
        run = journal.begin_run()
        journal.created("new")
        for start in range(0, 50, 10):
            journal.record([("new", stamped(start, start + 10))], run)
        # Five batches of merge_every keys, yet no merge: nothing reads them during the run.
        assert log_rows(state) == 50
        held = journal.held("new", keys(0, 60))  # asked all the same: the log is merged first
        assert log_rows(state) == 0
        assert sorted(held) == keys(0, 50)
        assert held[Kind.MD5, md5(7)].remote_id == "r7"
        assert held[Kind.MD5, md5(7)].stamp == Stamp(7, None)
        journal.record([("new", stamped(50, 55))], run)
        assert set(journal.held("new", keys(50, 56))) == set(keys(50, 55))
        journal.finish_run(run)
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.count("new") == 55


def test_other_definitions_still_merge_every_so_many_keys(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t", merge_every=10) as journal:
        run = journal.begin_run()
        journal.created("new")
        journal.record([("new", stamped(0, 5)), ("old", stamped(100, 110))], run)
        assert log_rows(state) == 0  # ten keys of "old" kept in memory: merged, "new"'s with them
        assert journal.present("new", keys(0, 5)) == set(keys(0, 5))
        assert journal.present("old", keys(100, 110)) == set(keys(100, 110))


async def test_the_store_asks_nothing_about_a_created_definition(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        store = JournalPresent(journal, journal.begin_run())
        asked: list[str] = []
        real = journal.held

        def spy(definition_id: str, wanted: Sequence[tuple[Kind, str]]) -> object:
            asked.append(definition_id)
            return real(definition_id, wanted)

        monkeypatch.setattr(journal, "held", spy)
        created, found = definition("1", "created"), definition("2", "found")
        journal.record_imported("2", [(Kind.MD5, md5(1), "r1")], 0)
        assert await store.load(NO_TARGET, created) == 0
        assert await store.present(created, keys(0, 5)) == {}
        assert asked == []
        assert set(await store.present(found, keys(0, 5))) == {(Kind.MD5, md5(1))}
        assert asked == ["2"]


async def test_unique_values_still_ask_about_a_created_definition(state: Path) -> None:
    # mde: a value is one indicator per tenant, so a new title's key may be another title's.
    with Journal.open(state, target="mde", tenant="t", unique_values=True) as journal:
        run = journal.begin_run()
        journal.record([("old title", stamped(0, 3))], run)
        store = JournalPresent(journal, run)
        created = definition("new title", "created")
        await store.load(NO_TARGET, created)
        held = await store.present(created, keys(0, 5))
        assert set(held) == set(keys(0, 3))
        assert all(found.elsewhere for found in held.values())
        await store.record(created, [(Kind.MD5, md5(4), "r4", Stamp(4, None))])
        await store.flush()
        assert journal.present("new title", keys(4, 5)) == set(keys(4, 5))


def indexes(state: Path) -> set[str]:
    conn = sqlite3.connect(state)
    try:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
        return {name for (name,) in rows}
    finally:
        conn.close()


def test_schema_3_loses_its_index_by_remote_id_and_keeps_its_rows(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        journal.record([("A", stamped(0, 5))], journal.begin_run())
    as_schema(state, 3, "CREATE INDEX indicators_by_remote_id ON indicators (scope, remote_id)")
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.present("A", keys(0, 6)) == set(keys(0, 5))
        journal.forget("A", ["r1", "r2", "nope"])
        journal.forget_keys("A", [(Kind.MD5, md5(3))])
        assert journal.present("A", keys(0, 6)) == {(Kind.MD5, md5(0)), (Kind.MD5, md5(4))}
    assert indexes(state) == {"versions_by_value"}  # the one index: not on indicators (schema 7's versions)
    assert schema_version(state) == SCHEMA_VERSION


def test_forget_keys_drops_only_the_definitions_rows(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        run = journal.begin_run()
        journal.record([("A", stamped(0, 4)), ("B", stamped(0, 4))], run)
        journal.forget_keys("A", keys(1, 3))
        journal.forget("B", [])
        assert journal.present("A", keys(0, 4)) == {(Kind.MD5, md5(0)), (Kind.MD5, md5(3))}
        assert journal.present("B", keys(0, 4)) == set(keys(0, 4))


@pytest.mark.parametrize("merge_every", [1, 100])  # found in the table, or still in the log
def test_rows_written_as_one_json_text_come_back_exactly(state: Path, merge_every: int) -> None:
    """A batch goes to the log as one JSON array (``write_log``): text of any kind, 64-bit digests
    at both ends of their range and absent stamps come back as they went in."""
    texts = ['quote " and back\\slash', "naïve-ünïcode.example", "tab\there", "\u2603.example", "x" * 2000]
    extremes = [Stamp(2**63 - 1, 2**40), Stamp(-(2**63), None), None, Stamp(0, -1), Stamp(7, None)]
    rows = [
        (Kind.DOMAIN, text, f"id {n}", stamp)
        for n, (text, stamp) in enumerate(zip(texts, extremes, strict=True))
    ]
    with Journal.open(state, target="ti", tenant="t", merge_every=merge_every) as journal:
        run = journal.begin_run()
        journal.record([("A", rows)], run)
        held = journal.held("A", [(Kind.DOMAIN, text) for text in texts])
        assert {key: (h.remote_id, h.stamp) for key, h in held.items()} == {
            (kind, value): (remote_id, stamp) for kind, value, remote_id, stamp in rows
        }
        journal.mark_shared("B", [(Kind.DOMAIN, texts[0], "id 0")], run)  # owned = false, as JSON
    with Journal.open(state, target="ti", tenant="t") as journal:  # and after a merge, on disk
        again = journal.held("A", [(Kind.DOMAIN, text) for text in texts])
        assert {key: h.stamp for key, h in again.items()} == {(k, v): s for k, v, _, s in rows}
        assert journal.held("B", [(Kind.DOMAIN, texts[0])])[Kind.DOMAIN, texts[0]].elsewhere  # not owned
