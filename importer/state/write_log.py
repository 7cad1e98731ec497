"""The journal's write log: acknowledged and seen keys appended cheaply, later folded into ``indicators``.

A batch commit appends its rows to the ``log`` table (remote id set: acknowledged by the target;
remote id NULL: seen in a run) instead of dirtying one random page of the big key-ordered
``indicators`` table per key; ``merge`` folds the log in, sorted, in one transaction, so each page
of ``indicators`` is touched about once (see the schema in ``importer.state.schema``).

A batch goes to SQLite as JSON text (``json.dumps``, in C) that SQLite unpacks into rows
(``json_each``, in C, the GIL released): one statement per group of rows. ``executemany`` with a
tuple per row released and re-took the GIL around every row, so the writer's thread and the event
loop's traded it a million times a million-key run; as JSON, a bulk import of 1 M sha256 took
15.18 s [14.62-16.95] instead of 15.89 s [15.78-17.06] end to end (medians of 3, runs alternated).
Acknowledged rows are grouped by kind and stamp, which a batch mostly shares (``_grouped``): those
are bound once per group and each row is a ``"REMOTE_ID VALUE"`` text cut by string functions
(``_INSERT_GROUP``), where whole tuples made SQLite parse each row's JSON five times (recording 1 M
keys, the journal alone: 3.3 µs a key instead of 5.1). Seen and shared rows, and a batch of too
many groups, go as whole tuples (``_INSERT``).

Rows carry the stamp of what was sent (``model.Stamp``: ``meta``, ``expires``) and ``owned``: 0 for a
value this definition lists but another definition of the tenant holds (``Journal.mark_shared``).
With ``unique_values`` (``mde``, where one value is one indicator per tenant and the last import
sets its title), a merge also takes ownership from every other definition for the values
acknowledged last here.

The log has no index, so the keys acknowledged since the last merge are also kept in memory
(``recent``, with what they hold) for ``Journal.held`` to find. A merge happens once that set reaches
``merge_every`` keys or the log ``LOG_LIMIT`` rows of any sort; on open (a killed run may have left
its log behind) and close; and whenever the journal needs ``indicators`` whole (a run's start and
end, ``stale``, ``count``, ``forget``, a reconciliation).

A definition the target created in this run (``created``) is asked nothing by the pipeline: it
cannot hold anything yet. Its keys are therefore not kept in ``recent``, so they neither cost memory
nor force a merge every ``merge_every`` keys; a merge folds each random key into the B-tree pages of
everything merged before it, so merging a growing definition every 100 k keys made a feed's cost grow
with its size (1 M keys: ten merges rewriting 0.1 M, 0.2 M, ... 1 M rows). Should anyone ask
(``unseen``), the log is merged first, so the answer stays exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from feeds.model import Kind
from importer.model import Held, Stamp
from importer.state.tenant_db import TenantDb

__all__ = ["LOG_LIMIT", "MERGE_EVERY", "Acked", "WriteLog"]

Acked = tuple[Kind, str, str, Stamp | None]  # kind, value, remote id, the stamp of what was sent
_Row = tuple[Kind, str, str | None, Stamp | None, bool]  # ... and owned; remote id None: a seen mark


MERGE_EVERY = 100_000  # imported keys kept in memory (~20 MB) before the log is merged
LOG_LIMIT = 1_000_000  # log rows of any sort (seen marks cost no memory) before a merge


class WriteLog:
    """The log of one tenant's session: ``append``, ``record``, ``recent`` and ``merge``."""

    def __init__(
        self,
        db: TenantDb,
        clock: Callable[[], float],
        merge_every: int = MERGE_EVERY,
        *,
        unique_values: bool = False,
    ) -> None:
        self._db = db
        self._clock = clock
        self._merge_every = merge_every
        self._unique = unique_values
        # Keys acknowledged since the last merge: the log has no index, so ``held`` asks here.
        self._recent: dict[tuple[int, str, str], Held] = {}
        self._created: set[str] = set()  # definitions created in this run: their keys skip ``recent``
        self._unseen: set[str] = set()  # those of them with log rows ``recent`` does not show
        self._logged = 1  # unknown at open: a killed run may have left its log to fold in
        self._marked = True  # whether the log may hold seen marks (unknown at open, as above)

    @property
    def recent(self) -> Mapping[tuple[int, str, str], Held]:
        """What the ``(scope, kind, value)`` keys acknowledged since the last merge hold (a live view)."""
        return self._recent

    def created(self, definition_id: str) -> None:
        """The target created the definition in this run: keep its keys out of ``recent`` (see the module)."""
        self._created.add(definition_id)

    def unseen(self, definition_id: str) -> bool:
        """Whether the log holds rows of the definition that ``recent`` does not show (merge to see them)."""
        return definition_id in self._unseen

    def record(self, batches: Sequence[tuple[str, Sequence[Acked]]], run_id: int) -> None:
        """Append acknowledged ``(definition id, items)`` batches in one committed transaction,
        creating new definitions' scopes, and remember their keys for ``recent``."""
        scopes = self.append(batches, run_id, create=True, acked=True)
        now = int(self._clock())
        # Only after the commit: a rolled-back batch must not answer "present".
        recent = self._recent
        for scope, (definition_id, items) in zip(scopes, batches, strict=True):
            assert scope is not None  # created if new
            if definition_id in self._created:
                if items:
                    self._unseen.add(definition_id)
                continue
            for kind, value, remote_id, stamp in items:
                recent[(scope, kind, value)] = Held(remote_id, stamp, now)
        if len(self._recent) >= self._merge_every:
            self.merge()

    def append(
        self,
        batches: Sequence[tuple[str, Sequence[_Row] | Sequence[Acked]]],
        run_id: int,
        *,
        create: bool,
        acked: bool = False,
    ) -> list[int | None]:
        """Append ``(definition id, rows)`` batches to the log in one committed transaction, which
        also creates a new definition's scope if ``create``; returns each batch's scope (None: the
        definition has none and ``create`` is off, so its rows were left out). Each batch is a
        statement per group of its rows, each binding one JSON text (``_grouped``; else one of whole
        rows, ``_INSERT``); ``acked``: the items are ``Acked``."""
        now = int(self._clock())
        scopes: list[int | None] = []
        added = 0
        db = self._db
        if not acked:
            self._marked = True  # seen marks (or shared rows, which need no pass): the merge looks
        with db.writing():
            for definition_id, items in batches:
                scope = db.scope(definition_id, create=create)
                scopes.append(scope)
                if scope is None:
                    continue
                head = (db.tenant, scope, now, run_id)
                groups = _grouped(cast("Sequence[Acked]", items)) if acked else None
                if groups is not None:
                    for statement, bound, rows in groups:
                        db.conn.execute(statement, (*head, *bound, json.dumps(rows, separators=_COMPACT)))
                else:
                    insert = _INSERT_ACKED if acked else _INSERT_ROWS
                    db.conn.execute(insert, (*head, json.dumps(items, separators=_COMPACT)))
                added += len(items)
        self._logged += added
        if self._logged >= LOG_LIMIT:
            self.merge()
        return scopes

    def merge(self) -> None:
        """Fold the log into ``indicators``, sorted, in one transaction, and empty it."""
        if not self._logged:
            return
        db = self._db
        with db.writing(), db.sorting():
            # Sorted by value first, not by the key (scope, kind, value): SQLite's sorter compares
            # a text first column directly and unpacks whole records only on a tie, and scope and
            # kind tie in every row of a feed's batch. 1 M keys merged in 1.42 s instead of 1.92
            # (one run each; recording 1 M keys, the journal alone: 3.07 us a key [2.98-3.20]
            # against 3.37 [3.34-3.44]). Each (scope, kind) still takes its rows in key order,
            # and the rows of one key in log order, so the last acknowledgement wins.
            db.conn.execute(
                "INSERT INTO indicators "
                "(scope, kind, value, remote_id, imported_at, last_seen, meta, expires, owned) "
                "SELECT scope, kind, value, remote_id, at, run, meta, expires, owned FROM log "
                "WHERE tenant_id = ? AND remote_id IS NOT NULL ORDER BY value, id "
                "ON CONFLICT (scope, kind, value) DO UPDATE SET remote_id = excluded.remote_id, "
                "meta = excluded.meta, expires = excluded.expires, owned = excluded.owned, "
                "last_seen = max(last_seen, excluded.last_seen)",
                (db.tenant,),
            )
            if self._marked:  # else a scan of the whole log for nothing
                db.conn.execute(
                    "UPDATE indicators SET last_seen = s.run FROM "
                    "(SELECT scope, kind, value, max(run) AS run FROM log "
                    "WHERE tenant_id = ? AND remote_id IS NULL GROUP BY scope, kind, value) AS s "
                    "WHERE indicators.scope = s.scope AND indicators.kind = s.kind "
                    "AND indicators.value = s.value AND indicators.last_seen < s.run",
                    (db.tenant,),
                )
            if self._unique:
                self._take_ownership()  # after the insert: a value acked here twice keeps the last
            self._empty_log()
        self._logged = 0
        self._marked = False
        self._recent.clear()
        self._unseen.clear()

    def _empty_log(self) -> None:
        """Delete the tenant's log rows: the whole table at once when no other tenant shares the file.

        Without ``WHERE`` SQLite frees the table's pages as they are (its truncate optimisation, with
        ``secure_delete`` FAST: see ``state.schema``), where deleting row by row rewrites every page
        first: emptying a log of 1 M rows wrote nothing instead of ~100 MB to the WAL, and the
        commit's checkpoint copied 117 MB instead of 231 (the delete and commit of a merge of 1 M
        keys: 0.22 s instead of 0.53; into 1 M keys already there, 0.38 s instead of 1.01; one run
        each). Safe only alone: a tenant's row is written before its first log row and never
        deleted, so when the file has no other tenant every row is ours."""
        db = self._db
        alone = db.conn.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM tenants WHERE id <> ?)", (db.tenant,)
        ).fetchone()
        if alone[0]:
            db.conn.execute("DELETE FROM log")
        else:
            db.conn.execute("DELETE FROM log WHERE tenant_id = ?", (db.tenant,))

    def _take_ownership(self) -> None:
        """For each value acknowledged in the log (the last acknowledgement wins, as the last import
        sets an mde indicator's title), every other definition of the tenant stops owning it."""
        db = self._db
        winners = db.conn.execute(
            "SELECT kind, value, scope FROM log WHERE id IN (SELECT max(id) FROM log WHERE tenant_id = ? "
            "AND remote_id IS NOT NULL AND owned = 1 GROUP BY kind, value)",
            (db.tenant,),
        ).fetchall()
        db.conn.executemany(
            "UPDATE indicators SET owned = 0 WHERE scope IN (SELECT id FROM scopes WHERE tenant_id = ?) "
            "AND scope <> ? AND kind = ? AND value = ? AND owned = 1",
            ((db.tenant, scope, kind, value) for kind, value, scope in winners),
        )


