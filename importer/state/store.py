"""A ``PresentStore`` backed by the state journal: a rerun learns "already present" from disk, not the tenant.

When the target is listed (and the journal repaired from the listing, ``areplace_from_remote``):

- ``--reconcile`` was given;
- the journal holds nothing for the definition yet (its first run with this journal, or the
  definition was recreated in the portal under a new id);
- an earlier run of this tenant never finished (``kill -9``, power loss) after it began writing to
  the definition: a batch the target acknowledged may not have been committed, and re-sending it
  would duplicate it. The definition is listed once, by the next run that imports its feed, even
  if runs in between import other feeds only (``Journal.note_writing`` / ``settle``).

Otherwise the journal alone answers, a chunk of keys at a time (one indexed query each), with the
stamp of what each indicator was last sent with (``pipeline.freshness`` compares it with today's).
A definition the target just created holds nothing, so it is never listed, and whatever the
journal still held under its id is forgotten: on ``mde`` the id is the title, so a title whose
indicators were all deleted in the portal comes back "created", and its journal must not claim
them (the rerun sends them again). Nor is the journal asked about its keys during the run
(``present`` answers "none" itself) unless values are unique per tenant (``mde``: another
definition may own one); ``Journal.created`` lets the journal skip remembering them. A definition
found rather than created (a resume after ``kill -9`` included) is asked as always.

Values shared between definitions (``mde``: one indicator per value in the tenant) have one owner:
the definition that imported it last. Another feed listing it counts it present, sends nothing
for it, and notes that it lists it (``shared``), so mirror mode of the owner keeps it
(``Journal.elsewhere``) and this feed takes it over once the owner drops it.

Acknowledged batches are committed in a thread while the workers go on sending. Commits are
grouped: while one transaction commits, the batches acknowledged meanwhile wait and then go into
the next transaction together, so 64 workers posting one indicator per request cost a few hundred
commits, not one each. A worker waits for its batch's commit only once ``BACKLOG`` acknowledged
indicators are waiting: the journal's merges (``state.write_log``) hold its file for seconds, and
workers that waited for every commit stood idle meanwhile (a 3 M-line import spent ~11 s so).
What a kill leaves uncommitted costs nothing more than before: the run was noted writing to the
definition (``Journal.note_writing``), so the next run lists it whatever the journal holds. A
commit that fails (a full disk) is raised to the next ``record`` and by ``flush``, which the
pipeline awaits before its report is final; ``drain`` waits for the commits without raising. In
mirror mode the keys found present are also marked as seen in this run (``mark_seen``), so
``Journal.stale`` can tell what the feed no longer lists; without mirror mode that costs nothing.

The tenant key (``tenant_key``) is the API URL (lower case, without a trailing slash) and the
client id: two apps, or two API hosts, never share rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from feeds.model import Indicator
from importer.errors import ApiError
from importer.model import Held, ResolvedDefinition
from importer.pipeline.present import Acked, Key
from importer.state.journal import Acked as JournalAcked
from importer.state.journal import Journal
from importer.targets.base import CanMerge, MayBeUnlisted, Target

__all__ = ["BACKLOG", "JournalPresent", "tenant_key"]

_log = logging.getLogger(__name__)

# Acknowledged indicators waiting for their commit before a worker waits for the journal too: at
# ~300 bytes each (the tuple, remote id and stamp) ~30 MB at the most; ~1.5 s of a bulk import,
# about half of a merge of a million log rows (a larger one, 400,000, gained little: see
# docs/benchmarks.md).
BACKLOG = 100_000


def tenant_key(api_url: str, client_id: str) -> str:
    """The journal's tenant key for an API base URL and an app registration."""
    return f"{api_url.strip().rstrip('/').lower()} {client_id.strip()}"


