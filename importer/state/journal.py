"""The state journal: what one target tenant already holds, remembered on disk between runs.

A SQLite file (``--state FILE``; default ``default_state_path()``) shared by every target and
tenant, each seeing only its own rows. Per ``(target, tenant)`` it holds each feed's alert
definition id and, per definition, each indicator's kind, value, remote id, the stamp of what was
sent (``model.Stamp``: metadata digest and expiry), whether the definition owns the value
(``unique_values`` targets), when it was first recorded, and the id of the last run whose feed
held it. Nothing of it lives in Python memory:
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
            held = journal.held(resolved.id, keys)             # key -> remote id, stamp, owner
            journal.mark_seen(resolved.id, list(held), run)
            journal.mark_shared(resolved.id, owned_elsewhere, run)     # unique values only
            result = await target.send(resolved, new_ones)     # or target.update(changed ones)
            journal.record([(resolved.id, acknowledged)], run)  # with stamps; committed on return
        for kind, value, remote_id in journal.stale(resolved.id, run): ...   # --mirror
        journal.forget_keys(resolved.id, deleted_keys)         # or forget(..., remote ids)
        journal.replace_from_remote(resolved.id, listing)      # --reconcile (or areplace_...)
        journal.finish_run(run)                                # unless requests were cut off

Guarantees:

- ``record`` (and ``record_imported``) is one transaction, committed before it returns; call it only once the
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

Its parts, each a module of ``importer.state``: ``schema`` opens the file; ``tenant_db`` holds the
tenant's connection, lock and transactions; ``write_log`` takes each batch commit and folds it into
``indicators``; ``runs`` keeps run ids and what a killed run owes; ``reconcile`` stages a target's
listing and applies it. This module is their one interface, and itself keeps the feeds'
definitions and the reads and deletes of ``indicators``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from feeds.model import Kind
from importer.errors import ConfigError
from importer.model import Held, RemoteIndicator, Stamp
from importer.state.cursors import Cursors
from importer.state.reconcile import ReconcileResult, StagedListing
from importer.state.revocations import Revocations
from importer.state.runs import Runs
from importer.state.tenant_db import TenantDb
from importer.state.versions import Versions
from importer.state.write_log import MERGE_EVERY, Acked, WriteLog

__all__ = ["Acked", "Journal", "ReconcileResult", "default_cache_dir", "default_state_path"]

_KINDS: dict[str, Kind] = {kind.value: kind for kind in Kind}
_IN_CHUNK = 500  # values per IN (...) list: far below SQLite's bound on host parameters
_PAGE = 1000  # rows per page of stale()


def default_state_path(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$XDG_STATE_HOME/ti-importer/state.sqlite``, else ``~/.local/state/ti-importer/state.sqlite``.

    The XDG spec ignores a relative ``XDG_STATE_HOME``; so do we. ``environ`` defaults to the
    process environment (the settings module passes its own).
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else (home or Path.home()) / ".local" / "state"
    return root / "ti-importer" / "state.sqlite"


def default_cache_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$XDG_CACHE_HOME/ti-importer``, else ``~/.cache/ti-importer``: what may be rebuilt at any time
    (the warning lists' compiled tables) when there is no journal's folder to keep it beside."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else (home or Path.home()) / ".cache"
    return root / "ti-importer"


class Journal:
    """The journal of one ``(target, tenant)``; open with ``Journal.open``, use as a context manager."""

    def __init__(
        self,
        db: TenantDb,
        clock: Callable[[], float],
        merge_every: int = MERGE_EVERY,
        *,
        unique_values: bool = False,
    ) -> None:
        self._db = db
        self._conn = db.conn
        self._tenant = db.tenant
        self._clock = clock
        self._unique = unique_values
        self._log = WriteLog(db, clock, merge_every, unique_values=unique_values)
        self._runs = Runs(db, clock)
        self._cursors = Cursors(db, clock)
        self._revocations = Revocations(db)
        self._versions = Versions(db)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        target: str,
        tenant: str,
        clock: Callable[[], float] = time.time,
        merge_every: int = MERGE_EVERY,
        unique_values: bool = False,
    ) -> Journal:
        """Open (creating folders and schema) the journal at ``path`` for one target and tenant.

        ``unique_values``: the target holds one indicator per value in the whole tenant (``mde``),
        so definitions share values and one of them owns each (see ``held`` and ``elsewhere``)."""
        if not target or not tenant:
            raise ConfigError("the state journal needs a target and a tenant to keep them apart")
        db = TenantDb.open(path, target=target, tenant=tenant)
        journal = cls(db, clock, merge_every, unique_values=unique_values)
        try:
            journal._log.merge()  # replay what a killed run committed but did not fold in
        except BaseException:
            journal.close()
            raise
        return journal

    @property
    def path(self) -> Path:
        return self._db.path

    def close(self) -> None:
        """Fold the log in, close the file and release the tenant's lock (idempotent)."""
        with self._db.lock:
            if self._db.closed:
                return
            try:
                self._log.merge()  # not needed for safety (the next open folds it in), but tidy
            finally:
                self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- alert definitions ------------------------------------------------------------------------

    def definition_id(self, feed_name: str) -> str | None:
        """The remote id of the feed's alert definition, if a run resolved it before."""
        with self._db.reading():
            row = self._conn.execute(
                "SELECT definition_id FROM feeds WHERE tenant_id = ? AND feed_name = ?",
                (self._tenant, feed_name),
            ).fetchone()
        return None if row is None else str(row[0])

    def set_definition_id(self, feed_name: str, definition_id: str) -> None:
        """Remember the feed's alert definition (committed on return)."""
        with self._db.writing():
            self._conn.execute(
                "INSERT INTO feeds (tenant_id, feed_name, definition_id, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, feed_name) DO UPDATE SET definition_id = excluded.definition_id, "
                "updated_at = excluded.updated_at",
                (self._tenant, feed_name, definition_id, int(self._clock())),
            )

    def cursor(self, feed_name: str, source: str) -> str | None:
        """Where the feed's last completed pull of ``source`` got to (``state.cursors``); None: nowhere."""
        return self._cursors.get(feed_name, source)

    def set_cursor(self, feed_name: str, source: str, cursor: str) -> None:
        """Keep the feed's cursor once its pull completed and was acknowledged (committed on return)."""
        self._cursors.set(feed_name, source, cursor)

    def revocations(self, keys: Sequence[tuple[Kind, str]]) -> Mapping[tuple[Kind, str], int]:
        """How many times the target revoked each key for good (``state.revocations``); never: absent."""
        return self._revocations.generations(keys)

    def note_revoked(self, keys: Iterable[tuple[Kind, str]]) -> None:
        """Count a confirmed permanent revocation of each key (committed on return)."""
        self._revocations.note(keys)

    @property
    def versions(self) -> Versions:
        """The values each object of a pull source produced, per feed (``state.versions``)."""
        return self._versions

    # -- runs -------------------------------------------------------------------------------------

    def begin_run(self) -> int:
        """A new run id, greater than every earlier one: what ``mark_seen`` and ``stale`` compare."""
        self._log.merge()
        return self._runs.begin()

    def finish_run(self, run_id: int) -> None:
        """Note that ``run_id`` ended normally (a run left unfinished was killed: see ``unfinished_runs``)."""
        self._log.merge()
        self._runs.finish(run_id)

    def unfinished_runs(self) -> list[int]:
        """Earlier runs of this tenant that never finished: the process died, perhaps between the
        target's answer and the journal's commit (``needs_listing`` says where)."""
        return self._runs.unfinished()

    def note_writing(self, definition_id: str, run_id: int) -> None:
        """Note, before ``run_id`` first writes to the definition, that it does (committed on return):
        if the run dies, the next one lists this definition (``needs_listing``)."""
        self._runs.note_writing(definition_id, run_id)

    def needs_listing(self, definition_id: str) -> bool:
        """Whether an earlier run that never finished wrote to the definition: an answer it got may
        have missed its commit, so only a listing of the target tells what the definition holds."""
        return self._runs.needs_listing(definition_id)

    def settle(self, definition_id: str) -> None:
        """The definition was just listed into the journal: earlier unfinished runs no longer need
        it listed; those left with nothing to list count as finished."""
        self._runs.settle(definition_id)

    # -- indicators -------------------------------------------------------------------------------

    def present(self, definition_id: str, keys: Sequence[tuple[Kind, str]]) -> set[tuple[Kind, str]]:
        """Which of ``keys`` the journal holds under the definition (``held``, without what)."""
        return {key for key, held in self.held(definition_id, keys).items() if not held.elsewhere}

    def held(self, definition_id: str, keys: Sequence[tuple[Kind, str]]) -> dict[tuple[Kind, str], Held]:
        """What the journal knows of those of ``keys`` the definition holds (one indexed lookup per
        chunk). With ``unique_values``, a key another definition of the tenant owns is answered
        with ``elsewhere`` set; a key this definition lists without owning, and nobody owns (its
        owner dropped it), is not held: it is this feed's to send."""
        found: dict[tuple[Kind, str], Held] = {}
        if self._unique or self._log.unseen(definition_id):
            # Ownership is decided by a merge (mde's feeds are small); a created definition's keys
            # are in the log only (``created``), so this rare question waits for one.
            self._log.merge()
        with self._db.reading():
            scope = self._db.scope(definition_id, create=False)
            if scope is None and not self._unique:
                return found
            groups = _by_kind(keys)
            if scope is not None:
                recent = self._log.recent  # acknowledged, not yet in the table: newer
                for kind, values in groups.items():
                    found.update(self._rows(scope, kind, values))
                    if recent:
                        for value in values:
                            hit = recent.get((scope, kind, value))
                            if hit is not None:
                                found[kind, value] = hit
            if self._unique:
                self._find_owners(scope, groups, found)
        return found

    def listed(self, definition_id: str, keys: Sequence[tuple[Kind, str]]) -> dict[tuple[Kind, str], Held]:
        """Those of ``keys`` the definition lists, owned or not (``Held.elsewhere``: not owned), as
        its own rows say — unlike ``held``, which answers for the owner. What a source retires from
        a feed that lists a value it does not own must leave that listing too."""
        self._log.merge()
        found: dict[tuple[Kind, str], Held] = {}
        with self._db.reading():
            scope = self._db.scope(definition_id, create=False)
            if scope is not None:
                for kind, values in _by_kind(keys).items():
                    found.update(self._rows(scope, kind, values))
        return found

    def _rows(
        self, scope: int, kind: Kind, values: Sequence[str], *, elsewhere: bool = False, owners: bool = True
    ) -> Iterator[tuple[tuple[Kind, str], Held]]:
        """``indicators`` rows of one kind in ``scope`` or, with ``elsewhere``, those the tenant's
        other scopes own (with ``owners`` off: those they list, owned or not)."""
        others = "scope IN (SELECT id FROM scopes WHERE tenant_id = ? AND id <> ?)"
        where = (others + (" AND owned = 1" if owners else "")) if elsewhere else "scope = ?"
        head = (self._tenant, scope) if elsewhere else (scope,)
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT value, remote_id, meta, expires, imported_at, owned FROM indicators "  # noqa: S608 -- only fixed text and "?" marks
                f"WHERE {where} AND kind = ? AND value IN ({marks})",
                (*head, kind, *chunk),
            )
            # Positional named tuples: one per held indicator of every rerun.
            for value, remote_id, meta, expires, since, owned in rows:
                stamp = None if meta is None else Stamp(meta, expires)
                yield (kind, value), Held(remote_id, stamp, since, elsewhere or not owned)

    def _find_owners(
        self, scope: int | None, groups: dict[Kind, list[str]], found: dict[tuple[Kind, str], Held]
    ) -> None:
        """Unique values: a key this definition does not own is answered by its owner elsewhere,
        or left out of ``found`` when nobody owns it (``held``)."""
        for kind, values in groups.items():
            unowned = [v for v in values if (kind, v) not in found or found[kind, v].elsewhere]
            owners = dict(self._rows(-1 if scope is None else scope, kind, unowned, elsewhere=True))
            for value in unowned:
                owner = owners.get((kind, value))
                if owner is not None:
                    found[kind, value] = owner
                else:
                    found.pop((kind, value), None)

    def mark_seen(self, definition_id: str, keys: Sequence[tuple[Kind, str]], run_id: int) -> None:
        """Note that this run's feed holds ``keys`` (those the journal knows; others are ignored)."""
        if keys:
            rows = [(kind, value, None, None, True) for kind, value in keys]
            self._log.append([(definition_id, rows)], run_id, create=False)

    def mark_shared(self, definition_id: str, items: Sequence[tuple[Kind, str, str]], run_id: int) -> None:
        """Note that this run's feed lists ``(kind, value, remote_id)`` items that another definition
        of the tenant owns (``held``'s ``elsewhere``): mirror mode of that definition then keeps
        them, and this one takes them over once their owner drops them."""
        if items:
            rows = [(kind, value, remote_id, None, False) for kind, value, remote_id in items]
            self._log.append([(definition_id, rows)], run_id, create=True)

    def record_imported(
        self, definition_id: str, items: Sequence[tuple[Kind, str, str]], run_id: int
    ) -> None:
        """Record acknowledged ``(kind, value, remote_id)`` items, seen in ``run_id``, without a stamp
        (``record`` takes stamps): one transaction, committed before return. A key already known
        keeps its first date and takes the new id."""
        self.record([(definition_id, [(*item, None) for item in items])], run_id)

    @property
    def unique_values(self) -> bool:
        """Whether definitions share values, one owning each (``open``'s ``unique_values``)."""
        return self._unique

    def created(self, definition_id: str) -> None:
        """The target created the definition in this run, so nothing asks what it holds before the
        run ends: its acknowledged keys are not kept in memory for ``held``, and the log is merged
        once per ``LOG_LIMIT`` rows instead of every ``merge_every`` keys. ``held`` stays exact."""
        self._log.created(definition_id)

    def record(self, batches: Sequence[tuple[str, Sequence[Acked]]], run_id: int) -> None:
        """Record acknowledged ``(kind, value, remote_id, stamp)`` items of several definitions in
        one transaction, seen in ``run_id``: all of them are committed before return, or none. The
        stamp is what was sent; with ``unique_values`` the definition now owns those values."""
        self._log.record(batches, run_id)

    def elsewhere(self, definition_id: str, keys: Sequence[tuple[Kind, str]]) -> set[tuple[Kind, str]]:
        """Those of ``keys`` another definition of the tenant also lists (owned or not). Always
        empty without ``unique_values``: there, each definition holds its own copy."""
        found: set[tuple[Kind, str]] = set()
        if not self._unique or not keys:
            return found
        self._log.merge()
        with self._db.reading():
            scope = self._db.scope(definition_id, create=False)
            here = -1 if scope is None else scope
            for kind, values in _by_kind(keys).items():
                found.update(key for key, _ in self._rows(here, kind, values, elsewhere=True, owners=False))
        return found

    def stale(self, definition_id: str, run_id: int) -> Iterator[tuple[Kind, str, str]]:
        """``(kind, value, remote_id)`` under the definition not seen in ``run_id`` (mirror mode).

        Read page by page in key order, each page a fresh query: bounded memory, and ``forget``
        may be called between items without disturbing the iteration."""
        self._log.merge()
        with self._db.reading():
            scope = self._db.scope(definition_id, create=False)
        if scope is None:
            return
        after = ("", "")
        while True:
            with self._db.reading():
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
        self._log.merge()
        with self._db.reading():
            scope = self._db.scope(definition_id, create=False)
            if scope is None:
                return 0
            return int(
                self._conn.execute("SELECT count(*) FROM indicators WHERE scope = ?", (scope,)).fetchone()[0]
            )

    def forget(self, definition_id: str, remote_ids: Sequence[str]) -> None:
        """Drop the indicators the target deleted, by remote id (committed on return).

        Remote ids are not indexed (see the schema): each call reads the definition's rows once.
        Who knows the keys (mirror mode) calls ``forget_keys``, one indexed delete per key."""
        if not remote_ids:
            return
        self._log.merge()
        with self._db.writing():
            scope = self._db.scope(definition_id, create=False)
            if scope is not None:
                self._conn.execute(
                    "DELETE FROM indicators WHERE scope = ? AND remote_id IN "
                    "(SELECT value FROM json_each(?))",
                    (scope, json.dumps(list(remote_ids))),
                )

    def forget_keys(self, definition_id: str, keys: Sequence[tuple[Kind, str]]) -> None:
        """Drop these keys from the definition (committed on return): the target deleted them, or
        keeps them because another definition lists them (mirror mode's ``kept_shared``)."""
        self._log.merge()
        with self._db.writing():
            scope = self._db.scope(definition_id, create=False)
            if scope is not None:
                self._conn.executemany(
                    "DELETE FROM indicators WHERE scope = ? AND kind = ? AND value = ?",
                    ((scope, kind, value) for kind, value in keys),
                )

    # -- reconciliation ---------------------------------------------------------------------------

    def replace_from_remote(self, definition_id: str, remote: Iterable[RemoteIndicator]) -> ReconcileResult:
        """Make the definition's journal equal to what the target lists (``--reconcile``).

        The listing is staged on disk a page at a time; the journal changes in one transaction at
        the end, and not at all if ``remote`` raises part way."""
        listing = self._start_listing(definition_id)
        for item in remote:
            listing.add(item)
        return listing.apply()

    async def areplace_from_remote(
        self, definition_id: str, remote: AsyncIterable[RemoteIndicator]
    ) -> ReconcileResult:
        """``replace_from_remote`` for an async listing such as ``Target.existing(definition)``."""
        listing = self._start_listing(definition_id)
        async for item in remote:
            listing.add(item)
        return listing.apply()

    def _start_listing(self, definition_id: str) -> StagedListing:
        self._log.merge()  # the listing is compared with ``indicators``: the log must be in it
        return StagedListing.start(self._db, self._clock, definition_id, unique_values=self._unique)


def _by_kind(keys: Iterable[tuple[Kind, str]]) -> dict[Kind, list[str]]:
    groups: dict[Kind, list[str]] = {}
    for kind, value in keys:
        groups.setdefault(kind, []).append(value)
    return groups