# Whole tuples, as one JSON array as Python has them: ``[kind, value, remote id, [meta, expires] or
# null]``, then ``owned`` for seen and shared rows (absent: owned). Each ``->>`` parses the row's
# text again (~0.25 µs), so acknowledged rows, always owned, are inserted without asking for
# ``owned`` (and mostly by ``_INSERT_GROUP`` instead).
_INSERT = (
    "INSERT INTO log (tenant_id, scope, kind, value, remote_id, at, run, meta, expires, owned) "
    "SELECT ?1, ?2, r.value ->> 0, r.value ->> 1, r.value ->> 2, ?3, ?4, r.value ->> '$[3][0]', "
    "r.value ->> '$[3][1]', {owned} FROM json_each(?5) AS r"
)
_INSERT_ACKED = _INSERT.format(owned="1")
_INSERT_ROWS = _INSERT.format(owned="r.value ->> 4")
_COMPACT = (",", ":")

# Acknowledged rows of one kind and one stamp (a feed's batch is mostly one or a few such groups):
# the kind and stamp are bound once, and each row is the text "REMOTE_ID VALUE", which SQLite cuts
# at its first space with plain string functions instead of parsing JSON five times a row. 1 M
# rows appended in 0.93 us a row of CPU against 2.0 for ``_INSERT_ACKED`` (one run each, twice).
# Every mention of ``r.value`` decodes the row's JSON string again (~0.25 us), hence two only.
_INSERT_GROUP = (
    "INSERT INTO log (tenant_id, scope, kind, value, remote_id, at, run, meta, expires, owned) "
    "SELECT ?1, ?2, ?5, substr(r.value, instr(r.value, ' ') + 1), "
    "substr(r.value, 1, instr(r.value, ' ') - 1), ?3, ?4, ?6, ?7, 1 FROM json_each(?8) AS r"
)
# The same when the indicators of a group each have their own expiry (STIX ``valid_until``): one
# kind and metadata digest bound, each row "EXPIRES_IN_11REMOTE_ID VALUE", the expiry in 11 fixed
# characters ("-----------": none). One mention of ``r.value`` more: 1.4 us a row.
_INSERT_EXPIRING = (
    "INSERT INTO log (tenant_id, scope, kind, value, remote_id, at, run, meta, expires, owned) "
    "SELECT ?1, ?2, ?5, substr(r.value, instr(r.value, ' ') + 1), "
    "substr(r.value, 12, instr(r.value, ' ') - 12), ?3, ?4, ?6, "
    "CAST(nullif(substr(r.value, 1, 11), '-----------') AS INTEGER), 1 FROM json_each(?7) AS r"
)
_MAX_GROUPS = 8  # more groups than this in a batch: one JSON text of whole rows instead
_NO_EXPIRY = "-" * 11


