"""Opening the state journal's SQLite file safely: lock, pragmas, schema, and one-sentence errors.

``connect`` is the only place that turns a file system or SQLite failure at open time into a
``ConfigError``; ``importer.state.tenant_db`` wraps the connection it returns for the journal's modules.

Durability: the file runs in WAL mode with ``synchronous=NORMAL``. A commit then writes its pages
to the WAL through ``write()`` before returning, so the data sits in the operating system's page
cache: a ``kill -9`` of the importer (or any crash of the process) loses nothing committed — SQLite
documents transactions as durable across application crashes whatever the ``synchronous``
setting. Only an OS crash or power loss may roll back the last commits (never corrupting the
file); the next run then re-checks those indicators against the target, which deduplicates.

Ownership: one ``(target, tenant)`` is written by one process at a time. Two importers on the same
tenant would both see an indicator as new and post it twice, so the second one fails at once with
a clear sentence instead of waiting (an advisory ``flock`` on a small lock file beside the journal,
released by the kernel even after ``kill -9``). Different tenants may share one journal file; their
short write transactions wait for each other through SQLite's ``busy_timeout``.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from importer.errors import ConfigError
from importer.state.lockfile import LockHeld, take_lock

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Opened", "connect", "lock_path"]

APPLICATION_ID = 0x54494A4C  # "TIJL": marks the file as ours, so a stranger's database is refused
SCHEMA_VERSION = 7  # 2: run_scopes; 3: stamps (meta, expires) and owned; 4: no index by remote id;
# 5: cursors (what a pull source such as TAXII last read, per feed); 6: revocations (values a target
# revoked for good, and how often: sentinel's next object for such a value needs a new id);
# 7: versions (the values each object of a pull source produced, per feed: STIX versioning)
BUSY_TIMEOUT_MS = 10_000  # another tenant's write transaction is short; wait this long for it
CACHE_KIB = 8 * 1024  # page cache: the hot B-tree levels of a million rows fit
# The cache while the write log is sorted into ``indicators``: it also bounds the sorter's chunks,
# and chunks of 1 MiB sort faster than of 8 (they stay in the CPU's caches): merging 1 M keys took
# 1.64 s instead of 2.01 (one run each, cache 1, 2, 4, 8 and 16 MiB: 1.64, 1.68, 1.97, 2.01, 2.14).
SORT_CACHE_KIB = 1024
PAGE_BYTES = 8192  # of a new journal; one made before keeps its 4 KiB

_DDL = """
CREATE TABLE tenants (
    id     INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    tenant TEXT NOT NULL,
    UNIQUE (target, tenant)
);
CREATE TABLE feeds (
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    feed_name     TEXT NOT NULL,
    definition_id TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, feed_name)
) WITHOUT ROWID;
-- One row per (tenant, alert definition): indicator rows carry this small integer instead of
-- repeating the tenant and the definition id a million times.
CREATE TABLE scopes (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    definition_id TEXT NOT NULL,
    UNIQUE (tenant_id, definition_id)
);
-- AUTOINCREMENT: run ids only grow, even after the newest run row is deleted.
CREATE TABLE runs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    started_at INTEGER NOT NULL,
    finished_at INTEGER  -- NULL: still running, or killed
);
CREATE TABLE indicators (
    scope       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    remote_id   TEXT NOT NULL,
    imported_at INTEGER NOT NULL,  -- unix seconds when the journal first recorded it
    last_seen   INTEGER NOT NULL,  -- id of the last run whose feed held it (0: never seen)
    meta        INTEGER,           -- digest of the metadata sent (model.Stamp); NULL: from before stamps
    expires     INTEGER,           -- the expiry sent, unix seconds; NULL: none (or from before stamps)
    -- 0: the value belongs to another definition of the tenant (mde: values are unique per
    -- tenant); this feed lists it but never sent it, so it neither updates nor deletes it.
    owned       INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (scope, kind, value)
) WITHOUT ROWID;
-- No index by remote id: merging a million keys into it cost three times the table itself (its
-- order is not the key order, so each key dirtied a random page), and what deletes by remote id
-- (mirror mode) has the keys at hand (``Journal.forget_keys``).
-- Append-only log of the current session: rows acknowledged by the target (remote_id set) and
-- keys seen in a run (remote_id NULL). A batch commit appends ~15 pages here instead of dirtying
-- one random page of the big key-ordered table per indicator; merging the log into
-- ``indicators`` sorted (``state.write_log``; and at once on open after a crash) touches each
-- page of it about once.
CREATE TABLE log (
    id        INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    scope     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    remote_id TEXT,
    at        INTEGER NOT NULL,
    run       INTEGER NOT NULL,
    meta      INTEGER,
    expires   INTEGER,
    owned     INTEGER NOT NULL DEFAULT 1
);
-- The definitions each run writes to, noted before its first write there. After a kill, exactly
-- these need listing (an acknowledged batch may have missed its commit), whichever feeds the
-- next run imports; a row goes once the definition was listed, or when its run finishes.
CREATE TABLE run_scopes (
    run   INTEGER NOT NULL,
    scope INTEGER NOT NULL,
    PRIMARY KEY (run, scope)
) WITHOUT ROWID;
-- Where a pull source (a TAXII collection) got to, per feed: the next run asks only for what was
-- added after ``cursor``. ``source`` is the collection it was read from: another URL starts over.
CREATE TABLE cursors (
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    feed_name  TEXT NOT NULL,
    source     TEXT NOT NULL,
    cursor     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, feed_name)
) WITHOUT ROWID;
-- Values the target revoked for good (sentinel: STIX revocation is permanent), with how many times:
-- the target derives the id of the value's next object from the count (``state.revocations``).
CREATE TABLE revocations (
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
) WITHOUT ROWID;
-- Per feed of a pull source, the values each object (a STIX id, a MISP event uuid) produced, so
-- that a newer version naming other values, or revoked, takes the old ones off (``state.versions``).
CREATE TABLE versions (
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    feed_name TEXT NOT NULL,
    object_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, feed_name, object_id, kind, value)
) WITHOUT ROWID;
-- Whether another object of the feed still produces a value.
CREATE INDEX versions_by_value ON versions (tenant_id, feed_name, kind, value);
-- Scratch space of --reconcile: the target's listing, streamed to disk rather than to memory.
CREATE TABLE reconcile_stage (
    scope     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    meta      INTEGER,
    expires   INTEGER,
    PRIMARY KEY (scope, kind, value)
) WITHOUT ROWID;
"""


@dataclass(slots=True)
class Opened:
    """A ready connection (autocommit; callers issue ``BEGIN IMMEDIATE``) and the held lock."""

    conn: sqlite3.Connection
    lock: IO[str]

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.lock.close()  # closing the descriptor releases the flock


def lock_path(path: Path, target: str, tenant: str) -> Path:
    """The lock file of one ``(target, tenant)`` in ``path``: named by a digest, never by the tenant."""
    digest = hashlib.sha256(f"{target}\0{tenant}".encode()).hexdigest()[:16]
    return path.with_name(f"{path.name}.{digest}.lock")


def connect(path: Path, *, target: str, tenant: str) -> Opened:
    """Lock ``(target, tenant)`` in the journal at ``path``, open it and bring its schema up to date."""
    if path.is_dir():
        raise ConfigError(f"the state journal {path} is a folder, not a file; pass a file to --state")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the folder of the state journal {path.parent}: {_reason(exc)}"
        ) from None
    lock = _acquire(path, target, tenant)
    try:
        conn = _open(path)
    except BaseException:
        lock.close()
        raise
    return Opened(conn, lock)


def _acquire(path: Path, target: str, tenant: str) -> IO[str]:
    where = lock_path(path, target, tenant)
    try:
        return take_lock(where)
    except LockHeld as held:
        # Never "use another journal": two journals on one tenant are how a second run posts
        # everything again. Across hosts (a journal on a shared folder) only this lock sees it.
        raise ConfigError(
            f"the state journal {path} is in use by another ti-import run for this target and "
            f"tenant ({held.holder}); wait for it to finish, or stop it"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot lock the state journal {path} ({where}): {_reason(exc)}") from None


def _open(path: Path) -> sqlite3.Connection:
    try:
        # isolation_level=None: autocommit, so each transaction is an explicit BEGIN ... COMMIT.
        # check_same_thread=False: the journal serialises its own calls (asyncio.to_thread works).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the state journal {path}: {exc}") from None
    try:
        _prepare(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise ConfigError(_explain(path, exc)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # The first real read: a file that is not a database fails here, before we write anything.
    application_id, version = _identity(conn)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the state journal {path} was written by a newer ti-import (schema {version}, "
            f"this one knows {SCHEMA_VERSION}); upgrade, or pass another --state FILE"
        )
    tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
    if tables and application_id != APPLICATION_ID:
        raise ConfigError(
            f"the state journal {path} is a SQLite database of something else, not a ti-import "
            "journal; pass another --state FILE"
        )
    if not tables:
        # Before the file's first write, which fixes it (WAL files keep theirs for good): with
        # pages of 8 KiB, recording 1 M keys (log appends and merge) took 5.20 µs a key [5.01-5.29]
        # instead of 5.52 [5.37-5.57] (three runs each, alternated): fewer pages, splits and levels.
        conn.execute(f"PRAGMA page_size = {PAGE_BYTES}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise ConfigError(f"the state journal {path} cannot use write-ahead logging (mode {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute("PRAGMA temp_store = FILE")  # bounded memory for sorts of big deletes
    # Some builds (Debian's) zero every freed page by default, so that emptying the write log
    # rewrote all its pages into the WAL and again into the file. FAST still zeroes deleted
    # content in the pages a change writes anyway; the journal holds no secret to scrub.
    conn.execute("PRAGMA secure_delete = FAST")
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: another process may have created it meanwhile.
            _, version = _identity(conn)
            if version == 0:
                # One statement at a time: executescript() would COMMIT our open transaction.
                for statement in _DDL.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            else:  # one step per version; none if another process upgraded it meanwhile
                if version < 2:
                    _upgrade_from_1(conn)
                if version < 3:
                    _upgrade_from_2(conn)
                if version < 4:
                    conn.execute("DROP INDEX IF EXISTS indicators_by_remote_id")  # see the DDL
                if version < 5:
                    _upgrade_to_5(conn)
                if version < 6:
                    _upgrade_to_6(conn)
                if version < 7:
                    _upgrade_to_7(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise


def _upgrade_from_1(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: add ``run_scopes``. Schema 1 did not note which definitions a run wrote to,
    so a run it left unfinished is taken to have written to every definition of its tenant."""
    conn.execute(
        "CREATE TABLE run_scopes (run INTEGER NOT NULL, scope INTEGER NOT NULL, PRIMARY KEY (run, scope)) "
        "WITHOUT ROWID"
    )
    conn.execute(
        "INSERT INTO run_scopes (run, scope) SELECT runs.id, scopes.id FROM runs "
        "JOIN scopes ON scopes.tenant_id = runs.tenant_id WHERE runs.finished_at IS NULL"
    )