class JournalPresent:
    """The ``PresentStore`` of one run over an open ``Journal`` (the caller opens and closes it)."""

    def __init__(
        self, journal: Journal, run_id: int, *, reconcile: bool = False, mirror: frozenset[str] = frozenset()
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        # A run before this one was killed: the definitions it wrote to are listed once each
        # (``Journal.needs_listing``), whichever run imports their feeds next.
        self.resumed = bool(journal.unfinished_runs())
        self._reconcile = reconcile
        self._mirror = mirror  # definition names (spec.name) in mirror mode
        self.reconciled: dict[str, int] = {}  # definition id -> indicators listed
        self.merged: dict[str, list[str]] = {}  # definition id -> namesakes merged into it
        self.definitions: dict[str, ResolvedDefinition] = {}  # by feed name: what mirror mode works on
        # Acknowledged batches waiting for the next group commit, and the task committing them.
        self._waiting: list[tuple[str, Sequence[JournalAcked], asyncio.Future[None]]] = []
        self._committer: asyncio.Future[None] | None = None
        self._backlog = 0  # indicators handed to ``record`` and not yet committed
        self._failure: Exception | None = None  # the first commit that failed: the journal is done

    async def load(self, target: Target, definition: ResolvedDefinition) -> int:
        self.definitions[definition.spec.name] = definition
        if not definition.id or definition.outcome == "planned":
            return 0  # a definition a dry run would create holds nothing
        self.journal.set_definition_id(definition.spec.name, definition.id)
        # Before any write: if this run dies from here on, the next one lists this definition.
        self.journal.note_writing(definition.id, self.run_id)
        if definition.outcome == "created":
            # Just created: it holds nothing, whatever the journal says (mde: the title's
            # indicators were deleted in the portal; ti: an id never seen before, so nothing).
            stale = self.journal.count(definition.id)
            if stale:
                _log.info("alert definition %s is new in the target; the journal's %d are forgotten",
                          definition.id, stale)  # fmt: skip
                self.journal.replace_from_remote(definition.id, ())
            self.journal.created(definition.id)
            return 0
        if self._reconcile and definition.extras and isinstance(target, CanMerge):
            await self._merge(target, definition)
        held = self.journal.count(definition.id)
        interrupted = self.journal.needs_listing(definition.id)
        if isinstance(target, MayBeUnlisted) and not target.can_list():
            # Nothing to list against: what the journal committed stands, and what a killed run
            # left unrecorded is sent again, harmlessly (such a target's writes are idempotent).
            if self._reconcile or interrupted:
                log = _log.warning if self._reconcile else _log.info  # asked for, or routine
                log("alert definition %s cannot be listed (the target has no read-back configured): the "
                    "journal is kept as it is", definition.id)  # fmt: skip
            self.journal.settle(definition.id)
            return held
        if self._reconcile or interrupted or held == 0:
            why = (
                "reconcile"
                if self._reconcile
                else ("an earlier run was interrupted" if interrupted else "the journal holds nothing yet")
            )
            _log.info("listing alert definition %s (%s)", definition.id, why)
            result = await self.journal.areplace_from_remote(definition.id, target.existing(definition))
            self.journal.settle(definition.id)
            self.reconciled[definition.id] = result.listed
            _log.info("journal of %s repaired: %s", definition.id, result)
            held = self.journal.count(definition.id)
        return held

    async def _merge(self, target: CanMerge, definition: ResolvedDefinition) -> None:
        """Fold the definition's namesakes into it (``--reconcile``); the listing that follows
        puts what moved into the journal, and the namesakes' journals are forgotten."""
        for extra in definition.extras:
            try:
                moved = await target.merge(definition, extra)
            except ApiError as exc:  # the feed is still imported; a later --reconcile tries again
                _log.warning("alert definition %s could not be merged into %s: %s", extra, definition.id, exc)
                continue
            self.journal.replace_from_remote(extra, ())
            self.merged.setdefault(definition.id, []).append(extra)
            _log.warning("alert definition %s merged into %s (%d indicators moved, the rest were held "
                         "twice) and deleted", extra, definition.id, moved)  # fmt: skip

    async def present(self, definition: ResolvedDefinition, keys: Sequence[Key]) -> dict[Key, Held]:
        if not definition.id or definition.outcome == "planned":
            return {}
        if definition.outcome == "created" and not self.journal.unique_values:
            # Created in this run, so it holds nothing, and its feed's keys are distinct (names
            # are unique per run, so no other feed imports into it): asking the journal cost ~14 %
            # of a bulk run's CPU. With unique values another definition may own a key: ask.
            return {}
        held = await asyncio.to_thread(self.journal.held, definition.id, keys)
        if held and definition.spec.name in self._mirror:
            own = [key for key, found in held.items() if not found.elsewhere]
            await asyncio.to_thread(self.journal.mark_seen, definition.id, own, self.run_id)
        return held

    async def shared(self, definition: ResolvedDefinition, items: Sequence[tuple[Indicator, Held]]) -> None:
        rows = [(indicator.kind, indicator.value, held.remote_id) for indicator, held in items]
        await asyncio.to_thread(self.journal.mark_shared, definition.id, rows, self.run_id)

    async def record(self, definition: ResolvedDefinition, acked: Sequence[Acked]) -> None:
        if self._failure is not None:
            raise self._failure  # the journal cannot commit: this batch would be lost from it too
        committed = asyncio.get_running_loop().create_future()
        # A failed commit (a full disk) reaches a worker awaiting it through the shield below;
        # nobody else awaits it, and asyncio would log the unheard exception with a traceback
        # when the future is collected. The run hears it from ``_failure``.
        committed.add_done_callback(_heard)
        self._waiting.append((definition.id, acked, committed))
        self._backlog += len(acked)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_waiting())
        if self._backlog > BACKLOG:
            # shield: a cancelled worker's batch is committed all the same (``drain`` waits for it).
            await asyncio.shield(committed)

    async def _commit_waiting(self) -> None:
        """Commit what is waiting, one transaction per round, until nothing is (see the module)."""
        while self._waiting:
            taken, self._waiting = self._waiting, []
            batches = [(definition_id, items) for definition_id, items, _ in taken]
            try:
                # In a thread, so the event loop keeps serving while SQLite commits.
                await asyncio.to_thread(self.journal.record, batches, self.run_id)
            except asyncio.CancelledError:
                # Only at the loop's shutdown; no waiter may hang (the thread still finishes its commit).
                for _, _, committed in (*taken, *self._waiting):
                    committed.cancel()
                raise
            except Exception as exc:  # every waiter hears it (a ConfigError: disk full...)
                if self._failure is None:
                    self._failure = exc
                for _, _, committed in taken:
                    if not committed.done():
                        committed.set_exception(exc)
            else:
                for _, _, committed in taken:
                    if not committed.done():
                        committed.set_result(None)
            finally:
                self._backlog -= sum(len(items) for _, items in batches)

    async def flush(self) -> None:
        """Wait until every batch handed to ``record`` is committed; raise the failure if one was not."""
        await self.drain()
        if self._failure is not None:
            raise self._failure

    async def drain(self) -> None:
        """Wait until every batch handed to ``record`` is committed (or its commit failed)."""
        while self._committer is not None and not self._committer.done():
            await asyncio.shield(self._committer)


def _heard(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved; awaiting it still raises it
