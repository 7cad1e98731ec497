"""The importer's values: a feed's alert definition, what a target holds and answers, a tenant's room.

Plain frozen data that every room of ``importer`` shares (the pipeline, the journal, the report,
each target); it imports nothing of the importer but its feeds' model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, NamedTuple, TypeVar, cast

from feeds.model import Indicator, Kind

__all__ = [
    "BatchResult",
    "DefinitionSpec",
    "Field",
    "Headroom",
    "Held",
    "InFlight",
    "Options",
    "RemoteIndicator",
    "ResolvedDefinition",
    "Stamp",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class Field(Generic[T]):
    """One per-feed option: its TOML key and flag, how a given value is checked, and its default.

    The rows themselves live in ``importer.fields`` (options of every target) and in each target
    package's ``fields`` module (its own); settings, the command line and the rejects file read
    them from there, so an option is declared once. ``check`` judges shape only (a string, a
    positive number, one of our own enums): what an API accepts is its target's rule.
    """

    key: str  # the [[feed]] key, the rejects file's key, and the flag (--key-with-dashes)
    help: str
    check: Callable[[Any], T]  # a given value -> the checked value; ValueError("must be ...") if not
    default: T
    derive: Callable[[str, str], T] | None = None  # (source, name) -> default, when it depends on the feed
    part: Literal["definition", "reading"] = "definition"  # sent with the definition, or how to read
    target: str | None = None  # the one target it belongs to; None: every target
    cli: bool = True  # False: config file only
    flag_type: Callable[[str], Any] = str  # a flag's text -> the value ``check`` takes (argparse type=)
    repeat: bool = False  # the flag may be given several times (a list)
    metavar: str | None = None
    flag_name: str | None = None  # when not --key-with-dashes (a repeated flag names one item)

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.key.replace("_", "-")

    def default_for(self, source: str, name: str) -> T:
        return self.default if self.derive is None else self.derive(source, name)


class Options:
    """Checked per-feed option values by key; ``options[FIELD]`` reads one with its type."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})

    def __getitem__(self, field: Field[T]) -> T:
        """The value; a row that was not set (an option of another target) reads as its default."""
        return cast(T, self._values.get(field.key, field.default))

    def updated(self, values: Mapping[str, Any]) -> Options:
        """These options with ``values`` set over them."""
        return Options({**self._values, **values})

    def by_key(self) -> dict[str, Any]:
        """Every value under its key (a copy), e.g. for JSON."""
        return dict(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and other._values == self._values

    def __hash__(self) -> int:
        return hash(frozenset(self._values.items()))

    def __repr__(self) -> str:
        return f"Options({self._values!r})"


@dataclass(frozen=True, slots=True)
class DefinitionSpec:
    """A feed's alert definition as configured (``ti``: an AlertDefinitions entity found by
    ``name``; ``mde``: the metadata stamped on each of the feed's indicators).

    ``spec[TITLE]`` reads a per-feed option (``importer.fields`` and the target's own rows)."""

    name: str
    options: Options = field(default_factory=Options)
    expires_at: datetime | None = None  # a default expiry for indicators that carry none

    def __getitem__(self, option: Field[T]) -> T:
        return self.options[option]


@dataclass(frozen=True, slots=True)
class ResolvedDefinition:
    """The definition as it stands in the target after resolving (``id`` is the target's key)."""

    id: str
    spec: DefinitionSpec
    # "planned": a dry run would create it (it holds nothing); "would_update": a dry run would
    # change the settings of one that exists (it holds what it holds, as "found").
    outcome: Literal["found", "created", "updated", "planned", "would_update"]
    # Other definitions of the same name (a race between hosts, or the past): ``--reconcile``
    # merges them into this one (``Target.merge``); the oldest is the one kept.
    extras: tuple[str, ...] = ()


class Stamp(NamedTuple):
    """What a target holds for one indicator beyond its identity, compactly: a digest of its
    metadata (``mde``: title, severity, action...; ``ti``: detection function, enabled) and its
    expiry. Computed alike from what is sent and from what a listing returns, so comparing the
    two tells whether the indicator must be sent again (``importer.pipeline.freshness``).

    A named tuple, as ``Held``: a rerun builds one per held indicator, and a tuple is built and
    compared several times faster than a frozen dataclass."""

    meta: int  # signed 64-bit digest (fits a SQLite INTEGER) of the metadata, expiry left out
    expires: int | None  # unix seconds; None: never expires

    def with_expires(self, expires: int | None) -> Stamp:
        return Stamp(self.meta, expires)


class Held(NamedTuple):
    """What a present store knows of an indicator the target holds (``PresentStore.present``)."""

    remote_id: str
    stamp: Stamp | None  # what was sent (or listed); None: recorded before stamps existed
    since: int = 0  # unix seconds the journal first recorded it (0: unknown)
    # Another definition of the tenant holds the value (mde: values are unique per tenant and the
    # last import sets the title): this feed lists it but must not send it, or the two would
    # retitle it back and forth every night.
    elsewhere: bool = False


@dataclass(frozen=True, slots=True)
class RemoteIndicator:
    """An indicator already stored under a definition (``stamp``: None when the listing cannot tell)."""

    kind: Kind
    value: str
    remote_id: str
    stamp: Stamp | None = None


@dataclass(slots=True)
class BatchResult:
    """Every indicator of a sent batch, in exactly one list."""

    imported: list[tuple[Indicator, str]] = field(default_factory=list)  # with its remote id
    rejected: list[tuple[Indicator, str]] = field(default_factory=list)  # the server's reason
    failed: list[tuple[Indicator, str]] = field(default_factory=list)  # gave up: the last error
    # Never posted: the run stopped before a request carried them (``Target.send``'s ``stopping``).
    unsent: list[Indicator] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Headroom:
    """How many indicators a capped tenant holds against its cap (mde: 15,000)."""

    held: int
    cap: int

    @property
    def free(self) -> int:
        return max(0, self.cap - self.held)


@dataclass(frozen=True, slots=True)
class InFlight:
    """``--workers``: the most requests in flight to a target at once — its one meaning.

    What is sized by it derives here and nowhere else: the worker tasks (one request each), the
    batches read ahead of them, and the connection pool.
    """

    requests: int = 16

    @property
    def read_ahead(self) -> int:
        """Batches queued beyond those in flight: one per worker, so no worker waits for the reader
        while memory stays bounded by ``2 x requests x batch size`` indicators."""
        return self.requests

    @property
    def connections(self) -> int:
        """The pool: a few beyond the requests, so lost-answer lookups and the token call never
        queue behind a full pool."""
        return self.requests + 4
