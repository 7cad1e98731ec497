"""A MISP feed as a pull source: its manifest, then each event newer than the feed's cursor, one at a time.

A feed with ``format = "misp-feed"`` names a folder or an http(s) URL holding ``manifest.json``
and ``<uuid>.json`` events, as MISP publishes feeds (CIRCL's OSINT feed). A local folder holding a
``manifest.json`` is one without saying so (``format`` auto): nothing else is read from a folder.
A URL must say it: telling would cost every http feed a probe for a manifest it does not have.

Opening the job reads the manifest (``sources.misp_feed_manifest``): the events whose timestamp
is newer than the cursor the journal keeps for the feed (``full``: all), oldest first. Reading
its records then takes one event at a time through the ``misp`` format (``feeds.read_feed``: the
one MISP reader), so memory follows one event. Remote files go through the download machinery of
every http feed (``sources.download``: timeouts, TLS, proxies, size cap, the feed's headers), a few
events ahead of the one being read so that round trips overlap; each is read from a file already
unlinked, gone from the disk once read.

An event that cannot be downloaded or read is one ``Rejected`` record naming its uuid and why;
the others go on, and the cursor (``CursorTrack``) stays below it, so the next run asks for it
again. ``MispFeedPull`` is what the run learns: the run keeps its cursor as it keeps a TAXII
pull's (``sources.pull``), once every event was read and every batch acknowledged. An event is
versioned as a TAXII object is: per event uuid, the keys it produced (``versions``), so a changed
event whose attribute now holds another value, or lost its ``to_ids``, takes the old one off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from feeds import read_feed
from feeds.model import FeedError, Indicator, Kind, Record, Rejected
from feeds.options import FeedOptions
from importer.errors import ConfigError
from importer.fields import COLUMNS, FULL, MAX_LINE_BYTES, MISP_FEED
from importer.model import DefinitionSpec, Options
from importer.pipeline.job import FeedJob
from importer.sources.misp_feed_fetch import Fetcher
from importer.sources.misp_feed_manifest import CursorTrack, Entry, Manifest, cursor_seconds, read_manifest
from importer.sources.pull import PulledVersions
from importer.transport.connection import NetworkSettings
from importer.transport.urls import url_problem

__all__ = ["MANIFEST", "MispFeedPull", "is_misp_feed", "misp_feed_pull"]

_log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
_AHEAD = 4  # events fetched ahead of the one read: 4 round trips overlap, 4 events on disk at most


def is_misp_feed(source: str, fmt: str) -> bool:
    """Whether the feed at ``source`` read as ``fmt`` is a MISP feed (said, or a folder with a manifest)."""
    if fmt == MISP_FEED:
        return True
    return fmt == "auto" and "://" not in source and source != "-" and (Path(source) / MANIFEST).is_file()


@dataclass(slots=True)
class MispFeedPull:
    """One MISP feed of a run: its job, and what its pull found out (filled as it is read)."""

    job: FeedJob
    source: str
    asked_after: int | None  # read only events newer than this (None: all)
    cursor: str | None = None  # the largest timestamp up to which every event was read
    completed: bool = False  # the manifest and every event it selected were read
    listed: int = 0  # events the manifest lists
    fetched: int = 0  # events read (or tried)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (uuid, why) of events not read
    removals: set[tuple[Kind, str]] = field(default_factory=set)  # a MISP feed names nothing retired itself
    versions: PulledVersions = field(default_factory=lambda: PulledVersions(full=False))  # per event uuid

    @property
    def name(self) -> str:
        return self.job.name


def misp_feed_pull(
    source: str,
    definition: DefinitionSpec,
    reading: Options,
    network: NetworkSettings,
    *,
    cursor: str | None = None,
) -> MispFeedPull:
    """The pull of the MISP feed at ``source``; ``cursor``: read only events changed after it."""
    where = f"feed {definition.name!r}"
    if "://" in source:
        problem = url_problem(source, allow_http=network.allow_http)
        if problem is not None:
            raise ConfigError(f"the MISP feed URL of {where} {problem}")
    elif source == "-":
        raise ConfigError(f"{where}: a MISP feed's source is a folder or an http(s) URL, not stdin")
    if reading[COLUMNS] is not None:
        raise ConfigError(f"{where}: key 'columns' applies to CSV feeds only, not to a MISP feed")
    options = FeedOptions(max_line_bytes=reading[MAX_LINE_BYTES])
    pull = MispFeedPull(
        FeedJob(source, definition, lambda: _open(pull, reading, network, options)),
        source,
        asked_after=None if reading[FULL] else cursor_seconds(cursor),
    )
    pull.versions.full = pull.asked_after is None
    return pull


@asynccontextmanager
async def _open(
    pull: MispFeedPull, reading: Options, network: NetworkSettings, options: FeedOptions
) -> AsyncIterator[Iterator[Record]]:
    """Read the manifest, then yield the selected events' records (read in a thread, as the
    pipeline does: fetching bridges back to this loop)."""
    fetcher = Fetcher(pull.source, reading, network, asyncio.get_running_loop())
    try:
        manifest = await fetcher.manifest(lambda stream, name: read_manifest(stream, name, pull.asked_after))
        pull.listed = manifest.listed
        records = _records(pull, manifest, fetcher, options)
        try:
            yield records
        finally:
            with suppress(ValueError):  # still running in a thread whose wait was cancelled: it ends below
                records.close()
    finally:
        await fetcher.aclose()


def _records(
    pull: MispFeedPull, manifest: Manifest, fetcher: Fetcher, options: FeedOptions
) -> Generator[Record, None, None]:
    """The records of each selected event in order; reaching their end marks the pull completed."""
    if threading.get_ident() == fetcher.loop_thread:
        raise RuntimeError("a MISP feed's records are read in a thread, not on the event loop")
    if manifest.problems:  # an event the manifest misnames was not seen: its keys are not gone
        pull.versions.full = False
    for key, why in manifest.problems:
        _log.warning("MISP feed %s: event %s not read: %s", pull.source, key, why)
        yield Rejected(f"{pull.source}:{key}", key, f"MISP event {key} not read: {why}")
    track = CursorTrack()
    entries = iter(manifest.entries)
    ahead: deque[tuple[Entry, concurrent.futures.Future[BinaryIO]]] = deque()
    try:
        while True:
            while len(ahead) < _AHEAD and (entry := next(entries, None)) is not None:
                ahead.append((entry, fetcher.event(entry.uuid)))
            if not ahead:
                break
            entry, fetched = ahead.popleft()
            track.reading(entry)
            pull.fetched += 1
            failure = yield from _event(fetcher, entry, fetched, options, pull.versions)
            if failure is not None:
                track.failed()
                pull.failed.append((entry.uuid, failure))
                _log.warning("MISP feed %s: event %s not read: %s", pull.source, entry.uuid, failure)
        track.finished()
        pull.versions.flush()
    finally:
        for _, fetched in ahead:
            fetched.cancel()  # the fetcher closes what was fetched but never read
    pull.cursor, pull.completed = track.cursor, True
    after = "all" if pull.asked_after is None else f"changed after {pull.asked_after}"
    _log.info(
        "pulled MISP feed %s: %d of %d events (%s), %d not read",
        pull.source, pull.fetched, pull.listed, after, len(pull.failed),
    )  # fmt: skip


def _event(
    fetcher: Fetcher,
    entry: Entry,
    fetched: concurrent.futures.Future[BinaryIO],
    options: FeedOptions,
    versions: PulledVersions,
) -> Generator[Record, None, str | None]:
    """One event's records; returns why it could not be read (None: it was). ``versions`` learns
    the keys the event produces now: MISP re-publishes a changed event whole under its uuid, so
    what an earlier version of it produced and this one does not is gone (``state.versions``)."""
    name = fetcher.event_name(entry.uuid)
    try:
        handle = fetched.result()
    except FeedError as exc:
        why = str(exc)
    else:
        try:
            with handle:
                for record in read_feed(handle, "misp", name=name, options=options):
                    if isinstance(record, Indicator):
                        versions.produced(entry.uuid, record.kind, record.value)
                    yield record
            versions.read(entry.uuid, replaced=True)
            return None
        except FeedError as exc:  # after the records before the fault: those stand
            why = str(exc)
        finally:
            fetcher.release(handle)
    versions.read(entry.uuid, replaced=False)  # not read: what it produced before stays
    yield Rejected(name, entry.uuid, f"MISP event {entry.uuid} not read: {why}")
    return why
