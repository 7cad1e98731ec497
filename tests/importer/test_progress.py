"""Progress bars as a person sees them: the bytes tqdm writes, played on a small terminal model, and
a throttled run against the emulator whose pause shows on the bars and in the log."""

from __future__ import annotations

import io
import logging
import re
import sys
from pathlib import Path

import pytest

from importer.emulator import EmulatorConfig, Faults, running_emulator
from importer.pipeline.progress import NoProgress, TqdmProgress, bar_label, make_progress
from importer.run import run_import
from importer.settings import OutputOptions
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, journaled_settings, write_feed

RECENT, ONLINE = "abuse.ch URLhaus feed: recent", "abuse.ch URLhaus feed: online"


class Tty(io.StringIO):
    """A stderr that says it is a terminal, keeping what was written to it."""

    def isatty(self) -> bool:
        return True


def screen(written: str) -> list[str]:
    """The lines a terminal shows after ``written``: carriage return, newline (the tty's
    CR+LF), cursor up (``ESC [ A``), erase to the end of the line (``ESC [ K``); text overwrites."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for token in re.findall(r"\x1b\[(\d*)([A-Za-z])|(\r)|(\n)|([^\x1b\r\n])", written):
        count, command, cr, lf, char = token
        if cr:
            col = 0
        elif lf:
            row, col = row + 1, 0
        elif command == "A":
            row = max(0, row - int(count or 1))
        elif command == "K":
            del lines[row][col:]
        elif char:
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col : col + 1] = [char]
            col += 1
        while len(lines) <= row:
            lines.append([])
    return ["".join(line).rstrip() for line in lines if "".join(line).strip()]


def frames(written: str, label: str) -> list[str]:
    """Every frame drawn of the bar whose description starts with ``label``, in order."""
    return [part for part in re.split(r"[\r\n]|\x1b\[\d*A", written) if part.startswith(label)]


def test_labels_keep_the_end_and_never_look_alike() -> None:
    taken: set[str] = set()
    first = bar_label(RECENT, taken)
    taken.add(first)
    second = bar_label(ONLINE, taken)
    assert first.endswith("recent") and second.endswith("online")
    assert len(first) <= 24 and len(second) <= 24 and first.startswith("abuse.ch")
    assert bar_label("short.txt", taken) == "short.txt"
    taken.add(second)
    twin = bar_label(RECENT, taken)  # the same name twice (two sources of one name) still differs
    assert twin != first and len(twin) <= 24 and twin.endswith("#2")


def test_sent_percentage_never_shrinks_and_the_last_frame_is_clean() -> None:
    tty, now = Tty(), [0.0]
    bars = TqdmProgress(tty, clock=lambda: now[0])
    for feed in (RECENT, ONLINE):
        bars.feed_started(feed)
    for _ in range(3):  # read, queue and send in turns, as the pipeline does
        for feed in (RECENT, ONLINE):
            bars.read(feed, 100)
            bars.queued(feed, 40)
            bars.sent(feed, 20)
    bars.feed_done(RECENT)
    bars.sent(RECENT, 60)
    bars.feed_done(ONLINE)
    bars.sent(ONLINE, 30)
    bars.close()
    written = tty.getvalue()

    for feed in (RECENT, ONLINE):
        label = bar_label(feed, set())
        percentages = [int(p) for f in frames(written, f"{label}") for p in re.findall(r"(\d+)%\|", f)]
        assert percentages == sorted(percentages) and percentages, percentages
    final = screen(written)
    assert len(final) == 4, final  # one whole line per bar, each on its own line
    recent, online = bar_label(RECENT, set()), bar_label(ONLINE, {bar_label(RECENT, set())})
    assert [line.split(" read")[0].split(" sent")[0].rstrip() for line in final] == [recent] * 2 + [
        online
    ] * 2
    assert "read" in final[0] and "300 rec" in final[0]
    assert "100%" in final[1] and "120/120" in final[1]
    assert "75%" in final[3] and "90.0/120" in final[3]


def test_a_pause_shows_on_the_sent_bars_until_something_moves() -> None:
    tty, now = Tty(), [0.0]
    bars = TqdmProgress(tty, clock=lambda: now[0])
    bars.feed_started("feed.txt")
    bars.queued("feed.txt", 100)
    bars.sent("feed.txt", 50)
    bars.paused(42, "throttled")
    assert "paused 42 s: throttled" in frames(tty.getvalue(), "feed.txt")[-1]
    now[0] = 30.0
    bars.sent("feed.txt", 10)  # an answer during the pause (a request already in flight)
    assert "paused 42 s: throttled" in frames(tty.getvalue(), "feed.txt")[-1]
    now[0] = 42.5
    bars.feed_done("feed.txt")
    bars.sent("feed.txt", 40)
    bars.close()
    assert "paused" not in "\n".join(screen(tty.getvalue()))


def test_progress_only_on_a_terminal_and_listening_only_while_open() -> None:
    stats = TransportStats()
    assert isinstance(make_progress(True, io.StringIO(), stats=stats), NoProgress)
    assert isinstance(make_progress(False, Tty(), stats=stats), NoProgress)
    bars = make_progress(True, Tty(), stats=stats)
    assert isinstance(bars, TqdmProgress) and len(stats.pause_listeners) == 1
    bars.close()
    assert stats.pause_listeners == [] and "pause_listeners" not in stats.as_dict()


async def test_a_throttled_run_shows_its_pause_on_the_bars_and_in_the_log(
    tmp_path: Path, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    config = EmulatorConfig(api_faults=Faults(throttle_per_minute=3), clock=fake_time.wall)
    async with running_emulator(config) as emu:
        settings = journaled_settings(emu, write_feed(tmp_path / "a.txt", range(120)))
        with caplog.at_level(logging.INFO, logger="importer.transport.retry"):
            report = await run_import(
                settings, OutputOptions(progress=True), sleep=fake_time.sleep, clock=fake_time.clock
            )
    assert report.exit_code() == 0 and report.feeds[0].imported == 120, report.feeds[0].reject_reasons
    # Three a minute: the definition's two calls and one upload pass; the other two uploads,
    # sent at the same moment, are answered 429 — one pause, met by two workers, said once.
    assert report.transport.throttled == 2
    pauses = [r.getMessage() for r in caplog.records if r.getMessage().startswith("paused ")]
    assert len(pauses) == 1 and re.match(r"paused \d+ s: throttled on uploading", pauses[0]), pauses
    assert re.search(r"paused \d+ s: throttled\]", tty.getvalue())
    assert report.transport.pause_listeners == []  # the bars stopped listening when closed
