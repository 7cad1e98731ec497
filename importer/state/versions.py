"""Which values each object of a pull source produced (STIX versioning across runs), per feed.

A TAXII collection sends a newer version of an indicator under the same STIX id; a MISP feed
re-publishes a changed event whole under the same uuid. When the newer version names other values
than the one an earlier run imported (a producer corrected a hash), or is revoked, the values the
older version produced must leave the target — but the pull only holds the new version. This table
remembers, per feed of a tenant, the ``(kind, value)`` keys each object id produced
(``versions``, schema 7), so that the run can tell:

- ``retired``: the keys the pulled ids no longer produce (plus those the source named retired
  itself), except keys some live id of the feed still produces — an id this pull did not replace,
  or one it did whose new version lists the key. Read-only: the run deletes them first.
- ``keep``: the pulled ids' new keys replace their old ones (a revoked id keeps none); a full pull
  (the whole collection read) also drops the ids it did not see. Called once the target deleted
  what ``retired`` said, so a run killed in between computes the same keys again.

The pull stages its ids and keys on disk (``sources.pull.PulledVersions``, a ``Pulled`` here), and
both calls walk them a page at a time: memory follows a page and the retired keys, never the
collection. On ``unique_values`` targets a key another feed still lists is kept by the delete path
itself (``state.mirror``'s ``elsewhere``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from feeds.model import Kind
from importer.state.tenant_db import TenantDb

__all__ = ["Pulled", "Versions"]

_Key = tuple[Kind, str]
_PAGE = 500  # ids or values per statement: far below SQLite's bound on host parameters
_WRITE = 5000  # rows (or ids) per write transaction: few commits, short enough not to hold others up


class Pulled(Protocol):
    """What one pull read, per object id (its newest version only), staged as it was read."""

    @property
    def full(self) -> bool:
        """The pull read the whole collection: an id it did not see is gone from the source."""

    def replaced_ids(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` ids (in order, after ``after``) whose version read says their keys."""

    def keys_of(self, ids: Sequence[str]) -> Mapping[str, set[_Key]]:
        """The keys each of ``ids`` produced now (a revoked one: none, absent)."""

    def producing(self, keys: Sequence[_Key]) -> set[_Key]:
        """Those of ``keys`` some replaced id produced now."""

    def states(self, ids: Sequence[str]) -> Mapping[str, bool]:
        """Of ``ids``, those the pull saw: True when replaced, False when its keys are kept as they
        were (a version read but unreadable, an event that could not be fetched)."""


