"""The producer of one feed: read it a chunk at a time, resolve its definition, classify every record.

Records are read in a thread (parsing is synchronous, and stdin may block), so the event loop keeps
serving the workers and the token refresh. The first chunk is read before the definition is
resolved, so an unreadable feed creates no alert definition. Every record ends in exactly one
bucket of the feed's report; new indicators are batched onto the shared queue (back-pressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterator

from feeds.model import Expired, FeedError, Indicator, Record, Rejected, Skipped
from importer.errors import ApiError, AuthError, ConfigError
from importer.pipeline.present import Key
from importer.pipeline.shared import Feed, Shared

__all__ = ["produce"]

_log = logging.getLogger(__name__)


def _take(records: Iterator[Record], count: int) -> list[Record]:
    return list(itertools.islice(records, count))


async def produce(run: Shared, feed: Feed) -> None:
    """Read ``feed`` to its end (or until the run stops) and queue what must be sent."""
    report = feed.report
    run.progress.feed_started(report.name)
    records: Iterator[Record] | None = None
    try:
        async with feed.job.open() as records:
            chunk = await asyncio.to_thread(_take, records, run.options.chunk)
            if not run.stop.is_set():
                await _resolve(run, feed)
            while chunk:
                await _classify(run, feed, chunk)
                if run.stop.is_set():
                    break
                chunk = await asyncio.to_thread(_take, records, run.options.chunk)
    except (FeedError, ConfigError) as exc:
        report.error, report.config_error = str(exc), True
        _log.info("feed %s: %s", report.name, exc)
    except Exception as exc:  # a reader's bug: stop this feed, keep the others and the report
        _log.exception("reading feed %s failed unexpectedly", report.name)
        report.error = f"reading stopped by an internal error ({type(exc).__name__}); please report it"
        report.config_error = True
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            # ValueError: still running in its thread after a cancellation.
            with contextlib.suppress(ValueError):
                close()
    if feed.pending:
        batch, feed.pending = feed.pending, []
        await _enqueue(run, feed, batch)
    run.progress.feed_done(report.name)


async def _resolve(run: Shared, feed: Feed) -> None:
    try:
        feed.definition = await run.target.resolve_definition(
            feed.job.definition, dry_run=run.options.dry_run
        )
        feed.report.definition_id = feed.definition.id
        feed.report.definition_outcome = feed.definition.outcome
        held = await run.present.load(run.target, feed.definition)
        _log.info("feed %s: alert definition %s (%s), %d indicators held",
                  feed.report.name, feed.definition.id, feed.definition.outcome, held)  # fmt: skip
    except AuthError as exc:
        run.fatal(exc)
    except (ApiError, ConfigError) as exc:
        # The feed is still read to its end: its indicators are reported failed, with this
        # reason, in the report and the rejects file, so nothing is silently dropped.
        # A ConfigError is the target refusing the definition as configured (exit 2).
        config = isinstance(exc, ConfigError)
        feed.cannot_send = str(exc) if config else f"the alert definition could not be resolved: {exc}"
        feed.report.error = feed.cannot_send
        feed.report.config_error = config
        _log.info("feed %s: %s", feed.report.name, feed.cannot_send)


def _sort(run: Shared, feed: Feed, chunk: list[Record]) -> list[Indicator]:
    """Count every record of ``chunk`` that is not a new indicator; the candidates to send."""
    report = feed.report
    candidates: list[Indicator] = []
    for record in chunk:
        if isinstance(record, Indicator):
            if not feed.seen.add(record.kind, record.value):
                report.duplicate_in_feed += 1
                continue
            reason = run.target.unsupported(record)
            if reason is not None:
                run.reject(feed, record, reason)
            else:
                candidates.append(record)
        elif isinstance(record, Rejected):
            report.rejected += 1
            report.note_reason(record.reason)
            run.rejects.parse_reject(report.name, record)
        elif isinstance(record, Expired):
            report.expired += 1
        elif isinstance(record, Skipped):
            report.skipped += 1
        else:  # a reader yielding something else is a bug; count it rather than lose it
            report.rejected += 1
            report.note_reason(f"unexpected record type {type(record).__name__}")
    return candidates


async def _classify(run: Shared, feed: Feed, chunk: list[Record]) -> None:
    report = feed.report
    report.records_read += len(chunk)
    run.progress.read(report.name, len(chunk))
    candidates = _sort(run, feed, chunk)
    if not candidates:
        return
    if feed.definition is None:
        run.fail(feed, candidates, feed.cannot_send or "not sent: the run stopped")
        return
    keys: list[Key] = [(c.kind, c.value) for c in candidates]
    try:
        held = await run.present.present(feed.definition, keys)
    except AuthError as exc:
        run.fatal(exc)
        run.fail(feed, candidates, "not sent: the run stopped after an authentication failure")
        return
    fresh = [c for c in candidates if (c.kind, c.value) not in held] if held else candidates
    report.already_present += len(candidates) - len(fresh)
    if run.options.dry_run:
        report.would_import += len(fresh)
        return
    feed.pending.extend(fresh)
    while len(feed.pending) >= run.batch_size:
        batch, feed.pending = feed.pending[: run.batch_size], feed.pending[run.batch_size :]
        await _enqueue(run, feed, batch)


async def _enqueue(run: Shared, feed: Feed, batch: list[Indicator]) -> None:
    run.progress.queued(feed.report.name, len(batch))
    await run.queue.put((feed, batch))
