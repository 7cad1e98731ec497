"""``ti-import run``: the command line of an import — flags in, ``run_import``, summary and exit code out.

The exit codes are listed in ``run --help`` (``_EXIT_CODES``); with ``--report`` the report is
written however the run ends, bad settings included, and its ``exit_code`` is the process's.

The per-feed flags are the rows of ``importer.fields`` and of each target's ``fields``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from importer.checks import flag_bool, positive_int_flag
from importer.cli.logs import configure_logging, fatal
from importer.destinations.run import run_destinations
from importer.errors import ConfigError
from importer.fields import MIRROR
from importer.report.counts import EXIT_CONFIG, RunReport
from importer.report.outputs import check_outputs, is_stdout
from importer.report.summary import problems, summary
from importer.run import failure, run_import, write_failure_report
from importer.settings import (
    CliOptions,
    Destination,
    OutputOptions,
    RunSettings,
    StateOptions,
    load_destinations,
    load_run_settings,
)
from importer.state.journal import default_cache_dir, default_state_path
from importer.targets.registry import DEFAULT_TARGET, TARGETS, all_fields

__all__ = [
    "add_arguments",
    "add_parser",
    "destinations_of",
    "finish",
    "handle",
    "inputs_named",
    "settings_of",
    "state_of",
]

_FEED_DEST = "feed_option_"  # argparse dest prefix of the per-feed flags
_TARGET_DEST = "target_option_"  # argparse dest prefix of the target options' flags

_EXIT_CODES = """\
exit codes:
  0    every valid indicator is in the target
  1    some indicators failed (after retries, or a quota): they are in --rejects and a
       rerun retries them; or mirror mode's guard refused to delete
  2    usage or configuration, an unreadable feed, another run is importing into
       this target and tenant (the message names it), or the journal, the report or
       the rejects file cannot be written (a full disk, a read-only file system)
  3    authentication failed
  130  stopped by SIGINT/SIGTERM: requests in flight finished, a rerun carries on
  141  stdout was closed early (e.g. piped into head)

With --report FILE the JSON report is written whatever the exit code, and states it;
so is --metrics-file FILE. With several [[destination]] tables the exit code is the
worst of the destinations'.
--report and --rejects take a regular file (replaced whole at the end) or '-' for
stdout; then stdout carries that output only and the summary goes to stderr."""


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="import feeds into Microsoft Defender",
        description="Import indicators from feeds (paths, '-', .gz files, http(s) URLs) into a target.\n"
        "Credentials come from TI_CLIENT_ID, TI_CLIENT_SECRET, TI_AUTH_URL (or TI_TENANT) and\n"
        "TI_API_URL, or from the config file's [auth] table; never from the command line.",
        epilog=_EXIT_CODES,
        # Keeps the exit-code table's lines as written.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.add_argument(
        "--metrics-file", type=_output_path, metavar="FILE",
        help="write the run's Prometheus metrics here (node_exporter's textfile collector), however it ends",
    )  # fmt: skip
    parser.set_defaults(handler=handle)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's arguments and flags (``verify`` takes the same)."""
    parser.add_argument("feeds", nargs="*", metavar="FEED", help="feed path, '-' for stdin, or URL")
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML file with [[feed]] tables")
    parser.add_argument(
        "--target", choices=tuple(TARGETS), help=f"the target API (default: {DEFAULT_TARGET})"
    )
    parser.add_argument(
        "--destination", action="append", metavar="NAME",
        help="only this [[destination]] of the config (repeatable; default: all)",
    )  # fmt: skip
    _add_target_flags(parser.add_argument_group("target options (each for one target)"))
    _add_feed_flags(parser.add_argument_group("feed options (for FEED arguments)"))
    _add_tuning_flags(parser.add_argument_group("tuning"))
    _add_state_flags(parser.add_argument_group("state journal, resume and mirror mode"))
    _add_output_flags(parser.add_argument_group("output"))
    _add_network_flags(parser.add_argument_group("network (proxies: HTTPS_PROXY, HTTP_PROXY, NO_PROXY)"))


