"""What the run learns from a pull source once its feed was read: where it got to, and what it retired.

A pull source (a TAXII collection: ``sources.taxii``; a MISP feed: ``sources.misp_feed``) reads
incrementally: only what came after the cursor the journal keeps for the feed. Its pull object
fills these as its job is read; the run then deletes ``removals`` and keeps ``cursor``
(``Journal.set_cursor``) — only when ``completed`` and every batch of it was acknowledged, so a
pull that stopped halfway is read again from the old cursor.
"""

from __future__ import annotations

from typing import Protocol

from feeds.model import Kind
from importer.pipeline.job import FeedJob

__all__ = ["Pull"]


class Pull(Protocol):
    """One pulled feed of a run (``TaxiiPull``, ``MispFeedPull``)."""

    @property
    def job(self) -> FeedJob: ...

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def cursor(self) -> str | None:
        """The cursor the pull earned (None: keep the one the journal holds)."""

    @property
    def completed(self) -> bool:
        """Every record was read."""

    @property
    def removals(self) -> set[tuple[Kind, str]]:
        """The values the source retired, to delete from the target."""
