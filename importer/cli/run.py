"""``ti-import run``: import feeds into a target, with progress, a summary, a report and an exit code.

Exit codes: 0 every valid indicator is in the target; 1 some indicators failed (after retries,
or a quota) — they are in the rejects file and a rerun retries them — or mirror mode's guard
refused to delete; 2 usage, configuration or an unreadable feed; 3 authentication failed;
130 stopped by SIGINT/SIGTERM (a rerun carries on).

With a state journal (``--state``, on by default) "already present" comes from the journal, each
acknowledged batch is committed there, and mirror mode deletes what the feeds no longer list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from importer.cli.logs import configure_logging
from importer.errors import AuthError, ConfigError
from importer.model import ResolvedDefinition
from importer.pipeline.engine import PipelineOptions, run_pipeline
from importer.pipeline.present import PresentStore
from importer.pipeline.progress import make_progress
from importer.pipeline.rejects import RejectsWriter
from importer.pipeline.signals import stop_on_signals
from importer.pipeline.sources import FeedJob, job_for, retry_jobs
from importer.report.counts import EXIT_CONFIG, Headroom, RunReport
from importer.settings import CliOptions, RunSettings, load_run_settings
from importer.state.journal import Journal, default_state_path
from importer.state.mirror import MirrorPolicy, mirror_feed
from importer.state.store import JournalPresent, tenant_key
from importer.targets import open_target
from importer.targets.base import HasHeadroom, Target
from importer.transport.stats import TransportStats

__all__ = ["OutputOptions", "StateOptions", "add_parser", "execute", "handle"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """Where a run's results go (all from the command line)."""

    report: Path | None = None
    rejects: Path | None = None
    progress: bool = True
    quiet: bool = False  # no summary table on stdout (cron)


