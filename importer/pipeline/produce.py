"""The producer of one feed: read it a chunk at a time, resolve its definition, classify every record.

Records are read in a thread (parsing is synchronous, and stdin may block), so the event loop keeps
serving the workers and the token refresh. The first chunk is read before the definition is
resolved, so an unreadable feed creates no alert definition. Every record ends in exactly one
bucket of the feed's report; new indicators are batched onto the shared queue (back-pressure).

Once the run stops, opening the feed (a download: minutes, or for ever) is given up, and what
was read but not queued is "not attempted" rather than sent (``send.hold_back``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

from feeds.model import Expired, FeedError, Indicator, Record, Rejected, Skipped
from importer.errors import ApiError, AuthError, ConfigError
from importer.model import Held
from importer.pipeline.freshness import Freshness
from importer.pipeline.present import Acked, Key
from importer.pipeline.send import hold_back
from importer.pipeline.shared import Feed, Shared
from importer.policy import Policy

__all__ = ["produce"]

_log = logging.getLogger(__name__)
Judge = Callable[[Indicator], str | None]  # a feed's Policy.judge: None keeps an indicator


class _StoppedOpening(Exception):
    """The run stopped before the feed was open."""


def _take(records: Iterator[Record], count: int) -> list[Record]:
    return list(itertools.islice(records, count))


async def produce(run: Shared, feed: Feed) -> None:
    """Read ``feed`` to its end (or until the run stops) and queue what must be sent."""
    report = feed.report
    run.progress.feed_started(report.name)
    records: Iterator[Record] | None = None
    try:
        # The allowlist read, the warning lists loaded (once a process): a ConfigError is the feed's.
        policy = await asyncio.to_thread(
            Policy.of, feed.job.definition, run.target.name, cache_dir=run.options.policy_cache
        )
        judge = policy.judge
        async with _open_unless_stopped(run, feed) as records:
            chunk = await asyncio.to_thread(_take, records, run.options.chunk)
            if not run.stop.is_set():
                await _resolve(run, feed)
            while chunk:
                await _classify(run, feed, chunk, judge)
                if run.stop.is_set():
                    break
                chunk = await asyncio.to_thread(_take, records, run.options.chunk)
    except (FeedError, ConfigError) as exc:
        report.error, report.config_error = str(exc), True
        _log.info("feed %s: %s", report.name, exc)
    except _StoppedOpening:  # not the feed's fault: a stopped run exits 130, not 2
        report.error = "not read: the run stopped while the feed was being opened (or downloaded)"
        _log.info("feed %s: %s", report.name, report.error)
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
    if feed.pending_updates:
        items, feed.pending_updates = feed.pending_updates, []
        await _enqueue_updates(run, feed, items)
    run.progress.feed_done(report.name)


@asynccontextmanager
async def _open_unless_stopped(run: Shared, feed: Feed) -> AsyncIterator[Iterator[Record]]:
    """``feed.job.open()``, given up if the run stops first: opening may download the feed, which
    a slow or endless URL stretches without bound. Cancelled, the download removes its file."""
    async with contextlib.AsyncExitStack() as opened:
        opening = asyncio.ensure_future(opened.enter_async_context(feed.job.open()))
        stopped = asyncio.ensure_future(run.stop.wait())
        try:
            await asyncio.wait((opening, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not opening.done():
                opening.cancel()
                await asyncio.wait((opening,))  # until it has cleaned up after itself
        if opening.cancelled():
            raise _StoppedOpening
        yield opening.result()


async def _resolve(run: Shared, feed: Feed) -> None:
    feed.freshness = Freshness.of(feed.job.definition)
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


def _sort(run: Shared, feed: Feed, chunk: list[Record], judge: Judge) -> list[Indicator]:
    """Count every record of ``chunk`` that is not a new indicator; the candidates to send."""
    report = feed.report
    candidates: list[Indicator] = []
    for record in chunk:
        if isinstance(record, Indicator):
            if not feed.seen.add(record.kind, record.value):
                report.duplicate_in_feed += 1
                continue
            reason = judge(record)  # the feed's policy (importer.policy): filtered, with the reason
            if reason is not None:
                _filtered(run, feed, record, reason)
                continue
            reason = run.target.unsupported(record)
            if reason is not None:
                run.reject(feed, record, reason)
            else:
                candidates.append(record)
        elif isinstance(record, Rejected):
            run.parse_reject(feed, record)
        elif isinstance(record, Expired):
            report.expired += 1
        elif isinstance(record, Skipped):
            report.skipped += 1
        else:  # a reader yielding something else is a bug; count it rather than lose it
            report.rejected += 1
            report.note_reason(f"unexpected record type {type(record).__name__}")
    return candidates


def _filtered(run: Shared, feed: Feed, indicator: Indicator, reason: str) -> None:
    """Count ``indicator`` filtered: its feed's policy keeps it out (a rejects line, never retried)."""
    feed.report.filtered += 1
    feed.report.note_reason(reason)
    try:
        run.rejects.filtered(feed.report.name, indicator, reason)
    except ConfigError as exc:
        run.halt(exc)


