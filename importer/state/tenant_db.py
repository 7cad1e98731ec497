"""One tenant's handle on the journal file: its row, serialised transactions, one-sentence errors, scope ids.

Every part of the journal (``journal``, ``write_log``, ``reconcile``) reads and writes through the
one ``TenantDb`` its ``Journal`` opened. A lock serialises the calls, so any one thread at a time
may use the journal (e.g. via ``asyncio.to_thread``); ``writing`` is one ``BEGIN IMMEDIATE ...
COMMIT`` transaction; and every SQLite failure after open leaves as a ``ConfigError`` naming the
file (``importer.state.schema`` words the failures at open). Rows carry the tenant's id, and rows
of indicators the small integer ``scope`` standing for one of its definitions.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from importer.errors import ConfigError
from importer.state.schema import CACHE_KIB, SORT_CACHE_KIB, Opened, connect

__all__ = ["TenantDb"]


class TenantDb:
    """The connection of one ``(target, tenant)``, its lock, and its definitions' scopes."""

    def __init__(self, opened: Opened, path: Path, tenant_id: int) -> None:
        self.conn = opened.conn
        self.path = path
        self.tenant = tenant_id
        # Re-entrant: a write may look up a scope, and ``Journal.close`` holds it around its merge.
        self.lock = threading.RLock()
        self.closed = False
        self._opened = opened
        self._scopes: dict[str, int] = {}

    @classmethod
    def open(cls, path: Path, *, target: str, tenant: str) -> TenantDb:
        """Lock and open the journal at ``path`` (see ``schema.connect``), adding the tenant's row if new."""
        opened = connect(path, target=target, tenant=tenant)
        try:
            opened.conn.execute("BEGIN IMMEDIATE")
            opened.conn.execute(
                "INSERT INTO tenants (target, tenant) VALUES (?, ?) ON CONFLICT DO NOTHING", (target, tenant)
            )
            row = opened.conn.execute(
                "SELECT id FROM tenants WHERE target = ? AND tenant = ?", (target, tenant)
            ).fetchone()
            opened.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            opened.close()
            raise ConfigError(f"cannot use the state journal {path}: {exc}") from None
        return cls(opened, path, int(row[0]))

    def close(self) -> None:
        """Close the file and release the tenant's lock file."""
        self.closed = True
        self._opened.close()

    def scope(self, definition_id: str, *, create: bool) -> int | None:
        """The small integer standing for this tenant's definition (cached; created on demand).

        Call it inside ``reading`` or ``writing``; with ``create``, inside ``writing``."""
        scope = self._scopes.get(definition_id)
        if scope is not None:
            return scope
        if create:
            self.conn.execute(
                "INSERT INTO scopes (tenant_id, definition_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (self.tenant, definition_id),
            )
        row = self.conn.execute(
            "SELECT id FROM scopes WHERE tenant_id = ? AND definition_id = ?", (self.tenant, definition_id)
        ).fetchone()
        if row is None:
            return None
        self._scopes[definition_id] = int(row[0])
        return int(row[0])

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Reads under the lock; a SQLite failure becomes a ``ConfigError``."""
        with self.lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise ConfigError(f"cannot read the state journal {self.path}: {exc}") from None

    @contextlib.contextmanager
    def sorting(self) -> Iterator[None]:
        """A small page cache for a big ``ORDER BY`` inside ``writing`` (see ``SORT_CACHE_KIB``)."""
        self.conn.execute(f"PRAGMA cache_size = -{SORT_CACHE_KIB}")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self.conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                    self._scopes.clear()  # a scope created in the rolled-back transaction is gone
                    raise
            except sqlite3.Error as exc:
                raise ConfigError(f"cannot write the state journal {self.path}: {exc}") from None
