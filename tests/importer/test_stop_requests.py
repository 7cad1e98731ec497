"""Stop means stop, in process: once the run's ``stop`` is set no request starts — whatever the read
chunk, in bulk and in single mode — the requests in flight finish, and what was read but not sent is
``not_attempted`` (no failure, no rejects line), which the next run sends.

Requests are counted where they land, at the emulator (``requests_by_status``, counted as each is
answered); the stop is set by the pipeline's own progress call for the first acknowledged batch,
so the moment is the same on every machine. ``test_stop.py`` does the same with a real SIGINT.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from importer.emulator import Emulator, EmulatorConfig, Faults
from importer.model import InFlight
from importer.pipeline.engine import PipelineOptions, run_pipeline
from importer.pipeline.progress import NoProgress
from importer.pipeline.rejects import RejectsWriter
from importer.report.counts import RunReport
from importer.sources.feed import job_for
from importer.targets.registry import open_target
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, feed_spec, sha1s, spec_for, write_list

WORKERS = 4
# 10 ms an answer: while one batch is acknowledged, the other workers' requests are in flight.
SLOW = EmulatorConfig(api_faults=Faults(latency_ms=10))


def answered(emu: Emulator) -> int:
    """Requests the emulator has answered so far (every status, the token endpoint's included)."""
    return sum(emu.state()["requests_by_status"].values())


class StopAtFirstBatch(NoProgress):
    """Sets ``stop`` when the first batch has been acknowledged, noting the emulator's count then."""

    def __init__(self, emu: Emulator, stop: asyncio.Event) -> None:
        self.emu = emu
        self.stop = stop
        self.at_stop = 0
        self.last_sent = 0.0

    def sent(self, feed: str, indicators: int) -> None:
        self.last_sent = time.monotonic()
        if not self.stop.is_set():
            self.at_stop = answered(self.emu)
            self.stop.set()


async def import_feed(
    emu: Emulator,
    feed: Path,
    *,
    mode: str,
    batch: int,
    progress: NoProgress,
    stop: asyncio.Event | None = None,
    rejects: Path | None = None,
) -> RunReport:
    async with open_target(
        "ti", connection_settings(emu), TransportStats(), in_flight=InFlight(WORKERS), bulk=mode == "bulk"
    ) as target:
        options = PipelineOptions(batch_size=batch, in_flight=InFlight(WORKERS), mode=mode)
        writer = RejectsWriter(rejects)
        try:
            return await run_pipeline(
                target, [job_for(str(feed), feed_spec("Stop"))], options=options, progress=progress,
                stop=stop, rejects=writer,
            )  # fmt: skip
        finally:
            writer.close()


@pytest.mark.parametrize("emulator", [SLOW], indirect=True)
@pytest.mark.parametrize("mode", ["bulk", "single"])
async def test_after_a_stop_only_the_requests_in_flight_finish_and_the_rest_is_not_attempted(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    feed = write_list(tmp_path / "feed.txt", 20_000, seed=7)
    stop = asyncio.Event()
    spy = StopAtFirstBatch(emulator, stop)
    rejects = tmp_path / "rejects.jsonl"
    report = await import_feed(emulator, feed, mode=mode, batch=10, progress=spy, stop=stop, rejects=rejects)
    returned = time.monotonic()

    after = answered(emulator) - spy.at_stop
    assert after <= WORKERS, f"{after} requests were answered after the stop"
    (result,) = report.feeds
    result.check()  # the buckets add up to the records read
    assert report.stopped and result.error is None
    assert result.failed == 0 and result.rejected == 0 and rejects.read_text() == ""  # no line for them
    assert result.not_attempted > 0
    assert result.imported == emulator.state()["totals"]["iocs"]
    # Read in chunks of 2,000: what was read of the chunk in hand is not attempted, none sent.
    assert result.imported + result.not_attempted == result.records_read < 20_000
    assert returned - spy.last_sent < 1.0  # nothing left to wait for once the last answer is in

    # The next run sends what was not attempted, and nothing twice.
    rerun = await import_feed(emulator, feed, mode="bulk", batch=500, progress=NoProgress())
    assert rerun.feeds[0].imported == 20_000 - result.imported
    totals = emulator.state()["totals"]
    assert totals["iocs"] == 20_000 and totals["duplicate_iocs"] == 0


@pytest.mark.parametrize("target_name", ["ti", "mde"])
async def test_single_mode_posts_nothing_more_once_stopping_and_says_what_it_did_not_post(
    emulator: Emulator, fake_time: FakeTime, target_name: str
) -> None:
    asked: list[bool] = []

    def stopping() -> bool:  # the stop comes once the first post is made
        asked.append(len(asked) >= 1)
        return asked[-1]

    settings = connection_settings(emulator, api=target_name)
    async with open_target(
        target_name, settings, TransportStats(), bulk=False, in_flight=InFlight(1),
        sleep=fake_time.sleep, clock=fake_time.clock,
    ) as target:  # fmt: skip
        definition = await target.resolve_definition(spec_for("Stop", target_name), dry_run=False)
        batch = sha1s(5)  # beyond mde's single-mode batch of 1: its loop is what is under test
        before = answered(emulator)
        first = await target.send(definition, batch, stopping=stopping)
        stopped = await target.send(definition, sha1s(1, start=100), stopping=lambda: True)
    assert len(first.imported) == 1 and first.unsent == batch[1:]
    assert not first.failed and not first.rejected
    assert stopped.unsent == sha1s(1, start=100) and not stopped.imported
    assert answered(emulator) - before == 1  # one post, then none
