"""Progress while a run goes: tqdm bars on a terminal, nothing at all for cron (same small protocol).

Per feed, two bars: records read (no total: a stream's length is unknown) and indicators sent.
The sent bar counts without a percentage while its feed is read — what it will have to send is
not known yet, and a total growing under it would make its percentage shrink — and gets its total
once the feed has been read, so from then on its percentage only grows. A pause of every sender
(a 429's Retry-After, told through ``TransportStats.paused``) shows on the sent bars until
something moves again. Labels are cut in the middle, keeping the end, where names of one source
differ ("…URLhaus recent" / "…URLhaus online"). While bars are up, log lines are written above
them instead of through them; ``close`` leaves one clean final line per bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, Protocol, TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from importer.transport.stats import TransportStats

__all__ = ["NoProgress", "Progress", "TqdmProgress", "bar_label", "make_progress"]

_LABEL = 24  # characters of a feed's name on its bars


class Progress(Protocol):
    """What the pipeline reports as it goes; every call is cheap and made per chunk, not per record."""

    def feed_started(self, feed: str) -> None: ...
    def read(self, feed: str, records: int) -> None: ...
    def queued(self, feed: str, indicators: int) -> None: ...
    def sent(self, feed: str, indicators: int) -> None: ...
    def feed_done(self, feed: str) -> None: ...
    def paused(self, seconds: float, why: str) -> None: ...
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

    def paused(self, seconds: float, why: str) -> None:
        return None

    def close(self) -> None:
        return None


def bar_label(name: str, taken: set[str], width: int = _LABEL) -> str:
    """``name`` in at most ``width`` characters, cut in the middle, and unlike every label in ``taken``.

    The end is kept longer than the start: feeds of one source share their start and differ at
    the end. Two names that still meet get a number, so no two feeds ever look the same."""
    label = name
    if len(name) > width:
        head = (width - 1) * 2 // 5
        label = name[:head] + "…" + name[-(width - 1 - head) :]
    unique, n = label, 2
    while unique in taken:
        suffix = f" #{n}"
        unique = (label if len(label) + len(suffix) <= width else label[: width - len(suffix)]) + suffix
        n += 1
    return unique


class _Feed:
    """One feed's two bars and what its sent bar's total will be."""

    def __init__(self, read: tqdm[Any], sent: tqdm[Any]) -> None:
        self.read = read
        self.sent = sent
        self.queued = 0
        self.done = False  # read to its end: the sent bar has its total


class TqdmProgress:
    """Two tqdm bars per feed on ``stream`` (stderr); ``clock`` times pauses (injectable for tests)."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._feeds: dict[str, _Feed] = {}
        self._labels: set[str] = set()
        self._bars: list[tqdm[Any]] = []  # in screen order, top to bottom
        self._pause: str | None = None  # shown on the sent bars until ``_pause_ends``
        self._pause_ends = float("-inf")
        self._exit = ExitStack()
        # Log lines (-v) go through tqdm.write, above the bars, instead of into their middle.
        self._exit.enter_context(logging_redirect_tqdm())

    def feed_started(self, feed: str) -> None:
        label = bar_label(feed, self._labels)
        self._labels.add(label)
        padded = label.ljust(_LABEL)  # one width for every feed, so the bars line up
        # The units start with a space: tqdm's scaled rate would read "460kind/s" otherwise.
        self._feeds[feed] = _Feed(self._bar(f"{padded} read", " rec"), self._bar(f"{padded} sent", " ind"))

    def _bar(self, desc: str, unit: str) -> tqdm[Any]:
        bar: tqdm[Any] = tqdm(
            desc=desc, unit=unit, unit_scale=True, position=len(self._bars),
            file=self._stream, leave=True, dynamic_ncols=True, mininterval=0.2,
        )  # fmt: skip
        self._bars.append(bar)
        return bar

    def read(self, feed: str, records: int) -> None:
        self._feeds[feed].read.update(records)

    def queued(self, feed: str, indicators: int) -> None:
        state = self._feeds[feed]
        state.queued += indicators
        if state.done:  # not expected after the feed was read; keep the total true if it happens
            state.sent.total = state.queued
            state.sent.refresh()

    def sent(self, feed: str, indicators: int) -> None:
        self._end_pause_if_over()
        self._feeds[feed].sent.update(indicators)

    def feed_done(self, feed: str) -> None:
        state = self._feeds[feed]
        state.done = True
        if state.queued:  # a dry run sends nothing: its bar stays a plain count
            state.sent.total = state.queued
        state.read.refresh()
        state.sent.refresh()

    def paused(self, seconds: float, why: str) -> None:
        self._pause = f"paused {seconds:.0f} s: {why}"
        self._pause_ends = self._clock() + seconds
        for state in self._feeds.values():
            if state.sent.total is None or state.sent.n < state.sent.total:
                state.sent.set_postfix_str(self._pause)

    def _end_pause_if_over(self) -> None:
        if self._pause is not None and self._clock() >= self._pause_ends:
            self._pause = None
            for state in self._feeds.values():
                state.sent.set_postfix_str("", refresh=False)

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` when the bars are closed (e.g. to stop listening for pauses)."""
        self._exit.callback(callback)

    def close(self) -> None:
        """Close the bars top to bottom: each writes its final line where it stands and moves down
        one, so the last frame is whole (closed in another order, a bar's final line lands on
        another bar's)."""
        self._pause = None
        for state in self._feeds.values():
            state.sent.set_postfix_str("", refresh=False)
        for bar in self._bars:
            bar.close()
        self._exit.close()


def make_progress(
    enabled: bool, stream: TextIO | None = None, *, stats: TransportStats | None = None
) -> Progress:
    """Bars when asked for and ``stream`` (default stderr) is a terminal; otherwise silence.

    With ``stats``, the bars listen for pauses of every sender (until closed)."""
    stream = stream or sys.stderr
    if not (enabled and stream.isatty()):
        return NoProgress()
    progress = TqdmProgress(stream)
    if stats is not None:
        stats.pause_listeners.append(progress.paused)
        progress.on_close(lambda: stats.pause_listeners.remove(progress.paused))
    return progress
