"""The journal's write log: acknowledged and seen keys appended cheaply, later folded into ``indicators``.

A batch commit appends its rows to the ``log`` table (remote id set: acknowledged by the target;
remote id NULL: seen in a run) instead of dirtying one random page of the big key-ordered
``indicators`` table per key; ``merge`` folds the log in, in key order, in one transaction, so
each page of ``indicators`` is touched at most once (see the schema in ``importer.state.schema``).

The log has no index, so the keys acknowledged since the last merge are also kept in memory
(``recent``) for ``Journal.present`` to find. A merge happens once that set reaches
``merge_every`` keys or the log ``LOG_LIMIT`` rows of any sort; on open (a killed run may have left
its log behind) and close; and whenever the journal needs ``indicators`` whole (a run's start and
end, ``stale``, ``count``, ``forget``, a reconciliation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

from feeds.model import Kind
from importer.state.tenant_db import TenantDb

__all__ = ["LOG_LIMIT", "MERGE_EVERY", "WriteLog"]

MERGE_EVERY = 100_000  # imported keys kept in memory (~20 MB) before the log is merged
LOG_LIMIT = 1_000_000  # log rows of any sort (seen marks cost no memory) before a merge


class WriteLog:
    """The log of one tenant's session: ``append``, ``record``, ``recent`` and ``merge``."""

    def __init__(self, db: TenantDb, clock: Callable[[], float], merge_every: int = MERGE_EVERY) -> None:
        self._db = db
        self._clock = clock
        self._merge_every = merge_every
        # Keys acknowledged since the last merge: the log has no index, so ``present`` asks here.
        self._recent: set[tuple[int, str, str]] = set()
        self._logged = 1  # unknown at open: a killed run may have left its log to fold in

    @property
    def recent(self) -> AbstractSet[tuple[int, str, str]]:
        """The ``(scope, kind, value)`` keys acknowledged since the last merge (a live view)."""
        return self._recent

    def record(self, batches: Sequence[tuple[str, Sequence[tuple[Kind, str, str]]]], run_id: int) -> None:
        """Append acknowledged ``(definition id, items)`` batches in one committed transaction,
        creating new definitions' scopes, and remember their keys for ``recent``."""
        scopes = self.append(batches, run_id, create=True)
        # Only after the commit: a rolled-back batch must not answer "present".
        for scope, (_, items) in zip(scopes, batches, strict=True):
            assert scope is not None  # created if new
            self._recent.update((scope, kind, value) for kind, value, _ in items)
        if len(self._recent) >= self._merge_every:
            self.merge()

    def append(
        self,
        batches: Sequence[tuple[str, Sequence[tuple[Kind, str, str | None]]]],
        run_id: int,
        *,
        create: bool,
    ) -> list[int | None]:
        """Append ``(definition id, rows)`` batches to the log in one committed transaction, which
        also creates a new definition's scope if ``create``; returns each batch's scope (None: the
        definition has none and ``create`` is off, so its rows were left out)."""
        now = int(self._clock())
        scopes: list[int | None] = []
        added = 0
        db = self._db
        with db.writing():
            for definition_id, rows in batches:
                scope = db.scope(definition_id, create=create)
                scopes.append(scope)
                if scope is None:
                    continue
                # A generator, not a list: rows stream into SQLite without a second copy of the
                # batch. ``Kind`` is a ``str``, so it binds as its text without conversion.
                db.conn.executemany(
                    "INSERT INTO log (tenant_id, scope, kind, value, remote_id, at, run) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        (db.tenant, scope, kind, value, remote_id, now, run_id)
                        for kind, value, remote_id in rows
                    ),
                )
                added += len(rows)
        self._logged += added
        if self._logged >= LOG_LIMIT:
            self.merge()
        return scopes

    def merge(self) -> None:
        """Fold the log into ``indicators`` in key order, in one transaction, and empty it."""
        if not self._logged:
            return
        db = self._db
        with db.writing():
            db.conn.execute(
                "INSERT INTO indicators (scope, kind, value, remote_id, imported_at, last_seen) "
                "SELECT scope, kind, value, remote_id, at, run FROM log "
                "WHERE tenant_id = ? AND remote_id IS NOT NULL ORDER BY scope, kind, value, id "
                "ON CONFLICT (scope, kind, value) DO UPDATE SET remote_id = excluded.remote_id, "
                "last_seen = max(last_seen, excluded.last_seen)",
                (db.tenant,),
            )
            db.conn.execute(
                "UPDATE indicators SET last_seen = s.run FROM "
                "(SELECT scope, kind, value, max(run) AS run FROM log "
                "WHERE tenant_id = ? AND remote_id IS NULL GROUP BY scope, kind, value) AS s "
                "WHERE indicators.scope = s.scope AND indicators.kind = s.kind "
                "AND indicators.value = s.value AND indicators.last_seen < s.run",
                (db.tenant,),
            )
            db.conn.execute("DELETE FROM log WHERE tenant_id = ?", (db.tenant,))
        self._logged = 0
        self._recent.clear()
