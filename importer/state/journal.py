"""The state journal: what one target tenant already holds, remembered on disk between runs.

A SQLite file (``--state FILE``; default ``default_state_path()``) shared by every target and
tenant, each seeing only its own rows. Per ``(target, tenant)`` it holds each feed's alert
definition id and, per definition, each indicator's kind, value, remote id, when it was first
recorded, and the id of the last run whose feed held it. Nothing of it lives in Python memory:
lookups go to the disk B-tree a batch at a time, so a million-indicator feed costs megabytes.

How the pipeline uses it (one ``Journal`` per run; calls are synchronous and take milliseconds)::

    with Journal.open(path, target="ti", tenant=f"{api_url} {client_id}") as journal:
        run = journal.begin_run()
        definition = journal.definition_id(feed.name)        # None: resolve it, then
        journal.set_definition_id(feed.name, resolved.id)
        journal.note_writing(resolved.id, run)                 # before the first write to it
        if journal.needs_listing(resolved.id):                 # a killed run wrote to it
            journal.replace_from_remote(resolved.id, listing); journal.settle(resolved.id)
        for batch in batches:                                  # ~500 keys each
            held = journal.present(resolved.id, keys)          # skip these: already in the target
            journal.mark_seen(resolved.id, list(held), run)
            result = await target.send(resolved, new_ones)
            journal.record_imported(resolved.id, acknowledged, run)   # committed on return
        for kind, value, remote_id in journal.stale(resolved.id, run): ...   # --mirror
        journal.forget(resolved.id, deleted_remote_ids)
        journal.replace_from_remote(resolved.id, listing)      # --reconcile (or areplace_...)
        journal.finish_run(run)                                # unless requests were cut off

Guarantees:

- ``record_imported`` is one transaction, committed before it returns; call it only once the
  target acknowledged the batch. A ``kill -9`` of the process loses nothing committed, and nothing
  half-written is ever visible (see ``importer.state.schema`` on WAL and ``synchronous``).
- Run ids only grow; ``stale`` is everything under a definition not seen in the given run.
- A run that never finished owes a listing of each definition it noted writing to, until a later
  run lists that definition and calls ``settle``; runs of other feeds in between change nothing.
- ``replace_from_remote`` changes the journal only once the listing was read to its end: an
  interrupted listing leaves the journal as it was.
- One process per ``(target, tenant)``: a second ``open`` fails at once with ``ConfigError``.
- Every SQLite failure, at open or later (disk full, file removed), is a ``ConfigError`` with one
  sentence; the journal is then unchanged since the last successful call.

A ``Journal`` may be called from any one thread at a time (e.g. via ``asyncio.to_thread``); calls
are serialised by a lock, and ``stale`` reads page by page, so deleting while iterating is safe.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from feeds.model import Kind
from importer.errors import ConfigError
from importer.model import RemoteIndicator
from importer.state.schema import Opened, connect

__all__ = ["Journal", "ReconcileResult", "default_state_path"]

_KINDS: dict[str, Kind] = {kind.value: kind for kind in Kind}
_IN_CHUNK = 500  # values per IN (...) list: far below SQLite's bound on host parameters
_PAGE = 1000  # rows per page of stale() and per staged batch of a reconciliation
_MERGE_EVERY = 100_000  # imported keys kept in memory (~20 MB) before the log is merged
_LOG_LIMIT = 1_000_000  # log rows of any sort (seen marks cost no memory) before a merge


def default_state_path(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$XDG_STATE_HOME/ti-importer/state.sqlite``, else ``~/.local/state/ti-importer/state.sqlite``.

    The XDG spec ignores a relative ``XDG_STATE_HOME``; so do we. ``environ`` defaults to the
    process environment (the settings module passes its own).
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else (home or Path.home()) / ".local" / "state"
    return root / "ti-importer" / "state.sqlite"


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What ``--reconcile`` changed in the journal of one definition."""

    listed: int  # indicators the target listed under the definition
    added: int  # held by the target, missing from the journal
    removed: int  # in the journal, no longer in the target (deleted in the portal, say)
    updated: int  # same kind and value, another remote id
    duplicates: int  # listed more than once by the target (the journal keeps the first id)


