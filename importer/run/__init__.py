"""One import run from settings to report: the journal, the target, the pipeline and mirror mode.

``run_import`` is what ``ti-import run``, the demo, the tests and the benchmarks call: it takes
this host's lock of the target and tenant, opens the state journal (unless told not to), opens
the target named by the settings through the registry, runs the pipeline over the feeds (and
the retryable lines of a rejects file), lets mirror mode delete what the feeds dropped, settles
the journal, and writes the JSON report — also when it fails, saying why and with which exit
code. Before anything is read it refuses outputs that would destroy something (``run_inputs``:
a feed, the journal, the ``--retry-from`` file; ``report.outputs``: a device, a folder). It
prints nothing; the command line renders the report it returns. Its parts: ``jobs`` (what the
run reads) and ``closing`` (mirror mode, what pulls retired, the journal's account).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path

from importer.errors import AuthError, ConfigError
from importer.fields import MIRROR
from importer.pipeline.cap import CapChoice, CappedTarget, choose
from importer.pipeline.engine import PipelineOptions, run_pipeline
from importer.pipeline.job import FeedJob
from importer.pipeline.progress import make_progress
from importer.pipeline.rejects import RejectsWriter
from importer.pipeline.signals import stop_on_signals
from importer.report.counts import EXIT_CONFIG, EXIT_FAILED, EXIT_STOPPED, RunReport
from importer.report.files import write_failure_report, write_outputs
from importer.report.outputs import check_outputs
from importer.run.closing import settle
from importer.run.jobs import check_pulled_mirrors, run_jobs
from importer.settings import OutputOptions, RunSettings, StateOptions
from importer.sources.pull import Pull
from importer.state.host_lock import default_lock_dir, hold_tenant
from importer.state.journal import Journal
from importer.state.store import JournalPresent, tenant_key
from importer.targets.base import HasHeadroom, RevokesForGood, Target
from importer.targets.registry import open_target, package
from importer.transport.stats import TransportStats

__all__ = ["failure", "run_import", "run_inputs", "write_failure_report", "write_outputs"]

_log = logging.getLogger(__name__)
# Merging the journal's log every 25,000 rows keeps its in-memory index of recent keys ~5 MB.
_JOURNAL_MERGE_EVERY = 25_000


async def run_import(
    settings: RunSettings,
    output: OutputOptions | None = None,
    *,
    state: StateOptions | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    stop: asyncio.Event | None = None,
    signals: bool = False,
    grace: float = 30.0,
    shared: Mapping[str, FeedJob] | None = None,
    rejects: RejectsWriter | None = None,
    retries: Sequence[FeedJob] | None = None,
) -> RunReport:
    """Run the import described by ``settings``; writes the report, metrics and rejects files if asked.

    ``state``: the journal (None or no path: none, as for the demo) and the folder of the host's
    run locks; ``signals``: SIGINT/SIGTERM stop the run gracefully (``grace`` seconds for requests
    in flight; the report says so); ``wall``: epoch seconds for the report's start and end;
    ``shared``: feeds (by name) this destination reads from a reading shared with others
    (``importer.destinations``), instead of opening them itself; ``rejects``: its view of a rejects
    file shared with them (instead of ``output.rejects``), closed by their run; ``retries``: its
    lines of the ``--retry-from`` file as their run chose them (instead of reading the file).

    With ``output.report`` (``output.metrics``), a report (the metrics) is written however the run
    ends: if it raises, the file says why (``failure``) and the exception goes on to the caller."""
    output = output or OutputOptions()
    state = state or StateOptions()
    tenant = tenant_key(settings.connection.tenant_url, settings.connection.client_id)
    started = wall()
    inputs = run_inputs(settings, state)
    # A report path that is refused is not written either, not even to say why.
    check_outputs({"the report": output.report, "the metrics file": output.metrics}, inputs)
    try:
        outputs = {"the report": output.report, "the metrics file": output.metrics}
        check_outputs({**outputs, "the rejects file": output.rejects}, inputs)
        report = await _locked_run(
            settings, output, state, tenant, sleep=sleep, clock=clock, stop=stop, signals=signals,
            grace=grace, shared=shared or {}, rejects=rejects, retries=retries,
        )  # fmt: skip
    except BaseException as exc:
        exit_code, sentence = failure(exc)
        failed = RunReport.failed(sentence, exit_code, target=settings.target, mode=settings.tuning.mode)
        failed.dry_run, failed.destination = settings.dry_run, settings.destination
        _stamp(failed, tenant, started, wall())
        write_failure_report(failed, output.report, output.metrics)
        raise
    _stamp(report, tenant, started, wall())
    report.destination = settings.destination
    write_outputs(report, output.report, output.metrics)  # a full disk: a ConfigError, exit 2
    return report


def run_inputs(settings: RunSettings, state: StateOptions) -> dict[Path, str]:
    """The local files a run reads (path -> what it is), which no output may overwrite."""
    inputs = {
        Path(feed.source): f"the feed {feed.definition.name!r}"
        for feed in settings.feeds
        if feed.source != "-" and "://" not in feed.source
    }
    if settings.retry_from is not None:
        inputs[settings.retry_from] = "the --retry-from file"
    if state.path is not None:
        inputs[state.path] = "the state journal"
    return inputs


async def _locked_run(
    settings: RunSettings,
    output: OutputOptions,
    state: StateOptions,
    tenant: str,
    *,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    stop: asyncio.Event | None,
    signals: bool,
    grace: float,
    shared: Mapping[str, FeedJob],
    rejects: RejectsWriter | None = None,
    retries: Sequence[FeedJob] | None = None,
) -> RunReport:
    """The run under this host's lock of its target and tenant, then its journal's (if any)."""
    if state.path is None and any(feed[MIRROR] for feed in settings.feeds):
        raise ConfigError("mirror mode needs the state journal: drop --no-state")
    check_pulled_mirrors(settings)
    stop = stop or asyncio.Event()
    # Taken first and whatever the journal: two runs with different journals (or none) on one
    # tenant would each post every indicator.
    with hold_tenant(state.lock_dir or default_lock_dir(), settings.target, tenant):
        journal: Journal | None = None
        if state.path is not None:
            journal = Journal.open(
                state.path,
                target=settings.target,
                tenant=tenant,
                merge_every=_JOURNAL_MERGE_EVERY,
                unique_values=package(settings.target).unique_values,
            )
        report: RunReport | None = None
        try:
            with stop_on_signals(stop) if signals else _no_signals() as handler:
                run = _Run(settings, output, state, journal, sleep=sleep, clock=clock, stop=stop, grace=grace,
                           shared=shared, rejects=rejects, retries=retries)  # fmt: skip
                report = await run.execute()
                report.signalled = handler is not None and handler.received is not None
        finally:
            if journal is not None:
                _close(journal, report)
    assert report is not None
    return report


def _close(journal: Journal, report: RunReport | None) -> None:
    """Close the journal. Its last merge failing (a full disk) loses nothing — the next open
    folds the log in — but the run says so (exit 2) and keeps its counts."""
    try:
        journal.close()
    except ConfigError as exc:
        if report is None:  # the run's own error is on its way: that one is raised
            _log.error("%s", exc)
        elif report.error is None:
            report.error, report.error_exit = str(exc), EXIT_CONFIG


def failure(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one sentence (no secret: no message of an unknown error) of a run
    that ended by ``exc``."""
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG, str(exc)
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return EXIT_STOPPED, "interrupted before the run finished; a rerun carries on"
    # A bug: its text may hold anything, so the report names only its type (the traceback is on stderr).
    return EXIT_FAILED, f"internal error ({type(exc).__name__}); see the traceback on stderr"


