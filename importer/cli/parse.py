"""``ti-import parse``: read one feed and print its indicators as JSON lines, its counts on stderr.

stdout: one ``Indicator.to_json()`` object per line, in feed order. stderr: one summary line
(``x.csv: 750 indicators (ipv4 750), 728 distinct (ipv4 728), 0 rejected, 0 expired, 0
skipped``; kinds in ``Kind``'s order, ``cert_sha1`` included; distinct counts are what a target
would receive; a MISP attribute with ``to_ids`` false counts as skipped). ``--rejects FILE``: the rejected
records as JSON lines (``origin``, ``raw``, ``reason``). Exit 0 when the feed was read (rejects
or not), 2 when it was refused (one sentence on stderr), 141 when stdout is closed early
(``| head``, in ``importer.cli.main``); never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from feeds import FORMATS, Expired, FeedError, FeedOptions, Indicator, Kind, Rejected, Skipped, read_feed

__all__ = ["add_parser", "run", "summary_line"]

_BATCH = 512  # lines joined per write: one write per record is ~2x slower
_EXIT_REFUSED = 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "parse",
        help="read a feed and print its indicators as JSON lines (no import)",
        description="Read FEED (a path, '-' for stdin; gzip is detected) and print each indicator "
        "as a JSON line on stdout and a one-line summary of every bucket (indicators by kind, "
        "rejected, expired, skipped) on stderr. Exit 0 when the feed was read, even with rejects; "
        "2 when it was refused as a whole.",
    )
    parser.add_argument("feed", metavar="FEED", help="the feed file, or '-' to read stdin")
    parser.add_argument(
        "--format",
        choices=["auto", *sorted(FORMATS)],
        default="auto",
        help="the feed's format: csv, list, stix (STIX 2.x JSON) or misp (MISP events); "
        "default: auto, detected from the content",
    )
    parser.add_argument(
        "--columns",
        metavar="SPEC",
        help="CSV only: which columns hold what, e.g. 'sha256_hash=sha256,dst_ip=ip', '3=domain' "
        "or 'type=Indicator_type,value=Data' (see the README)",
    )
    parser.add_argument(
        "--rejects",
        metavar="FILE",
        help="write the rejected records there as JSON lines (origin, raw, reason); expired "
        "indicators and skipped objects are only counted, not written",
    )
    parser.set_defaults(handler=run)


def _by_kind(counts: Mapping[Kind, int]) -> str:
    parts = ", ".join(f"{kind} {counts[kind]}" for kind in Kind if counts.get(kind))
    return f" ({parts})" if parts else ""


def summary_line(
    name: str, counts: Mapping[str, int], kinds: Mapping[Kind, int], distinct: Mapping[Kind, int]
) -> str:
    """The stderr summary: indicators by kind, distinct ones, then rejected, expired and skipped."""
    if not any(counts.values()) and not any(kinds.values()):
        return f"{name}: 0 records (an empty feed)"
    total = sum(kinds.values())
    unique = sum(distinct.values())
    unique_detail = "" if unique == total else _by_kind(distinct)
    return (
        f"{name}: {total} indicators{_by_kind(kinds)}, {unique} distinct{unique_detail}, "
        f"{counts.get('rejected', 0)} rejected, {counts.get('expired', 0)} expired, "
        f"{counts.get('skipped', 0)} skipped"
    )


class _RejectsFailed(Exception):
    """The rejects file could not be written (a full disk, the file-size limit)."""

    def __init__(self, error: OSError) -> None:
        super().__init__((error.strerror or str(error)).lower())


def _emit(
    source: str, args: argparse.Namespace, out: TextIO, rejects: TextIO | None
) -> tuple[str, Counter[str], Counter[Kind], dict[Kind, set[str]]]:
    counts: Counter[str] = Counter()
    kinds: Counter[Kind] = Counter()
    values: dict[Kind, set[str]] = {kind: set() for kind in Kind}  # what a target would receive
    ascii_only = (getattr(out, "encoding", None) or "").lower().replace("-", "") != "utf8"
    dumps = json.JSONEncoder(ensure_ascii=ascii_only, separators=(", ", ": ")).encode
    options = FeedOptions(columns=args.columns)
    name = "<stdin>" if source == "-" else source
    batch: list[str] = []
    for record in read_feed(source, args.format, name=name, options=options):
        if isinstance(record, Indicator):
            kinds[record.kind] += 1
            values[record.kind].add(record.value)
            batch.append(dumps(record.to_json()))
            if len(batch) >= _BATCH:
                out.write("\n".join(batch) + "\n")
                batch.clear()
        elif isinstance(record, Rejected):
            counts["rejected"] += 1
            if rejects is not None:
                try:
                    rejects.write(dumps(record.to_json()) + "\n")
                except OSError as exc:
                    raise _RejectsFailed(exc) from None
        elif isinstance(record, Expired):
            counts["expired"] += 1
        elif isinstance(record, Skipped):
            counts["skipped"] += 1
    if batch:
        out.write("\n".join(batch) + "\n")
    out.flush()
    return name, counts, kinds, values


def _refusal(args: argparse.Namespace) -> str | None:
    """Why ``args`` cannot be parsed at all, before anything is opened; None if they can."""
    if "://" in args.feed:
        return (
            f"parse reads a local file or '-' (stdin) only, not {args.feed.split('://')[0]}:// URLs: "
            "download it first (e.g. curl -o feed.txt URL), or import it with 'ti-import run URL'"
        )
    if args.rejects and args.feed != "-" and _same_file(Path(args.rejects), Path(args.feed)):
        return f"the rejects file {args.rejects} is the feed itself: writing it would destroy it"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def run(args: argparse.Namespace) -> int:
    """Parse ``args.feed``; the exit code (0 read, 2 refused, 141 stdout closed early)."""
    refused = _refusal(args)
    if refused is not None:
        print(f"ti-import: {refused}.", file=sys.stderr)
        return _EXIT_REFUSED
    rejects: TextIO | None = None
    try:
        if args.rejects:
            try:
                rejects = open(args.rejects, "w", encoding="utf-8")  # noqa: SIM115 - closed below
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                print(f"ti-import: cannot write the rejects file {args.rejects}: {reason}.", file=sys.stderr)
                return _EXIT_REFUSED
        name, counts, kinds, values = _emit(args.feed, args, sys.stdout, rejects)
        if rejects is not None:
            try:  # here, so a full disk at the last flush is said like any other
                rejects.close()
            except OSError as exc:
                raise _RejectsFailed(exc) from None
    except FeedError as exc:
        print(f"ti-import: {exc}", file=sys.stderr)
        return _EXIT_REFUSED
    except _RejectsFailed as exc:
        print(f"ti-import: cannot write the rejects file {args.rejects}: {exc}.", file=sys.stderr)
        return _EXIT_REFUSED
    except BrokenPipeError:
        raise  # ``| head``: ``cli.main`` ends quietly
    except OSError as exc:  # the reader turns its own errors into FeedError: this is stdout
        print(f"ti-import: cannot write stdout: {(exc.strerror or str(exc)).lower()}.", file=sys.stderr)
        return _EXIT_REFUSED
    finally:
        if rejects is not None:
            with contextlib.suppress(OSError):
                rejects.close()
    distinct = {kind: len(found) for kind, found in values.items()}
    print(summary_line(name, counts, kinds, distinct), file=sys.stderr)
    return 0
