"""A configured feed as a job: a path, ``-`` (stdin), a ``.gz`` file or an http(s) URL (downloaded first),
read by ``feeds.read_feed`` with the feed's reading options (``FORMAT``, ``COLUMNS``, the
``DOWNLOAD_*`` timeouts, ``MAX_DOWNLOAD_BYTES``); a download goes out as the run's API calls do
(``NetworkSettings``: the CA bundle, plain http or not) with the feed's credentials (``CREDENTIALS``,
headers and HTTP Basic). A TAXII collection is ``sources.taxii``'s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from feeds import read_feed
from feeds.model import Record
from feeds.options import FeedOptions
from importer.fields import (
    COLUMNS,
    DOWNLOAD_CONNECT_TIMEOUT,
    DOWNLOAD_READ_TIMEOUT,
    DOWNLOAD_TIMEOUT,
    FORMAT,
    MAX_DOWNLOAD_BYTES,
    MAX_LINE_BYTES,
)
from importer.model import DefinitionSpec, Options
from importer.pipeline.job import FeedJob
from importer.sources.download import download
from importer.sources.secrets import CREDENTIALS
from importer.transport.connection import NetworkSettings

__all__ = ["job_for"]


def job_for(
    source: str,
    definition: DefinitionSpec,
    reading: Options | None = None,
    network: NetworkSettings | None = None,
) -> FeedJob:
    """The job of one configured feed (``reading``: its reading rows, ``FORMAT`` and the rest;
    ``network``: the run's, for a download)."""
    reading = reading or Options()
    options = FeedOptions(columns=reading[COLUMNS], max_line_bytes=reading[MAX_LINE_BYTES])
    fmt = reading[FORMAT]

    @asynccontextmanager
    async def open_records() -> AsyncIterator[Iterator[Record]]:
        if source.lower().startswith(("http://", "https://")):
            async with download(
                source,
                connect_timeout=reading[DOWNLOAD_CONNECT_TIMEOUT],
                read_timeout=reading[DOWNLOAD_READ_TIMEOUT],
                total_timeout=reading[DOWNLOAD_TIMEOUT],
                max_bytes=reading[MAX_DOWNLOAD_BYTES],
                network=network,
                credentials=reading[CREDENTIALS],
            ) as path:
                yield read_feed(path, fmt, name=source, options=options)
        else:
            yield read_feed(source, fmt, name=source, options=options)

    return FeedJob(source=source, definition=definition, open=open_records)
