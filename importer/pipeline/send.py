"""The workers of a pipeline run: take a batch off the queue, send it, account for every indicator.

A worker holds one request in flight at a time (``InFlight``: ``workers`` of them). Once the run
stops, no request starts: a batch taken off the queue is not sent, and a target posting a batch
in several requests (single mode) leaves the rest unposted (``Target.send``'s ``stopping``);
those indicators are "not attempted" (``hold_back``). ``watchdog`` gives the requests in flight
``grace`` seconds, then cancels them: their indicators are failed and the run "unsettled" (the
target may or may not hold them).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence

from feeds.model import Indicator
from importer.errors import ApiError, AuthError, ConfigError
from importer.model import BatchResult, ResolvedDefinition
from importer.pipeline.shared import Feed, Shared

__all__ = ["hold_back", "watchdog", "work"]

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
    """Send batches until the queue hands this worker ``None``.

    A failure of any kind (the journal cannot commit an acknowledged batch, a bug) stops the run
    (``Shared.halt``), and the worker goes on taking batches off the queue — no longer sending
    them — so that no producer waits for ever on a full queue that nobody empties."""
    while True:
        item = await run.queue.get()
        try:
            if item is None:
                return
            await _send(run, *item)
        except Exception as exc:
            run.halt(exc)
        finally:
            run.queue.task_done()


def hold_back(run: Shared, feed: Feed, indicators: Sequence[Indicator]) -> None:
    """Account for indicators read but not sent because the run stopped.

    After a signal they are "not attempted": no failure and no rejects line, since a rerun sends
    them anyway (the journal does not hold them). After an authentication failure they stay
    failed, as the exit-3 path always had them (the rejects file lists them for ``--retry-from``).
    """
    if run.auth_error is not None:
        run.fail(feed, indicators, "not sent: the run stopped after an authentication failure")
    else:
        feed.report.not_attempted += len(indicators)


async def _request(
    run: Shared, definition: ResolvedDefinition, batch: list[Indicator], remote_ids: list[str] | None
) -> BatchResult:
    # Asked here, in the request's own task, and not before creating it: a stop handled in
    # between must not let this request start.
    if run.stop.is_set():
        return BatchResult(unsent=list(batch))
    if remote_ids is not None:  # held already, with changed metadata or expiry: an update
        items = list(zip(batch, remote_ids, strict=True))
        return await run.target.update(definition, items, stopping=run.stop.is_set)
    return await run.target.send(definition, batch, stopping=run.stop.is_set)


async def _send(run: Shared, feed: Feed, batch: list[Indicator], remote_ids: list[str] | None) -> None:
    """Send (``remote_ids`` None) or update one batch, and account for each of its indicators."""
    assert feed.definition is not None
    task = asyncio.ensure_future(_request(run, feed.definition, batch, remote_ids))
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
    except ConfigError as exc:  # found mid-run (a redirect, an untrusted certificate): exit 2
        run.halt(exc)
        result = BatchResult(failed=[(i, str(exc)) for i in batch])
    except ApiError as exc:  # a target should classify per indicator; never lose a batch if not
        result = BatchResult(failed=[(i, str(exc)) for i in batch])
    except Exception as exc:  # a bug must not hang the run or lose the batch silently
        _log.exception("sending a batch of %s failed unexpectedly", feed.report.name)
        result = BatchResult(failed=[(i, f"internal error: {type(exc).__name__}") for i in batch])
    finally:
        run.inflight.discard(task)
    await _account(run, feed, batch, result, updating=remote_ids is not None)
    run.progress.sent(feed.report.name, len(batch))


async def _account(
    run: Shared, feed: Feed, batch: list[Indicator], result: BatchResult, *, updating: bool
) -> None:
    report = feed.report
    answered = len(result.imported) + len(result.rejected) + len(result.failed) + len(result.unsent)
    if answered != len(batch):
        # Keep the report honest whatever the target did: unanswered ones count as failed.
        ids = {id(i) for i, _ in itertools.chain(result.imported, result.rejected, result.failed)}
        ids.update(id(i) for i in result.unsent)
        missing = [i for i in batch if id(i) not in ids]
        _log.error("the target answered %d of %d indicators of a batch", answered, len(batch))
        result.failed.extend((i, "the target gave no answer for it") for i in missing)
    if updating:
        report.updated += len(result.imported)
    else:
        report.imported += len(result.imported)
    for indicator, reason in result.rejected:
        run.reject(feed, indicator, reason)
    for indicator, reason in result.failed:
        run.fail(feed, [indicator], reason)
    if result.unsent:
        hold_back(run, feed, result.unsent)
    if result.imported:
        # Last, once every indicator is counted: a commit that fails (a full disk) stops the run
        # from ``work`` and the report still adds up. The target holds them all the same; the
        # run is then not marked finished, so the next one lists the definition.
        definition = feed.definition
        assert definition is not None
        stamp = run.target.stamp  # of what was just sent: what the target holds from now on
        acked = [(i.kind, i.value, rid, stamp(definition, i)) for i, rid in result.imported]
        await run.present.record(definition, acked)
