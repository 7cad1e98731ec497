"""Mirror mode: delete what a feed's alert definition holds that today's feed no longer lists, with a guard.

After a feed was imported completely (read to its end, nothing failed, no stop requested), the
indicators the journal holds under its definition but did not see in this run (``Journal.stale``)
are deleted through ``target.delete`` in batches, each given as its kind, value and remote id (the
target paces and retries them as it does creates; a 404 counts as deleted; ``sentinel`` revokes
instead, for good: the journal counts each revocation so that a value that comes back is sent
under a new id), and each deleted batch is forgotten in the journal at once.

The guard: if the stale ones are more than ``max_share`` of what the definition holds, nothing at
all is deleted unless ``force`` — a truncated download must not wipe the tenant. The refusal is
reported on the feed (and makes the exit code 1).

On ``mde`` one value is one indicator in the whole tenant, so two feeds may list the same value: a
stale value that another feed of this journal still lists is not deleted, only forgotten under
this feed's definition (``kept_shared``); the other feed then owns it (``state.store``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from feeds.model import Kind
from importer.model import ResolvedDefinition
from importer.report.counts import FeedReport
from importer.state.journal import Journal
from importer.targets.base import RevokesForGood, Target

__all__ = ["MirrorPolicy", "mirror_feed"]

_log = logging.getLogger(__name__)
# Ids per target.delete call: each deleted page is forgotten in the journal at once, so an
# interrupted mirror loses nothing; the target splits a page by its own API's limits.
_DELETE_PAGE = 1000


@dataclass(frozen=True, slots=True)
class MirrorPolicy:
    """How far mirror mode may go in one run."""

    max_share: float = 0.5  # of the definition's indicators; above it, delete nothing
    force: bool = False  # delete whatever the share


def why_not(report: FeedReport, stopped: bool) -> str | None:
    """Why this feed's run cannot tell what is stale (so mirror mode must not delete), or None."""
    if stopped:
        return "the run was stopped"
    if report.error:
        return "the feed was not imported completely"
    if report.failed:
        return "some indicators failed"
    return None


async def mirror_feed(  # noqa: PLR0917 -- one call site, all needed
    target: Target,
    journal: Journal,
    definition: ResolvedDefinition,
    run_id: int,
    report: FeedReport,
    policy: MirrorPolicy,
    *,
    stopped: bool = False,
    dry_run: bool = False,
) -> None:
    """Delete the definition's stale indicators (or refuse, per the guard); counts go to ``report``.

    In a dry run, count them and apply the guard, but delete nothing."""
    reason = why_not(report, stopped)
    if reason is not None:
        report.mirror_skipped = f"mirror mode deleted nothing: {reason}"
        _log.info("feed %s: %s", report.name, report.mirror_skipped)
        return
    held = await asyncio.to_thread(journal.count, definition.id)
    stale = await asyncio.to_thread(lambda: sum(1 for _ in journal.stale(definition.id, run_id)))
    report.stale = stale
    if not stale:
        return
    share = stale / held if held else 1.0
    if share > policy.max_share and not policy.force:
        report.mirror_refused = (
            f"mirror mode refused to delete {stale:,} of {held:,} indicators ({share:.0%} > "
            f"{policy.max_share:.0%}); check the feed, then rerun with --force"
        )
        # Info, not a warning: the run's closing problems say it on stderr; said here too, it
        # was printed twice.
        _log.info("feed %s: %s", report.name, report.mirror_refused)
        return
    if dry_run:
        return
    # Collect the rows page by page (stale() reads pages), deleting and forgetting each batch.
    batch: list[tuple[Kind, str, str]] = []
    for row in journal.stale(definition.id, run_id):
        batch.append(row)
        if len(batch) >= _DELETE_PAGE:
            await _delete(target, journal, definition, batch, report)
            batch = []
    if batch:
        await _delete(target, journal, definition, batch, report)
    done = report.deleted + report.kept_shared
    if done < stale:
        report.delete_failed = stale - done
        report.note_reason("could not be deleted (mirror mode); a rerun tries again", report.delete_failed)


async def _delete(
    target: Target,
    journal: Journal,
    definition: ResolvedDefinition,
    rows: list[tuple[Kind, str, str]],
    report: FeedReport,
) -> None:
    """Delete a page of stale rows, except values another feed of the journal still lists (mde:
    one indicator per value in the tenant): those are only forgotten here, counted ``kept_shared``."""
    shared = await asyncio.to_thread(journal.elsewhere, definition.id, [(k, v) for k, v, _ in rows])
    if shared:  # keys of this page, each once (a definition holds a key once)
        await asyncio.to_thread(journal.forget_keys, definition.id, sorted(shared))
        report.kept_shared += len(shared)
    # The whole rows, not only the ids: a target that revokes by re-sending (sentinel) rebuilds
    # each indicator from its kind and value.
    doomed = [row for row in rows if (row[0], row[1]) not in shared]
    deleted = await target.delete(definition, doomed) if doomed else []
    if deleted:
        # By key: the journal has no index by remote id (see its schema).
        keys = {remote_id: (kind, value) for kind, value, remote_id in rows}
        gone = [keys[remote_id] for remote_id in deleted if remote_id in keys]
        if isinstance(target, RevokesForGood):  # counted before forgetting: a value back gets a new id
            await asyncio.to_thread(journal.note_revoked, gone)
        await asyncio.to_thread(journal.forget_keys, definition.id, gone)
        strays = [remote_id for remote_id in deleted if remote_id not in keys]
        if strays:  # a target answering ids it was not given: forget them all the same
            await asyncio.to_thread(journal.forget, definition.id, strays)
    report.deleted += len(deleted)
