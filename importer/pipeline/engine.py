"""The import pipeline: one producer per feed, a bounded queue of batches, N workers sending to a target.

    feed ─► producer ─┐                                ┌─► worker ─► target.send(batch)
    feed ─► producer ─┼─► asyncio.Queue(maxsize=N) ────┼─► worker ─► ...
    feed ─► producer ─┘   (batches; back-pressure)     └─► worker

A producer reads its feed a chunk of records at a time in a thread (parsing is synchronous, and
stdin may block), so the event loop keeps serving the workers and the token refresh. Per feed it
reads the first chunk (an unreadable feed creates no alert definition), resolves the definition
once, asks the ``PresentStore`` what the definition already holds, then classifies every record
into exactly one bucket of its ``FeedReport``. Memory is bounded by the queue (workers x batch
size) plus one compact key per distinct indicator, never by the feed's size.

Stopping: an ``AuthError`` anywhere stops the run (exit 3): producers stop reading and every
indicator read but not sent is reported failed. ``stop`` (an ``asyncio.Event`` set e.g. on
SIGTERM) makes producers stop reading while workers finish what is queued — for at most
``PipelineOptions.grace`` seconds; then requests still in flight are cancelled and their
indicators reported failed ("unsettled": the target may or may not have stored them, so the
run must not be marked finished in the journal and the next one lists the target).

Duplicates within a feed are dropped with a ``SeenSet`` (one 64-bit hash per distinct indicator).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from feeds.model import Expired, FeedError, Indicator, Record, Rejected, Skipped
from importer.errors import ApiError, AuthError, ConfigError
from importer.model import BatchResult, ResolvedDefinition
from importer.pipeline.present import InMemoryPresent, Key, PresentStore, SeenSet
from importer.pipeline.progress import NoProgress, Progress
from importer.pipeline.rejects import RejectsWriter
from importer.pipeline.sources import FeedJob
from importer.report.counts import FeedReport, RunReport
from importer.targets.base import Target
from importer.transport.stats import TransportStats

__all__ = ["PipelineOptions", "run_pipeline"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """How the pipeline runs (the target's mode is chosen when it is opened; ``mode`` is for the report)."""

    batch_size: int = 500
    workers: int = 16
    dry_run: bool = False
    mode: str = "bulk"
    chunk: int = 2000  # records read per hop to the reading thread
    grace: float = 30.0  # seconds in-flight requests may take to finish after a stop request


@dataclass(slots=True)
class _Feed:
    job: FeedJob
    report: FeedReport
    seen: SeenSet = field(default_factory=SeenSet)
    definition: ResolvedDefinition | None = None
    cannot_send: str | None = None  # why none of its indicators can be sent (definition failed)
    pending: list[Indicator] = field(default_factory=list)


def _take(records: Iterator[Record], count: int) -> list[Record]:
    return list(itertools.islice(records, count))


class _Run:
    def __init__(
        self,
        target: Target,
        options: PipelineOptions,
        *,
        present: PresentStore,
        progress: Progress,
        rejects: RejectsWriter,
        stop: asyncio.Event,
    ) -> None:
        self.target = target
        self.options = options
        self.present = present
        self.progress = progress
        self.rejects = rejects
        self.stop = stop
        self.batch_size = max(1, min(options.batch_size, target.max_batch))
        self.queue: asyncio.Queue[tuple[_Feed, list[Indicator]] | None] = asyncio.Queue(
            maxsize=max(1, options.workers)
        )
        self.auth_error: AuthError | None = None
        self.abandoned = False  # the grace period after a stop ran out
        self.unsettled = 0  # batches cancelled in flight: stored or not, nobody knows
        self.inflight: set[asyncio.Future[BatchResult]] = set()

    async def watchdog(self) -> None:
        """After a stop request, give in-flight requests ``grace`` seconds, then cancel them."""
        await self.stop.wait()
        await asyncio.sleep(self.options.grace)
        _log.warning("stopping: requests still in flight after %.0f s are cancelled", self.options.grace)
        self.abandoned = True
        for task in list(self.inflight):
            task.cancel()

    # -- failing ------------------------------------------------------------------------------

    def fatal(self, exc: AuthError) -> None:
        if self.auth_error is None:
            _log.info("authentication failed, stopping the run: %s", exc)
            self.auth_error = exc
        self.stop.set()

    def fail(self, feed: _Feed, indicators: Sequence[Indicator], reason: str) -> None:
        feed.report.failed += len(indicators)
        feed.report.note_reason(reason, len(indicators))
        for indicator in indicators:
            self.rejects.indicator(
                feed.report.name, indicator, reason, failed=True, definition=feed.job.definition
            )

    def reject(self, feed: _Feed, indicator: Indicator, reason: str) -> None:
        feed.report.rejected += 1
        feed.report.note_reason(reason)
        self.rejects.indicator(
            feed.report.name, indicator, reason, failed=False, definition=feed.job.definition
        )

    # -- producing ----------------------------------------------------------------------------

    async def produce(self, feed: _Feed) -> None:
        report = feed.report
        self.progress.feed_started(report.name)
        records: Iterator[Record] | None = None
        try:
            async with feed.job.open() as records:
                chunk = await asyncio.to_thread(_take, records, self.options.chunk)
                if not self.stop.is_set():
                    await self.resolve(feed)
                while chunk:
                    await self.classify(feed, chunk)
                    if self.stop.is_set():
                        break
                    chunk = await asyncio.to_thread(_take, records, self.options.chunk)
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
        await self.flush(feed)
        self.progress.feed_done(report.name)

    async def resolve(self, feed: _Feed) -> None:
        try:
            feed.definition = await self.target.resolve_definition(
                feed.job.definition, dry_run=self.options.dry_run
            )
            feed.report.definition_id = feed.definition.id
            feed.report.definition_outcome = feed.definition.outcome
            held = await self.present.load(self.target, feed.definition)
            _log.info("feed %s: alert definition %s (%s), %d indicators held",
                      feed.report.name, feed.definition.id, feed.definition.outcome, held)  # fmt: skip
        except AuthError as exc:
            self.fatal(exc)
        except (ApiError, ConfigError) as exc:
            # The feed is still read to its end: its indicators are reported failed, with this
            # reason, in the report and the rejects file, so nothing is silently dropped.
            # A ConfigError is the target refusing the definition as configured (exit 2).
            feed.cannot_send = (
                str(exc)
                if isinstance(exc, ConfigError)
                else (f"the alert definition could not be resolved: {exc}")
            )
            feed.report.error = feed.cannot_send
            feed.report.config_error = isinstance(exc, ConfigError)
            _log.info("feed %s: %s", feed.report.name, feed.cannot_send)

    async def classify(self, feed: _Feed, chunk: list[Record]) -> None:
        report = feed.report
        report.records_read += len(chunk)
        self.progress.read(report.name, len(chunk))
        candidates: list[Indicator] = []
        for record in chunk:
            if isinstance(record, Indicator):
                if not feed.seen.add(record.kind, record.value):
                    report.duplicate_in_feed += 1
                    continue
                reason = self.target.unsupported(record)
                if reason is not None:
                    self.reject(feed, record, reason)
                else:
                    candidates.append(record)
            elif isinstance(record, Rejected):
                report.rejected += 1
                report.note_reason(record.reason)
                self.rejects.parse_reject(report.name, record)
            elif isinstance(record, Expired):
                report.expired += 1
            elif isinstance(record, Skipped):
                report.skipped += 1
            else:  # a reader yielding something else is a bug; count it rather than lose it
                report.rejected += 1
                report.note_reason(f"unexpected record type {type(record).__name__}")
        if not candidates:
            return
        if feed.definition is None:
            self.fail(feed, candidates, feed.cannot_send or "not sent: the run stopped")
            return
        keys: list[Key] = [(c.kind, c.value) for c in candidates]
        try:
            held = await self.present.present(feed.definition, keys)
        except AuthError as exc:
            self.fatal(exc)
            self.fail(feed, candidates, "not sent: the run stopped after an authentication failure")
            return
        fresh = [c for c in candidates if (c.kind, c.value) not in held] if held else candidates
        report.already_present += len(candidates) - len(fresh)
        if self.options.dry_run:
            report.would_import += len(fresh)
            return
        feed.pending.extend(fresh)
        while len(feed.pending) >= self.batch_size:
            batch, feed.pending = feed.pending[: self.batch_size], feed.pending[self.batch_size :]
            await self.enqueue(feed, batch)

    async def flush(self, feed: _Feed) -> None:
        if feed.pending:
            batch, feed.pending = feed.pending, []
            await self.enqueue(feed, batch)

    async def enqueue(self, feed: _Feed, batch: list[Indicator]) -> None:
        self.progress.queued(feed.report.name, len(batch))
        await self.queue.put((feed, batch))

    # -- sending ------------------------------------------------------------------------------

    async def work(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                if item is None:
                    return
                await self.send(*item)
            finally:
                self.queue.task_done()

    async def send(self, feed: _Feed, batch: list[Indicator]) -> None:
        assert feed.definition is not None
        if self.auth_error is not None or self.abandoned:
            why = "authentication failure" if self.auth_error is not None else "stop request"
            self.fail(feed, batch, f"not sent: the run stopped after a {why}")
            self.progress.sent(feed.report.name, len(batch))
            return
        task = asyncio.ensure_future(self.target.send(feed.definition, batch))
        self.inflight.add(task)
        try:
            result = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self.abandoned or (current is not None and current.cancelling()):
                raise  # the worker itself was cancelled, not just its request
            self.unsettled += 1
            why = "unknown: the run stopped while it was being sent"
            result = BatchResult(failed=[(i, why) for i in batch])
        except AuthError as exc:
            self.fatal(exc)
            result = BatchResult(failed=[(i, "not sent: authentication failed") for i in batch])
        except ApiError as exc:  # a target should classify per indicator; never lose a batch if not
            result = BatchResult(failed=[(i, str(exc)) for i in batch])
        except Exception as exc:  # a bug must not hang the run or lose the batch silently
            _log.exception("sending a batch of %s failed unexpectedly", feed.report.name)
            result = BatchResult(failed=[(i, f"internal error: {type(exc).__name__}") for i in batch])
        finally:
            self.inflight.discard(task)
        await self.account(feed, batch, result)
        self.progress.sent(feed.report.name, len(batch))

    async def account(self, feed: _Feed, batch: list[Indicator], result: BatchResult) -> None:
        report = feed.report
        answered = len(result.imported) + len(result.rejected) + len(result.failed)
        if answered != len(batch):
            # Keep the report honest whatever the target did: unanswered ones count as failed.
            ids = {id(i) for i, _ in itertools.chain(result.imported, result.rejected, result.failed)}
            missing = [i for i in batch if id(i) not in ids]
            _log.error("the target answered %d of %d indicators of a batch", answered, len(batch))
            result.failed.extend((i, "the target gave no answer for it") for i in missing)
        report.imported += len(result.imported)
        if result.imported:
            assert feed.definition is not None
            await self.present.record(feed.definition, result.imported)
        for indicator, reason in result.rejected:
            self.reject(feed, indicator, reason)
        for indicator, reason in result.failed:
            self.fail(feed, [indicator], reason)


async def run_pipeline(
    target: Target,
    jobs: Sequence[FeedJob],
    *,
    options: PipelineOptions | None = None,
    stats: TransportStats | None = None,
    present: PresentStore | None = None,
    progress: Progress | None = None,
    rejects: RejectsWriter | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunReport:
    """Import every job's feed into ``target``; the report says where every record went."""
    options = options or PipelineOptions()
    run = _Run(
        target,
        options,
        present=present or InMemoryPresent(),
        progress=progress or NoProgress(),
        rejects=rejects or RejectsWriter(None),
        stop=stop or asyncio.Event(),
    )
    feeds = [_Feed(job, FeedReport(name=job.name, source=job.source)) for job in jobs]
    report = RunReport(target=target.name, mode=options.mode, dry_run=options.dry_run,
                       feeds=[f.report for f in feeds], transport=stats or TransportStats())  # fmt: skip
    started = clock()
    workers = [asyncio.create_task(run.work()) for _ in range(max(1, options.workers))]
    watchdog = asyncio.create_task(run.watchdog())
    try:
        outcomes = await asyncio.gather(*(run.produce(feed) for feed in feeds), return_exceptions=True)
        for _ in workers:
            await run.queue.put(None)
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        raise
    finally:
        watchdog.cancel()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    report.duration = clock() - started
    report.stopped = run.stop.is_set()
    report.unsettled = run.unsettled
    if run.auth_error is not None:
        report.auth_error = str(run.auth_error)
    for feed in feeds:
        try:
            feed.report.check()
        except AssertionError as exc:  # a bug; say so loudly, but still hand back the report
            _log.error("%s", exc)
    return report
