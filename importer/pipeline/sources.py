"""A feed to import as the pipeline sees it: a name, its alert definition, and a way to open its records.

``job_for`` turns a configured feed (source, definition, reading options) into a job (paths,
``-`` and ``.gz`` through ``feeds.read_feed``; http(s) URLs downloaded first); ``retry_jobs`` turns
the retryable lines of a rejects file into one job per alert definition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feeds import read_feed
from feeds.model import Record
from feeds.options import FeedOptions
from importer.fields import COLUMNS, FORMAT
from importer.model import DefinitionSpec, Field, Options
from importer.pipeline.download import download
from importer.pipeline.rejects import read_retry_groups, retry_indicators

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


def job_for(
    source: str, definition: DefinitionSpec, reading: Options | None = None, *, download_timeout: float = 60.0
) -> FeedJob:
    """The job of one configured feed (``reading``: its ``FORMAT`` and ``COLUMNS``)."""
    reading = reading or Options()
    options = FeedOptions(columns=reading[COLUMNS])
    fmt = reading[FORMAT]

    @asynccontextmanager
    async def open_records() -> AsyncIterator[Iterator[Record]]:
        if source.lower().startswith(("http://", "https://")):
            async with download(source, read_timeout=download_timeout) as path:
                yield read_feed(path, fmt, name=source, options=options)
        else:
            yield read_feed(source, fmt, name=source, options=options)

    return FeedJob(source=source, definition=definition, open=open_records)


def retry_jobs(path: Path, rows: Iterable[Field[Any]]) -> list[FeedJob]:
    """One job per alert definition with retryable lines in the rejects file ``path``."""
    jobs = []
    for group in read_retry_groups(path, rows):

        @asynccontextmanager
        async def open_records(name: str = group.definition.name) -> AsyncIterator[Iterator[Record]]:
            yield retry_indicators(path, name)

        jobs.append(FeedJob(source=str(path), definition=group.definition, open=open_records))
    return jobs
