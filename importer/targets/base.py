"""What the pipeline needs from a target: the ``Target`` protocol every target package implements.

The pipeline knows nothing of URLs or wire JSON: it resolves a feed's alert definition once,
lists what the definition already holds, and sends batches. A target classifies every indicator
of a batch into exactly one of imported / rejected / failed, so the report always adds up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from feeds.model import Indicator
from importer.model import BatchResult, DefinitionSpec, Headroom, RemoteIndicator, ResolvedDefinition

__all__ = ["HasHeadroom", "Target"]


@runtime_checkable
class HasHeadroom(Protocol):
    """A target with a per-tenant cap that a dry run can report (optional beside ``Target``)."""

    async def headroom(self) -> Headroom: ...


class Target(Protocol):
    """One target API, behind one authenticated session."""

    name: str
    max_batch: int  # the most indicators one send() may carry

    def unsupported(self, indicator: Indicator) -> str | None:
        """Why this target cannot hold ``indicator`` (e.g. a URL on ``ti``), or None."""
        ...

    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        """Find the definition by name, create it, or update changed metadata (never a second)."""
        ...

    def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        """Everything the definition holds now (paged by the target)."""
        ...

    async def send(self, definition: ResolvedDefinition, batch: Sequence[Indicator]) -> BatchResult:
        """Create ``batch`` under the definition: retried, deduplicated after lost answers,
        bisected on validation errors; never raises for per-indicator problems."""
        ...

    async def delete(self, definition: ResolvedDefinition, remote_ids: Sequence[str]) -> list[str]:
        """Delete the given indicators; returns the ids actually deleted."""
        ...
