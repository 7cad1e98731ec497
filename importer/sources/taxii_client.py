"""Our small TAXII 2.1 client: the pages of a collection's indicator objects, one GET at a time.

Discovery is not needed: the feed's source is the collection URL itself
(``https://host/api-root/collections/<id>/``), and ``objects/`` under it answers envelopes of
``objects``, ``more`` and ``next`` (TAXII 2.1, 5.4). Every page asks ``match[type]=indicator`` and
``limit``, and ``added_after`` the cursor when the pull is incremental; the server's
``X-TAXII-Date-Added-Last`` header is kept as the page's cursor.

It goes out as every request of a run does: TLS verified against the system's roots and the CA
bundle, the proxy of ``HTTPS_PROXY``/``NO_PROXY``, plain http only to this machine unless
allowed, a timeout on each request (the feed's ``download_*`` options), 429 and 5xx retried by
the run's bounded ``transport.retry`` policy. A redirect is refused, not followed: the
credentials go to the collection's own origin only. Every other failure is one ``FeedError``
sentence; no credential is ever part of one.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from feeds.model import FeedError
from importer.errors import RetryableError, ThrottledError
from importer.sources.secrets import FeedCredentials
from importer.transport.connection import NetworkSettings
from importer.transport.http import describe_connection_error, parse_retry_after
from importer.transport.proxies import Proxies
from importer.transport.retry import Retrier
from importer.transport.tls import tls_problem
from importer.transport.urls import shown

__all__ = ["MEDIA_TYPE", "Page", "TaxiiClient"]

_log = logging.getLogger(__name__)
MEDIA_TYPE = "application/taxii+json;version=2.1"
_ERROR_BODY_LIMIT = 2048  # a TAXII error resource is a title and a description


@dataclass(frozen=True, slots=True)
class Page:
    """One envelope: its objects, whether more follow and how to ask for them, its cursor."""

    objects: list[Any] = field(default_factory=list)
    more: bool = False
    next: str | None = None
    added_last: str | None = None  # X-TAXII-Date-Added-Last: when the page's newest object was added


class TaxiiClient:
    """Reads one collection's ``objects/`` endpoint page by page over ``session``."""

    def __init__(
        self,
        collection: str,
        session: aiohttp.ClientSession,
        retrier: Retrier,
        network: NetworkSettings,
        credentials: FeedCredentials,
        *,
        page_size: int = 1000,
        max_page_bytes: int = 256 << 20,
    ) -> None:
        self.collection = collection
        self.objects_url = URL(collection.rstrip("/") + "/objects/")
        self._session = session
        self._retrier = retrier
        self._proxies = Proxies(network)
        self._credentials = credentials
        self._page_size = page_size
        self._max_page_bytes = max_page_bytes
        self.requests = 0

    async def pages(self, added_after: str | None) -> AsyncIterator[Page]:
        """Every page of the collection's indicators (added after ``added_after`` when given)."""
        params = {"limit": str(self._page_size), "match[type]": "indicator"}
        if added_after is not None:
            params["added_after"] = added_after
        token: str | None = None
        while True:
            query = params if token is None else {**params, "next": token}
            page = await self._retrier.call(functools.partial(self._get, query))
            yield page
            if not page.more:
                return
            if not page.next:
                raise FeedError(f"the TAXII collection {self.collection} said 'more' but gave no 'next'")
            if not page.objects:  # a server handing out empty pages for ever would never end
                raise FeedError(f"the TAXII collection {self.collection} said 'more' on an empty page")
            token = page.next

    async def _get(self, query: Mapping[str, str]) -> Page:
        """One request: the page, ``RetryableError`` (429, 5xx, no answer) or ``FeedError``."""
        what = f"pulling the TAXII collection {self.collection}"
        self.requests += 1
        proxy, proxy_headers = self._proxies.for_url(self.objects_url)
        try:
            async with self._session.get(
                self.objects_url,
                params=query,
                headers={"Accept": MEDIA_TYPE, **self._credentials.request_headers()},
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers,
            ) as resp:
                if resp.status >= 300:
                    await _refuse(resp, what)
                body = await self._body(resp, what)
                added_last = resp.headers.get("X-TAXII-Date-Added-Last")
        except aiohttp.ClientSSLError as exc:
            raise FeedError(f"{what} failed: {tls_problem(exc)}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:  # a GET: safe to ask again
            raise RetryableError(f"{what} failed: {describe_connection_error(exc)}") from None
        return _envelope(body, added_last, what)

    async def _body(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        """The whole body, refused past ``max_page_bytes`` (a page that never ends)."""
        body = bytearray()
        async for chunk in resp.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > self._max_page_bytes:
                raise FeedError(f"{what} stopped: a page larger than {self._max_page_bytes} bytes")
        return bytes(body)


async def _refuse(resp: aiohttp.ClientResponse, what: str) -> None:
    """Raise what a non-2xx answer means: a retry for 429, 408 and 5xx, else one ``FeedError``."""
    status = resp.status
    if 300 <= status < 400:
        where = resp.headers.get("Location")
        target = "an unreadable location" if where is None else shown(resp.url.join(URL(where)))
        raise FeedError(
            f"{what} stopped: the server answered HTTP {status}, a redirect to {target}; give the "
            "collection's own URL (credentials are sent to it only, so redirects are not followed)"
        )
    text = (await resp.content.read(_ERROR_BODY_LIMIT)).decode("utf-8", "replace")
    said = _server_words(text) or resp.reason or "no explanation given"
    if status == 429:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        raise ThrottledError(f"{what}: throttled (HTTP 429)", retry_after=retry_after)
    if status == 408 or status >= 500:
        raise RetryableError(f"{what} failed: HTTP {status} {said}", status=status)
    if status in (401, 403):
        raise FeedError(
            f"{what} was refused (HTTP {status}: {said}); check the feed's username and password_env, "
            "or its headers"
        )
    raise FeedError(f"{what} failed: HTTP {status} {said}")


def _server_words(text: str) -> str:
    """A TAXII error resource's title and description, on one short line."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    words = " - ".join(parsed[key] for key in ("title", "description") if isinstance(parsed.get(key), str))
    return " ".join(words.split())[:300]


def _envelope(body: bytes, added_last: str | None, what: str) -> Page:
    """A TAXII envelope as a ``Page``; an empty body or ``{}`` is an empty last page."""
    if not body.strip():
        return Page(added_last=added_last)
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise FeedError(f"{what} failed: the answer is not JSON") from None
    if not isinstance(parsed, dict):
        raise FeedError(f"{what} failed: the answer is not a TAXII envelope")
    objects = parsed.get("objects", [])
    more, token = parsed.get("more", False), parsed.get("next")
    if not isinstance(objects, list) or not isinstance(more, bool):
        raise FeedError(f"{what} failed: the answer is not a TAXII envelope")
    return Page(objects, more, token if isinstance(token, str) else None, added_last)
