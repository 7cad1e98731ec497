"""``ti-import verify``: the command line of a check of what landed — the run's flags, a table per feed out.

Everything ``run`` takes, ``verify`` takes (``run.add_arguments``, the same settings), plus
``--repair``. The table has one line per feed — landed, absent, stale, foreign, missing — and the
JSON report (``--report``) the same numbers; with ``--repair`` the repair run's summary follows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from importer.cli import run
from importer.cli.logs import configure_logging, fatal
from importer.errors import ConfigError
from importer.report.counts import EXIT_CONFIG
from importer.report.outputs import check_outputs, is_stdout
from importer.report.summary import problems, summary
from importer.run import failure
from importer.settings import OutputOptions
from importer.verify import VerifyReport, verify_import
from importer.verify.compare import CLASSES
from importer.verify.report import write_json

__all__ = ["add_parser", "handle", "table"]

_EXIT_CODES = """\
exit codes:
  0    every indicator landed: the target holds what the journal says was sent and
       what today's feeds say (with --repair: the repair run sent every one)
  1    drift: some are absent, stale, foreign or missing (see the table); or a
       target's listing failed part way (never taken for "absent")
  2    usage or configuration, an unreadable feed, another run holds the lock
  3    authentication failed

absent:  the journal says it was sent, the target lacks it
stale:   the target holds it otherwise than sent, or than today's feed says
foreign: under the feed's definition, neither in the journal nor in today's feed
missing: in today's feed, never sent
--repair corrects the journal, then imports the feeds with absent, stale or
missing indicators (foreign ones are left: --reconcile --mirror adopts and deletes them)."""


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check what landed in the target against the journal and the feeds",
        description="Read back, per feed, what the target holds under the feed's definition and compare\n"
        "it with the state journal and with today's feed. Same settings as 'run'.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_arguments(parser)
    parser.add_argument(
        "--repair", action="store_true",
        help="correct the journal and import again what is absent, stale or missing",
    )  # fmt: skip
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    configure_logging(args.verbose, args.log_format)
    started = time.time()
    output = OutputOptions(
        report=args.report, rejects=args.rejects, progress=not args.no_progress, quiet=args.quiet
    )
    state = run.state_of(args)
    inputs = run.inputs_named(args, state)
    try:
        check_outputs({"the report": output.report}, inputs)
    except ConfigError as exc:
        fatal(str(exc), EXIT_CONFIG)
        return EXIT_CONFIG
    try:
        check_outputs({"the report": output.report, "the rejects file": output.rejects}, inputs)
        settings = run.settings_of(args)
    except (ConfigError, KeyboardInterrupt) as exc:
        code, sentence = failure(exc)
        failed = VerifyReport(args.target or "", error=sentence, error_exit=code)
        failed.started_at, failed.finished_at = started, time.time()
        if output.report is not None:
            try:
                write_json(failed, output.report)
            except ConfigError as error:
                fatal(str(error), EXIT_CONFIG)
        fatal(sentence, code)
        return code
    try:
        report = asyncio.run(verify_import(settings, output, state=state, repair=args.repair, signals=True))
    except ConfigError as exc:  # verify_import wrote the report already
        fatal(str(exc), EXIT_CONFIG)
        return EXIT_CONFIG
    return finish(report, output)


def finish(report: VerifyReport, output: OutputOptions) -> int:
    """Print the table (and the repair run's summary) unless quiet, each problem, and the exit code."""
    code = report.exit_code()
    if not output.quiet:
        to_stdout = not any(path is not None and is_stdout(path) for path in (output.report, output.rejects))
        stream = sys.stdout if to_stdout else sys.stderr
        print(table(report), file=stream)
        if report.repair is not None:
            print("\nrepair:", file=stream)
            print(summary(report.repair), file=stream)
    if report.auth_error is not None:
        fatal(report.auth_error, code)
    for feed in report.feeds:
        if feed.error is not None:
            fatal(f"feed {feed.name}: {feed.error}", code)
    if report.repair is not None:
        for problem in problems(report.repair):
            fatal(problem, code)
    return code


def table(report: VerifyReport) -> str:
    """One line per feed and a total: the count of each class, aligned under its header."""
    headers = ("feed", *CLASSES)
    lines: list[tuple[str, ...]] = [headers]
    for feed in report.feeds:
        counts = ("-",) * len(CLASSES) if feed.error is not None else (f"{feed.counts[c]:,}" for c in CLASSES)
        lines.append((feed.name, *counts))
    if len(report.feeds) > 1:
        totals = report.totals()
        lines.append(("total", *(f"{totals[c]:,}" for c in CLASSES)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    rendered = [
        "  ".join(
            [line[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True))]
        )
        for line in lines
    ]
    drifted = sum(1 for feed in report.feeds if feed.drift or feed.error is not None)
    verdict = "all landed" if not drifted else f"drift in {drifted} of {len(report.feeds)} feeds"
    return "\n".join([*rendered, verdict if report.feeds else "no feed verified"])