async def _classify(run: Shared, feed: Feed, chunk: list[Record], judge: Judge) -> None:
    report = feed.report
    report.records_read += len(chunk)
    run.progress.read(report.name, len(chunk))
    candidates = _sort(run, feed, chunk, judge)
    if not candidates:
        return
    if run.stop.is_set():  # read after the stop: nothing more is sent, nor asked about
        hold_back(run, feed, candidates)
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
    updates: list[tuple[Indicator, str]] = []
    if not held:
        fresh = candidates
    else:
        fresh, updates = await _judge(run, feed, candidates, held)
        report.already_present += len(candidates) - len(fresh) - len(updates)
    if run.options.dry_run:
        report.would_import += len(fresh)
        report.would_update += len(updates)
        return
    feed.pending.extend(fresh)
    while len(feed.pending) >= run.batch_size:
        batch, feed.pending = feed.pending[: run.batch_size], feed.pending[run.batch_size :]
        await _enqueue(run, feed, batch)
    feed.pending_updates.extend(updates)
    size = run.update_batch_size
    while len(feed.pending_updates) >= size:
        items, feed.pending_updates = feed.pending_updates[:size], feed.pending_updates[size:]
        await _enqueue_updates(run, feed, items)


async def _judge(
    run: Shared, feed: Feed, candidates: list[Indicator], held: dict[Key, Held]
) -> tuple[list[Indicator], list[tuple[Indicator, str]]]:
    """Split ``candidates`` into new ones and held ones to send again (``pipeline.freshness``);
    the rest are present. Held ones known only from before stamps have their assumed stamp
    recorded, and values another definition owns are noted as this feed's too (``shared``)."""
    definition = feed.definition
    assert definition is not None
    fresh: list[Indicator] = []
    updates: list[tuple[Indicator, str]] = []
    adopted: list[Acked] = []
    shared: list[tuple[Indicator, Held]] = []
    stamp, judge = run.target.stamp, feed.freshness.judge  # per held indicator: kept cheap
    for candidate in candidates:
        found = held.get((candidate.kind, candidate.value))
        if found is None:
            fresh.append(candidate)
        elif found.elsewhere:
            shared.append((candidate, found))
        else:
            wanted = stamp(definition, candidate)
            if found.stamp == wanted:  # the usual night: exactly what would be sent
                continue
            verdict = judge(found, wanted, own_expiry=candidate.expires is not None)
            if verdict.send:
                updates.append((candidate, found.remote_id))
            elif verdict.adopt is not None:
                adopted.append((candidate.kind, candidate.value, found.remote_id, verdict.adopt))
    if not run.options.dry_run:
        if adopted:
            await run.present.record(definition, adopted)
        if shared:
            await run.present.shared(definition, shared)
    return fresh, updates


async def _enqueue(run: Shared, feed: Feed, batch: list[Indicator]) -> None:
    if run.stop.is_set():  # e.g. stopped while this chunk's present-lookup was awaited
        hold_back(run, feed, batch)
        return
    run.progress.queued(feed.report.name, len(batch))
    await run.queue.put((feed, batch, None))


async def _enqueue_updates(run: Shared, feed: Feed, items: list[tuple[Indicator, str]]) -> None:
    batch = [indicator for indicator, _ in items]
    if run.stop.is_set():
        hold_back(run, feed, batch)
        return
    run.progress.queued(feed.report.name, len(batch))
    await run.queue.put((feed, batch, [remote_id for _, remote_id in items]))
