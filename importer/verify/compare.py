"""One feed's three views — the journal, the target's listing, today's feed — compared key by key on disk.

Each view is streamed into its own table of a private temporary SQLite database (SQLite's empty
file name: a file of its own, removed when closed, whose pages spill from an 8 MiB cache to disk),
so a definition of millions costs megabytes, never a Python dict per indicator. ``rows`` then
walks the union of the three key sets once, in key order, and ``classify`` puts each key in one
class:

- **landed**: the journal says it was sent and the target holds it as sent (and as today's feed
  would send it now); or, unknown to the journal, the target holds what today's feed says;
- **absent**: the journal says it was sent, the target lacks it;
- **stale**: the target holds it, but not as the journal says it was sent, or not as today's feed
  would send it (``pipeline.freshness``: changed metadata or fixed expiry, a rolling expiry due);
- **foreign**: listed under the definition, neither in the journal nor in today's feed;
- **missing**: in today's feed, neither sent nor held.

A stamp the journal or the listing cannot tell (``None``: recorded before stamps, or a listing
without them) matches any: only a difference both sides can see is drift.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from feeds.model import Kind
from importer.model import Held, RemoteIndicator, Stamp
from importer.pipeline.freshness import Freshness

__all__ = ["CLASSES", "Comparison", "Row", "Wanted", "classify"]

CLASSES: Final = ("landed", "absent", "stale", "foreign", "missing")

_KINDS = {kind.value: kind for kind in Kind}
_PAGE = 1000  # rows staged per executemany
_CACHE_KIB = 8 * 1024

_DDL = """
CREATE TABLE sent (kind TEXT, value TEXT, remote_id TEXT, meta INTEGER, expires INTEGER, since INTEGER,
                   PRIMARY KEY (kind, value)) WITHOUT ROWID;
CREATE TABLE listed (kind TEXT, value TEXT, remote_id TEXT, meta INTEGER, expires INTEGER,
                     PRIMARY KEY (kind, value)) WITHOUT ROWID;
CREATE TABLE wanted (kind TEXT, value TEXT, meta INTEGER, expires INTEGER, own_expiry INTEGER,
                     PRIMARY KEY (kind, value)) WITHOUT ROWID;
"""
# Every key of the three views once (UNION sorts on disk), with what each view says of it.
_ROWS = """
SELECT k.kind, k.value,
       s.remote_id, s.meta, s.expires, s.since,
       l.remote_id, l.meta, l.expires,
       w.meta, w.expires, w.own_expiry
FROM (SELECT kind, value FROM sent UNION SELECT kind, value FROM listed
      UNION SELECT kind, value FROM wanted) k
LEFT JOIN sent s ON s.kind = k.kind AND s.value = k.value
LEFT JOIN listed l ON l.kind = k.kind AND l.value = k.value
LEFT JOIN wanted w ON w.kind = k.kind AND w.value = k.value
ORDER BY k.kind, k.value
"""


@dataclass(frozen=True, slots=True)
class Wanted:
    """What today's feed would send for one key: its stamp, and whether it carries its own expiry."""

    stamp: Stamp
    own_expiry: bool


@dataclass(frozen=True, slots=True)
class Row:
    """One key and what each view says of it (None: the view lacks it)."""

    kind: Kind
    value: str
    sent: Held | None  # the journal's row (its stamp: what was sent)
    listed: RemoteIndicator | None  # what the target holds
    wanted: Wanted | None  # today's feed


def classify(row: Row, freshness: Freshness) -> str:
    """The one class of ``CLASSES`` the key falls in (see the module)."""
    sent, listed, wanted = row.sent, row.listed, row.wanted
    if listed is None:
        if sent is not None:
            return "absent"
        return "missing"
    if sent is None and wanted is None:
        return "foreign"
    if sent is not None and _differ(sent.stamp, listed.stamp):
        return "stale"
    if wanted is not None:
        held = Held(listed.remote_id, listed.stamp, sent.since if sent is not None else 0)
        judged = freshness.judge(held, wanted.stamp, own_expiry=wanted.own_expiry)
        if wanted.stamp != listed.stamp and judged.send:
            return "stale"
    return "landed"