def _grouped(items: Sequence[Acked]) -> list[tuple[str, tuple[object, ...], list[str]]] | None:
    """The batch as ``(statement, bound values, row texts)`` groups: by kind and stamp
    (``_INSERT_GROUP``), else by kind and metadata digest (``_INSERT_EXPIRING``); None when even
    those are too many to pay, or a remote id holds a space (no target's does)."""
    by_stamp: dict[tuple[Kind, Stamp | None], list[str]] = {}
    for kind, value, remote_id, stamp in items:
        rows = by_stamp.get((kind, stamp))
        if rows is None:
            if len(by_stamp) == _MAX_GROUPS:
                return _grouped_by_meta(items)
            rows = by_stamp[kind, stamp] = []
        if " " in remote_id:
            return None
        rows.append(f"{remote_id} {value}")
    return [
        (_INSERT_GROUP, (kind, None, None) if stamp is None else (kind, *stamp), rows)
        for (kind, stamp), rows in by_stamp.items()
    ]


def _grouped_by_meta(items: Sequence[Acked]) -> list[tuple[str, tuple[object, ...], list[str]]] | None:
    by_meta: dict[tuple[Kind, int | None], list[str]] = {}
    for kind, value, remote_id, stamp in items:
        meta, expires = (None, None) if stamp is None else stamp
        rows = by_meta.get((kind, meta))
        if rows is None:
            if len(by_meta) == _MAX_GROUPS:
                return None
            rows = by_meta[kind, meta] = []
        if " " in remote_id or (expires is not None and not -(10**10) < expires < 10**11):
            return None  # a remote id with a space, or an expiry wider than its 11 characters
        rows.append(f"{_NO_EXPIRY if expires is None else format(expires, '011d')}{remote_id} {value}")
    return [(_INSERT_EXPIRING, key, rows) for key, rows in by_meta.items()]
