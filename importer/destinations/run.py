"""A run of several destinations: each feed read once, sent to every destination concurrently, one report.

``run_destinations`` runs ``run_import`` once per destination, all at once, each with its own
target (token, limiter, worker budget), host lock, journal scope (one journal file, keyed by
target and tenant) and stop event; a feed that goes to more than one is opened and read once
(``fanout.FanOut``) and its records handed to each. One destination failing — authentication, a
quota, an unreachable API, a held lock — ends that destination only: its section of the report
says why, the others go on, and the run's exit code is the worst of theirs. A signal stops them
all. With one destination the caller runs ``run_import`` itself: its report is as it always was.

One rejects file (``--rejects``) for the whole run: one writer, each destination writing through
its view, whose lines name it (``destination``), committed once when every destination has ended
— one temporary file renamed over the last run's, never a merge of several (which would need the
file's size twice on disk, at the end, when a full disk is likeliest). ``--retry-from`` sends each
retryable line to the destination it names; lines naming one not in this run are counted in the
report (``retry_not_sent``) and left in the file; a line naming none (a run without
``[[destination]]`` tables wrote it) is refused: which destination failed it, the file cannot say.

Not shared: a pull (TAXII, a MISP feed) reads from each destination's own cursor in the journal,
so each destination pulls it; and a feed read once is left out of a capped target's choice
(``pipeline.cap`` would read it a second time), as stdin is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from importer.destinations.fanout import FanOut
from importer.errors import ConfigError
from importer.fields import COMMON, FORMAT, TAXII
from importer.pipeline.job import FeedJob
from importer.pipeline.rejects import RejectsWriter
from importer.pipeline.signals import stop_on_signals
from importer.report.counts import EXIT_CONFIG, RunReport
from importer.report.files import write_failure_report, write_outputs
from importer.report.outputs import check_outputs
from importer.run import failure, run_import, run_inputs
from importer.settings import Destination, OutputOptions, StateOptions
from importer.sources.feed import job_for
from importer.sources.misp_feed import is_misp_feed
from importer.sources.retry import not_sent, retry_census, retry_jobs
from importer.state.store import tenant_key
from importer.targets.registry import package

__all__ = ["run_destinations"]

_log = logging.getLogger(__name__)


async def run_destinations(
    destinations: Sequence[Destination],
    output: OutputOptions | None = None,
    *,
    state: StateOptions | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    stop: asyncio.Event | None = None,
    signals: bool = False,
    grace: float = 30.0,
) -> RunReport:
    """Import into every destination at once (see the module); the report has a section for each.

    The arguments are ``run_import``'s. The report and the metrics file are written however the
    run ends; a failure of the run as a whole (its outputs refused, two destinations on one
    tenant) raises, after writing them."""
    output = output or OutputOptions()
    state = state or StateOptions()
    started, began = wall(), clock()
    inputs: dict[Path, str] = {}
    for destination in destinations:
        inputs.update(run_inputs(destination.settings, state))
    check_outputs({"the report": output.report, "the metrics file": output.metrics}, inputs)
    stop = stop or asyncio.Event()
    try:
        check_outputs({"the report": output.report, "the metrics file": output.metrics,
                       "the rejects file": output.rejects}, inputs)  # fmt: skip
        not_sent = _check_run(destinations)
        with stop_on_signals(stop) if signals else _no_signals() as handler:
            parts, closing = await _run_all(destinations, state, output.rejects, sleep=sleep, clock=clock,
                                            stop=stop, grace=grace)  # fmt: skip
    except BaseException as exc:
        code, sentence = failure(exc)
        failed = RunReport.failed(sentence, code, target=None)
        failed.started_at, failed.finished_at = started, wall()
        write_failure_report(failed, output.report, output.metrics)
        raise
    first = destinations[0].settings
    report = RunReport(target=None, mode=first.tuning.mode, dry_run=first.dry_run, destinations=parts)
    report.duration, report.started_at, report.finished_at = clock() - began, started, wall()
    report.retry_not_sent = not_sent
    if closing is not None:  # the rejects file's last flush or rename failed (a full disk): exit 2
        report.error, report.error_exit = str(closing), EXIT_CONFIG
    if handler is not None and handler.received is not None:
        report.signalled = True
        for part in parts:
            part.signalled = True
    write_outputs(report, output.report, output.metrics)
    return report


def _check_run(destinations: Sequence[Destination]) -> dict[str, int]:
    """What a run of several destinations refuses before anything is read; the retryable lines of
    ``--retry-from`` naming a destination not in the run, by its name (said, not sent)."""
    seen: dict[tuple[str, str], str] = {}
    for destination in destinations:
        connection = destination.settings.connection
        key = (destination.settings.target, tenant_key(connection.tenant_url, connection.client_id))
        if key in seen:
            raise ConfigError(
                f"the destinations {seen[key]!r} and {destination.name!r} are one {key[0]} tenant (the same "
                "API, scope and client id): every indicator would be posted twice; keep one"
            )
        seen[key] = destination.name
    retry_from = destinations[0].settings.retry_from  # the command line's: every destination's
    if retry_from is None:
        return {}
    census = retry_census(retry_from)
    if census.get(None):
        raise ConfigError(
            f"--retry-from {retry_from}: {census[None]} retryable lines name no destination (a run without "
            "[[destination]] tables wrote them), so a run of several cannot tell where they failed: give "
            "--destination NAME to send them to one"
        )
    return not_sent(retry_from, census, {destination.name for destination in destinations})


async def _run_all(
    destinations: Sequence[Destination],
    state: StateOptions,
    rejects_path: Path | None,
    *,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    stop: asyncio.Event,
    grace: float,
) -> tuple[list[RunReport], ConfigError | None]:
    """Every destination's run at once, each feed read once; their reports, in order, and why the
    rejects file could not be made final, if it could not."""
    rejects = RejectsWriter(rejects_path)
    try:
        parts = await _run_each(
            destinations, state, rejects, sleep=sleep, clock=clock, stop=stop, grace=grace
        )
    finally:
        try:
            rejects.close()  # once every destination has ended: the one rename
        except ConfigError as exc:
            closing: ConfigError | None = exc
        else:
            closing = None
    return parts, closing


async def _run_each(
    destinations: Sequence[Destination],
    state: StateOptions,
    rejects: RejectsWriter,
    *,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    stop: asyncio.Event,
    grace: float,
) -> list[RunReport]:
    """``_run_all`` with its rejects file open."""
    shared = _shared_feeds(destinations)
    reader = ThreadPoolExecutor(max_workers=max(1, len(shared)), thread_name_prefix="ti-import-feed")
    fans = {name: FanOut(job, readers, reader) for name, (job, readers) in shared.items()}
    if fans:
        # Each destination's producer waits for a shared feed's reader in a thread of the loop's
        # default executor (``fanout``): room for one such wait per destination and feed, besides
        # the usual work (the journal, the policy), which would otherwise wait behind them for ever.
        waits = sum(len(fan.names) for fan in fans.values())
        usual = min(32, (os.cpu_count() or 1) + 4)
        executor = ThreadPoolExecutor(max_workers=usual + waits, thread_name_prefix="ti-import")
        asyncio.get_running_loop().set_default_executor(executor)
    stops = [asyncio.Event() for _ in destinations]
    relay = asyncio.create_task(_relay(stop, stops))

    async def one(index: int, destination: Destination) -> RunReport:
        definitions = {feed.definition.name: feed.definition for feed in destination.settings.feeds}
        reads = {
            name: fan.job_for(destination.name, definitions[name])
            for name, fan in fans.items()
            if destination.name in fan.names
        }
        try:
            report = await run_import(
                destination.settings, OutputOptions(progress=False), state=state, sleep=sleep,
                clock=clock, stop=stops[index], grace=grace, shared=reads,
                rejects=rejects.for_destination(destination.name), retries=_retries(destination),
            )  # fmt: skip
        except Exception as exc:  # this destination only: the others go on
            if not isinstance(exc, ConfigError):
                _log.error("destination %s stopped by an internal error", destination.name, exc_info=exc)
            report = _failed(destination, exc)
        finally:
            for fan in fans.values():
                fan.detach(destination.name)
        return report

    try:
        return list(await asyncio.gather(*(one(i, d) for i, d in enumerate(destinations))))
    finally:
        relay.cancel()
        await asyncio.gather(*(fan.close() for fan in fans.values()))
        reader.shutdown(wait=False)


def _retries(destination: Destination) -> list[FeedJob] | None:
    """The destination's jobs of the ``--retry-from`` file: the lines naming it (None: no file)."""
    settings = destination.settings
    if settings.retry_from is None:
        return None
    rows = COMMON + package(settings.target).fields
    return retry_jobs(settings.retry_from, rows, destination=destination.name)


