"""Read threat-intelligence feeds (CSV, STIX 2.x, MISP events, plain lists) into one model of records.

``read_feed(source)`` opens a path, ``-`` (stdin) or a binary stream, gunzips by magic bytes,
decodes UTF-8, detects the format from the content (or takes the one given), and yields the
format parser's records: ``Indicator``, ``Rejected``, ``Expired`` or ``Skipped``. A feed refused
as a whole raises ``FeedError`` (one sentence naming the source): on the first iteration, or
where the reading finds it (a STIX document broken halfway, a gzip bomb, a CSV quote never
closed) after the records before it. Memory and time stay bounded whatever the input: the limits
are ``FeedOptions``' (docs/feeds.md, "Limits").
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, TextIO

from feeds import csvfeed, listfeed, misp, stixfeed
from feeds.detect import check_text, detect_format
from feeds.model import Detection, Expired, FeedError, Indicator, Kind, Record, Rejected, Skipped
from feeds.options import FeedOptions
from feeds.source import open_feed, read_error

__all__ = [
    "FORMATS",
    "Detection",
    "Expired",
    "FeedError",
    "FeedOptions",
    "Indicator",
    "Kind",
    "Record",
    "Rejected",
    "Skipped",
    "read_feed",
]

Parser = Callable[[TextIO, str, FeedOptions], Iterator[Record]]

# The format registry: "auto" means detect_format, which names one of these.
FORMATS: dict[str, Parser] = {
    "csv": csvfeed.parse,
    "stix": stixfeed.parse,
    "list": listfeed.parse,
    "misp": misp.parse,
}


def read_feed(
    source: str | os.PathLike[str] | BinaryIO,
    format: str = "auto",  # the documented keyword, as --format
    *,
    name: str | None = None,
    options: FeedOptions | None = None,
) -> Iterator[Record]:
    """Yield every record of the feed at ``source``; ``FeedError`` when it is refused as a whole."""
    if format != "auto" and format not in FORMATS:
        known = ", ".join(["auto", *sorted(FORMATS)])
        raise FeedError(f"unknown feed format {format!r} (known: {known}).")
    options = options or FeedOptions()
    opened = open_feed(source, name, max_gzip_ratio=options.max_gzip_ratio)
    try:
        if format == "auto":
            chosen = detect_format(opened.head, opened.name)
        else:
            check_text(opened.head, opened.name)
            chosen = format
        parser = FORMATS.get(chosen)
        if parser is None:
            raise FeedError(f"{opened.name} looks like {chosen}, but the {chosen} reader is not available.")
        if options.columns is not None and chosen != "csv":
            # Only the CSV reader maps columns: ignoring the mapping would read another layout
            # than the one the user described.
            hint = " (give --format csv if it is CSV)" if format == "auto" else ""
            raise FeedError(f"{opened.name} is a {chosen} feed; --columns applies to CSV feeds only{hint}.")
        try:
            yield from parser(opened.stream, opened.name, options)
        except (OSError, EOFError, zlib.error) as exc:
            raise read_error(opened.name, exc) from None
    finally:
        opened.close()
