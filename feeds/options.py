"""The options every feed reader takes: a small frozen value passed down from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["FeedOptions"]


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """How to read a feed: an explicit column mapping and the "now" used for expiry decisions."""

    columns: str | None = None  # --columns override, raw spec; parsed by feeds/csvfeed.py
    now: datetime | None = None  # "now" for expiry decisions (UTC aware); None = real now