def _add_tuning_flags(tuning: argparse._ArgumentGroup) -> None:
    tuning.add_argument(
        "--mode", choices=("bulk", "single"), help="BulkUpload batches (default) or one POST each"
    )
    tuning.add_argument(
        "--batch-size", type=positive_int_flag, metavar="N", help="indicators per batch (500)"
    )
    tuning.add_argument(
        "--workers", type=positive_int_flag, metavar="N", help="the most requests in flight at once (16)"
    )
    tuning.add_argument("--rate", metavar="N/min", help="at most N requests per minute (or N/s, N/h)")
    tuning.add_argument(
        "--window-scale", type=float, metavar="F",
        help="test aid: the target's rate windows last F of real time, as an emulator started with "
        "--mde-window-scale F (default 1)",
    )  # fmt: skip


def _add_state_flags(state: argparse._ArgumentGroup) -> None:
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


def _add_output_flags(output: argparse._ArgumentGroup) -> None:
    output.add_argument(
        "--report", type=_output_path, metavar="FILE", help="write the JSON run report here ('-': stdout)"
    )
    output.add_argument(
        "--rejects", type=_output_path, metavar="FILE",
        help="write records not imported (JSON lines; '-': stdout); one file for every destination, "
        "each line naming its own",
    )  # fmt: skip
    output.add_argument(
        "--retry-from", type=Path, metavar="FILE",
        help="send again the failed lines of a rejects file (each to the destination it names)",
    )  # fmt: skip
    output.add_argument(
        "--dry-run", action="store_true", help="read and plan against the target; write nothing"
    )
    output.add_argument(
        "--no-progress", action="store_true", help="no progress bars (also off when not a TTY)"
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no summary table on stdout")
    output.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    output.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")


def _add_network_flags(network: argparse._ArgumentGroup) -> None:
    network.add_argument(
        "--ca-bundle", type=Path, metavar="FILE",
        help="PEM file of CA certificates trusted besides the system's (a proxy's or a private CA; "
        "also SSL_CERT_FILE)",
    )  # fmt: skip
    network.add_argument(
        "--allow-http", action="store_true",
        help="allow plain http:// token, API and feed URLs to other machines (unencrypted: off by default)",
    )  # fmt: skip


def _add_target_flags(group: argparse._ArgumentGroup) -> None:
    """A flag per target option that has one (``TargetPackage.options``), e.g. ``--workspace-id``."""
    for entry in TARGETS.values():
        for option in entry.options:
            if option.flag is None:
                continue
            also = f" (also {option.env})" if option.env else ""
            group.add_argument(
                option.flag, dest=_TARGET_DEST + option.key, metavar=option.key.upper(),
                help=f"{entry.name}: {option.help}{also}",
            )  # fmt: skip


def _add_feed_flags(group: argparse._ArgumentGroup) -> None:
    for row in all_fields():
        if not row.cli:
            continue
        if row.check is flag_bool:  # a switch (--full), not a flag taking "true"
            dest = _FEED_DEST + row.key
            group.add_argument(row.flag, dest=dest, action="store_const", const=True, help=row.help)
            continue
        group.add_argument(
            row.flag,
            dest=_FEED_DEST + row.key,
            type=row.flag_type,
            action="append" if row.repeat else "store",
            metavar=row.metavar or row.key.upper(),
            help=row.help,
        )


def _output_path(text: str) -> Path:
    """``-`` (stdout) as given; a file that ``Path`` would shorten to ``-`` (``./-``) made absolute."""
    path = Path(text)
    return path if text == "-" or not is_stdout(path) else path.absolute()


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _cli_options(args: argparse.Namespace) -> CliOptions:
    given = {
        name.removeprefix(_FEED_DEST): value
        for name, value in vars(args).items()
        if name.startswith(_FEED_DEST) and value is not None
    }
    options = {
        name.removeprefix(_TARGET_DEST): value
        for name, value in vars(args).items()
        if name.startswith(_TARGET_DEST) and value is not None
    }
    return CliOptions(
        feeds=tuple(args.feeds),
        config=args.config,
        target=args.target,
        feed_options=given,
        mode=args.mode,
        batch_size=args.batch_size,
        workers=args.workers,
        rate=args.rate,
        dry_run=args.dry_run,
        retry_from=args.retry_from,
        ca_bundle=args.ca_bundle,
        allow_http=args.allow_http,
        window_scale=args.window_scale,
        target_options=options,
        destinations=tuple(args.destination or ()),
    )


def handle(args: argparse.Namespace) -> int:
    configure_logging(args.verbose, args.log_format)
    started = time.time()
    output = OutputOptions(
        report=args.report, rejects=args.rejects, progress=not args.no_progress, quiet=args.quiet,
        metrics=args.metrics_file,
    )  # fmt: skip
    state = state_of(args)
    inputs = inputs_named(args, state)
    written = {"the report": output.report, "the metrics file": output.metrics}
    try:
        # Before the failure report below is written there: a report path that is refused (a
        # device, the config file) is not written at all. ``run_import`` checks the feeds of
        # ``[[feed]]`` tables too, once the config file is read.
        check_outputs(written, inputs)
    except ConfigError as exc:
        fatal(str(exc), EXIT_CONFIG)
        return EXIT_CONFIG
    try:
        check_outputs({**written, "the rejects file": output.rejects}, inputs)
        destinations = destinations_of(args)
    except (ConfigError, KeyboardInterrupt) as exc:
        # No settings, but the report's path is on the command line: the file must not keep
        # saying how the last run went.
        code, sentence = failure(exc)
        report = RunReport.failed(sentence, code, target=args.target, mode=args.mode)
        report.dry_run, report.started_at, report.finished_at = args.dry_run, started, time.time()
        write_failure_report(report, output.report, output.metrics)
        fatal(sentence, code)
        return code
    try:
        if len(destinations) == 1:  # reported as a single-target run always was
            report = asyncio.run(run_import(destinations[0].settings, output, state=state, signals=True))
        else:
            report = asyncio.run(run_destinations(destinations, output, state=state, signals=True))
    except ConfigError as exc:  # run_import wrote the report already
        fatal(str(exc), EXIT_CONFIG)
        return EXIT_CONFIG
    return finish(report, output)


def state_of(args: argparse.Namespace) -> StateOptions:
    """The journal's options the flags give."""
    return StateOptions(
        path=None if args.no_state else (args.state or default_state_path()),
        reconcile=args.reconcile,
        mirror_max_share=args.mirror_max_share,
        force=args.force,
        # Without a journal's folder the warning lists would be built afresh (~3 s) every run.
        cache_dir=default_cache_dir() if args.no_state else None,
    )


def inputs_named(args: argparse.Namespace, state: StateOptions) -> dict[Path, str]:
    """The files the command line names for reading (config, FEED paths, ``--retry-from``, journal)."""
    inputs = {Path(feed): f"the feed {feed}" for feed in args.feeds if feed != "-" and "://" not in feed}
    if args.config is not None:
        inputs[args.config] = "the config file"
    if args.retry_from is not None:
        inputs[args.retry_from] = "the --retry-from file"
    if state.path is not None:
        inputs[state.path] = "the state journal"
    return inputs


def settings_of(args: argparse.Namespace) -> RunSettings:
    """The run's settings from the flags, the environment and the config file (a ConfigError if
    wrong); one destination (``--destination`` picks it among several)."""
    return _mirrored(args, load_run_settings(_cli_options(args)))


def destinations_of(args: argparse.Namespace) -> tuple[Destination, ...]:
    """The run's destinations, each with its settings (``--destination``: those named)."""
    return tuple(
        replace(destination, settings=_mirrored(args, destination.settings))
        for destination in load_destinations(_cli_options(args))
    )


def _mirrored(args: argparse.Namespace, settings: RunSettings) -> RunSettings:
    """``settings`` with every feed mirrored when ``--mirror`` was given."""
    if not args.mirror:
        return settings
    mirrored = tuple(
        replace(feed, options=feed.options.updated({MIRROR.key: True})) for feed in settings.feeds
    )
    return replace(settings, feeds=mirrored)


def finish(report: RunReport, output: OutputOptions) -> int:
    """Print the summary (unless quiet), one line per fatal problem, and return the exit code.

    With ``--report -`` or ``--rejects -`` stdout carries that output alone (a pipe reads JSON),
    so the summary goes to stderr."""
    code = report.exit_code()
    if not output.quiet:
        to_stdout = not any(path is not None and is_stdout(path) for path in (output.report, output.rejects))
        print(summary(report), file=sys.stdout if to_stdout else sys.stderr)
    if report.error is not None:
        # What stopped the run (a journal or rejects file that cannot be written): the sentence
        # that decides the exit code; the other problems follow from it.
        fatal(report.error, code)
        return code
    for problem in problems(report):
        fatal(problem, code)
    return code
