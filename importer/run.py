"""One import run from settings to report: the journal, the target, the pipeline and mirror mode.

``run_import`` is what ``ti-import run``, the demo, the tests and the benchmarks call: it takes
this host's lock of the target and tenant, opens the state journal (unless told not to), opens
the target named by the settings through the registry, runs the pipeline over the feeds (and
the retryable lines of a rejects file), lets mirror mode delete what the feeds dropped, settles
the journal, and writes the JSON report — also when it fails, saying why and with which exit
code. Before anything is read it refuses outputs that would destroy something (``run_inputs``:
a feed, the journal, the ``--retry-from`` file; ``report.outputs``: a device, a folder). It
prints nothing; the command line renders the report it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from importer.errors import AuthError, ConfigError
from importer.fields import COMMON, FORMAT, FULL, MIRROR, TAXII
from importer.model import Field
from importer.pipeline.cap import CapChoice, CappedTarget, choose
from importer.pipeline.engine import PipelineOptions, run_pipeline
from importer.pipeline.job import FeedJob
from importer.pipeline.progress import make_progress
from importer.pipeline.rejects import RejectsWriter
from importer.pipeline.signals import stop_on_signals
from importer.report.counts import EXIT_CONFIG, EXIT_FAILED, EXIT_STOPPED, RunReport
from importer.report.files import write_failure_report, write_outputs
from importer.report.outputs import check_outputs
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions
from importer.sources.feed import job_for
from importer.sources.misp_feed import is_misp_feed, misp_feed_pull
from importer.sources.pull import Pull
from importer.sources.retry import not_sent, retry_census, retry_jobs
from importer.sources.taxii import taxii_pull
from importer.state.host_lock import default_lock_dir, hold_tenant
from importer.state.journal import Journal
from importer.state.mirror import MirrorPolicy, mirror_feed, why_not
from importer.state.retired import retire_pull
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
    for feed in settings.feeds:
        pulled = feed[FORMAT] == TAXII or is_misp_feed(feed.source, feed[FORMAT])
        if feed[MIRROR] and pulled and not feed[FULL]:
            whole = "TAXII collection" if feed[FORMAT] == TAXII else "MISP feed (every event)"
            raise ConfigError(
                f"feed {feed.definition.name!r}: mirror mode needs the whole {whole}, not only "
                "what was added since the last run: set full = true (--full) for it"
            )
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
        self.retry_not_sent: dict[str, int] = {}  # retryable lines naming destinations not in this run
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

    def jobs(self) -> list[FeedJob]:
        """The feeds of the settings, then the retryable lines of ``--retry-from`` (other feeds only)."""
        network = self.settings.connection.network  # downloads trust and refuse what API calls do
        jobs = []
        for feed in self.settings.feeds:
            pull = self.pull(feed)
            if pull is None:
                reading = self.shared.get(feed.definition.name)
                jobs.append(reading or job_for(feed.source, feed.definition, feed.options, network))
                continue
            self.pulls.append(pull)
            jobs.append(pull.job)
        if self.settings.retry_from is not None:
            names = {job.name for job in jobs}
            retries = self.retries if self.retries is not None else self.retry_lines(self.settings.retry_from)
            if not retries:
                # Said where it is seen: a warning when retrying was all the run was asked to do.
                level = logging.INFO if jobs else logging.WARNING
                _log.log(level, "nothing to retry in %s: no line is retryable", self.settings.retry_from)
            for job in retries:
                if job.name in names:  # the feed itself is imported: its failures are retried anyway
                    _log.info("retry of %s skipped: the feed is imported in this run", job.name)
                else:
                    jobs.append(job)
        return jobs

    def retry_lines(self, path: Path) -> list[FeedJob]:
        """The jobs of this destination's retryable lines in ``path`` (naming it, or none); those
        naming another destination are not this run's to send: counted, said, left in the file."""
        destination = self.settings.destination
        self.retry_not_sent = not_sent(path, retry_census(path), {destination})
        rows: tuple[Field[Any], ...] = COMMON + package(self.settings.target).fields
        return retry_jobs(path, rows, destination=destination)

    def pull(self, feed: FeedSettings) -> Pull | None:
        """The pull of a TAXII or MISP feed, from the cursor the journal keeps for it; None: a file."""
        misp = is_misp_feed(feed.source, feed[FORMAT])
        if feed[FORMAT] != TAXII and not misp:
            return None
        network, journal, source = self.settings.connection.network, self.journal, feed.source
        cursor = None if journal is None else journal.cursor(feed.definition.name, source)
        if misp:
            return misp_feed_pull(source, feed.definition, feed.options, network, cursor=cursor)
        return taxii_pull(source, feed.definition, feed.options, network, cursor=cursor, sleep=self.sleep)

    async def execute(self) -> RunReport:
        settings, tuning = self.settings, self.settings.tuning
        jobs = self.jobs()
        rejects = self.rejects or RejectsWriter(self.output.rejects, destination=settings.destination)
        report: RunReport | None = None
        progress = make_progress(self.output.progress, stats=self.stats)  # a 429 pause shows on the bars
        options = PipelineOptions(
            batch_size=tuning.batch_size,
            in_flight=tuning.in_flight,
            dry_run=settings.dry_run,
            mode=tuning.mode,
            grace=self.grace,
            policy_cache=self.state.path.parent if self.state.path is not None else None,
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
                await self.settle(target, report)
        except AuthError as exc:  # before any feed started (e.g. the first token request)
            report = RunReport(target=settings.target, mode=tuning.mode, transport=self.stats)
            report.auth_error = str(exc)
        finally:
            if report is not None:
                report.retry_not_sent = self.retry_not_sent
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
            cache_dir=self.state.path.parent if self.state.path is not None else None,
        )
        if choice is not None:
            _log.warning("%s (cap %d, %d held, %d new); failed per feed: %s", choice.reason, choice.cap,
                         choice.held, choice.new, choice.dropped_by_feed)  # fmt: skip
        return choice

    async def settle(self, target: Target, report: RunReport) -> None:
        """Mirror mode, then the journal's account of the run (when there is a journal)."""
        store, journal = self.store, self.journal
        if store is None or journal is None:
            return
        await store.drain()  # a cancelled worker's batch may still be committing
        await self.mirror(target, journal, store, report)
        await self.retire(target, journal, store, report)
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

    async def mirror(
        self, target: Target, journal: Journal, store: JournalPresent, report: RunReport
    ) -> None:
        policy = MirrorPolicy(max_share=self.state.mirror_max_share, force=self.state.force)
        feed_reports = {feed.name: feed for feed in report.feeds}
        for feed in self.settings.feeds:
            if not feed[MIRROR]:
                continue
            feed_report = feed_reports[feed.definition.name]
            feed_report.mirror = True
            definition = store.definitions.get(feed.definition.name)
            if definition is None or definition.outcome == "planned":
                continue  # never resolved (the feed failed first), or a dry run would create it
            await mirror_feed(
                target, journal, definition, store.run_id, feed_report, policy,
                stopped=report.stopped, dry_run=self.settings.dry_run,
            )  # fmt: skip

    async def retire(
        self, target: Target, journal: Journal, store: JournalPresent, report: RunReport
    ) -> None:
        """For each pull (TAXII, a MISP feed) read to its end and acknowledged: delete what the source
        retired, then keep its cursor, so the next run asks only for what was added after it."""
        feed_reports = {feed.name: feed for feed in report.feeds}
        for pull in self.pulls:
            feed_report = feed_reports.get(pull.name)
            if feed_report is None or not pull.completed or why_not(feed_report, report.stopped) is not None:
                continue  # pulled again from the old cursor next time: nothing is lost
            definition = store.definitions.get(pull.name)
            if definition is not None and definition.outcome != "planned":
                feed_report.removed = await retire_pull(
                    target, journal, definition, feed_report, pulled=pull.versions, named=pull.removals,
                    dry_run=self.settings.dry_run,
                )  # fmt: skip
            pull.versions.close()
            if self.settings.dry_run or feed_report.delete_failed or pull.cursor is None:
                continue
            await asyncio.to_thread(journal.set_cursor, pull.name, pull.source, pull.cursor)


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield None
