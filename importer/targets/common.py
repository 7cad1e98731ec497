"""Wire helpers both target clients share: OData literals and paging, UTC timestamps, value identity.

Both Defender APIs speak OData v4 the same way for what we use (``$filter`` with quoted string
literals, ``$top``/``$skip`` paging, and an ``@odata.nextLink`` when the server pages by itself),
so the TI and MDE clients page through this one function instead of each carrying a copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from yarl import URL

from feeds.model import Kind
from importer.targets.base import RemoteIndicator

__all__ = ["iso_utc", "odata_pages", "odata_string", "remote_of", "value_key"]

# One page request: (absolute URL, query parameters or None when the URL already carries them).
GetPage = Callable[[str, Mapping[str, str] | None], Awaitable[Any]]


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def iso_utc(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z``; a naive time is taken as UTC (feeds give naive times in UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def value_key(wire_type: str, value: str) -> tuple[str, str]:
    """An indicator's identity on both services: its wire type and its value, case-folded
    (the services compare hashes, domains and IPv6 addresses case-insensitively)."""
    return wire_type, value.lower()


async def odata_pages(
    get: GetPage, base: str, path: str, params: Mapping[str, str], page_size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every non-empty page of a collection: follow ``@odata.nextLink``, else ``$skip`` on a full page.

    Paging links are undocumented on both services: we ask with ``$top``/``$skip`` ourselves and
    follow a link whenever one comes (resolved against ``base``).
    """
    skip = 0
    window = 0  # items read since our last $top/$skip request (a server may split it by links)
    url: str | None = base + path
    query: dict[str, str] | None = {**params, "$top": str(page_size)}
    while url is not None:
        answer = await get(url, query)
        items = answer.get("value", []) if isinstance(answer, dict) else []
        window += len(items)
        if items:
            yield items
        next_link = answer.get("@odata.nextLink") if isinstance(answer, dict) else None
        if isinstance(next_link, str) and next_link:
            url, query = str(URL(base).join(URL(next_link))), None
        elif window >= page_size:
            # Our $top was filled (in one page or through links ending with it): ask for more.
            skip += window
            url, query, window = base + path, {**params, "$top": str(page_size), "$skip": str(skip)}, 0
        else:
            url = None


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
