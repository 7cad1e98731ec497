"""One reading of a feed, shared by the destinations it goes to: a reader thread and a bounded buffer each.

    feed ─► reader thread ─┬─► buffer (2 chunks) ─► destination A's producer
                           └─► buffer (2 chunks) ─► destination B's producer

The feed is opened once (a download happens once) and read by one thread of its own, a chunk at
a time; each chunk goes to every destination still reading it. A destination's buffer holds at
most ``depth`` chunks, so memory is bounded and the slowest destination sets the pace (its full
buffer holds the reader back). A destination that stops reading — it failed (authentication, a
quota), or its run stopped — closes its reader (``detach``): its buffer is dropped and the others
no longer wait for it. When none reads any more, the reader stops, and an unfinished opening (a
download) is cancelled.

Each destination's pipeline reads its records as from any feed (``FeedJob.open`` yields a
synchronous iterator, read in a worker thread of the event loop): a destination whose buffer is
empty waits in that thread for the reader. Those waits hold the loop's default executor's
threads, so the caller sizes it (``threads_needed``) to hold them all besides the usual work.
An error opening or reading the feed is raised to every destination, as a feed of its own would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Executor

from feeds.model import Record
from importer.model import DefinitionSpec
from importer.pipeline.job import FeedJob

__all__ = ["FanOut"]

_CHUNK = 2000  # records per hop from the reader to the buffers, as the producer reads them


class FanOut:
    """The one reading of ``job``'s feed that the destinations ``names`` share."""

    def __init__(self, job: FeedJob, names: Sequence[str], reader: Executor, *, depth: int = 2) -> None:
        self.job = job
        self.names = tuple(names)
        self._reader = reader
        self._depth = depth
        self._ready = threading.Condition()
        self._buffers: dict[str, deque[list[Record]]] = {name: deque() for name in names}
        self._done = False  # the reader has put its last chunk (or failed: ``_error``)
        self._error: BaseException | None = None
        self._pump: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None

    def job_for(self, name: str, definition: DefinitionSpec) -> FeedJob:
        """The feed as destination ``name`` reads it (under its own definition)."""
        return FeedJob(self.job.source, definition, lambda: self._open(name))

    @contextlib.asynccontextmanager
    async def _open(self, name: str) -> AsyncIterator[Iterator[Record]]:
        try:
            if self._pump is None:
                self._opened = asyncio.get_running_loop().create_future()
                self._pump = asyncio.create_task(self._run(), name=f"read {self.job.name}")
            assert self._opened is not None
            await asyncio.shield(self._opened)  # one destination stopped must not cancel the others' opening
            yield _Reader(self, name)
        finally:
            self.detach(name)

    async def _run(self) -> None:
        """Open the feed (in the event loop: a download), then read it in the reader's thread."""
        assert self._opened is not None
        try:
            async with self.job.open() as records:
                self._opened.set_result(None)
                await asyncio.get_running_loop().run_in_executor(self._reader, self._read, records)
        except BaseException as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
                self._opened.exception()  # retrieved: a destination that never waits is no error
            self._finish(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._finish(None)

    def _read(self, records: Iterator[Record]) -> None:
        """The reader thread: a chunk at a time to every live buffer, waiting while one is full."""
        while True:
            with self._ready:
                self._ready.wait_for(lambda: all(len(b) < self._depth for b in self._buffers.values()))
                if not self._buffers:  # nobody reads any more
                    return
            chunk = list(itertools.islice(records, _CHUNK))  # outside the lock: parsing takes a while
            if not chunk:
                return
            with self._ready:
                for buffer in self._buffers.values():
                    buffer.append(chunk)
                self._ready.notify_all()

    def _finish(self, error: BaseException | None) -> None:
        with self._ready:
            self._done, self._error = True, error
            self._ready.notify_all()

    def next_chunk(self, name: str) -> list[Record]:
        """Destination ``name``'s next chunk, waiting for the reader; [] at the end (or once detached).
        The feed's error, if reading it failed, once the chunks read before it are taken."""
        with self._ready:
            self._ready.wait_for(lambda: name not in self._buffers or self._buffers[name] or self._done)
            buffer = self._buffers.get(name)
            if buffer:
                chunk = buffer.popleft()
                self._ready.notify_all()
                return chunk
            if buffer is not None and self._error is not None:
                raise self._error
            return []

    def detach(self, name: str) -> None:
        """Destination ``name`` reads no more: drop its buffer, stop waiting for it; with no reader
        left, stop reading (an opening still under way is cancelled)."""
        with self._ready:
            self._buffers.pop(name, None)
            self._ready.notify_all()
            left = bool(self._buffers)
        # Only while opening (a download): once reading, the reader sees no buffer left and stops
        # at its next chunk, with the feed still open under it.
        opening = self._opened is not None and not self._opened.done()
        if not left and opening and self._pump is not None:
            self._pump.cancel()

    async def close(self) -> None:
        """Detach every destination and wait for the reader to stop."""
        for name in list(self._buffers):
            self.detach(name)
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)


class _Reader:
    """One destination's records of a shared feed: a synchronous iterator over its chunks."""

    def __init__(self, fan: FanOut, name: str) -> None:
        self._fan = fan
        self._name = name
        self._chunk: Iterator[Record] = iter(())

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        for record in self._chunk:
            return record
        chunk = self._fan.next_chunk(self._name)
        if not chunk:
            raise StopIteration
        self._chunk = iter(chunk)
        return next(self._chunk)

    def close(self) -> None:
        """The producer is done with the feed (to its end, or it stopped): the reader stops waiting for it."""
        self._fan.detach(self._name)
