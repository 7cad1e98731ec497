"""Lifecycle driven by the source: delete what a pull source retired (TAXII ``revoked``, ``valid_until``).

A TAXII collection says when an indicator is withdrawn: a newer version ``revoked: true``, or one
whose ``valid_until`` has passed (``sources.taxii_read``), or one whose pattern names another value
than the version an earlier run imported (``retire_pull``: the journal's ``versions`` remember what
each id produced, and a MISP feed's events likewise). Once its pull completed and every batch
of it was acknowledged, the run deletes those values from the target — those the journal holds
under the feed's definition — by the very path mirror mode deletes stale ones (``state.mirror``:
a value another definition still lists on ``mde`` is only forgotten here, ``kept_shared``). No
guard applies: the source named each one. Counted on the feed as ``removed`` (``delete_failed``
when the target would not), and never in a dry run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from feeds.model import Kind
from importer.model import ResolvedDefinition
from importer.report.counts import FeedReport
from importer.state.journal import Journal
from importer.state.mirror import _delete  # mirror mode's own page delete: one path for both
from importer.state.versions import Pulled
from importer.targets.base import Target

__all__ = ["remove_retired", "retire_pull"]

_log = logging.getLogger(__name__)
_PAGE = 1000  # as mirror mode: each page deleted is forgotten at once


async def retire_pull(
    target: Target,
    journal: Journal,
    definition: ResolvedDefinition,
    report: FeedReport,
    *,
    pulled: Pulled,
    named: Collection[tuple[Kind, str]] = (),
    dry_run: bool = False,
) -> int:
    """Delete what a completed, acknowledged pull retired — the keys ``named`` and those its ids'
    earlier versions produced and no live id of the feed still does — then record what each id
    produces now; how many the definition held. The record waits for the deletes: a run stopped in
    between finds the same keys again, and a delete that failed leaves it for the rerun. What mirror
    mode deleted before (a full pull's old value is stale too) is no longer held: never deleted twice."""
    keys = await asyncio.to_thread(journal.versions.retired, report.name, pulled, named)
    removed = await remove_retired(target, journal, definition, keys, report, dry_run=dry_run) if keys else 0
    if not dry_run and not report.delete_failed:
        await asyncio.to_thread(journal.versions.keep, report.name, pulled)
    return removed


async def remove_retired(
    target: Target,
    journal: Journal,
    definition: ResolvedDefinition,
    keys: Collection[tuple[Kind, str]],
    report: FeedReport,
    *,
    dry_run: bool = False,
) -> int:
    """Delete those of ``keys`` the definition holds; how many it held (deleted, or would be)."""
    wanted = sorted(keys)
    held = await asyncio.to_thread(journal.held, definition.id, wanted)
    rows = sorted((kind, value, item.remote_id) for (kind, value), item in held.items() if not item.elsewhere)
    shared: list[tuple[Kind, str]] = []
    if journal.unique_values:
        # This feed's listings of values it does not own: one another definition owns stays there
        # but leaves this feed (kept, the owner dropping the value later would find it "still
        # listed here"); one nobody owns any more (its owner dropped it first) is this feed's to delete.
        listed = await asyncio.to_thread(journal.listed, definition.id, wanted)
        for key, item in listed.items():
            if item.elsewhere and key in held:
                shared.append(key)
            elif item.elsewhere:
                rows.append((*key, item.remote_id))
    if dry_run:
        return len(rows)
    if shared:
        await asyncio.to_thread(journal.forget_keys, definition.id, sorted(shared))
    if not rows:
        return 0
    rows.sort()
    before = report.deleted + report.kept_shared
    for start in range(0, len(rows), _PAGE):
        await _delete(target, journal, definition, rows[start : start + _PAGE], report)
    done = report.deleted + report.kept_shared - before
    if done < len(rows):
        failed = len(rows) - done
        report.delete_failed += failed
        report.note_reason("retired by the source but could not be deleted; a rerun tries again", failed)
    _log.info("feed %s: %d indicators the source retired removed from the target", report.name, done)
    return len(rows)
