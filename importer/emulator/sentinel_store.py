"""One Sentinel workspace's STIX objects: STIX versioning, permanent revocation, and the counters
the inspection endpoint reads (kept current on every write, so reading them never walks the store)."""

from __future__ import annotations

import bisect
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["StixRecord", "WorkspaceObjects"]

_NAMES = uuid.UUID("5b0c3f9e-8a41-4d7e-9c1a-2f6d8e0b7a35")  # ARM names are opaque GUIDs: made from this


@dataclass(slots=True)
class StixRecord:
    """The current version of one STIX object, with what the service notes beside it."""

    object: dict[str, Any]  # as uploaded (unknown properties included)
    name: str  # its ARM resource name: a GUID the service gives it, not its STIX id
    source: str  # the request's ``sourcesystem``
    modified: datetime
    revoked: bool
    stored_at: str  # ISO 8601 UTC: ARM's ``lastUpdatedTimeUtc``

    @property
    def is_indicator(self) -> bool:
        return bool(self.object["type"] == "indicator")


class WorkspaceObjects:
    """Every STIX object of one workspace by id (case-insensitive), current version only.

    ``indicator_ids`` is kept sorted so ARM's ``queryIndicators`` pages by STIX id exactly, however
    objects arrive between pages. ``duplicate_patterns`` counts, for each (source system, pattern),
    the live (non-revoked) indicator objects beyond the first: a client that mints a new id for an
    indicator it already uploaded makes one.
    """

    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id.lower()
        self.objects: dict[str, StixRecord] = {}
        self.by_name: dict[str, str] = {}  # ARM name -> STIX id (lower case)
        self.indicator_ids: list[str] = []
        self.revoked = 0
        self.duplicate_patterns = 0
        self._live_patterns: dict[tuple[str, str], int] = {}

    def put(self, obj: dict[str, Any], source: str, modified: datetime, stored_at: str) -> bool:
        """Store a validated object unless what is held is as new or newer, or revoked; whether it was.

        Revocation is permanent (STIX 2.1, 3.6: no version may follow a revoked one): any later
        version of a revoked object is ignored, as an equal or earlier ``modified`` is.
        """
        key = obj["id"].lower()
        held = self.objects.get(key)
        if held is not None:
            if held.revoked or modified <= held.modified:
                return False
            self._count(held, -1)
            name = held.name
        else:
            name = str(uuid.uuid5(_NAMES, f"{self.workspace_id}/{key}"))  # stable across resets
            self.by_name[name] = key
            if obj["type"] == "indicator":
                bisect.insort(self.indicator_ids, key)
        record = StixRecord(obj, name, source, modified, obj.get("revoked") is True, stored_at)
        self.objects[key] = record
        self._count(record, +1)
        return True

    def _count(self, record: StixRecord, sign: int) -> None:
        if record.revoked:
            self.revoked += sign
            return
        if not record.is_indicator:
            return
        key = (record.source, record.object["pattern"])
        live = self._live_patterns.get(key, 0)
        if sign > 0:
            self._live_patterns[key] = live + 1
            if live:
                self.duplicate_patterns += 1
        elif live > 1:
            self._live_patterns[key] = live - 1
            self.duplicate_patterns -= 1
        else:
            del self._live_patterns[key]
