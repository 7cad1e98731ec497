"""The values a feed reader yields: one per record, a bad record being a value, not a crash.

``Indicator`` is something a target can store; ``Rejected`` is a record that cannot become one
(with the reason); ``Expired`` is a well-formed indicator the feed itself has retired (STIX
``revoked`` or ``valid_until`` in the past); ``Skipped`` is an input object that is not an
indicator at all (a STIX ``malware`` object, say) — counted, never imported. ``Indicator.fast``
is the parsers' constructor: ``Indicator(...)``'s arguments and result, at a quarter of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Detection",
    "Expired",
    "FeedError",
    "Indicator",
    "Kind",
    "Record",
    "Rejected",
    "Skipped",
    "StixMeta",
]


class Kind(StrEnum):
    """The internal kinds of indicator; each target maps them to its own vocabulary."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DOMAIN = "domain"
    URL = "url"
    # A TLS certificate's SHA-1 thumbprint: 40 hex digits like a file's SHA-1, but it names a
    # certificate, and targets store it under another type (mde CertificateThumbprint).
    CERT_SHA1 = "cert_sha1"


class Detection(StrEnum):
    """How the target should match the value (the legacy TI API's ``DetectionFunction``)."""

    EQUALS = "Equals"
    STARTS_WITH = "StartWith"
    ENDS_WITH = "EndWith"
    CONTAINS = "Contains"


@dataclass(frozen=True, slots=True)
class StixMeta:
    """A STIX indicator's own properties that no other format has, kept as the feed gave them for a
    target that stores STIX (``sentinel``); hashable, like the Indicator that holds it."""

    name: str | None = None
    indicator_types: tuple[str, ...] = ()
    kill_chain_phases: tuple[tuple[str, str], ...] = ()  # (kill_chain_name, phase_name)
    external_references: tuple[str, ...] = ()  # each a JSON object, as compact text with sorted keys
    object_marking_refs: tuple[str, ...] = ()  # marking-definition ids (TLP)

    @staticmethod
    def fast(
        name: str | None,
        indicator_types: tuple[str, ...],
        kill_chain_phases: tuple[tuple[str, str], ...],
        external_references: tuple[str, ...],
        object_marking_refs: tuple[str, ...],
    ) -> StixMeta:
        """``StixMeta(...)`` for the STIX reader, one per object: built as ``Indicator.fast`` builds."""
        draft: Any = _new(_StixMetaDraft)
        draft.name = name
        draft.indicator_types = indicator_types
        draft.kill_chain_phases = kill_chain_phases
        draft.external_references = external_references
        draft.object_marking_refs = object_marking_refs
        draft.__class__ = StixMeta
        return draft  # type: ignore[no-any-return]  # a StixMeta since the line above


@dataclass(frozen=True, slots=True)
class Indicator:
    """One importable indicator in canonical form, with what the feed says about it."""

    kind: Kind
    value: str
    origin: str
    description: str | None = None
    labels: tuple[str, ...] = ()
    confidence: int | None = None
    first_seen: datetime | None = None
    expires: datetime | None = None
    detection: Detection = Detection.EQUALS
    stix: StixMeta | None = None  # what a STIX feed says beyond the above (one per STIX object, shared)

    @staticmethod
    def fast(  # noqa: PLR0917 - Indicator(...)'s own signature; positional calls are the cheapest
        kind: Kind,
        value: str,
        origin: str,
        description: str | None = None,
        labels: tuple[str, ...] = (),
        confidence: int | None = None,
        first_seen: datetime | None = None,
        expires: datetime | None = None,
        detection: Detection = Detection.EQUALS,
        stix: StixMeta | None = None,
    ) -> Indicator:
        """``Indicator(...)`` with the same arguments and the same result, ~4x cheaper: for parsers.

        The frozen dataclass's ``__init__`` sets each slot through ``object.__setattr__``: ~0.7 us
        an indicator, where all the rest of a bare-digest list line costs ~1.2 us. Here the
        fields go into an unfrozen object with the same slots by plain attribute stores, and the
        object then becomes an Indicator by ``__class__`` assignment, which CPython allows
        between classes of identical layout: ~0.17 us. ``_check_fast`` proves the result equal
        at import.
        """
        draft: Any = _new(_IndicatorDraft)
        draft.kind = kind
        draft.value = value
        draft.origin = origin
        draft.description = description
        draft.labels = labels
        draft.confidence = confidence
        draft.first_seen = first_seen
        draft.expires = expires
        draft.detection = detection
        draft.stix = stix
        draft.__class__ = Indicator
        return draft  # type: ignore[no-any-return]  # an Indicator since the line above

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines shape of ``ti-import parse``: required keys, then the optional ones set."""
        out: dict[str, Any] = {"kind": str(self.kind), "value": self.value, "origin": self.origin}
        if self.detection is not Detection.EQUALS:
            out["detection"] = str(self.detection)
        if self.description:
            out["description"] = self.description
        if self.labels:
            out["labels"] = list(self.labels)
        if self.confidence is not None:
            out["confidence"] = self.confidence
        if self.first_seen is not None:
            out["first_seen"] = self.first_seen.isoformat()
        if self.expires is not None:
            out["expires"] = self.expires.isoformat()
        return out


class _IndicatorDraft:
    """An unfrozen object with exactly Indicator's slots, which ``Indicator.fast`` fills and retypes."""

    __slots__ = tuple(field.name for field in fields(Indicator))


class _StixMetaDraft:
    """The same for ``StixMeta.fast``."""

    __slots__ = tuple(field.name for field in fields(StixMeta))


_new = object.__new__


def _check_fast() -> None:
    """Fail at import, not in the middle of a feed, if ``Indicator.fast`` or ``StixMeta.fast`` no longer
    matches the model.

    A field added, renamed or reordered leaves a slot unset, an attribute unknown or a value in
    the wrong field: all of them make the comparison below fail or raise.
    """
    when = datetime(2024, 5, 7)
    every = (Kind.MD5, "0" * 32, "probe:1", "d", ("l",), 1, when, when, Detection.CONTAINS, StixMeta("n"))
    try:
        same = Indicator.fast(*every) == Indicator(*every)
        same = same and Indicator.fast(*every[:3]) == Indicator(*every[:3])
        parts = ("n", ("t",), (("k", "p"),), ("{}",), ("marking-definition--x",))
        same = same and StixMeta.fast(*parts) == StixMeta(*parts)
    except (AttributeError, TypeError):  # a slot unset or unknown; a layout the swap refuses
        same = False
    if not same:
        raise TypeError("Indicator.fast or StixMeta.fast does not build what the class builds: update it")


_check_fast()


@dataclass(frozen=True, slots=True)
class _NotImported:
    """A record that did not become an indicator: where it was, what it said, and why.

    Shared by ``Rejected`` and ``Expired``, which stay distinct types (neither is an instance of
    the other): the pipeline counts them apart.
    """

    origin: str
    raw: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "raw": self.raw, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Rejected(_NotImported):
    """A record that cannot become an indicator: where it was, what it said, and why."""


@dataclass(frozen=True, slots=True)
class Expired(_NotImported):
    """An indicator the feed itself has retired (revoked, or ``valid_until`` has passed)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input object that is not an indicator (a STIX report, malware, relationship...)."""

    origin: str
    what: str


Record = Indicator | Rejected | Expired | Skipped


class FeedError(Exception):
    """A feed refused as a whole (unreadable, or not what it claims): one sentence for the user."""
