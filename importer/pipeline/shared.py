"""What the producers and workers of one pipeline run share: its options, each feed's state, the queue,
and the one way a record is counted rejected or failed (report and rejects file together).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from feeds.model import Indicator, Rejected
from importer.errors import AuthError, ConfigError
from importer.model import BatchResult, InFlight, ResolvedDefinition
from importer.pipeline.freshness import Freshness
from importer.pipeline.job import FeedJob
from importer.pipeline.present import PresentStore, SeenSet
from importer.pipeline.progress import Progress
from importer.pipeline.rejects import RejectsWriter
from importer.report.counts import FeedReport
from importer.targets.base import Target

__all__ = ["Feed", "PipelineOptions", "Shared"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """How the pipeline runs (the target's mode is chosen when it is opened; ``mode`` is for the report)."""

    batch_size: int = 500
    in_flight: InFlight = field(default_factory=InFlight)
    dry_run: bool = False
    mode: str = "bulk"
    chunk: int = 2000  # records read per hop to the reading thread
    grace: float = 30.0  # seconds in-flight requests may take to finish after a stop request
    policy_cache: Path | None = None  # the warning lists' compiled cache's folder (StateOptions.cache)


@dataclass(slots=True)
class Feed:
    """One feed's state during the run."""

    job: FeedJob
    report: FeedReport
    seen: SeenSet = field(default_factory=SeenSet)
    definition: ResolvedDefinition | None = None
    cannot_send: str | None = None  # why none of its indicators can be sent (definition failed)
    pending: list[Indicator] = field(default_factory=list)  # read, not yet a full batch
    pending_updates: list[tuple[Indicator, str]] = field(default_factory=list)  # held, to send again
    freshness: Freshness = field(default_factory=Freshness)  # when a held one is sent again


class Shared:
    """The run's state that producers and workers both touch."""

    def __init__(
        self,
        target: Target,
        options: PipelineOptions,
        *,
        present: PresentStore,
        progress: Progress,
        rejects: RejectsWriter,
        stop: asyncio.Event,
    ) -> None:
        self.target = target
        self.options = options
        self.present = present
        self.progress = progress
        self.rejects = rejects
        self.stop = stop
        # The one cap on a batch: the target's largest request (in single mode, its bookkeeping unit).
        self.batch_size = max(1, min(options.batch_size, target.max_batch))
        self.update_batch_size = max(1, min(options.batch_size, target.max_update_batch))
        # (feed, batch, remote ids): remote ids set for an update batch (``Target.update``).
        self.queue: asyncio.Queue[tuple[Feed, list[Indicator], list[str] | None] | None] = asyncio.Queue(
            maxsize=options.in_flight.read_ahead
        )
        self.auth_error: AuthError | None = None
        # What ended the run other than authentication: a journal or rejects file that cannot be
        # written (a ConfigError: exit 2), or a bug in a worker. The run stops as on a signal.
        self.error: Exception | None = None
        self.abandoned = False  # the grace period after a stop ran out
        self.unsettled = 0  # batches cancelled in flight: stored or not, nobody knows
        self.inflight: set[asyncio.Future[BatchResult]] = set()

    def fatal(self, exc: AuthError) -> None:
        """Authentication failed: stop reading everywhere (exit 3)."""
        if self.auth_error is None:
            _log.info("authentication failed, stopping the run: %s", exc)
            self.auth_error = exc
        self.stop.set()

    def halt(self, exc: Exception) -> None:
        """Something the whole run needs failed (the journal, the rejects file, a worker's bug):
        stop reading and sending everywhere; the first such error is the run's (``error``)."""
        if self.error is None:
            if isinstance(exc, ConfigError):
                _log.info("stopping the run: %s", exc)
            else:  # a bug: its traceback is the one clue
                _log.error("stopping the run after an internal error", exc_info=exc)
            self.error = exc
        self.stop.set()

    def fail(self, feed: Feed, indicators: Sequence[Indicator], reason: str) -> None:
        """Count ``indicators`` failed (retryable: their rejects lines carry the definition)."""
        feed.report.failed += len(indicators)
        feed.report.note_reason(reason, len(indicators))
        try:
            for indicator in indicators:
                self.rejects.indicator(
                    feed.report.name, indicator, reason, failed=True, definition=feed.job.definition
                )
        except ConfigError as exc:  # the rejects file cannot be written: counted all the same
            self.halt(exc)

    def reject(self, feed: Feed, indicator: Indicator, reason: str) -> None:
        """Count ``indicator`` rejected (the target or its rules refused it: not retryable)."""
        feed.report.rejected += 1
        feed.report.note_reason(reason)
        try:
            self.rejects.indicator(
                feed.report.name, indicator, reason, failed=False, definition=feed.job.definition
            )
        except ConfigError as exc:
            self.halt(exc)

    def parse_reject(self, feed: Feed, record: Rejected) -> None:
        """Count a record the reader refused (not retryable)."""
        feed.report.rejected += 1
        feed.report.note_reason(record.reason)
        try:
            self.rejects.parse_reject(feed.report.name, record)
        except ConfigError as exc:
            self.halt(exc)
