"""What a target package provides: the ``Target`` the pipeline drives, and the ``TargetPackage`` entry
the registry lists (name, defaults, per-feed rows, API rules, and how to open it).

The pipeline knows nothing of URLs or wire JSON: it resolves a feed's alert definition once,
lists what the definition already holds, and sends batches. A target classifies every indicator
of a batch into exactly one of imported / rejected / failed / unsent (the run stopped first), so
the report always adds up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from feeds.model import Indicator
from importer.model import (
    BatchResult,
    DefinitionSpec,
    Field,
    Headroom,
    InFlight,
    RemoteIndicator,
    ResolvedDefinition,
    Stamp,
)
from importer.transport.connection import ConnectionSettings
from importer.transport.stats import TransportStats

__all__ = ["CanMerge", "HasHeadroom", "Opener", "Target", "TargetPackage", "never"]


def never() -> bool:
    """``Target.send``'s ``stopping`` for a caller that never stops a batch half-way."""
    return False


@runtime_checkable
class HasHeadroom(Protocol):
    """A target with a per-tenant cap that a dry run can report (optional beside ``Target``)."""

    async def headroom(self) -> Headroom: ...


@runtime_checkable
class CanMerge(Protocol):
    """A target whose definitions are entities that can be duplicated by name (``ti``): ``merge``
    folds an extra one into the kept one (``ResolvedDefinition.extras``) and deletes it, returning
    how many indicators moved. Optional beside ``Target``; ``--reconcile`` calls it."""

    async def merge(self, definition: ResolvedDefinition, extra_id: str) -> int: ...


class Target(Protocol):
    """One target API, behind one authenticated session."""

    name: str
    max_batch: int  # the most indicators one send() may carry
    max_update_batch: int  # the most one update() may carry

    def unsupported(self, indicator: Indicator) -> str | None:
        """Why this target cannot hold ``indicator`` (e.g. a URL on ``ti``), or None."""
        ...

    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        """Find the definition by name, create it, or update changed metadata (never a second)."""
        ...

    def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        """Everything the definition holds now (paged by the target)."""
        ...

    async def send(
        self,
        definition: ResolvedDefinition,
        batch: Sequence[Indicator],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        """Create ``batch`` under the definition: retried, deduplicated after lost answers,
        bisected on validation errors; never raises for per-indicator problems.

        ``stopping()`` turns true once the run stops (SIGINT/SIGTERM): a target that posts a batch
        in several requests (single mode) asks it before each one and puts what it did not post
        in ``unsent``, so no request starts after a stop; a request already started finishes.
        The pipeline asks it before calling ``send`` at all."""
        ...

    def stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        """The stamp (metadata digest, expiry) of what ``send`` would carry for ``indicator`` now;
        equal to the stamp a listing gives once the target holds it (``RemoteIndicator.stamp``)."""
        ...

    async def update(
        self,
        definition: ResolvedDefinition,
        items: Sequence[tuple[Indicator, str]],
        *,
        stopping: Callable[[], bool] = never,
    ) -> BatchResult:
        """Make held indicators (with their remote ids) hold what ``send`` would create now; each
        lands in exactly one list of the result, as for ``send`` (``imported``: updated)."""
        ...

    async def delete(self, definition: ResolvedDefinition, remote_ids: Sequence[str]) -> list[str]:
        """Delete the given indicators; returns the ids actually deleted."""
        ...


class Opener(Protocol):
    """Opens a target on one authenticated session for the block's duration (closed on exit)."""

    def __call__(
        self,
        settings: ConnectionSettings,
        stats: TransportStats,
        *,
        in_flight: InFlight,
        bulk: bool,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> AbstractAsyncContextManager[Target]: ...


@dataclass(frozen=True, slots=True)
class TargetPackage:
    """A target package's entry in the registry (``importer.targets.registry``)."""

    name: str  # --target, [target] name, the journal's key
    summary: str  # one line for --help
    default_api_url: str
    default_audience: str  # the token's resource (v1) or scope base (v2)
    fields: tuple[Field[Any], ...]  # its own per-feed options, beside importer.fields.COMMON
    max_batch: int  # the most indicators one bulk request takes
    # One indicator per value in the whole tenant (mde), not per definition (ti): definitions
    # then share values, and the journal keeps which one owns each (``state.store``).
    unique_values: bool
    check_definition: Callable[[DefinitionSpec], None]  # the API's rules: ConfigError naming the key
    open: Opener
