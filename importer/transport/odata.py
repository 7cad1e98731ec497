"""OData v4 as both Defender APIs speak it for what we use: quoted string literals and paging.

``$filter`` takes single-quoted literals; collections page with ``$top``/``$skip`` and, when the
server pages by itself, an ``@odata.nextLink``. Every target client pages through this one
function instead of carrying a copy. A link to another origin than the API's is refused: the
request would not carry the token (the auth middleware sees to that), but the pages it brought
back would be another party's word on what the tenant holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from yarl import URL

from importer.errors import ConfigError
from importer.transport.urls import origin_of, shown

__all__ = ["GetPage", "odata_pages", "odata_string"]

# One page request: (absolute URL, query parameters or None when the URL already carries them).
GetPage = Callable[[str, Mapping[str, str] | None], Awaitable[Any]]


def odata_string(value: str) -> str:
    """An OData string literal: single-quoted, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


async def odata_pages(
    get: GetPage, base: str, path: str, params: Mapping[str, str], page_size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every non-empty page of a collection: follow ``@odata.nextLink``, else ``$skip`` on a full page.

    Paging links are undocumented on both services: we ask with ``$top``/``$skip`` ourselves and
    follow a link whenever one comes (resolved against ``base``), if it stays on ``base``'s origin;
    one that leaves it is a ``ConfigError`` naming both origins.
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
            url, query = _same_origin(base, next_link), None
        elif window >= page_size:
            # Our $top was filled (in one page or through links ending with it): ask for more.
            skip += window
            url, query, window = base + path, {**params, "$top": str(page_size), "$skip": str(skip)}, 0
        else:
            url = None


def _same_origin(base: str, link: str) -> str:
    """``link`` resolved against ``base``, if it stays on ``base``'s origin (see the module)."""
    try:
        target = URL(base).join(URL(link))
        leaves = origin_of(target) != origin_of(base)
    except ValueError:
        raise ConfigError(f"the API at {shown(base)} answered with a paging link that is not a URL") from None
    if leaves:
        raise ConfigError(
            f"the API at {origin_of(base)} answered with a paging link to another origin, "
            f"{origin_of(target)} ({shown(target)}), which is not followed: the token and the listing "
            "come from the API's own origin only; check TI_API_URL"
        )
    return str(target)
