"""The workers of a pipeline run: take a batch off the queue, send it, account for every indicator.

A worker holds one request in flight at a time (``InFlight``: ``workers`` of them). After a stop
request, ``watchdog`` gives the requests in flight ``grace`` seconds, then cancels them: their
indicators are failed and the run "unsettled" (the target may or may not hold them).
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from feeds.model import Indicator
from importer.errors import ApiError, AuthError
from importer.model import BatchResult
from importer.pipeline.shared import Feed, Shared

__all__ = ["watchdog", "work"]

_log = logging.getLogger(__name__)


async def watchdog(run: Shared) -> None:
    """After a stop request, give in-flight requests ``grace`` seconds, then cancel them."""
    await run.stop.wait()
    await asyncio.sleep(run.options.grace)
    _log.warning("stopping: requests still in flight after %.0f s are cancelled", run.options.grace)
    run.abandoned = True
    for task in list(run.inflight):
        task.cancel()


async def work(run: Shared) -> None:
    """Send batches until the queue hands this worker ``None``."""
    while True:
        item = await run.queue.get()
        try:
            if item is None:
                return
            await _send(run, *item)
        finally:
            run.queue.task_done()


async def _send(run: Shared, feed: Feed, batch: list[Indicator]) -> None:
    assert feed.definition is not None
    if run.auth_error is not None or run.abandoned:
        why = "authentication failure" if run.auth_error is not None else "stop request"
        run.fail(feed, batch, f"not sent: the run stopped after a {why}")
        run.progress.sent(feed.report.name, len(batch))
        return
    task = asyncio.ensure_future(run.target.send(feed.definition, batch))
    run.inflight.add(task)
    try:
        result = await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not run.abandoned or (current is not None and current.cancelling()):
            raise  # the worker itself was cancelled, not just its request
        run.unsettled += 1
        why = "unknown: the run stopped while it was being sent"
        result = BatchResult(failed=[(i, why) for i in batch])
    except AuthError as exc:
        run.fatal(exc)
        result = BatchResult(failed=[(i, "not sent: authentication failed") for i in batch])
    except ApiError as exc:  # a target should classify per indicator; never lose a batch if not
        result = BatchResult(failed=[(i, str(exc)) for i in batch])
    except Exception as exc:  # a bug must not hang the run or lose the batch silently
        _log.exception("sending a batch of %s failed unexpectedly", feed.report.name)
        result = BatchResult(failed=[(i, f"internal error: {type(exc).__name__}") for i in batch])
    finally:
        run.inflight.discard(task)
    await _account(run, feed, batch, result)
    run.progress.sent(feed.report.name, len(batch))


async def _account(run: Shared, feed: Feed, batch: list[Indicator], result: BatchResult) -> None:
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
        await run.present.record(feed.definition, result.imported)
    for indicator, reason in result.rejected:
        run.reject(feed, indicator, reason)
    for indicator, reason in result.failed:
        run.fail(feed, [indicator], reason)
