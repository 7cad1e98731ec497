"""Where each pull source got to: one cursor per feed of a tenant, kept between runs.

A TAXII collection is read incrementally: the next run asks only for what was added after the
cursor the last completed pull left (``X-TAXII-Date-Added-Last``). The cursor is kept with the
source it was read from, so a feed pointed at another collection starts over instead of asking
the new one for what came after a date that belongs to the old one. ``Journal.cursor`` and
``Journal.set_cursor`` are the interface; the run calls ``set_cursor`` only once the pull was read
to its end and every batch of it was acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable

from importer.state.tenant_db import TenantDb

__all__ = ["Cursors"]


class Cursors:
    """One tenant's cursors (the ``cursors`` table of schema 5)."""

    def __init__(self, db: TenantDb, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    def get(self, feed_name: str, source: str) -> str | None:
        """The cursor the feed's last completed pull of ``source`` left; None: read it all."""
        db = self._db
        with db.reading():
            row = db.conn.execute(
                "SELECT source, cursor FROM cursors WHERE tenant_id = ? AND feed_name = ?",
                (db.tenant, feed_name),
            ).fetchone()
        if row is None or row[0] != source:
            return None
        return str(row[1])

    def set(self, feed_name: str, source: str, cursor: str) -> None:
        """Keep ``cursor`` for the feed read from ``source`` (committed on return)."""
        db = self._db
        with db.writing():
            db.conn.execute(
                "INSERT INTO cursors (tenant_id, feed_name, source, cursor, updated_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, feed_name) DO UPDATE SET source = excluded.source, "
                "cursor = excluded.cursor, updated_at = excluded.updated_at",
                (db.tenant, feed_name, source, cursor, int(self._clock())),
            )
