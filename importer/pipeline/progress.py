"""Progress while a run goes: tqdm bars on a terminal, nothing at all for cron (same small protocol).

Per feed, two bars: records read (no total: a stream's length is unknown) and indicators sent,
whose total grows as the reader queues indicators, so its rate and ETA become exact once the
feed has been read.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

from tqdm import tqdm

__all__ = ["NoProgress", "Progress", "TqdmProgress", "make_progress"]


class Progress(Protocol):
    """What the pipeline reports as it goes; every call is cheap and made per chunk, not per record."""

    def feed_started(self, feed: str) -> None: ...
    def read(self, feed: str, records: int) -> None: ...
    def queued(self, feed: str, indicators: int) -> None: ...
    def sent(self, feed: str, indicators: int) -> None: ...
    def feed_done(self, feed: str) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    """Silence (cron, ``--no-progress``, a non-terminal stderr)."""

    def feed_started(self, feed: str) -> None:
        return None

    def read(self, feed: str, records: int) -> None:
        return None

    def queued(self, feed: str, indicators: int) -> None:
        return None

    def sent(self, feed: str, indicators: int) -> None:
        return None

    def feed_done(self, feed: str) -> None:
        return None

    def close(self) -> None:
        return None


class TqdmProgress:
    """Two tqdm bars per feed on ``stream`` (stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._read: dict[str, tqdm[Any]] = {}
        self._sent: dict[str, tqdm[Any]] = {}
        self._position = 0

    def feed_started(self, feed: str) -> None:
        label = feed if len(feed) <= 24 else feed[:23] + "…"
        self._read[feed] = self._bar(f"{label} read", "rec")
        self._sent[feed] = self._bar(f"{label} sent", "ind", total=0)

    def _bar(self, desc: str, unit: str, total: int | None = None) -> tqdm[Any]:
        bar: tqdm[Any] = tqdm(
            desc=desc, unit=unit, unit_scale=True, total=total, position=self._position,
            file=self._stream, leave=True, dynamic_ncols=True, mininterval=0.2,
        )  # fmt: skip
        self._position += 1
        return bar

    def read(self, feed: str, records: int) -> None:
        self._read[feed].update(records)

    def queued(self, feed: str, indicators: int) -> None:
        bar = self._sent[feed]
        bar.total = (bar.total or 0) + indicators
        bar.refresh()

    def sent(self, feed: str, indicators: int) -> None:
        self._sent[feed].update(indicators)

    def feed_done(self, feed: str) -> None:
        self._read[feed].refresh()

    def close(self) -> None:
        for bar in (*self._read.values(), *self._sent.values()):
            bar.close()


def make_progress(enabled: bool, stream: TextIO | None = None) -> Progress:
    """Bars when asked for and ``stream`` (default stderr) is a terminal; otherwise silence."""
    stream = stream or sys.stderr
    if enabled and stream.isatty():
        return TqdmProgress(stream)
    return NoProgress()
