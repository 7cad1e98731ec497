"""Lifecycle driven by the source: delete what a pull source retired (TAXII ``revoked``, ``valid_until``).

A TAXII collection says when an indicator is withdrawn: a newer version ``revoked: true``, or one
whose ``valid_until`` has passed (``sources.taxii_read``). Once its pull completed and every batch
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
from importer.targets.base import Target

__all__ = ["remove_retired"]

_log = logging.getLogger(__name__)
_PAGE = 1000  # as mirror mode: each page deleted is forgotten at once


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
    held = await asyncio.to_thread(journal.held, definition.id, sorted(keys))
    rows = sorted((kind, value, item.remote_id) for (kind, value), item in held.items() if not item.elsewhere)
    if not rows or dry_run:
        return len(rows)
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