def _upgrade_from_2(conn: sqlite3.Connection) -> None:
    """Schema 2 -> 3: stamps and ownership. Rows from before have no stamp (NULL): the pipeline
    takes them to hold what it would send now, with an expiry counted from ``imported_at``
    (``importer.pipeline.freshness``), so an upgrade re-sends nothing it need not."""
    for table, columns in (
        ("indicators", ("meta INTEGER", "expires INTEGER", "owned INTEGER NOT NULL DEFAULT 1")),
        ("log", ("meta INTEGER", "expires INTEGER", "owned INTEGER NOT NULL DEFAULT 1")),
        ("reconcile_stage", ("meta INTEGER", "expires INTEGER")),
    ):
        for column in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _upgrade_to_5(conn: sqlite3.Connection) -> None:
    """Schema 4 -> 5: add ``cursors`` (empty: each pull source reads its whole collection once)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS cursors (tenant_id INTEGER NOT NULL REFERENCES tenants (id), "
        "feed_name TEXT NOT NULL, "
        "source TEXT NOT NULL, cursor TEXT NOT NULL, updated_at INTEGER NOT NULL, "
        "PRIMARY KEY (tenant_id, feed_name)) WITHOUT ROWID"
    )


def _upgrade_to_6(conn: sqlite3.Connection) -> None:
    """Schema 5 -> 6: add ``revocations`` (empty: no target revoked anything for good before)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS revocations (tenant_id INTEGER NOT NULL REFERENCES tenants (id), "
        "kind TEXT NOT NULL, value TEXT NOT NULL, generation INTEGER NOT NULL, "
        "PRIMARY KEY (tenant_id, kind, value)) WITHOUT ROWID"
    )


def _upgrade_to_7(conn: sqlite3.Connection) -> None:
    """Schema 6 -> 7: add ``versions`` (empty: each pull records its objects' values from now on;
    a revoked object no pull recorded still takes off the values of its own pattern)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS versions (tenant_id INTEGER NOT NULL REFERENCES tenants (id), "
        "feed_name TEXT NOT NULL, object_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (tenant_id, feed_name, object_id, kind, value)) WITHOUT ROWID"
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS versions_by_value ON versions (tenant_id, feed_name, kind, value)"
    )


def _identity(conn: sqlite3.Connection) -> tuple[int, int]:
    application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    return application_id, version


def _explain(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"the state journal {path} is not a usable SQLite database (corrupt or another kind "
            "of file); move it aside, or pass another --state FILE"
        )
    if "readonly" in text or "read-only" in text:
        return f"the state journal {path} is read-only; make it writable, or pass another --state FILE"
    if "locked" in text or "busy" in text:
        return f"the state journal {path} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s"
    return f"cannot use the state journal {path}: {exc}"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
