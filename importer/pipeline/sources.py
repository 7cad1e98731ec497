"""A feed to import as the pipeline sees it: a name, its alert definition, and a way to open its records.

``job_for`` turns configured ``FeedSettings`` into a job (paths, ``-`` and ``.gz`` through
``feeds.read_feed``; http(s) URLs downloaded first); ``retry_jobs`` turns the retryable lines
of a rejects file into one job per alert definition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from feeds import read_feed
from feeds.model import Record
from feeds.options import FeedOptions
from importer.model import DefinitionSpec
from importer.pipeline.download import download
from importer.pipeline.rejects import read_retry_groups, retry_indicators
from importer.settings import FeedSettings

__all__ = ["FeedJob", "job_for", "retry_jobs"]

Opener = Callable[[], AbstractAsyncContextManager[Iterator[Record]]]


@dataclass(frozen=True, slots=True)
class FeedJob:
    """One feed of a run. ``open()`` yields a (synchronous, lazily read) iterator of its records."""

    source: str
    definition: DefinitionSpec
    open: Opener

    @property
    def name(self) -> str:
        return self.definition.name


def job_for(feed: FeedSettings, *, download_timeout: float = 60.0) -> FeedJob:
    """The job of one configured feed."""
    options = FeedOptions(columns=feed.columns)

    @asynccontextmanager
    async def open_records() -> AsyncIterator[Iterator[Record]]:
        if feed.source.lower().startswith(("http://", "https://")):
            async with download(feed.source, read_timeout=download_timeout) as path:
                yield read_feed(path, feed.format, name=feed.source, options=options)
        else:
            yield read_feed(feed.source, feed.format, name=feed.source, options=options)

    return FeedJob(source=feed.source, definition=feed.definition, open=open_records)


def retry_jobs(path: Path) -> list[FeedJob]:
    """One job per alert definition with retryable lines in the rejects file ``path``."""
    jobs = []
    for group in read_retry_groups(path):

        @asynccontextmanager
        async def open_records(name: str = group.definition.name) -> AsyncIterator[Iterator[Record]]:
            yield retry_indicators(path, name)

        jobs.append(FeedJob(source=str(path), definition=group.definition, open=open_records))
    return jobs
