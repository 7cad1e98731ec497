"""How many times the target revoked each value for good: the next object for it needs a new id.

On ``sentinel`` mirror mode cannot delete: it uploads the indicator again with ``revoked: true``,
and STIX makes a revocation permanent — every later version of that id is ignored. The target's
ids are derived from the value (``targets.sentinel.stix.indicator_id``), so a value that comes back
to a feed after it was revoked must be sent under another id, or the service would drop it while
the run counted it imported. This table counts, per value of a tenant, the revocations the
target confirmed (``generation``); the target derives the next id from that count. Values never
revoked have no row, and a tenant with no row costs one cached look-up per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from feeds.model import Kind
from importer.state.tenant_db import TenantDb

__all__ = ["Revocations"]

_IN_CHUNK = 400  # pairs per statement: two host parameters each, far below SQLite's bound


class Revocations:
    """One tenant's revocation counts (the ``revocations`` table of schema 6)."""

    def __init__(self, db: TenantDb) -> None:
        self._db = db
        self._any: bool | None = None  # unknown until asked; True once a revocation is noted

    def generations(self, keys: Sequence[tuple[Kind, str]]) -> Mapping[tuple[Kind, str], int]:
        """The revocation count of each key that has one (keys never revoked are left out)."""
        if not keys or not self._has_any():
            return {}
        db = self._db
        found: dict[tuple[Kind, str], int] = {}
        with db.reading():
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                pairs = ", ".join("(?, ?)" for _ in chunk)
                params = [db.tenant, *(part for key in chunk for part in key)]
                for kind, value, generation in db.conn.execute(
                    f"SELECT kind, value, generation FROM revocations WHERE tenant_id = ? "  # noqa: S608
                    f"AND (kind, value) IN (VALUES {pairs})",  # placeholders only, never values
                    params,
                ):
                    found[(Kind(kind), value)] = int(generation)
        return found

    def note(self, keys: Iterable[tuple[Kind, str]]) -> None:
        """Count one more confirmed revocation of each key (committed on return)."""
        rows = [(self._db.tenant, str(kind), value) for kind, value in keys]
        if not rows:
            return
        db = self._db
        with db.writing():
            db.conn.executemany(
                "INSERT INTO revocations (tenant_id, kind, value, generation) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (tenant_id, kind, value) DO UPDATE SET generation = generation + 1",
                rows,
            )
        self._any = True

    def _has_any(self) -> bool:
        if self._any is None:
            db = self._db
            with db.reading():
                row = db.conn.execute(
                    "SELECT 1 FROM revocations WHERE tenant_id = ? LIMIT 1", (db.tenant,)
                ).fetchone()
            self._any = row is not None
        return self._any