def _stamp(report: RunReport, tenant: str, started: float, finished: float) -> None:
    report.tenant = tenant
    report.started_at, report.finished_at = started, finished


class _Run:
    """The parts of one run, opened in order and closed in reverse."""

    def __init__(
        self,
        settings: RunSettings,
        output: OutputOptions,
        state: StateOptions,
        journal: Journal | None,
        *,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        stop: asyncio.Event,
        grace: float,
        shared: Mapping[str, FeedJob],
        rejects: RejectsWriter | None = None,
        retries: Sequence[FeedJob] | None = None,
    ) -> None:
        self.settings = settings
        self.shared = shared
        self.rejects = rejects
        self.retries = retries
        self.output = output
        self.state = state
        self.journal = journal
        self.sleep = sleep
        self.clock = clock
        self.stop = stop
        self.grace = grace
        self.stats = TransportStats()
        self.pulls: list[Pull] = []  # TAXII and MISP feeds: their cursors are kept once acknowledged
        mirrored = frozenset(feed.definition.name for feed in settings.feeds if feed[MIRROR])
        self.store = (
            None
            if journal is None
            else JournalPresent(journal, journal.begin_run(), reconcile=state.reconcile, mirror=mirrored)
        )

    async def execute(self) -> RunReport:
        settings, tuning = self.settings, self.settings.tuning
        found = run_jobs(settings, self.journal, shared=self.shared, retries=self.retries, sleep=self.sleep)
        jobs, self.pulls = found.jobs, found.pulls
        rejects = self.rejects or RejectsWriter(self.output.rejects, destination=settings.destination)
        report: RunReport | None = None
        progress = make_progress(self.output.progress, stats=self.stats)  # a 429 pause shows on the bars
        options = PipelineOptions(
            batch_size=tuning.batch_size,
            in_flight=tuning.in_flight,
            dry_run=settings.dry_run,
            mode=tuning.mode,
            grace=self.grace,
            policy_cache=self.state.cache,
        )
        try:
            async with open_target(
                settings.target,
                settings.connection,
                self.stats,
                in_flight=tuning.in_flight,
                bulk=tuning.mode == "bulk",
                sleep=self.sleep,
                clock=self.clock,
            ) as target:
                if self.journal is not None and isinstance(target, RevokesForGood):
                    target.use_revocation_counts(self.journal.revocations)
                headroom = (
                    await target.headroom() if settings.dry_run and isinstance(target, HasHeadroom) else None
                )
                choice = await self.cap_choice(target, jobs)
                try:
                    capped = target if choice is None else CappedTarget(target, choice)
                    report = await run_pipeline(
                        capped, jobs, options=options, stats=self.stats, present=self.store,
                        progress=progress, rejects=rejects, stop=self.stop,
                    )  # fmt: skip
                finally:
                    if choice is not None:
                        choice.close()
                report.headroom = headroom
                report.cap_choice = None if choice is None else choice.as_dict()
                if self.store is not None and self.journal is not None:
                    await settle(target, report, settings=settings, state=self.state, journal=self.journal,
                                 store=self.store, pulls=self.pulls)  # fmt: skip
        except AuthError as exc:  # before any feed started (e.g. the first token request)
            report = RunReport(target=settings.target, mode=tuning.mode, transport=self.stats)
            report.auth_error = str(exc)
        finally:
            if report is not None:
                report.retry_not_sent = found.retry_not_sent
            if self.store is not None:
                await self.store.drain()
            progress.close()
            try:
                rejects.close()
            except ConfigError as exc:  # e.g. a full disk at the last flush
                if report is None:  # the run's own error is on its way: that one is raised
                    _log.error("%s", exc)
                elif report.error is None:
                    report.error, report.error_exit = str(exc), EXIT_CONFIG
        return report

    async def cap_choice(self, target: Target, jobs: list[FeedJob]) -> CapChoice | None:
        """A capped target's choice of the new indicators that fit (``pipeline.cap``), among the
        feeds that can be read twice (not stdin, not a pull, not one read once for several
        destinations); None when all fit."""
        pulled = {id(pull.job) for pull in self.pulls} | {id(job) for job in self.shared.values()}
        choice = await choose(
            target,
            [job for job in jobs if job.source != "-" and id(job) not in pulled],
            cache_dir=self.state.cache,
        )
        if choice is not None:
            _log.warning("%s (cap %d, %d held, %d new); failed per feed: %s", choice.reason, choice.cap,
                         choice.held, choice.new, choice.dropped_by_feed)  # fmt: skip
        return choice

@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield None