class Versions:
    """One tenant's record of the keys each pulled object produced (the ``versions`` table)."""

    def __init__(self, db: TenantDb) -> None:
        self._db = db

    def retired(self, feed_name: str, pulled: Pulled, named: Iterable[_Key] = ()) -> set[_Key]:
        """The keys to take off the target: those the replaced ids produced before and no longer
        do, and ``named`` (what the source retired itself), less what a live id still produces."""
        candidates = set(named)
        for ids in _pages(pulled):
            new = pulled.keys_of(ids)
            for object_id, key in self._rows_of(feed_name, ids):
                if key not in new.get(object_id, ()):
                    candidates.add(key)
        if not candidates:
            return candidates
        rest = sorted(candidates - pulled.producing(sorted(candidates)))
        return set(rest) - self._still_produced(feed_name, pulled, rest)

    def keep(self, feed_name: str, pulled: Pulled) -> None:
        """Record the pulled ids' keys in place of their old ones (committed a few pages at a time);
        an id whose keys did not change is not written (a nightly full pull changes few)."""
        db = self._db
        changed: list[str] = []
        rows: list[tuple[int, str, str, str, str]] = []
        for ids in _pages(pulled):
            new = pulled.keys_of(ids)
            old: dict[str, set[_Key]] = {}
            for object_id, key in self._rows_of(feed_name, ids):
                old.setdefault(object_id, set()).add(key)
            for i in ids:
                if old.get(i, set()) != new.get(i, set()):
                    changed.append(i)
                    rows.extend((db.tenant, feed_name, i, str(kind), value) for kind, value in new.get(i, ()))
            if len(rows) >= _WRITE or len(changed) >= _WRITE:
                self._replace(feed_name, changed, rows)
                changed, rows = [], []
        self._replace(feed_name, changed, rows)
        if pulled.full:
            self._drop_unseen(feed_name, pulled)

    def _replace(
        self, feed_name: str, ids: Sequence[str], rows: Sequence[tuple[int, str, str, str, str]]
    ) -> None:
        """One transaction: the rows of ``ids`` become ``rows``."""
        if not ids:
            return
        db = self._db
        with db.writing():
            for start in range(0, len(ids), _PAGE):
                self._drop(feed_name, ids[start : start + _PAGE])
            db.conn.executemany(
                "INSERT OR IGNORE INTO versions (tenant_id, feed_name, object_id, kind, value) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def _rows_of(self, feed_name: str, ids: Sequence[str]) -> Iterator[tuple[str, _Key]]:
        """The recorded ``(object id, key)`` rows of ``ids``."""
        db = self._db
        marks = ",".join("?" * len(ids))
        with db.reading():
            rows = db.conn.execute(
                "SELECT object_id, kind, value FROM versions WHERE tenant_id = ? AND feed_name = ? "  # noqa: S608 -- only "?" marks
                f"AND object_id IN ({marks})",
                (db.tenant, feed_name, *ids),
            ).fetchall()
        for object_id, kind, value in rows:
            yield object_id, (Kind(kind), value)

    def _still_produced(self, feed_name: str, pulled: Pulled, keys: Sequence[_Key]) -> set[_Key]:
        """Those of ``keys`` an id the pull did not replace still produces (on a full pull: one it saw)."""
        owners: dict[_Key, set[str]] = {}
        db = self._db
        for kind, values in _by_kind(keys).items():
            for start in range(0, len(values), _PAGE):
                chunk = values[start : start + _PAGE]
                marks = ",".join("?" * len(chunk))
                with db.reading():
                    rows = db.conn.execute(
                        "SELECT object_id, value FROM versions WHERE tenant_id = ? AND feed_name = ? "  # noqa: S608
                        f"AND kind = ? AND value IN ({marks})",
                        (db.tenant, feed_name, str(kind), *chunk),
                    ).fetchall()
                for object_id, value in rows:
                    owners.setdefault((kind, value), set()).add(object_id)
        kept: set[_Key] = set()
        for key, ids in owners.items():
            states = pulled.states(sorted(ids))
            # Live: not replaced by this pull; on a full pull also seen by it (else gone from the source).
            if any(not states.get(i) and (i in states or not pulled.full) for i in ids):
                kept.add(key)
        return kept

    def _drop(self, feed_name: str, ids: Sequence[str]) -> None:
        """Delete the rows of ``ids`` (inside ``writing``)."""
        db = self._db
        marks = ",".join("?" * len(ids))
        db.conn.execute(
            f"DELETE FROM versions WHERE tenant_id = ? AND feed_name = ? AND object_id IN ({marks})",  # noqa: S608
            (db.tenant, feed_name, *ids),
        )

    def _drop_unseen(self, feed_name: str, pulled: Pulled) -> None:
        """A full pull: forget the ids it did not see (their keys are mirror mode's to delete)."""
        db, after = self._db, ""
        while True:
            with db.reading():
                page = [
                    row[0]
                    for row in db.conn.execute(
                        "SELECT DISTINCT object_id FROM versions WHERE tenant_id = ? AND feed_name = ? "
                        "AND object_id > ? ORDER BY object_id LIMIT ?",
                        (db.tenant, feed_name, after, _PAGE),
                    )
                ]
            if not page:
                return
            seen = pulled.states(page)
            unseen = [i for i in page if i not in seen]
            if unseen:
                with db.writing():
                    self._drop(feed_name, unseen)
            after = page[-1]


def _pages(pulled: Pulled) -> Iterator[list[str]]:
    """The pull's replaced ids, a page at a time."""
    after = ""
    while page := pulled.replaced_ids(after, _PAGE):
        yield page
        after = page[-1]


def _by_kind(keys: Iterable[_Key]) -> dict[Kind, list[str]]:
    groups: dict[Kind, list[str]] = {}
    for kind, value in keys:
        groups.setdefault(kind, []).append(value)
    return groups