def _differ(a: Stamp | None, b: Stamp | None) -> bool:
    return a is not None and b is not None and a != b


class Comparison:
    """The three views of one feed, staged in a private temporary database; ``close`` removes it."""

    def __init__(self) -> None:
        # Empty name: a private on-disk temporary database. Used from one thread at a time, which
        # may be a worker thread (``asyncio.to_thread``), hence ``check_same_thread`` off.
        self._conn = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        self._conn.execute("PRAGMA journal_mode = OFF")  # scratch: nothing to roll back to
        self._conn.executescript(_DDL)
        self._listed_page: list[RemoteIndicator] = []
        self.counts = {"sent": 0, "listed": 0, "wanted": 0}

    def close(self) -> None:
        self._conn.close()

    def add_sent(self, items: Iterable[tuple[Kind, str, Held]]) -> None:
        """Stage the journal's rows (what it says was sent under the definition)."""
        self._stage(
            "INSERT OR IGNORE INTO sent VALUES (?, ?, ?, ?, ?, ?)",
            ((kind.value, value, held.remote_id, *_columns(held.stamp), held.since)
             for kind, value, held in items),
            "sent",
        )  # fmt: skip

    def add_listed(self, item: RemoteIndicator) -> None:
        """Stage one listed indicator (written a page at a time; ``end_listing`` writes the rest)."""
        self._listed_page.append(item)
        if len(self._listed_page) >= _PAGE:
            self.end_listing()

    def end_listing(self) -> None:
        page, self._listed_page = self._listed_page, []
        self._stage(
            "INSERT OR IGNORE INTO listed VALUES (?, ?, ?, ?, ?)",
            ((item.kind.value, item.value, item.remote_id, *_columns(item.stamp)) for item in page),
            "listed",
        )

    def add_wanted(self, items: Iterable[tuple[Kind, str, Wanted]]) -> None:
        """Stage what today's feed would send (a key given twice is kept once, as the run does)."""
        self._stage(
            "INSERT OR IGNORE INTO wanted VALUES (?, ?, ?, ?, ?)",
            ((kind.value, value, *w.stamp, int(w.own_expiry)) for kind, value, w in items),
            "wanted",
        )

    def _stage(self, sql: str, rows: Iterable[tuple[object, ...]], table: str) -> None:
        batch: list[tuple[object, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _PAGE:
                self._write(sql, batch, table)
                batch = []
        self._write(sql, batch, table)

    def _write(self, sql: str, batch: list[tuple[object, ...]], table: str) -> None:
        if batch:
            self._conn.execute("BEGIN")
            cursor = self._conn.executemany(sql, batch)
            self._conn.execute("COMMIT")
            self.counts[table] += cursor.rowcount

    def rows(self) -> Iterator[Row]:
        """Every key of the three views, once, in key order (read from disk as it is walked)."""
        for kind_text, value, *rest in self._conn.execute(_ROWS):
            s_id, s_meta, s_expires, s_since, l_id, l_meta, l_expires, w_meta, w_expires, w_own = rest
            kind = _KINDS[kind_text]
            sent = None if s_id is None else Held(s_id, _stamp(s_meta, s_expires), s_since or 0)
            listed = None if l_id is None else RemoteIndicator(kind, value, l_id, _stamp(l_meta, l_expires))
            wanted = None if w_meta is None else Wanted(Stamp(w_meta, w_expires), bool(w_own))
            yield Row(kind, value, sent, listed, wanted)


def _columns(stamp: Stamp | None) -> tuple[int | None, int | None]:
    return (None, None) if stamp is None else (stamp.meta, stamp.expires)


def _stamp(meta: int | None, expires: int | None) -> Stamp | None:
    return None if meta is None else Stamp(meta, expires)
