"""The cap's choice: when a capped tenant (``mde``) cannot take every new indicator of the run, which ones.

Before the pipeline starts, ``choose`` counts what the tenant holds (``HasHeadroom``) and reads the
run's feeds once (as the producer would: what the feed's policy keeps and the target supports).
When what the tenant holds plus every candidate fits the cap, nothing more is done. Otherwise
each feed's definition is listed (resolved as a dry run: nothing is created) to tell the new
indicators from those the tenant holds already (an update needs no room), and the new ones are
ranked, deterministically:

    the feed's ``priority`` (higher first), then the indicator's confidence (higher first, none
    last), then its first-seen date (most recent first, none last), then kind and value.

The first ``cap - held`` are kept; the rest are sent nowhere: ``CappedTarget`` answers them
**failed** with the reason "cap: lower priority than N kept" (in the rejects file; a later run,
with room, sends them). A dry run reports the choice (``CapChoice.as_dict``) and sends nothing.

A value the tenant holds under another title (another tool, a feed not in this run) counts as
new: its upsert would need no room, so the choice errs on the side of keeping fewer. The cost,
on every run of a capped target: one listing of the tenant (two calls for 15,000) and a second
read of each feed (a URL is downloaded again); the definitions are listed only past the cap.

A feed that cannot be read twice (stdin) or that pulls (TAXII: the pull keeps its cursor) is
left out of the choice: its indicators are sent as read, and the API refuses what does not fit.
Everything is staged in a private temporary SQLite file, so memory does not grow with the feeds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feeds.model import FeedError, Indicator, Kind, Record
from importer.errors import ApiError, ConfigError
from importer.model import BatchResult, DefinitionSpec, Headroom, RemoteIndicator, ResolvedDefinition, Stamp
from importer.pipeline.job import FeedJob
from importer.policy import Policy
from importer.targets.base import HasHeadroom, HeldItem, Target, never

__all__ = ["CapChoice", "CappedTarget", "choose"]

_log = logging.getLogger(__name__)
_CHUNK = 1000
_PRIORITY_KEY = "priority"  # the row is the mde package's own (``targets/mde/fields.py``): read by key

_DDL = """
CREATE TABLE wanted (kind TEXT, value TEXT, feed INTEGER, priority INTEGER, confidence INTEGER,
                     first_seen REAL, PRIMARY KEY (kind, value)) WITHOUT ROWID;
CREATE TABLE held (kind TEXT, value TEXT, PRIMARY KEY (kind, value)) WITHOUT ROWID;
CREATE TABLE dropped (kind TEXT, value TEXT, feed INTEGER, PRIMARY KEY (kind, value)) WITHOUT ROWID;
"""
# A key in two feeds is ranked with the better of its two claims (the same order as below).
_ADD_WANTED = """
INSERT INTO wanted VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, value) DO UPDATE SET
    feed = excluded.feed, priority = excluded.priority, confidence = excluded.confidence,
    first_seen = excluded.first_seen
WHERE (excluded.priority, coalesce(excluded.confidence, -1), coalesce(excluded.first_seen, -1e18))
    > (wanted.priority, coalesce(wanted.confidence, -1), coalesce(wanted.first_seen, -1e18))
"""
_DROP = """
INSERT INTO dropped SELECT kind, value, feed FROM (
    SELECT kind, value, feed, row_number() OVER (
        ORDER BY priority DESC, confidence DESC NULLS LAST, first_seen DESC NULLS LAST, kind, value
    ) AS place
    FROM wanted w WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.kind = w.kind AND h.value = w.value)
) WHERE place > ?
"""


def priority(spec: DefinitionSpec) -> int:
    """The feed's ``priority`` (0 when the target has no such row, or it was not set)."""
    return int(spec.options.by_key().get(_PRIORITY_KEY, 0))


@dataclass(slots=True)
class CapChoice:
    """What the cap allows this run: the tenant's count, the room left, and the keys left out."""

    cap: int
    held: int  # active indicators in the tenant before the run
    new: int  # distinct indicators of the feeds the tenant does not hold
    kept: int  # of those, the ones that fit
    dropped_by_feed: dict[str, int] = field(default_factory=dict)
    _db: sqlite3.Connection | None = None

    @property
    def reason(self) -> str:
        return f"cap: lower priority than {self.kept:,} kept"

    def dropped(self, keys: Sequence[tuple[Kind, str]]) -> set[tuple[Kind, str]]:
        """Those of ``keys`` the choice left out."""
        found: set[tuple[Kind, str]] = set()
        if self._db is None:
            return found
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            marks = ",".join("(?, ?)" for _ in chunk)
            params = [part for kind, value in chunk for part in (kind.value, value)]
            rows = self._db.execute(
                f"SELECT kind, value FROM dropped WHERE (kind, value) IN (VALUES {marks})",  # noqa: S608 -- marks only
                params,
            )
            found.update((Kind(kind), value) for kind, value in rows)
        return found

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "cap": self.cap, "held": self.held, "room": max(0, self.cap - self.held), "new": self.new,
            "kept": self.kept, "failed": self.new - self.kept, "reason": self.reason,
            "failed_by_feed": dict(self.dropped_by_feed),
        }  # fmt: skip


