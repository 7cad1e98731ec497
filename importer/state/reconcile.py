"""Reconciling one definition's journal with the target's listing of it (``--reconcile``, resume).

The listing is streamed to the ``reconcile_stage`` table a page at a time (bounded memory for a
million indicators), then applied to ``indicators`` in one transaction: the target is the truth,
in both directions. Rows it no longer holds are removed; changed remote ids and stamps (what the
target holds beside the value: metadata digest, expiry) updated; rows missing from the journal
added; and with ``unique_values`` (``mde``) the definition owns every value listed under it, so
other definitions of the tenant stop owning those. If
the listing breaks off, ``apply`` is never called and the journal is as it was; the leftover
staged rows are cleared by the next ``StagedListing.start`` of that definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from importer.model import RemoteIndicator
from importer.state.tenant_db import TenantDb

__all__ = ["ReconcileResult", "StagedListing"]

_PAGE = 1000  # listed indicators staged per write transaction


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What ``--reconcile`` changed in the journal of one definition."""

    listed: int  # indicators the target listed under the definition
    added: int  # held by the target, missing from the journal
    removed: int  # in the journal, no longer in the target (deleted in the portal, say)
    updated: int  # same kind and value, another remote id or stamp (or owned again)
    duplicates: int  # listed more than once by the target (the journal keeps the first id)


class StagedListing:
    """The target's listing of one definition, staged on disk: ``add`` each item, then ``apply``."""

    def __init__(self, db: TenantDb, clock: Callable[[], float], scope: int, *, unique_values: bool) -> None:
        self._db = db
        self._clock = clock
        self._scope = scope
        self._unique = unique_values
        self._page: list[RemoteIndicator] = []
        self._listed = 0
        self._duplicates = 0

    @classmethod
    def start(
        cls, db: TenantDb, clock: Callable[[], float], definition_id: str, *, unique_values: bool = False
    ) -> StagedListing:
        """An empty staging area for the definition (whose scope is created if new)."""
        with db.writing():
            scope = db.scope(definition_id, create=True)
            assert scope is not None
            # Leftovers of a listing interrupted earlier (by a crash, say) must not count now.
            db.conn.execute("DELETE FROM reconcile_stage WHERE scope = ?", (scope,))
        return cls(db, clock, scope, unique_values=unique_values)

    def add(self, item: RemoteIndicator) -> None:
        """Stage one listed indicator (written to disk a page at a time)."""
        self._page.append(item)
        if len(self._page) >= _PAGE:
            self._stage_page()

    def apply(self) -> ReconcileResult:
        """The listing was read to its end: make the journal of the definition equal to it."""
        self._stage_page()
        scope = self._scope
        match = "r.scope = indicators.scope AND r.kind = indicators.kind AND r.value = indicators.value"
        db = self._db
        with db.writing():
            removed = db.conn.execute(
                f"DELETE FROM indicators WHERE scope = ? AND NOT EXISTS "  # noqa: S608 -- constant text
                f"(SELECT 1 FROM reconcile_stage r WHERE {match})",
                (scope,),
            ).rowcount
            updated = db.conn.execute(
                f"UPDATE indicators SET remote_id = r.remote_id, meta = r.meta, expires = r.expires, "  # noqa: S608
                f"owned = 1 FROM reconcile_stage r WHERE indicators.scope = ? AND {match} "
                f"AND (r.remote_id <> indicators.remote_id OR r.meta IS NOT indicators.meta "
                f"OR r.expires IS NOT indicators.expires OR indicators.owned = 0)",
                (scope,),
            ).rowcount
            added = db.conn.execute(
                "INSERT INTO indicators (scope, kind, value, remote_id, imported_at, last_seen, meta, "
                "expires) SELECT scope, kind, value, remote_id, ?, 0, meta, expires FROM reconcile_stage "
                "WHERE scope = ? ON CONFLICT DO NOTHING",
                (int(self._clock()), scope),
            ).rowcount
            if self._unique:
                db.conn.execute(
                    "UPDATE indicators SET owned = 0 WHERE owned = 1 AND scope IN (SELECT id FROM scopes "
                    "WHERE tenant_id = ? AND id <> ?) AND EXISTS (SELECT 1 FROM reconcile_stage r "
                    "WHERE r.scope = ? AND r.kind = indicators.kind AND r.value = indicators.value)",
                    (db.tenant, scope, scope),
                )
            db.conn.execute("DELETE FROM reconcile_stage WHERE scope = ?", (scope,))
        return ReconcileResult(self._listed, added, removed, updated, self._duplicates)

    def _stage_page(self) -> None:
        page, self._page = self._page, []
        if not page:
            return
        with self._db.writing():
            cursor = self._db.conn.executemany(
                "INSERT INTO reconcile_stage (scope, kind, value, remote_id, meta, expires) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    (self._scope, item.kind.value, item.value, item.remote_id,
                     *((None, None) if item.stamp is None else (item.stamp.meta, item.stamp.expires)))
                    for item in page
                ),
            )  # fmt: skip
        # A key listed twice is staged once: the rows the insert skipped are the duplicates.
        self._listed += len(page)
        self._duplicates += len(page) - cursor.rowcount
