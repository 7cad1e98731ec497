"""What the pipeline needs from a target (``ti`` or ``mde``), and what a target answers.

The pipeline knows nothing of URLs or wire JSON: it resolves a feed's alert definition once,
lists what the definition already holds, and sends batches. A target classifies every indicator
of a batch into exactly one of imported / rejected / failed, so the report always adds up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from feeds.model import Detection, Indicator, Kind

__all__ = [
    "BatchResult",
    "DefinitionSpec",
    "HasHeadroom",
    "Headroom",
    "RemoteIndicator",
    "ResolvedDefinition",
    "Target",
]


@dataclass(frozen=True, slots=True)
class DefinitionSpec:
    """A feed's alert definition as configured (``ti``: an AlertDefinitions entity found by
    ``name``; ``mde``: the metadata stamped on each of the feed's indicators)."""

    name: str
    title: str
    description: str
    severity: str = "Medium"
    category: str = "SuspiciousNetworkTraffic"
    recommended_action: str | None = None
    enabled: bool = True
    detection: Detection | None = None  # None: each indicator's own (Equals unless STIX LIKE)
    expires_at: datetime | None = None  # a default ExpiresAt for indicators that carry none
    # mde only
    action: str = "Audit"
    generate_alert: bool = True
    rbac_group_names: tuple[str, ...] = ()
    application: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedDefinition:
    """The definition as it stands in the target after resolving (``id`` is the target's key)."""

    id: str
    spec: DefinitionSpec
    outcome: Literal["found", "created", "updated", "planned"]


@dataclass(frozen=True, slots=True)
class RemoteIndicator:
    """An indicator already stored under a definition."""

    kind: Kind
    value: str
    remote_id: str


@dataclass(slots=True)
class BatchResult:
    """Every indicator of a sent batch, in exactly one list."""

    imported: list[tuple[Indicator, str]] = field(default_factory=list)  # with its remote id
    rejected: list[tuple[Indicator, str]] = field(default_factory=list)  # the server's reason
    failed: list[tuple[Indicator, str]] = field(default_factory=list)  # gave up: the last error


@dataclass(frozen=True, slots=True)
class Headroom:
    """How many indicators a capped tenant holds against its cap (mde: 15,000)."""

    held: int
    cap: int

    @property
    def free(self) -> int:
        return max(0, self.cap - self.held)


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
