"""Stop-gap ``read_feed`` until ``feeds`` exports its own: path or '-', gzip by magic, format by extension."""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Iterator
from typing import IO, BinaryIO

from feeds import csvfeed, listfeed, stixfeed
from feeds.model import FeedError, Record
from feeds.options import FeedOptions

__all__ = ["read_feed"]

_FORMATS = {"csv": csvfeed.parse, "stix": stixfeed.parse, "list": listfeed.parse}


def read_feed(
    source: str | os.PathLike[str] | BinaryIO,
    format: str = "auto",
    *,
    name: str | None = None,
    options: FeedOptions | None = None,
) -> Iterator[Record]:
    label = name or str(source)
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "-":
            raw: IO[bytes] = sys.stdin.buffer
        else:
            try:
                raw = open(source, "rb")  # noqa: SIM115
            except OSError as exc:
                raise FeedError(f"{label} cannot be read: {exc.strerror}") from None
    else:
        raw = source
    try:
        if raw.peek(2)[:2] == b"\x1f\x8b" if hasattr(raw, "peek") else False:
            raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        if format == "auto":
            lower = label.lower().removesuffix(".gz")
            format = "stix" if lower.endswith(".json") else "csv" if lower.endswith(".csv") else "list"
        yield from _FORMATS[format](text, label, options or FeedOptions())
    finally:
        raw.close()
