"""The write log's two ways of taking acknowledged rows: grouped by kind and metadata digest (the
usual batch, each indicator with its own expiry or none), and one JSON text of whole rows (many
digests, or a remote id with a space). Either way the journal answers with what was recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds.model import Kind
from importer.model import Stamp
from importer.state import write_log
from importer.state.journal import Journal
from importer.state.write_log import Acked

Answers = dict[tuple[Kind, str], tuple[str, Stamp | None]]


def answers(journal: Journal, definition: str, batch: list[Acked]) -> Answers:
    held = journal.held(definition, [(kind, value) for kind, value, _, _ in batch])
    return {key: (found.remote_id, found.stamp) for key, found in held.items()}


def expected(batch: list[Acked]) -> Answers:
    return {(kind, value): (remote_id, stamp) for kind, value, remote_id, stamp in batch}


MIXED: list[Acked] = [
    (Kind.SHA256, "a" * 64, "101", Stamp(7, None)),
    (Kind.MD5, "b" * 32, "102", Stamp(7, None)),
    (Kind.URL, "http://x.example/a b?c=d e", "103", Stamp(7, 1_790_000_000)),  # spaces in the value
    (Kind.URL, "http://x.example/ä ö/\u00e9", "105", Stamp(7, 1_790_000_000)),  # not ASCII (JSON escapes it)
    (Kind.DOMAIN, "x.example", "104", None),  # no stamp (``record_imported``)
    (Kind.SHA256, "c" * 64, "indicator--1f2e", Stamp(-9, 1_790_000_000)),
]
# One digest, an expiry each (STIX valid_until), one without: one group.
EXPIRIES: list[Acked] = [
    (Kind.SHA256, f"{n:064x}", str(n), Stamp(5, 1_790_000_000 + n) if n else Stamp(5, None))
    for n in range(20)
]
MANY_DIGESTS: list[Acked] = [
    (Kind.MD5, f"{n:032x}", str(n), Stamp(n, None)) for n in range(write_log._MAX_GROUPS + 1)
]
SPACED_ID: list[Acked] = [
    (Kind.MD5, "d" * 32, "an id", Stamp(1, None)),
    (Kind.MD5, "e" * 32, "7", Stamp(1, None)),
]


@pytest.mark.parametrize(
    "created", [True, False], ids=["created: read from the log", "found: kept in memory too"]
)
@pytest.mark.parametrize(
    "batch",
    [MIXED, EXPIRIES, MANY_DIGESTS, SPACED_ID],
    ids=["grouped", "expiries", "many digests", "spaced id"],
)
def test_acknowledged_rows_come_back_as_recorded(tmp_path: Path, created: bool, batch: list[Acked]) -> None:
    with Journal.open(tmp_path / "state.sqlite", target="ti", tenant="t") as journal:
        run = journal.begin_run()
        if created:  # its keys are not kept in memory: ``held`` folds the log in and reads the table
            journal.created("1")
        journal.record([("1", batch)], run)
        assert answers(journal, "1", batch) == expected(batch)
        journal.finish_run(run)  # merged into ``indicators``: the same answers from the table
        assert answers(journal, "1", batch) == expected(batch)
        listed = sorted((kind, value) for kind, value, _ in journal.stale("1", run + 1))
        assert listed == sorted((kind, value) for kind, value, _, _ in batch)


def test_which_way_a_batch_takes() -> None:
    grouped = write_log._grouped(MIXED)
    assert grouped is not None
    url_rows = ["103 http://x.example/a b?c=d e", "105 http://x.example/ä ö/\u00e9"]
    assert (write_log._INSERT_GROUP, (Kind.URL, 7, 1_790_000_000), url_rows) in grouped
    assert (write_log._INSERT_GROUP, (Kind.DOMAIN, None, None), ["104 x.example"]) in grouped
    by_expiry = write_log._grouped(EXPIRIES)  # 20 stamps, one digest
    assert by_expiry is not None and [(statement, bound) for statement, bound, _ in by_expiry] == [
        (write_log._INSERT_EXPIRING, (Kind.SHA256, 5))
    ]
    assert by_expiry[0][2][:2] == [f"-----------0 {0:064x}", f"017900000011 {1:064x}"]
    assert write_log._grouped(MANY_DIGESTS) is None
    assert write_log._grouped(SPACED_ID) is None


def test_one_merge_of_several_definitions_and_kinds_keeps_each_keys_last_acknowledgement(
    tmp_path: Path,
) -> None:
    # The merge sorts by value, not by (definition, kind, value): the same values under two
    # definitions and two kinds interleave, and a key acknowledged twice must keep the second id.
    values = [f"{n:032x}" for n in (5, 1, 9, 3)]
    first = [
        (kind, value, f"{kind}-{value}-1", Stamp(1, None))
        for kind in (Kind.MD5, Kind.DOMAIN)
        for value in values
    ]
    again = [(Kind.MD5, values[2], "md5-again", Stamp(2, None))]
    with Journal.open(tmp_path / "state.sqlite", target="ti", tenant="t") as journal:
        run = journal.begin_run()
        journal.record([("A", first), ("B", first[::-1])], run)
        journal.record([("A", again)], run)
        journal.finish_run(run)  # one merge of all three batches
        assert answers(journal, "B", first) == expected(first)
        assert answers(journal, "A", first) == {**expected(first), **expected(again)}
