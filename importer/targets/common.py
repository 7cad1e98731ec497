"""Wire helpers the target packages share: UTC timestamps and an indicator's identity on the wire."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from feeds.model import Kind
from importer.model import RemoteIndicator

__all__ = ["iso_utc", "remote_of", "value_key"]



def iso_utc(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z``; a naive time is taken as UTC (feeds give naive times in UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def value_key(wire_type: str, value: str) -> tuple[str, str]:
    """An indicator's identity on both services: its wire type and its value, case-folded
    (the services compare hashes, domains and IPv6 addresses case-insensitively)."""
    return wire_type, value.lower()


def remote_of(
    wire_type: Any, value: Any, remote_id: Any, kinds: Mapping[str, Kind]
) -> RemoteIndicator | None:
    """A stored entity's type, value and id as a RemoteIndicator; None for a type we never write.

    Both APIs have one ``IpAddress`` type for both families: the value tells which.
    """
    if not isinstance(value, str) or remote_id is None or not isinstance(wire_type, str):
        return None
    if wire_type == "IpAddress":
        return RemoteIndicator(Kind.IPV6 if ":" in value else Kind.IPV4, value, str(remote_id))
    kind = kinds.get(wire_type)
    return None if kind is None else RemoteIndicator(kind, value, str(remote_id))