@dataclass(frozen=True, slots=True)
class StateOptions:
    """The state journal and what rides on it: reconciling and the mirror guard."""

    path: Path | None = None  # None: no journal; each run lists every definition instead
    reconcile: bool = False  # list the target and repair the journal for every feed
    mirror_max_share: float = 0.5  # most of a definition mirror mode may delete in one run
    force: bool = False  # delete past the guard


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="import feeds into Microsoft Defender",
        description="Import indicators from feeds (paths, '-', .gz files, http(s) URLs) into a target. "
        "Credentials come from TI_CLIENT_ID, TI_CLIENT_SECRET, TI_AUTH_URL (or TI_TENANT) and "
        "TI_API_URL, or from the config file's [auth] table; never from the command line. "
        "Exit codes: 0 all imported, 1 some failed, 2 usage/config/unreadable feed, 3 auth failed.",
    )
    parser.add_argument("feeds", nargs="*", metavar="FEED", help="feed path, '-' for stdin, or URL")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML file with [[feed]] tables")
    parser.add_argument("--target", choices=("ti", "mde"), help="the target API (default: ti)")
    feed = parser.add_argument_group("feed options (for FEED arguments)")
    feed.add_argument("--format", choices=("auto", "csv", "stix", "list"), help="default: detected")
    feed.add_argument("--columns", metavar="SPEC", help="CSV columns, e.g. 'sha256_hash=sha256,3=domain'")
    feed.add_argument("--name", help="alert definition name (default: the feed's file name)")
    feed.add_argument("--title", help="alert title")
    feed.add_argument("--severity", help="Informational, Low, Medium (default) or High")
    feed.add_argument("--category", help="alert category, e.g. Malware (default SuspiciousNetworkTraffic)")
    feed.add_argument("--description", help="alert definition description")
    feed.add_argument("--recommended-action", help="recommended action shown with the alert")
    feed.add_argument("--detection-function", help="Equals, StartWith, EndWith or Contains")
    feed.add_argument("--expire-days", type=_positive_int, metavar="N", help="indicators expire after N days")
    feed.add_argument("--action", help="mde: Audit (default), Alert, Warn, Block, AlertAndBlock, ...")
    feed.add_argument(
        "--rbac-group", action="append", dest="rbac_groups", metavar="GROUP", help="mde: a device group"
    )
    feed.add_argument("--application", help="mde: the application shown with the indicators")
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument(
        "--mode", choices=("bulk", "single"), help="BulkUpload batches (default) or one POST each"
    )
    tuning.add_argument("--batch-size", type=_positive_int, metavar="N", help="indicators per batch (500)")
    tuning.add_argument("--workers", type=_positive_int, metavar="N", help="concurrent requests (16)")
    tuning.add_argument("--rate", metavar="N/min", help="at most N requests per minute (or N/s, N/h)")
    state = parser.add_argument_group("state journal, resume and mirror mode")
    state.add_argument(
        "--state", type=Path, metavar="FILE", help=f"the state journal (default {default_state_path()})"
    )
    state.add_argument(
        "--no-state", action="store_true", help="no journal: list each definition from the target instead"
    )
    state.add_argument(
        "--reconcile", action="store_true", help="list the target and repair the journal (portal deletions)"
    )
    state.add_argument(
        "--mirror", action="store_true", help="delete indicators the feeds no longer list (needs the journal)"
    )
    state.add_argument(
        "--mirror-max-share", type=_share, metavar="F", default=0.5,
        help="refuse to delete more than this share of a definition in one run (default 0.5)",
    )  # fmt: skip
    state.add_argument("--force", action="store_true", help="let mirror mode delete past --mirror-max-share")
    output = parser.add_argument_group("output")
    output.add_argument("--report", type=Path, metavar="FILE", help="write the JSON run report here")
    output.add_argument(
        "--rejects", type=Path, metavar="FILE", help="write records not imported (JSON lines)"
    )
    output.add_argument(
        "--retry-from", type=Path, metavar="FILE", help="send again the failed lines of a rejects file"
    )
    output.add_argument(
        "--dry-run", action="store_true", help="read and plan against the target; write nothing"
    )
    output.add_argument(
        "--no-progress", action="store_true", help="no progress bars (also off when not a TTY)"
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no summary table on stdout")
    output.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    output.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    parser.set_defaults(handler=handle)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _cli_options(args: argparse.Namespace) -> CliOptions:
    return CliOptions(
        feeds=tuple(args.feeds),
        config=args.config,
        target=args.target,
        format=args.format,
        columns=args.columns,
        name=args.name,
        title=args.title,
        severity=args.severity,
        category=args.category,
        description=args.description,
        recommended_action=args.recommended_action,
        detection_function=args.detection_function,
        expire_days=args.expire_days,
        action=args.action,
        rbac_groups=tuple(args.rbac_groups) if args.rbac_groups else None,
        application=args.application,
        mode=args.mode,
        batch_size=args.batch_size,
        workers=args.workers,
        rate=args.rate,
        dry_run=args.dry_run,
        retry_from=args.retry_from,
    )


def handle(args: argparse.Namespace) -> int:
    configure_logging(args.verbose, args.log_format)
    output = OutputOptions(
        report=args.report, rejects=args.rejects, progress=not args.no_progress, quiet=args.quiet
    )
    state = StateOptions(
        path=None if args.no_state else (args.state or default_state_path()),
        reconcile=args.reconcile,
        mirror_max_share=args.mirror_max_share,
        force=args.force,
    )
    try:
        settings = load_run_settings(_cli_options(args))
        if args.mirror:
            settings = replace(settings, feeds=tuple(replace(feed, mirror=True) for feed in settings.feeds))
        report = asyncio.run(execute(settings, output, state=state, signals=True))
    except ConfigError as exc:
        print(f"ti-import: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return finish(report, output)


def finish(report: RunReport, output: OutputOptions) -> int:
    """Print the summary (unless quiet), one line per fatal problem, and return the exit code."""
    if not output.quiet:
        print(report.summary())
    for problem in report.problems():
        print(f"ti-import: {problem}", file=sys.stderr)
    return report.exit_code()


async def execute(
    settings: RunSettings,
    output: OutputOptions,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop: asyncio.Event | None = None,
    state: StateOptions | None = None,
    signals: bool = False,
    grace: float = 30.0,
) -> RunReport:
    """Run the import described by ``settings``; writes the report and rejects files if asked.

    ``state``: the journal (None: none, as for the demo); ``signals``: SIGINT/SIGTERM stop the run
    gracefully (``grace`` seconds for requests in flight; the report says ``signalled``)."""
    state = state or StateOptions()
    mirrored = frozenset(feed.definition.name for feed in settings.feeds if feed.mirror)
    if mirrored and state.path is None:
        raise ConfigError("mirror mode needs the state journal: drop --no-state")
    stop = stop or asyncio.Event()
    journal: Journal | None = None
    if state.path is not None:
        tenant = tenant_key(settings.connection.api_url, settings.connection.client_id)
        # Merging the journal's log every 25,000 rows keeps its in-memory index of recent keys ~5 MB.
        journal = Journal.open(state.path, target=settings.target, tenant=tenant, merge_every=25_000)
    try:
        with stop_on_signals(stop) if signals else _no_signals() as handler:
            report = await _execute(
                settings, output, sleep=sleep, clock=clock, stop=stop, state=state, journal=journal,
                mirrored=mirrored, grace=grace,
            )  # fmt: skip
            report.signalled = handler is not None and handler.received is not None
    finally:
        if journal is not None:
            journal.close()
    if output.report is not None:
        try:
            report.write_json(output.report)
        except OSError as exc:
            raise ConfigError(f"the report {output.report} cannot be written: {exc.strerror}") from None
    return report


async def _execute(
    settings: RunSettings,
    output: OutputOptions,
    *,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    stop: asyncio.Event,
    state: StateOptions,
    journal: Journal | None,
    mirrored: frozenset[str],
    grace: float,
) -> RunReport:
    jobs: list[FeedJob] = [job_for(feed) for feed in settings.feeds]
    if settings.retry_from is not None:
        names = {job.name for job in jobs}
        for job in retry_jobs(settings.retry_from):
            if job.name in names:  # the feed itself is being imported: its failures are retried anyway
                _log.info("retry of %s skipped: the feed is imported in this run", job.name)
            else:
                jobs.append(job)
    stats = TransportStats()
    rejects = RejectsWriter(output.rejects)
    progress = make_progress(output.progress)
    options = PipelineOptions(
        batch_size=settings.tuning.batch_size,
        workers=settings.tuning.workers,
        dry_run=settings.dry_run,
        mode=settings.tuning.mode,
        grace=grace,
    )
    store: JournalPresent | None = None
    if journal is not None:
        store = JournalPresent(journal, journal.begin_run(), reconcile=state.reconcile, mirror=mirrored)
    try:
        async with open_target(
            settings.target,
            settings.connection,
            stats,
            sleep=sleep,
            clock=clock,
            bulk=settings.tuning.mode == "bulk",
            workers=settings.tuning.workers,
        ) as target:
            headroom = await _headroom(target) if settings.dry_run else None
            present: PresentStore | None = store
            report = await run_pipeline(
                target, jobs, options=options, stats=stats, present=present, progress=progress,
                rejects=rejects, stop=stop,
            )  # fmt: skip
            report.headroom = headroom
            if store is not None and journal is not None:
                await store.drain()  # a cancelled worker's batch may still be committing
                await _mirror(
                    target, journal, run_id=store.run_id, settings=settings, report=report, state=state
                )
                if not report.unsettled and report.auth_error is None:
                    # Finished (even if stopped: every acknowledged batch is committed). A run killed
                    # before stays unfinished for the definitions this run did not list.
                    journal.finish_run(store.run_id)
                report.journal = {
                    "path": str(journal.path),
                    "run": store.run_id,
                    "resumed_after_interrupted_run": store.resumed,
                    "listed_definitions": store.reconciled,
                }
    except AuthError as exc:  # before any feed started (e.g. the first token request)
        report = RunReport(target=settings.target, mode=settings.tuning.mode, transport=stats)
        report.auth_error = str(exc)
    finally:
        if store is not None:
            await store.drain()
        progress.close()
        rejects.close()
    return report


async def _headroom(target: Target) -> Headroom | None:
    """A capped target's room (mde's 15,000 indicators), for the dry-run plan."""
    if not isinstance(target, HasHeadroom):
        return None
    return await target.headroom()


async def _mirror(
    target: Target,
    journal: Journal,
    *,
    run_id: int,
    settings: RunSettings,
    report: RunReport,
    state: StateOptions,
) -> None:
    policy = MirrorPolicy(max_share=state.mirror_max_share, force=state.force)
    for feed in settings.feeds:
        if not feed.mirror:
            continue
        feed_report = next(r for r in report.feeds if r.name == feed.definition.name)
        feed_report.mirror = True
        if feed_report.definition_id is None or feed_report.definition_outcome == "planned":
            continue
        definition = ResolvedDefinition(feed_report.definition_id, feed.definition, "found")
        await mirror_feed(
            target, journal, definition, run_id, feed_report, policy,
            stopped=report.stopped, dry_run=settings.dry_run,
        )  # fmt: skip


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield None