async def choose(
    target: Target, jobs: Sequence[FeedJob], *, cache_dir: Path | None = None
) -> CapChoice | None:
    """The cap's choice for ``jobs`` (see the module); None when the target has no cap or all fits.

    ``jobs``: the feeds that can be read twice (the caller leaves stdin and TAXII pulls out);
    ``cache_dir``: the warning lists' compiled cache's folder, as the producer's (``Policy.of``)."""
    if not isinstance(target, HasHeadroom):
        return None
    try:
        return await _choose(target, jobs, await target.headroom(), cache_dir)
    except (ApiError, ConfigError, FeedError) as exc:
        # The target or a feed cannot be read now: the pipeline meets the same problem and reports
        # it where it belongs (the feed's error); the run is not refused for want of a choice.
        _log.warning("no choice for the tenant cap: %s", exc)
        return None


async def _choose(
    target: Target, jobs: Sequence[FeedJob], headroom: Headroom, cache_dir: Path | None
) -> CapChoice | None:
    ranked = list(enumerate(jobs))
    db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
    try:
        db.executescript(_DDL)
        for n, job in ranked:
            await _stage_feed(db, target, n, job, cache_dir)
        wanted = db.execute("SELECT count(*) FROM wanted").fetchone()[0]
        if headroom.held + wanted <= headroom.cap:
            db.close()
            return None
        for _, job in ranked:
            definition = await target.resolve_definition(job.definition, dry_run=True)
            if definition.outcome != "planned":
                await _stage_held(db, target.existing(definition))
        return _decide(db, headroom.cap, headroom.held, jobs)
    except BaseException:
        db.close()
        raise


async def _stage_feed(
    db: sqlite3.Connection, target: Target, n: int, job: FeedJob, cache_dir: Path | None
) -> None:
    rank = priority(job.definition)
    policy = await asyncio.to_thread(Policy.of, job.definition, target.name, cache_dir=cache_dir)
    judge = policy.judge  # as the producer does
    async with job.open() as records:
        while chunk := await asyncio.to_thread(_take, records):
            rows = [
                (r.kind.value, r.value, n, rank, r.confidence, _epoch(r))
                for r in chunk
                if isinstance(r, Indicator) and judge(r) is None and target.unsupported(r) is None
            ]
            await asyncio.to_thread(_write, db, _ADD_WANTED, rows)


async def _stage_held(db: sqlite3.Connection, listing: AsyncIterator[RemoteIndicator]) -> None:
    page: list[tuple[str, str]] = []
    async for item in listing:
        page.append((item.kind.value, item.value))
        if len(page) >= _CHUNK:
            _write(db, "INSERT OR IGNORE INTO held VALUES (?, ?)", page)
            page = []
    _write(db, "INSERT OR IGNORE INTO held VALUES (?, ?)", page)


def _decide(db: sqlite3.Connection, cap: int, held: int, jobs: Sequence[FeedJob]) -> CapChoice | None:
    new = db.execute(
        "SELECT count(*) FROM wanted w WHERE NOT EXISTS "
        "(SELECT 1 FROM held h WHERE h.kind = w.kind AND h.value = w.value)"
    ).fetchone()[0]
    room = max(0, cap - held)
    if new <= room:
        db.close()
        return None
    db.execute("BEGIN")
    db.execute(_DROP, (room,))
    db.execute("COMMIT")
    by_feed = {
        jobs[n].name: count for n, count in db.execute("SELECT feed, count(*) FROM dropped GROUP BY feed")
    }
    return CapChoice(cap, held, new, room, by_feed, db)


def _write(db: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        db.execute("BEGIN")
        db.executemany(sql, rows)
        db.execute("COMMIT")


def _take(records: Iterator[Record]) -> list[Record]:
    return list(itertools.islice(records, _CHUNK))


def _epoch(indicator: Indicator) -> float | None:
    return None if indicator.first_seen is None else indicator.first_seen.timestamp()


class CappedTarget:
    """The target, except that the indicators the cap's choice left out are failed, never sent."""

    def __init__(self, target: Target, choice: CapChoice) -> None:
        self._target = target
        self._choice = choice
        self.name = target.name
        self.max_batch = target.max_batch
        self.max_update_batch = target.max_update_batch

    async def send(
        self,
        definition: ResolvedDefinition,
        batch: Sequence[Indicator],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        dropped = self._choice.dropped([(i.kind, i.value) for i in batch])
        if not dropped:
            return await self._target.send(definition, batch, stopping=stopping)
        kept = [i for i in batch if (i.kind, i.value) not in dropped]
        result = await self._target.send(definition, kept, stopping=stopping) if kept else BatchResult()
        reason = self._choice.reason
        result.failed.extend((i, reason) for i in batch if (i.kind, i.value) in dropped)
        return result

    # The rest of ``Target`` as the target has it.
    def unsupported(self, indicator: Indicator) -> str | None:
        return self._target.unsupported(indicator)

    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        return await self._target.resolve_definition(spec, dry_run=dry_run)

    def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        return self._target.existing(definition)

    def stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        return self._target.stamp(definition, indicator)

    async def update(
        self,
        definition: ResolvedDefinition,
        items: Sequence[tuple[Indicator, str]],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        return await self._target.update(definition, items, stopping=stopping)

    async def delete(self, definition: ResolvedDefinition, items: Sequence[HeldItem]) -> list[str]:
        return await self._target.delete(definition, items)
