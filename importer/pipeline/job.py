"""A feed as the pipeline sees it: a name, the alert definition its indicators go under, and a way to
open its records. The rooms of ``importer.sources`` build them; the pipeline only opens and reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from feeds.model import Record
from importer.model import DefinitionSpec

__all__ = ["FeedJob", "Opener"]

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
