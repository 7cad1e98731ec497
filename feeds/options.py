"""The options every feed reader takes: a small frozen value passed down from the command line.

The three limits keep a reader's memory and time bounded whatever the input (see docs/feeds.md,
"Limits"): a list or CSV line over ``max_line_bytes`` is rejected as one record and skipped
unread; a gzip feed is refused once it has inflated to more than ``max_gzip_ratio`` times the
compressed bytes read (past ``GZIP_RATIO_FLOOR``); a STIX object (one element of a bundle's
``objects``) over ``max_object_chars`` is rejected as one record and skipped unread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "DEFAULT_MAX_GZIP_RATIO",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MAX_OBJECT_CHARS",
    "GZIP_RATIO_FLOOR",
    "MAX_LINE_BYTES",
    "MIN_LINE_BYTES",
    "FeedOptions",
]

DEFAULT_MAX_LINE_BYTES = 64 * 1024
# Below this a bare digest line with its surrounding blanks could pass the limit; no feed's line is
# that short a limit (the list reader relies on it: see feeds.listfeed).
MIN_LINE_BYTES = 1024
MAX_LINE_BYTES = 16 << 20  # a line is held whole up to the limit: the limit bounds memory too
# Real feeds gzip 2-8x (../shared/real-feeds); deflate peaks at ~1030x on a run of one byte, and a
# bomb made with gzip -1 still reaches ~230x, so a 1000x cap would let that one through.
DEFAULT_MAX_GZIP_RATIO = 100
GZIP_RATIO_FLOOR = 1 << 20  # inflated bytes always allowed: a small, very repetitive feed is no bomb
# The largest STIX object held in memory to be read; real ones are a few KB (an artifact with an
# inline payload may reach MBs). Its decoded form takes a few times its text.
DEFAULT_MAX_OBJECT_CHARS = 16 << 20


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """How to read a feed: an explicit column mapping, the "now" used for expiry, and the limits."""

    columns: str | None = None  # --columns override, raw spec; parsed by feeds/csvfeed.py
    now: datetime | None = None  # "now" for expiry decisions (UTC aware); None = real now
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # list and CSV lines (UTF-8 bytes, line end excluded)
    max_gzip_ratio: int | None = DEFAULT_MAX_GZIP_RATIO  # None: no cap (a trusted feed, a benchmark)
    max_object_chars: int = DEFAULT_MAX_OBJECT_CHARS  # one STIX object's JSON text

    def __post_init__(self) -> None:
        if not MIN_LINE_BYTES <= self.max_line_bytes <= MAX_LINE_BYTES:
            raise ValueError(
                f"max_line_bytes must be between {MIN_LINE_BYTES:,} and {MAX_LINE_BYTES:,}, "
                f"got {self.max_line_bytes:,}"
            )
        if self.max_gzip_ratio is not None and self.max_gzip_ratio < 1:
            raise ValueError(f"max_gzip_ratio must be at least 1, got {self.max_gzip_ratio}")
        if self.max_object_chars < 1:
            raise ValueError(f"max_object_chars must be at least 1, got {self.max_object_chars}")
