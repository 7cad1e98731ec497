"""A TAXII 2.1 collection as a feed: pulled page by page, incrementally, into the STIX reader.

A feed with ``format = "taxii"`` names a collection URL (``https://host/api-root/collections/<id>/``).
``taxii_pull`` builds its job: opening it pulls every page of the collection's indicators
(``sources.taxii_client``) into a temporary file, then yields the records of the newest version of
each object (``sources.taxii_read``). The pull asks ``added_after`` the feed's cursor, which the
run reads from the journal — unless ``full`` — so a nightly run fetches only what was added since
the last one. ``TaxiiPull`` is what the run learns from it (a ``sources.pull.Pull``, as a MISP
feed's pull is, so one code path keeps both cursors): the new cursor (the largest
``X-TAXII-Date-Added-Last`` the server answered), whether the pull was read to its end, and the
values revoked or expired versions retire, and the keys each STIX id's newest version produced
(``versions``). The run keeps the cursor (``Journal.set_cursor``) only when the pull completed and
every batch of it was acknowledged, and deletes the retired values — with those an earlier run
imported for an id whose newer version names another value, or is revoked (``state.versions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from feeds.model import FeedError, Kind, Record
from feeds.options import FeedOptions
from importer.errors import ConfigError, RetryableError
from importer.fields import (
    DOWNLOAD_CONNECT_TIMEOUT,
    DOWNLOAD_READ_TIMEOUT,
    DOWNLOAD_TIMEOUT,
    FULL,
    MAX_DOWNLOAD_BYTES,
    PAGE_SIZE,
)
from importer.model import DefinitionSpec, Options
from importer.pipeline.job import FeedJob
from importer.pipeline.signals import removed_on_hard_exit
from importer.sources.pull import PulledVersions
from importer.sources.secrets import CREDENTIALS
from importer.sources.taxii_client import Page, TaxiiClient
from importer.sources.taxii_read import Spool, read_spool
from importer.transport.connection import NetworkSettings
from importer.transport.retry import Retrier, RetryPolicy
from importer.transport.stats import TransportStats
from importer.transport.tls import tls_context
from importer.transport.urls import url_problem

__all__ = ["TaxiiPull", "taxii_pull"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class TaxiiPull:
    """One TAXII feed of a run: its job, and what its pull found out (filled as it is read)."""

    job: FeedJob
    source: str
    full: bool  # the whole collection was asked for (no cursor, or ``full``)
    asked_after: str | None = None
    cursor: str | None = None  # the largest date added the server reported
    completed: bool = False  # every page pulled and every record read
    requests: int = 0
    objects: int = 0
    removals: set[tuple[Kind, str]] = field(default_factory=set)
    versions: PulledVersions = field(default_factory=lambda: PulledVersions(full=False))

    @property
    def name(self) -> str:
        return self.job.name


def _later(current: str | None, candidate: str | None) -> str | None:
    """The later of two TAXII timestamps, kept as the server wrote it."""
    if candidate is None:
        return current
    try:
        stamp = datetime.fromisoformat(candidate)
    except ValueError:
        _log.warning("ignored a date added that is not a timestamp: %.64r", candidate)
        return current
    if current is None:
        return candidate
    new, old = (s if s.tzinfo else s.replace(tzinfo=UTC) for s in (stamp, datetime.fromisoformat(current)))
    return candidate if new > old else current


def taxii_pull(
    source: str,
    definition: DefinitionSpec,
    reading: Options,
    network: NetworkSettings,
    *,
    cursor: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> TaxiiPull:
    """The pull of the collection at ``source``; ``cursor``: ask only what was added after it."""
    problem = url_problem(source, allow_http=network.allow_http)
    if problem is not None:
        raise ConfigError(f"the TAXII collection URL of feed {definition.name!r} {problem}")
    asked_after = None if reading[FULL] else cursor
    pull = TaxiiPull(
        FeedJob(source, definition, lambda: _open(pull, reading, network, sleep)),
        source,
        full=asked_after is None,
        asked_after=asked_after,
        versions=PulledVersions(full=asked_after is None),
    )
    return pull


@asynccontextmanager
async def _open(
    pull: TaxiiPull, reading: Options, network: NetworkSettings, sleep: Callable[[float], Awaitable[None]]
) -> AsyncIterator[Iterator[Record]]:
    """Pull every page into a temporary file (deleted afterwards), then yield its records."""
    fd, name = tempfile.mkstemp(prefix="ti-import-", suffix=".taxii")
    try:
        with removed_on_hard_exit(name), os.fdopen(fd, "w+", encoding="utf-8") as spooled:
            spool = Spool(spooled)
            await _pull(pull, spool, reading, network, sleep)
            spooled.seek(0)
            yield _records(pull, spool, FeedOptions())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


async def _pull(
    pull: TaxiiPull,
    spool: Spool,
    reading: Options,
    network: NetworkSettings,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    timeout = aiohttp.ClientTimeout(
        total=reading[DOWNLOAD_TIMEOUT],
        sock_connect=reading[DOWNLOAD_CONNECT_TIMEOUT],
        sock_read=reading[DOWNLOAD_READ_TIMEOUT],
    )
    retrier = Retrier(RetryPolicy(), TransportStats(), sleep=sleep)
    connector = aiohttp.TCPConnector(ssl=tls_context(network.ca_bundle))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        client = TaxiiClient(
            pull.source, session, retrier, network, reading[CREDENTIALS],
            page_size=reading[PAGE_SIZE], max_page_bytes=reading[MAX_DOWNLOAD_BYTES],
        )  # fmt: skip
        try:
            async for page in client.pages(pull.asked_after):
                _take(pull, spool, page)
        except RetryableError as exc:  # the retries are spent
            raise FeedError(str(exc)) from None
        finally:
            pull.requests = client.requests
    pull.objects = spool.objects
    how = "all" if pull.full else f"added after {pull.asked_after}"
    _log.info("pulled %s: %d objects (%s) in %d requests", pull.source, spool.objects, how, pull.requests)


def _take(pull: TaxiiPull, spool: Spool, page: Page) -> None:
    pull.cursor = _later(pull.cursor, page.added_last)
    for obj in page.objects:
        spool.add(obj)
        # Not TAXII's envelope, but some servers say it on the object: the fallback cursor.
        added = obj.get("date_added") if isinstance(obj, dict) else None
        if isinstance(added, str):
            pull.cursor = _later(pull.cursor, added)


def _records(pull: TaxiiPull, spool: Spool, options: FeedOptions) -> Iterator[Record]:
    """The pull's records; reaching their end marks the pull completed."""
    removals, versions = pull.removals, pull.versions
    yield from read_spool(spool.out, spool.newest, pull.source, options, removals, versions=versions)
    pull.versions.flush()
    pull.completed = True
