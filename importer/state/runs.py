"""The journal's runs: ids that only grow, and what a run that never finished leaves owing (a listing).

A run is a row in ``runs``; ``finished_at`` stays NULL until it ends normally, so a NULL on a run
this process did not begin means the process running it died (``kill -9``, power loss). Such a
run may have had a batch acknowledged by the target and never committed here, so each definition
it wrote to must be listed from the target before the journal's answers about it are trusted.
``run_scopes`` names those definitions: a row is noted before the run's first write to one, and
goes once that definition was listed (``settle``) or when the run finishes; a killed run with no
row left is then counted finished by ``settle``. Runs of other feeds in between change nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from importer.state.tenant_db import TenantDb

__all__ = ["Runs"]


class Runs:
    """One tenant's runs, as seen by the journal that began some of them.

    ``Journal``'s run methods (``begin_run``, ``needs_listing``, ...) call these; their contracts
    are written there."""

    def __init__(self, db: TenantDb, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._ours: set[int] = set()  # begun by this journal, so never "unfinished"

    def begin(self) -> int:
        db = self._db
        with db.writing():
            cursor = db.conn.execute(
                "INSERT INTO runs (tenant_id, started_at) VALUES (?, ?)", (db.tenant, int(self._clock()))
            )
        assert cursor.lastrowid is not None
        self._ours.add(cursor.lastrowid)
        return cursor.lastrowid

    def finish(self, run_id: int) -> None:
        db = self._db
        with db.writing():
            db.conn.execute(
                "UPDATE runs SET finished_at = ? WHERE id = ? AND tenant_id = ?",
                (int(self._clock()), run_id, db.tenant),
            )
            db.conn.execute("DELETE FROM run_scopes WHERE run = ?", (run_id,))

    def unfinished(self) -> list[int]:
        db = self._db
        with db.reading():
            rows = db.conn.execute(
                "SELECT id FROM runs WHERE tenant_id = ? AND finished_at IS NULL ORDER BY id", (db.tenant,)
            ).fetchall()
        return [int(run) for (run,) in rows if run not in self._ours]

    def note_writing(self, definition_id: str, run_id: int) -> None:
        db = self._db
        with db.writing():
            scope = db.scope(definition_id, create=True)
            db.conn.execute(
                "INSERT INTO run_scopes (run, scope) VALUES (?, ?) ON CONFLICT DO NOTHING", (run_id, scope)
            )

    def needs_listing(self, definition_id: str) -> bool:
        db = self._db
        with db.reading():
            scope = db.scope(definition_id, create=False)
            if scope is None:
                return False
            rows = db.conn.execute(
                "SELECT run_scopes.run FROM run_scopes JOIN runs ON runs.id = run_scopes.run "
                "WHERE run_scopes.scope = ? AND runs.finished_at IS NULL",
                (scope,),
            ).fetchall()
        return any(run not in self._ours for (run,) in rows)

    def settle(self, definition_id: str) -> None:
        db = self._db
        with db.writing():
            scope = db.scope(definition_id, create=False)
            if scope is None:
                return
            ours = sorted(self._ours) or [0]  # run ids start at 1; NOT IN (NULL) would match nothing
            marks = ",".join("?" * len(ours))
            db.conn.execute(
                f"DELETE FROM run_scopes WHERE scope = ? AND run NOT IN ({marks})",  # noqa: S608 -- only "?" marks
                (scope, *ours),
            )
            db.conn.execute(
                f"UPDATE runs SET finished_at = ? WHERE tenant_id = ? AND finished_at IS NULL "  # noqa: S608
                f"AND id NOT IN ({marks}) AND NOT EXISTS (SELECT 1 FROM run_scopes WHERE run = runs.id)",
                (int(self._clock()), db.tenant, *ours),
            )
