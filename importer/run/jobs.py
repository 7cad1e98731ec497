"""What a run reads: a job per feed of the settings (a file, a download, a reading shared with other
destinations, or a pull from the journal's cursor), then the retryable lines of ``--retry-from``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.errors import ConfigError
from importer.fields import COMMON, FORMAT, FULL, MIRROR, TAXII
from importer.model import Field
from importer.pipeline.job import FeedJob
from importer.settings import FeedSettings, RunSettings
from importer.sources.feed import job_for
from importer.sources.misp_feed import is_misp_feed, misp_feed_pull
from importer.sources.pull import Pull
from importer.sources.retry import not_sent, retry_census, retry_jobs
from importer.sources.taxii import taxii_pull
from importer.state.journal import Journal
from importer.targets.registry import package

__all__ = ["RunJobs", "check_pulled_mirrors", "run_jobs"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class RunJobs:
    """The jobs of a run, the pulls among them, and the retryable lines it leaves to others."""

    jobs: list[FeedJob] = field(default_factory=list)
    pulls: list[Pull] = field(default_factory=list)  # their cursors are kept once acknowledged
    retry_not_sent: dict[str, int] = field(default_factory=dict)  # lines naming another destination


def check_pulled_mirrors(settings: RunSettings) -> None:
    """Mirror mode needs a whole reading: a ConfigError for a feed pulled incrementally."""
    for feed in settings.feeds:
        pulled = feed[FORMAT] == TAXII or is_misp_feed(feed.source, feed[FORMAT])
        if feed[MIRROR] and pulled and not feed[FULL]:
            whole = "TAXII collection" if feed[FORMAT] == TAXII else "MISP feed (every event)"
            raise ConfigError(
                f"feed {feed.definition.name!r}: mirror mode needs the whole {whole}, not only "
                "what was added since the last run: set full = true (--full) for it"
            )


def run_jobs(
    settings: RunSettings,
    journal: Journal | None,
    *,
    shared: Mapping[str, FeedJob],
    retries: Sequence[FeedJob] | None,
    sleep: Callable[[float], Awaitable[None]],
) -> RunJobs:
    """The feeds of the settings, then the retryable lines of ``--retry-from`` (other feeds only).

    ``shared``: feeds read once for several destinations (``importer.destinations``); ``retries``:
    this destination's lines as their run chose them (None: read the file here)."""
    network = settings.connection.network  # downloads trust and refuse what API calls do
    found = RunJobs()
    for feed in settings.feeds:
        pull = _pull(settings, feed, journal, sleep)
        if pull is None:
            reading = shared.get(feed.definition.name)
            found.jobs.append(reading or job_for(feed.source, feed.definition, feed.options, network))
            continue
        found.pulls.append(pull)
        found.jobs.append(pull.job)
    if settings.retry_from is not None:
        names = {job.name for job in found.jobs}
        if retries is None:
            retries = _retry_lines(settings, settings.retry_from, found)
        if not retries:
            # Said where it is seen: a warning when retrying was all the run was asked to do.
            level = logging.INFO if found.jobs else logging.WARNING
            _log.log(level, "nothing to retry in %s: no line is retryable", settings.retry_from)
        for job in retries:
            if job.name in names:  # the feed itself is imported: its failures are retried anyway
                _log.info("retry of %s skipped: the feed is imported in this run", job.name)
            else:
                found.jobs.append(job)
    return found


def _retry_lines(settings: RunSettings, path: Path, found: RunJobs) -> list[FeedJob]:
    """The jobs of this destination's retryable lines in ``path`` (naming it, or none); those
    naming another destination are not this run's to send: counted, said, left in the file."""
    destination = settings.destination
    found.retry_not_sent = not_sent(path, retry_census(path), {destination})
    rows: tuple[Field[Any], ...] = COMMON + package(settings.target).fields
    return retry_jobs(path, rows, destination=destination)


def _pull(
    settings: RunSettings,
    feed: FeedSettings,
    journal: Journal | None,
    sleep: Callable[[float], Awaitable[None]],
) -> Pull | None:
    """The pull of a TAXII or MISP feed, from the cursor the journal keeps for it; None: a file."""
    misp = is_misp_feed(feed.source, feed[FORMAT])
    if feed[FORMAT] != TAXII and not misp:
        return None
    network, source = settings.connection.network, feed.source
    cursor = None if journal is None else journal.cursor(feed.definition.name, source)
    if misp:
        return misp_feed_pull(source, feed.definition, feed.options, network, cursor=cursor)
    return taxii_pull(source, feed.definition, feed.options, network, cursor=cursor, sleep=sleep)
