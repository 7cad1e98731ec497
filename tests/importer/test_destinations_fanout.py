"""The shared reading of a feed (``importer.destinations.fanout``): opened and read once, every record
to every destination, the reader never more than its buffers ahead of the slowest, a destination
that stops reading no longer holding back the others, and the feed's error given to each."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import pytest

from feeds.model import FeedError, Indicator, Kind, Record
from importer.destinations.fanout import FanOut
from importer.model import DefinitionSpec
from importer.pipeline.job import FeedJob
from tests.helpers import sha256, wait_until

CHUNK = 2000  # the fan-out's chunk


class Source:
    """A feed of ``count`` indicators that counts its openings and the records taken from it."""

    def __init__(self, count: int, *, fail_after: int | None = None) -> None:
        self.count, self.fail_after = count, fail_after
        self.opened = 0
        self.taken = 0

    def records(self) -> Iterator[Record]:
        for n in range(self.count):
            if self.fail_after is not None and n == self.fail_after:
                raise FeedError("line 5: the feed broke off")
            self.taken += 1
            yield Indicator(Kind.SHA256, sha256(n), f"feed.txt:{n + 1}")

    def job(self) -> FeedJob:
        @asynccontextmanager
        async def open_() -> AsyncIterator[Iterator[Record]]:
            self.opened += 1
            yield self.records()

        return FeedJob("feed.txt", DefinitionSpec("Feed"), open_)


@pytest.fixture
def reader() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


async def read_all(job: FeedJob, per_take: int = 500) -> list[Record]:
    out: list[Record] = []
    async with job.open() as records:
        while chunk := await asyncio.to_thread(lambda: list(itertools.islice(records, per_take))):
            out.extend(chunk)
    return out


async def test_one_reading_every_record_to_each(reader: ThreadPoolExecutor) -> None:
    source = Source(9_001)
    fan = FanOut(source.job(), ["a", "b"], reader)
    definition = DefinitionSpec("Feed")
    a, b = await asyncio.gather(
        read_all(fan.job_for("a", definition)), read_all(fan.job_for("b", definition))
    )
    await fan.close()
    assert source.opened == 1 and source.taken == 9_001
    assert a == b and len(a) == 9_001 and a[-1].value == sha256(9_000)  # type: ignore[union-attr]


async def test_the_slowest_sets_the_pace_and_one_that_stops_frees_the_others(
    reader: ThreadPoolExecutor,
) -> None:
    source = Source(50_000)
    fan = FanOut(source.job(), ["fast", "slow"], reader, depth=2)
    definition = DefinitionSpec("Feed")
    async with fan.job_for("slow", definition).open() as slow:
        first = await asyncio.to_thread(next, slow)
        assert first.value == sha256(0)  # type: ignore[union-attr]
        fast = asyncio.create_task(read_all(fan.job_for("fast", definition)))
        # The slow one holds a chunk and two more wait for it: the reader stops there.
        await wait_until(lambda: source.taken >= 3 * CHUNK)
        await asyncio.sleep(0.05)  # would the reader run on? (a bound checked after a pause, not a wait)
        assert source.taken <= 4 * CHUNK and not fast.done()
    # The slow one closed its reader: the fast one reads to the end on its own.
    records = await asyncio.wait_for(fast, 10)
    await fan.close()
    assert len(records) == 50_000 and source.taken == 50_000 and source.opened == 1


async def test_the_feeds_error_reaches_every_destination_after_what_was_read(
    reader: ThreadPoolExecutor,
) -> None:
    source = Source(10_000, fail_after=4_500)
    fan = FanOut(source.job(), ["a", "b"], reader)
    definition = DefinitionSpec("Feed")
    got = await asyncio.gather(
        read_all(fan.job_for("a", definition)), read_all(fan.job_for("b", definition)), return_exceptions=True
    )
    await fan.close()
    assert all(isinstance(each, FeedError) and "broke off" in str(each) for each in got)
    assert source.opened == 1


async def test_an_opening_that_fails_fails_each_and_none_waits_for_a_destination_that_never_came(
    reader: ThreadPoolExecutor,
) -> None:
    @asynccontextmanager
    async def refused() -> AsyncIterator[Iterator[Record]]:
        raise FeedError("404 Not Found")
        yield iter(())

    fan = FanOut(FeedJob("http://x/feed.txt", DefinitionSpec("Feed"), refused), ["a", "b", "c"], reader)
    definition = DefinitionSpec("Feed")
    fan.detach("c")  # its run failed before its pipeline: it never opens the feed
    got = await asyncio.gather(
        read_all(fan.job_for("a", definition)), read_all(fan.job_for("b", definition)), return_exceptions=True
    )
    await fan.close()
    assert [str(each) for each in got] == ["404 Not Found", "404 Not Found"]


async def test_an_opening_nobody_waits_for_any_more_is_cancelled(reader: ThreadPoolExecutor) -> None:
    cleaned = asyncio.Event()
    started = asyncio.Event()

    @asynccontextmanager
    async def endless_download() -> AsyncIterator[Iterator[Record]]:
        started.set()
        try:
            await asyncio.Event().wait()  # a URL that never finishes
            yield iter(())
        finally:
            cleaned.set()  # as a download removes its temporary file

    fan = FanOut(FeedJob("http://x/feed.txt", DefinitionSpec("Feed"), endless_download), ["a", "b"], reader)
    definition = DefinitionSpec("Feed")
    opening = [asyncio.create_task(read_all(fan.job_for(name, definition))) for name in ("a", "b")]
    await started.wait()
    opening[0].cancel()  # one destination stopped: the other still waits, the download goes on
    await asyncio.gather(opening[0], return_exceptions=True)
    assert not cleaned.is_set()
    opening[1].cancel()  # the last one stopped too: the download is given up and cleans up
    await asyncio.gather(opening[1], return_exceptions=True)
    await asyncio.wait_for(cleaned.wait(), 5)
    await fan.close()
