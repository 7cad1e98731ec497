"""What a target package provides: the ``Target`` the pipeline drives, and the ``TargetPackage`` entry
the registry lists (name, defaults, per-feed rows, API rules, and how to open it).

The pipeline knows nothing of URLs or wire JSON: it resolves a feed's alert definition once,
lists what the definition already holds, and sends batches. A target classifies every indicator
of a batch into exactly one of imported / rejected / failed / unsent (the run stopped first), so
the report always adds up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from feeds.model import Indicator, Kind
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

__all__ = [
    "CanMerge",
    "HasHeadroom",
    "HeldItem",
    "MayBeUnlisted",
    "Opener",
    "RevocationCounts",
    "RevokesForGood",
    "Target",
    "TargetOption",
    "TargetPackage",
    "never",
]

# An indicator the journal holds under a definition: its kind, value and remote id (what mirror
# mode hands ``Target.delete``; a target that takes an indicator back by re-sending it, such as
# ``sentinel``'s revocation, rebuilds it from the kind and value).
HeldItem = tuple[Kind, str, str]


# How many times the target revoked each (kind, value) for good; keys never revoked are absent.
# Synchronous (the journal's ``revocations``): a target calls it through ``asyncio.to_thread``.
RevocationCounts = Callable[[Sequence[tuple[Kind, str]]], Mapping[tuple[Kind, str], int]]


def never() -> bool:
    """``Target.send``'s ``stopping`` for a caller that never stops a batch half-way."""
    return False


@runtime_checkable
class RevokesForGood(Protocol):
    """A target whose ``delete`` revokes for good an id it derives from the value (``sentinel``: STIX
    revocation is permanent). Optional beside ``Target``: the run hands it the journal's counts, so
    a value that comes back is sent under a new id, and mirror mode counts each revocation it
    confirms (``Journal.note_revoked``). Without a journal the counts are unknown (all zero)."""

    def use_revocation_counts(self, counts: RevocationCounts) -> None: ...


@runtime_checkable
class MayBeUnlisted(Protocol):
    """A target that cannot always list what a definition holds (``sentinel`` without ARM's
    read-back configured). Optional beside ``Target``; only a target whose writes are idempotent
    (deterministic ids: re-sending what a lost answer or a killed run left unrecorded makes no
    second object) may be unlisted. When ``can_list()`` is false an empty listing says nothing:
    the journal stays the record — not emptied after an interrupted run, not "reconciled"."""

    def can_list(self) -> bool: ...


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

    async def delete(self, definition: ResolvedDefinition, items: Sequence[HeldItem]) -> list[str]:
        """Delete (or revoke) the given held indicators; returns the remote ids actually deleted."""
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
class TargetOption:
    """A target-level setting of one target (``sentinel``'s workspace id): not per feed, but per run.

    Settings read it generically — the flag (if any), else the environment variable (if any), else
    the config file's ``[target]`` key — and pass the values down in
    ``ConnectionSettings.target_options``; the target's opener reads them there. A flag or key of
    another target's option is refused in one sentence; its variable is ignored (the environment
    is shared by every target a user runs)."""

    key: str  # the [target] key, and the name in ConnectionSettings.target_options
    help: str
    flag: str | None = None  # e.g. "--workspace-id"; None: no flag
    env: str | None = None  # e.g. "TI_WORKSPACE_ID"; None: no variable
    default: str | None = None
    required: bool = False  # a ConfigError naming the flag, variable and key when missing
    # "url": checked like TI_API_URL (https unless loopback or --allow-http); the target then
    # names its origin as one of the API's, so the token may go there (see the target's opener).
    kind: Literal["text", "url"] = "text"
    # The value's own rule (beyond being non-empty text): a ValueError("must ...") if refused.
    check: Callable[[str], str] | None = None
    # It names where the indicators live (sentinel's workspace and source system): part of the
    # tenant the journal and the host's run lock are kept for (``ConnectionSettings.tenant_url``).
    scopes_tenant: bool = False


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
    options: tuple[TargetOption, ...] = ()  # its target-level settings (flags, variables, [target] keys)