class Journal:
    """The journal of one ``(target, tenant)``; open with ``Journal.open``, use as a context manager."""

    def __init__(
        self,
        opened: Opened,
        path: Path,
        tenant_id: int,
        clock: Callable[[], float],
        merge_every: int = _MERGE_EVERY,
    ) -> None:
        self._opened = opened
        self._conn = opened.conn
        self._path = path
        self._tenant = tenant_id
        self._clock = clock
        self._lock = threading.RLock()
        self._scopes: dict[str, int] = {}
        # Keys acknowledged since the last merge: the log has no index, so ``present`` asks here.
        self._recent: set[tuple[int, str, str]] = set()
        self._logged = 1  # unknown at open: a killed run may have left its log to fold in
        self._merge_every = merge_every
        self._runs: set[int] = set()  # begun by this journal, so never "unfinished"
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        target: str,
        tenant: str,
        clock: Callable[[], float] = time.time,
        merge_every: int = _MERGE_EVERY,
    ) -> Journal:
        """Open (creating folders and schema) the journal at ``path`` for one target and tenant."""
        if not target or not tenant:
            raise ConfigError("the state journal needs a target and a tenant to keep them apart")
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
        journal = cls(opened, path, int(row[0]), clock, merge_every)
        try:
            journal._merge()  # replay what a killed run committed but did not fold in
        except BaseException:
            journal.close()
            raise
        return journal

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        """Fold the log in, close the file and release the tenant's lock (idempotent)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._merge()  # not needed for safety (the next open folds it in), but tidy
            finally:
                self._closed = True
                self._opened.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- alert definitions ------------------------------------------------------------------------

    def definition_id(self, feed_name: str) -> str | None:
        """The remote id of the feed's alert definition, if a run resolved it before."""
        with self._reading():
            row = self._conn.execute(
                "SELECT definition_id FROM feeds WHERE tenant_id = ? AND feed_name = ?",
                (self._tenant, feed_name),
            ).fetchone()
        return None if row is None else str(row[0])

    def set_definition_id(self, feed_name: str, definition_id: str) -> None:
        """Remember the feed's alert definition (committed on return)."""
        with self._writing():
            self._conn.execute(
                "INSERT INTO feeds (tenant_id, feed_name, definition_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, feed_name) DO UPDATE SET definition_id = excluded.definition_id, "
                "updated_at = excluded.updated_at",
                (self._tenant, feed_name, definition_id, int(self._clock())),
            )

    # -- runs and indicators ----------------------------------------------------------------------

    def begin_run(self) -> int:
        """A new run id, greater than every earlier one: what ``mark_seen`` and ``stale`` compare."""
        self._merge()
        with self._writing():
            cursor = self._conn.execute(
                "INSERT INTO runs (tenant_id, started_at) VALUES (?, ?)", (self._tenant, int(self._clock()))
            )
        assert cursor.lastrowid is not None
        self._runs.add(cursor.lastrowid)
        return cursor.lastrowid

    def finish_run(self, run_id: int) -> None:
        """Note that ``run_id`` ended normally (a run left unfinished was killed: see ``unfinished_runs``)."""
        self._merge()
        with self._writing():
            self._conn.execute(
                "UPDATE runs SET finished_at = ? WHERE id = ? AND tenant_id = ?",
                (int(self._clock()), run_id, self._tenant),
            )
            self._conn.execute("DELETE FROM run_scopes WHERE run = ?", (run_id,))

    def unfinished_runs(self) -> list[int]:
        """Earlier runs of this tenant that never finished: the process died, perhaps between the
        target's answer and the journal's commit (``needs_listing`` says where)."""
        with self._reading():
            rows = self._conn.execute(
                "SELECT id FROM runs WHERE tenant_id = ? AND finished_at IS NULL ORDER BY id", (self._tenant,)
            ).fetchall()
        return [int(run) for (run,) in rows if run not in self._runs]

    def note_writing(self, definition_id: str, run_id: int) -> None:
        """Note, before ``run_id`` first writes to the definition, that it does (committed on return):
        if the run dies, the next one lists this definition (``needs_listing``)."""
        with self._writing():
            scope = self._scope(definition_id, create=True)
            self._conn.execute(
                "INSERT INTO run_scopes (run, scope) VALUES (?, ?) ON CONFLICT DO NOTHING", (run_id, scope)
            )

    def needs_listing(self, definition_id: str) -> bool:
        """Whether an earlier run that never finished wrote to the definition: an answer it got may
        have missed its commit, so only a listing of the target tells what the definition holds."""
        with self._reading():
            scope = self._scope(definition_id, create=False)
            if scope is None:
                return False
            rows = self._conn.execute(
                "SELECT run_scopes.run FROM run_scopes JOIN runs ON runs.id = run_scopes.run "
                "WHERE run_scopes.scope = ? AND runs.finished_at IS NULL",
                (scope,),
            ).fetchall()
        return any(run not in self._runs for (run,) in rows)

    def settle(self, definition_id: str) -> None:
        """The definition was just listed into the journal: earlier unfinished runs no longer need
        it listed; those left with nothing to list count as finished."""
        with self._writing():
            scope = self._scope(definition_id, create=False)
            if scope is None:
                return
            ours = sorted(self._runs) or [0]  # run ids start at 1; NOT IN (NULL) would match nothing
            marks = ",".join("?" * len(ours))
            self._conn.execute(
                f"DELETE FROM run_scopes WHERE scope = ? AND run NOT IN ({marks})",  # noqa: S608 -- only "?" marks
                (scope, *ours),
            )
            self._conn.execute(
                f"UPDATE runs SET finished_at = ? WHERE tenant_id = ? AND finished_at IS NULL "  # noqa: S608
                f"AND id NOT IN ({marks}) AND NOT EXISTS (SELECT 1 FROM run_scopes WHERE run = runs.id)",
                (int(self._clock()), self._tenant, *ours),
            )

    def present(self, definition_id: str, keys: Sequence[tuple[Kind, str]]) -> set[tuple[Kind, str]]:
        """Which of ``keys`` the journal holds under the definition (one indexed lookup per chunk)."""
        found: set[tuple[Kind, str]] = set()
        with self._reading():
            scope = self._scope(definition_id, create=False)
            if scope is None:
                return found
            recent = self._recent
            for kind, values in _by_kind(keys).items():
                if recent:
                    found.update((kind, value) for value in values if (scope, kind, value) in recent)
                for start in range(0, len(values), _IN_CHUNK):
                    chunk = values[start : start + _IN_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(
                        f"SELECT value FROM indicators WHERE scope = ? AND kind = ? AND value IN ({marks})",  # noqa: S608 -- only "?" marks are interpolated
                        (scope, kind, *chunk),
                    )
                    found.update((kind, value) for (value,) in rows)
        return found

    def mark_seen(self, definition_id: str, keys: Sequence[tuple[Kind, str]], run_id: int) -> None:
        """Note that this run's feed holds ``keys`` (those the journal knows; others are ignored)."""
        if keys:
            rows = [(kind, value, None) for kind, value in keys]
            self._append([(definition_id, rows)], run_id, create=False)

    def record_imported(
        self, definition_id: str, items: Sequence[tuple[Kind, str, str]], run_id: int
    ) -> None:
        """Record acknowledged ``(kind, value, remote_id)`` items, seen in ``run_id``: one transaction,
        committed before return. A key already known keeps its first date and takes the new id."""
        self.record_imported_many([(definition_id, items)], run_id)

    def record_imported_many(
        self, batches: Sequence[tuple[str, Sequence[tuple[Kind, str, str]]]], run_id: int
    ) -> None:
        """``record_imported`` for several ``(definition id, items)`` batches in one transaction:
        all of them are committed before return, or none."""
        scopes = self._append(batches, run_id, create=True)
        # Only after the commit: a rolled-back batch must not answer "present".
        for scope, (_, items) in zip(scopes, batches, strict=True):
            assert scope is not None  # created if new
            self._recent.update((scope, kind, value) for kind, value, _ in items)
        if len(self._recent) >= self._merge_every:
            self._merge()

    def stale(self, definition_id: str, run_id: int) -> Iterator[tuple[Kind, str, str]]:
        """``(kind, value, remote_id)`` under the definition not seen in ``run_id`` (mirror mode).

        Read page by page in key order, each page a fresh query: bounded memory, and ``forget``
        may be called between items without disturbing the iteration."""
        self._merge()
        with self._reading():
            scope = self._scope(definition_id, create=False)
        if scope is None:
            return
        after = ("", "")
        while True:
            with self._reading():
                page = self._conn.execute(
                    "SELECT kind, value, remote_id FROM indicators WHERE scope = ? AND last_seen <> ? "
                    "AND (kind, value) > (?, ?) ORDER BY kind, value LIMIT ?",
                    (scope, run_id, *after, _PAGE),
                ).fetchall()
            for kind, value, remote_id in page:
                yield _KINDS[kind], value, remote_id
            if len(page) < _PAGE:
                return
            after = (page[-1][0], page[-1][1])

    def count(self, definition_id: str) -> int:
        """How many indicators the journal holds under the definition."""
        self._merge()
        with self._reading():
            scope = self._scope(definition_id, create=False)
            if scope is None:
                return 0
            return int(
                self._conn.execute("SELECT count(*) FROM indicators WHERE scope = ?", (scope,)).fetchone()[0]
            )

    def forget(self, definition_id: str, remote_ids: Sequence[str]) -> None:
        """Drop the indicators the target deleted (committed on return)."""
        self._merge()
        with self._writing():
            scope = self._scope(definition_id, create=False)
            if scope is None:
                return
            self._conn.executemany(
                "DELETE FROM indicators WHERE scope = ? AND remote_id = ?",
                ((scope, remote_id) for remote_id in remote_ids),
            )

    def _append(
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
        with self._writing():
            for definition_id, rows in batches:
                scope = self._scope(definition_id, create=create)
                scopes.append(scope)
                if scope is None:
                    continue
                # A generator, not a list: rows stream into SQLite without a second copy of the
                # batch. ``Kind`` is a ``str``, so it binds as its text without conversion.
                self._conn.executemany(
                    "INSERT INTO log (tenant_id, scope, kind, value, remote_id, at, run) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        (self._tenant, scope, kind, value, remote_id, now, run_id)
                        for kind, value, remote_id in rows
                    ),
                )
                added += len(rows)
        self._logged += added
        if self._logged >= _LOG_LIMIT:
            self._merge()
        return scopes

    def _merge(self) -> None:
        """Fold the log into ``indicators`` in key order, in one transaction, and empty it."""
        if not self._logged:
            return
        with self._writing():
            self._conn.execute(
                "INSERT INTO indicators (scope, kind, value, remote_id, imported_at, last_seen) "
                "SELECT scope, kind, value, remote_id, at, run FROM log "
                "WHERE tenant_id = ? AND remote_id IS NOT NULL ORDER BY scope, kind, value, id "
                "ON CONFLICT (scope, kind, value) DO UPDATE SET remote_id = excluded.remote_id, "
                "last_seen = max(last_seen, excluded.last_seen)",
                (self._tenant,),
            )
            self._conn.execute(
                "UPDATE indicators SET last_seen = s.run FROM "
                "(SELECT scope, kind, value, max(run) AS run FROM log "
                "WHERE tenant_id = ? AND remote_id IS NULL GROUP BY scope, kind, value) AS s "
                "WHERE indicators.scope = s.scope AND indicators.kind = s.kind "
                "AND indicators.value = s.value AND indicators.last_seen < s.run",
                (self._tenant,),
            )
            self._conn.execute("DELETE FROM log WHERE tenant_id = ?", (self._tenant,))
        self._logged = 0
        self._recent.clear()

    # -- reconciliation -----------------------------------------------------------------------------

    def replace_from_remote(self, definition_id: str, remote: Iterable[RemoteIndicator]) -> ReconcileResult:
        """Make the definition's journal equal to what the target lists (``--reconcile``).

        The listing is staged on disk a page at a time; the journal changes in one transaction at
        the end, and not at all if ``remote`` raises part way."""
        scope = self._start_reconcile(definition_id)
        listed = duplicates = 0
        page: list[RemoteIndicator] = []
        for item in remote:
            page.append(item)
            if len(page) >= _PAGE:
                listed, duplicates = self._stage(scope, page, listed, duplicates)
                page = []
        listed, duplicates = self._stage(scope, page, listed, duplicates)
        return self._finish_reconcile(scope, listed, duplicates)

    async def areplace_from_remote(
        self, definition_id: str, remote: AsyncIterable[RemoteIndicator]
    ) -> ReconcileResult:
        """``replace_from_remote`` for an async listing such as ``Target.existing(definition)``."""
        scope = self._start_reconcile(definition_id)
        listed = duplicates = 0
        page: list[RemoteIndicator] = []
        async for item in remote:
            page.append(item)
            if len(page) >= _PAGE:
                listed, duplicates = self._stage(scope, page, listed, duplicates)
                page = []
        listed, duplicates = self._stage(scope, page, listed, duplicates)
        return self._finish_reconcile(scope, listed, duplicates)

    def _start_reconcile(self, definition_id: str) -> int:
        self._merge()
        with self._writing():
            scope = self._scope(definition_id, create=True)
            assert scope is not None
            # Leftovers of a listing interrupted earlier (by a crash, say) must not count now.
            self._conn.execute("DELETE FROM reconcile_stage WHERE scope = ?", (scope,))
        return scope

    def _stage(
        self, scope: int, page: list[RemoteIndicator], listed: int, duplicates: int
    ) -> tuple[int, int]:
        if not page:
            return listed, duplicates
        with self._writing():
            cursor = self._conn.executemany(
                "INSERT INTO reconcile_stage (scope, kind, value, remote_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                ((scope, item.kind.value, item.value, item.remote_id) for item in page),
            )
        return listed + len(page), duplicates + len(page) - cursor.rowcount

    def _finish_reconcile(self, scope: int, listed: int, duplicates: int) -> ReconcileResult:
        match = "r.scope = indicators.scope AND r.kind = indicators.kind AND r.value = indicators.value"
        with self._writing():
            removed = self._conn.execute(
                f"DELETE FROM indicators WHERE scope = ? AND NOT EXISTS "  # noqa: S608 -- constant text
                f"(SELECT 1 FROM reconcile_stage r WHERE {match})",
                (scope,),
            ).rowcount
            updated = self._conn.execute(
                f"UPDATE indicators SET remote_id = r.remote_id FROM reconcile_stage r "  # noqa: S608
                f"WHERE indicators.scope = ? AND {match} AND r.remote_id <> indicators.remote_id",
                (scope,),
            ).rowcount
            added = self._conn.execute(
                "INSERT INTO indicators (scope, kind, value, remote_id, imported_at, last_seen) "
                "SELECT scope, kind, value, remote_id, ?, 0 FROM reconcile_stage WHERE scope = ? "
                "ON CONFLICT DO NOTHING",
                (int(self._clock()), scope),
            ).rowcount
            self._conn.execute("DELETE FROM reconcile_stage WHERE scope = ?", (scope,))
        return ReconcileResult(listed, added, removed, updated, duplicates)

    # -- plumbing ---------------------------------------------------------------------------------

    def _scope(self, definition_id: str, *, create: bool) -> int | None:
        """The small integer standing for this tenant's definition (cached; created on demand)."""
        scope = self._scopes.get(definition_id)
        if scope is not None:
            return scope
        if create:
            self._conn.execute(
                "INSERT INTO scopes (tenant_id, definition_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (self._tenant, definition_id),
            )
        row = self._conn.execute(
            "SELECT id FROM scopes WHERE tenant_id = ? AND definition_id = ?", (self._tenant, definition_id)
        ).fetchone()
        if row is None:
            return None
        self._scopes[definition_id] = int(row[0])
        return int(row[0])

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise ConfigError(f"cannot read the state journal {self._path}: {exc}") from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                    self._scopes.clear()  # a scope created in the rolled-back transaction is gone
                    raise
            except sqlite3.Error as exc:
                raise ConfigError(f"cannot write the state journal {self._path}: {exc}") from None


def _by_kind(keys: Iterable[tuple[Kind, str]]) -> dict[Kind, list[str]]:
    groups: dict[Kind, list[str]] = {}
    for kind, value in keys:
        groups.setdefault(kind, []).append(value)
    return groups