def _shared_feeds(destinations: Sequence[Destination]) -> dict[str, tuple[FeedJob, list[str]]]:
    """Each feed that goes to more than one destination (pulls excepted): its job, opened once,
    and the names of the destinations that read it."""
    readers: dict[str, list[Destination]] = {}
    for destination in destinations:
        for feed in destination.settings.feeds:
            if feed[FORMAT] == TAXII or is_misp_feed(feed.source, feed[FORMAT]):
                continue  # each destination pulls from its own cursor
            readers.setdefault(feed.definition.name, []).append(destination)
    shared = {}
    for name, readers_of in readers.items():
        if len(readers_of) < 2:
            continue
        first = readers_of[0].settings
        feed = next(f for f in first.feeds if f.definition.name == name)
        job = job_for(feed.source, feed.definition, feed.options, first.connection.network)
        shared[name] = (job, [d.name for d in readers_of])
    return shared


async def _relay(stop: asyncio.Event, stops: Sequence[asyncio.Event]) -> None:
    """A stop of the run (a signal) is every destination's; one's own stop (its authentication
    failed) is not the others'."""
    await stop.wait()
    for each in stops:
        each.set()


def _failed(destination: Destination, exc: BaseException) -> RunReport:
    """The section of a destination that failed before it had counts (a held lock, its journal...)."""
    code, sentence = failure(exc)
    settings = destination.settings
    report = RunReport.failed(sentence, code, target=settings.target, mode=settings.tuning.mode)
    report.destination, report.dry_run = destination.name, settings.dry_run
    report.tenant = tenant_key(settings.connection.tenant_url, settings.connection.client_id)
    return report


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield None
