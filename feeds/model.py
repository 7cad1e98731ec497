"""The values a feed reader yields: one per record, a bad record being a value, not a crash.

``Indicator`` is something a target can store; ``Rejected`` is a record that cannot become one
(with the reason); ``Expired`` is a well-formed indicator the feed itself has retired (STIX
``revoked`` or ``valid_until`` in the past); ``Skipped`` is an input object that is not an
indicator at all (a STIX ``malware`` object, say) — counted, never imported.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class Detection(StrEnum):
    """How the target should match the value (the legacy TI API's ``DetectionFunction``)."""

    EQUALS = "Equals"
    STARTS_WITH = "StartWith"
    ENDS_WITH = "EndWith"
    CONTAINS = "Contains"


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


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot become an indicator: where it was, what it said, and why."""

    origin: str
    raw: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "raw": self.raw, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Expired:
    """An indicator the feed itself has retired (revoked, or ``valid_until`` has passed)."""

    origin: str
    raw: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "raw": self.raw, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Skipped:
    """An input object that is not an indicator (a STIX report, malware, relationship...)."""

    origin: str
    what: str


Record = Indicator | Rejected | Expired | Skipped


class FeedError(Exception):
    """A feed refused as a whole (unreadable, or not what it claims): one sentence for the user."""
