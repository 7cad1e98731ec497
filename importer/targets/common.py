"""Wire helpers the target packages share: UTC timestamps, an indicator's identity on the wire, and
the stamp (metadata digest and expiry) that tells whether a held indicator must be sent again."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from feeds.canonical import InvalidValue, normalise_ip
from feeds.model import Kind
from importer.errors import ConfigError, PermanentError
from importer.model import RemoteIndicator, Stamp

__all__ = ["epoch_of", "iso_utc", "meta_digest", "missing_collection", "remote_of", "stamp_of", "value_key"]

_FRACTION = re.compile(r"(\.\d{6})\d+")  # services write up to 7 fractional digits; Python reads 6


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
    wire_type: Any, value: Any, remote_id: Any, kinds: Mapping[str, Kind], stamp: Stamp | None = None
) -> RemoteIndicator | None:
    """A stored entity's type, value, id (and stamp) as a RemoteIndicator; None for a type we never
    write.

    Both APIs have one ``IpAddress`` type for both families: the value tells which. An address is
    given back in the feeds' canonical form (``feeds.canonical``), whatever form the service lists
    (``mde`` lists IPv6 with all 8 segments): the journal and the feeds know an indicator by that
    form, so "present" and mirror mode match it.
    """
    if not isinstance(value, str) or remote_id is None or not isinstance(wire_type, str):
        return None
    if wire_type == "IpAddress":
        with suppress(InvalidValue):  # not ours to judge: kept as listed, it simply matches nothing
            value = normalise_ip(value)[1]
        return RemoteIndicator(Kind.IPV6 if ":" in value else Kind.IPV4, value, str(remote_id), stamp)
    kind = kinds.get(wire_type)
    return None if kind is None else RemoteIndicator(kind, value, str(remote_id), stamp)


def meta_digest(values: Iterable[Any]) -> int:
    """A signed 64-bit digest of metadata values in a fixed order, normalised so that what we send
    and what the service lists back agree: text trimmed and case-folded (the services answer
    ``Medium`` for ``medium``), lists as sorted sets, an absent value, ``None`` and ``""`` alike."""
    parts = "\x1e".join(_normalised(value) for value in values)
    digest = hashlib.blake2b(parts.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _normalised(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple | set | frozenset):
        return "\x1f".join(sorted({_normalised(item) for item in value} - {""}))
    return str(value).strip().casefold()


def epoch_of(moment: datetime | str | None) -> int | None:
    """Unix seconds of a datetime (naive: UTC) or an ISO 8601 text; None for none or for text that
    is not a time (a listing the importer cannot read must not look like an expiry)."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(_FRACTION.sub(r"\1", moment.strip()).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def stamp_of(meta: Iterable[Any], expires: datetime | str | None) -> Stamp:
    """The stamp of an indicator's metadata values (in the target's fixed order) and its expiry."""
    return Stamp(meta_digest(meta), epoch_of(expires))


def missing_collection(error: PermanentError, api_url: str, collection: str) -> ConfigError | None:
    """A 404 on a collection every tenant has means the API URL is wrong, not that a request failed:
    a configuration error (exit 2) that says where to look. None for any other refusal."""
    if error.status != 404:
        return None
    return ConfigError(
        f"the API at {api_url} has no {collection} collection (HTTP 404): check TI_API_URL "
        "(or api_url in the config file's [target] table)"
    )
