"""Reading a pulled collection back: the newest version of each STIX id, and what expired ones retire.

A server may answer several versions of one object in a pull (``match[version]=all``, or versions
added between two pages); the spool keeps the newest only, counting the others ``skipped``. A
newest version that is revoked or past its ``valid_until`` is ``expired`` and retires its values,
unless another live object of the same pull lists them. Also: the journal keeps a cursor per feed
and source, and a schema 4 journal gains the table.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

from feeds import FeedOptions
from feeds.model import Kind
from importer.sources.taxii_read import Spool, read_spool
from importer.state.journal import Journal
from importer.state.schema import SCHEMA_VERSION
from tests.helpers import as_schema, schema_version
from tests.helpers.taxii import sha256_indicator, sha256_value

LATER, LATEST = "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"


def read(objects: list[dict[str, Any]]) -> tuple[Counter[str], set[tuple[Kind, str]]]:
    spool = Spool(io.StringIO())
    for obj in objects:
        spool.add(obj)
    spool.out.seek(0)
    removals: set[tuple[Kind, str]] = set()
    records = read_spool(spool.out, spool.newest, "c", FeedOptions(), removals)
    kinds = Counter(type(record).__name__ for record in records)
    return kinds, removals


def test_the_newest_version_wins_whatever_the_order() -> None:
    kinds, removals = read([
        sha256_indicator(1, modified=LATEST, description="third"),
        sha256_indicator(1),
        sha256_indicator(1, modified=LATER),
        sha256_indicator(2),
        sha256_indicator(2),  # the same version twice: read once
    ])  # fmt: skip
    assert kinds == Counter(Indicator=2, Skipped=3) and not removals


def test_a_revoked_or_expired_newest_version_retires_its_value() -> None:
    kinds, removals = read([
        sha256_indicator(1),
        sha256_indicator(1, modified=LATER, revoked=True),
        sha256_indicator(2, modified=LATER, valid_until="2020-01-01T00:00:00Z"),
        sha256_indicator(3, modified=LATER, valid_until="2999-01-01T00:00:00Z"),  # still valid
    ])  # fmt: skip
    assert kinds == Counter(Indicator=1, Expired=2, Skipped=1)
    assert removals == {(Kind.SHA256, sha256_value(1)), (Kind.SHA256, sha256_value(2))}


def test_a_value_another_live_object_lists_is_not_retired() -> None:
    twin = sha256_indicator(9)
    twin["pattern"] = f"[file:hashes.'SHA-256' = '{sha256_value(1)}']"  # another id, the same value
    _, removals = read([twin, sha256_indicator(1, modified=LATER, revoked=True)])
    assert removals == set()


def test_cursors_per_feed_and_source_and_the_upgrade_from_4(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Journal.open(path, target="ti", tenant="t") as journal:
        assert journal.cursor("A", "https://x/c/1/") is None
        journal.set_cursor("A", "https://x/c/1/", "2026-01-01T00:00:00Z")
        assert journal.cursor("A", "https://x/c/1/") == "2026-01-01T00:00:00Z"
        assert journal.cursor("A", "https://x/c/2/") is None  # another collection starts over
    with Journal.open(path, target="ti", tenant="other") as journal:
        assert journal.cursor("A", "https://x/c/1/") is None  # tenants apart
    as_schema(path, 4, "DROP TABLE cursors")
    with Journal.open(path, target="ti", tenant="t") as journal:
        assert journal.cursor("A", "https://x/c/1/") is None
        journal.set_cursor("A", "https://x/c/1/", "2026-01-02T00:00:00Z")
    assert schema_version(path) == SCHEMA_VERSION
