"""The importer's values: a feed's alert definition, what a target holds and answers, a tenant's room.

Plain frozen data that every room of ``importer`` shares (the pipeline, the journal, the report,
each target); it imports nothing of the importer but its feeds' model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from feeds.model import Detection, Indicator, Kind

__all__ = [
    "BatchResult",
    "DefinitionSpec",
    "Headroom",
    "RemoteIndicator",
    "ResolvedDefinition",
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
