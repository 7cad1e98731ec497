"""A run's end once the pipeline is done: mirror mode, what pulls retired, their cursors, and the
journal's account of the run (finished or not, what was listed and merged)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from importer.fields import MIRROR
from importer.report.counts import RunReport
from importer.settings import RunSettings, StateOptions
from importer.sources.pull import Pull
from importer.state.journal import Journal
from importer.state.mirror import MirrorPolicy, mirror_feed, why_not
from importer.state.retired import retire_pull
from importer.state.store import JournalPresent
from importer.targets.base import Target

__all__ = ["settle"]


async def settle(
    target: Target,
    report: RunReport,
    *,
    settings: RunSettings,
    state: StateOptions,
    journal: Journal,
    store: JournalPresent,
    pulls: Sequence[Pull],
) -> None:
    """Mirror mode, then what the pulls retired and their cursors, then the journal's account."""
    await store.drain()  # a cancelled worker's batch may still be committing
    await _mirror(target, report, settings, state, journal, store)
    await _retire(target, report, settings, journal, store, pulls)
    if not report.unsettled and report.auth_error is None and report.error is None:
        # Finished (even if stopped: every acknowledged batch is committed). A run killed
        # before stays unfinished for the definitions this run did not list; so does one
        # whose journal could not commit (a full disk): the next run lists its definitions.
        journal.finish_run(store.run_id)
    report.journal = {
        "path": str(journal.path),
        "run": store.run_id,
        "resumed_after_interrupted_run": store.resumed,
        "listed_definitions": store.reconciled,
        "merged_definitions": store.merged,
    }


async def _mirror(  # noqa: PLR0917 -- one call site, all needed
    target: Target,
    report: RunReport,
    settings: RunSettings,
    state: StateOptions,
    journal: Journal,
    store: JournalPresent,
) -> None:
    policy = MirrorPolicy(max_share=state.mirror_max_share, force=state.force)
    feed_reports = {feed.name: feed for feed in report.feeds}
    for feed in settings.feeds:
        if not feed[MIRROR]:
            continue
        feed_report = feed_reports[feed.definition.name]
        feed_report.mirror = True
        definition = store.definitions.get(feed.definition.name)
        if definition is None or definition.outcome == "planned":
            continue  # never resolved (the feed failed first), or a dry run would create it
        await mirror_feed(
            target, journal, definition, store.run_id, feed_report, policy,
            stopped=report.stopped, dry_run=settings.dry_run,
        )  # fmt: skip


async def _retire(  # noqa: PLR0917 -- one call site, all needed
    target: Target,
    report: RunReport,
    settings: RunSettings,
    journal: Journal,
    store: JournalPresent,
    pulls: Sequence[Pull],
) -> None:
    """For each pull (TAXII, a MISP feed) read to its end and acknowledged: delete what the source
    retired, then keep its cursor, so the next run asks only for what was added after it."""
    feed_reports = {feed.name: feed for feed in report.feeds}
    for pull in pulls:
        feed_report = feed_reports.get(pull.name)
        if feed_report is None or not pull.completed or why_not(feed_report, report.stopped) is not None:
            continue  # pulled again from the old cursor next time: nothing is lost
        definition = store.definitions.get(pull.name)
        if definition is not None and definition.outcome != "planned":
            feed_report.removed = await retire_pull(
                target, journal, definition, feed_report, pulled=pull.versions, named=pull.removals,
                dry_run=settings.dry_run,
            )  # fmt: skip
        pull.versions.close()
        if settings.dry_run or feed_report.delete_failed or pull.cursor is None:
            continue
        await asyncio.to_thread(journal.set_cursor, pull.name, pull.source, pull.cursor)
