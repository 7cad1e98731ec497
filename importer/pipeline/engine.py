"""The import pipeline, wired: one producer per feed, a bounded queue of batches, N workers, one report.

    feed ─► producer ─┐                                ┌─► worker ─► target.send(batch)
    feed ─► producer ─┼─► asyncio.Queue (read-ahead) ──┼─► worker ─► ...
    feed ─► producer ─┘   (batches; back-pressure)     └─► worker

Producers (``produce``) read, resolve and classify; workers (``send``) send and account; both
share one ``Shared``. ``workers`` (``InFlight``) is the number of requests in flight: one worker
task each, and as many batches read ahead. Memory is bounded by the queue and the batches in
flight (``2 x workers x batch size`` indicators) plus one compact key per distinct indicator,
never by the feed's size.

Stopping: ``stop`` (an ``asyncio.Event`` set e.g. on SIGINT/SIGTERM) means no new request: a
feed still being opened (downloaded) is given up, producers stop reading, what they read is not
queued, a queued batch is not sent, and a target posting a batch one request at a time (single
mode, ``ti``'s updates) posts no further one (``stopping`` of ``Target.send`` and ``update``).
Those indicators are counted ``not_attempted``, not failed: a rerun sends them. Requests already
in flight may finish for ``PipelineOptions.grace`` seconds; then they are cancelled and their
indicators reported failed ("unsettled": the target may or may not have stored them, so the run
must not be marked finished in the journal and the next one lists the target). An ``AuthError``
anywhere stops the run the same way (exit 3), except that what was read but not sent is
reported failed. So does a worker's failure of any other kind (``Shared.halt``): a journal commit
or a rejects line that cannot be written (a full disk: exit 2, its one sentence the report's
``error``), or a bug (exit 1); the workers keep emptying the queue, so no producer waits on it.

Duplicates within a feed are dropped with a ``SeenSet`` (one 64-bit hash per distinct indicator, in
a flat table of 8-byte slots: 11 to 21 bytes each).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from importer.errors import ConfigError
from importer.fields import definition_to_json
from importer.pipeline.job import FeedJob
from importer.pipeline.present import InMemoryPresent, PresentStore
from importer.pipeline.produce import produce
from importer.pipeline.progress import NoProgress, Progress
from importer.pipeline.rejects import RejectsWriter
from importer.pipeline.send import watchdog, work
from importer.pipeline.shared import Feed, PipelineOptions, Shared
from importer.report.counts import EXIT_CONFIG, EXIT_FAILED, FeedReport, RunReport
from importer.targets.base import Target
from importer.transport.stats import TransportStats

__all__ = ["PipelineOptions", "run_pipeline"]

_log = logging.getLogger(__name__)


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
    run = Shared(
        target,
        options,
        present=present or InMemoryPresent(),
        progress=progress or NoProgress(),
        rejects=rejects or RejectsWriter(None),
        stop=stop or asyncio.Event(),
    )
    feeds = [
        Feed(job, FeedReport(name=job.name, source=job.source, definition=definition_to_json(job.definition)))
        for job in jobs
    ]
    report = RunReport(target=target.name, mode=options.mode, dry_run=options.dry_run,
                       feeds=[f.report for f in feeds], transport=stats or TransportStats())  # fmt: skip
    started = clock()
    workers = [asyncio.create_task(work(run)) for _ in range(options.in_flight.requests)]
    guard = asyncio.create_task(watchdog(run))
    try:
        outcomes = await asyncio.gather(*(produce(run, feed) for feed in feeds), return_exceptions=True)
        for _ in workers:
            await run.queue.put(None)
        await asyncio.gather(*workers)
        try:
            await run.present.flush()  # commits still under way: a failure among them ends the run too
        except Exception as exc:
            run.halt(exc)
    except BaseException:
        for task in workers:
            task.cancel()
        raise
    finally:
        guard.cancel()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    report.duration = clock() - started
    report.stopped = run.stop.is_set()
    report.unsettled = run.unsettled
    if run.auth_error is not None:
        report.auth_error = str(run.auth_error)
    if run.error is not None:
        report.error, report.error_exit = _ended_by(run.error)
    for feed in feeds:
        try:
            feed.report.check()
        except AssertionError as exc:  # a bug; say so loudly, but still hand back the report
            _log.error("%s", exc)
    return report


def _ended_by(error: Exception) -> tuple[str, int]:
    """The report's sentence and exit code for what stopped the run (``Shared.halt``)."""
    if isinstance(error, ConfigError):  # a journal or rejects file that cannot be written: exit 2
        return str(error), EXIT_CONFIG
    # A bug: its text may hold anything, so only its type (the traceback is in the log).
    return f"stopped by an internal error ({type(error).__name__}); see the log", EXIT_FAILED
