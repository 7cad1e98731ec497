"""``ti-import run``: import feeds into a target, with progress, a summary, a report and an exit code.

Exit codes: 0 every valid indicator is in the target; 1 some indicators failed (after retries,
or a quota) — they are in the rejects file and a rerun retries them; 2 usage, configuration or
an unreadable feed; 3 authentication failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.errors import AuthError, ConfigError
from importer.logging_setup import configure_logging
from importer.pipeline import PipelineOptions, run_pipeline
from importer.progress import make_progress
from importer.rejects import RejectsWriter
from importer.report import EXIT_CONFIG, RunReport
from importer.settings import CliOptions, RunSettings, load_run_settings
from importer.sources import FeedJob, job_for, retry_jobs
from importer.stats import TransportStats
from importer.targets import open_target

__all__ = ["OutputOptions", "add_parser", "execute", "handle"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """Where a run's results go (all from the command line)."""

    report: Path | None = None
    rejects: Path | None = None
    progress: bool = True
    quiet: bool = False  # no summary table on stdout (cron)


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
    tuning = parser.add_argument_group("tuning")
    tuning.add_argument(
        "--mode", choices=("bulk", "single"), help="BulkUpload batches (default) or one POST each"
    )
    tuning.add_argument("--batch-size", type=_positive_int, metavar="N", help="indicators per batch (500)")
    tuning.add_argument("--workers", type=_positive_int, metavar="N", help="concurrent requests (16)")
    tuning.add_argument("--rate", metavar="N/min", help="at most N requests per minute (or N/s, N/h)")
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
    try:
        settings = load_run_settings(_cli_options(args))
        report = asyncio.run(execute(settings, output))
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
) -> RunReport:
    """Run the import described by ``settings``; writes the report and rejects files if asked."""
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
    )
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
            report = await run_pipeline(
                target, jobs, options=options, stats=stats, progress=progress, rejects=rejects, stop=stop
            )
    except AuthError as exc:  # before any feed started (e.g. the first token request)
        report = RunReport(target=settings.target, mode=settings.tuning.mode, transport=stats)
        report.auth_error = str(exc)
    finally:
        progress.close()
        rejects.close()
    if output.report is not None:
        try:
            report.write_json(output.report)
        except OSError as exc:
            raise ConfigError(f"the report {output.report} cannot be written: {exc.strerror}") from None
    return report
