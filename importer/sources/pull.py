"""What the run learns from a pull source once its feed was read: where it got to, and what it retired.

A pull source (a TAXII collection: ``sources.taxii``; a MISP feed: ``sources.misp_feed``) reads
incrementally: only what came after the cursor the journal keeps for the feed. Its pull object
fills these as its job is read; the run then deletes what the source retired and keeps ``cursor``
(``Journal.set_cursor``) — only when ``completed`` and every batch of it was acknowledged, so a
pull that stopped halfway is read again from the old cursor.

What the source retired is ``removals`` (values a revoked or expired version names itself) and
what ``versions`` tells the journal (``state.versions``): the keys each object id — a STIX id, a
MISP event uuid — produced in this pull, staged in a private temporary SQLite file (SQLite deletes
it when it is closed), so a collection of millions costs pages on disk, not a dict in memory.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Protocol

from feeds.model import FeedError, Kind
from importer.pipeline.job import FeedJob

__all__ = ["Pull", "PulledVersions"]

_Key = tuple[Kind, str]
_FLUSH = 2000  # staged rows per insert


class PulledVersions:
    """Per object id of one pull, the keys its newest version produced (``state.versions.Pulled``).

    The reader notes each key (``produced``) then the id once its version was read (``read``):
    ``replaced`` when that version says the id's keys (even none: revoked), else the keys recorded
    for it stay. ``full``: the pull saw the whole collection. Written by the thread that reads the
    feed, read by the run once it was read; never both at once."""

    def __init__(self, *, full: bool) -> None:
        self.full = full
        # "": a private temporary database on disk (page cache in memory), gone when closed.
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, replaced INTEGER NOT NULL) WITHOUT ROWID")
        self._db.execute(
            "CREATE TABLE keys (id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, "
            "PRIMARY KEY (id, kind, value)) WITHOUT ROWID"
        )
        self._db.execute("CREATE INDEX keys_by_key ON keys (kind, value)")
        self._ids: list[tuple[str, int]] = []
        self._keys: list[tuple[str, str, str]] = []

    def produced(self, object_id: str, kind: Kind, value: str) -> None:
        self._keys.append((object_id, str(kind), value))
        if len(self._keys) >= _FLUSH:
            self.flush()

    def read(self, object_id: str, *, replaced: bool) -> None:
        self._ids.append((object_id, int(replaced)))
        if len(self._ids) >= _FLUSH:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered (one transaction)."""
        if not self._ids and not self._keys:
            return
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO ids (id, replaced) VALUES (?, ?)", self._ids)
            self._db.executemany("INSERT OR IGNORE INTO keys (id, kind, value) VALUES (?, ?, ?)", self._keys)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # a full temporary folder: the feed fails, the cursor stays
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise FeedError(f"cannot stage what the pull read in a temporary file: {exc}") from None
        self._ids, self._keys = [], []

    def replaced_ids(self, after: str, limit: int) -> list[str]:
        self.flush()
        rows = self._db.execute(
            "SELECT id FROM ids WHERE replaced = 1 AND id > ? ORDER BY id LIMIT ?", (after, limit)
        )
        return [row[0] for row in rows]

    def keys_of(self, ids: Sequence[str]) -> Mapping[str, set[_Key]]:
        self.flush()
        found: dict[str, set[_Key]] = {}
        marks = ",".join("?" * len(ids))
        for object_id, kind, value in self._db.execute(
            f"SELECT id, kind, value FROM keys WHERE id IN ({marks})",  # noqa: S608 -- only "?" marks
            tuple(ids),
        ):
            found.setdefault(object_id, set()).add((Kind(kind), value))
        return found

    def producing(self, keys: Sequence[_Key]) -> set[_Key]:
        self.flush()
        found: set[_Key] = set()
        for kind, value in keys:
            row = self._db.execute(
                "SELECT 1 FROM keys JOIN ids ON ids.id = keys.id "
                "WHERE keys.kind = ? AND keys.value = ? AND ids.replaced = 1 LIMIT 1",
                (str(kind), value),
            ).fetchone()
            if row is not None:
                found.add((kind, value))
        return found

    def states(self, ids: Sequence[str]) -> Mapping[str, bool]:
        self.flush()
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT id, replaced FROM ids WHERE id IN ({marks})", tuple(ids))  # noqa: S608
        return {object_id: bool(replaced) for object_id, replaced in rows}

    def close(self) -> None:
        """Close (and so delete) the staged file."""
        self._db.close()


class Pull(Protocol):
    """One pulled feed of a run (``TaxiiPull``, ``MispFeedPull``)."""

    @property
    def job(self) -> FeedJob: ...

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def cursor(self) -> str | None:
        """The cursor the pull earned (None: keep the one the journal holds)."""

    @property
    def completed(self) -> bool:
        """Every record was read."""

    @property
    def removals(self) -> set[tuple[Kind, str]]:
        """The values the source named retired itself, to delete from the target."""

    @property
    def versions(self) -> PulledVersions:
        """The keys each object id of the pull produced, for the journal's ``versions``."""
