"""The Defender for Endpoint Indicators API on the wire: the only module with its URLs and JSON (API.md §3).

Calls go through two **lanes**, one per class of documented limit, each with its own sliding
windows (``WindowLimiter``) and its own ``RateLimiter`` (a pause for the whole lane after a 429;
even spacing only if ``--rate`` asks for it):

    batch lane   POST indicators/import, POST indicators/BatchDelete     30 per minute
                 (BatchDelete alone, besides)                             1500 per hour
    calls lane   POST indicators, GET indicators, DELETE indicators/{id}  100 per minute, 1500 per hour

The windows are the pace: into an empty window a lane sends as many calls at once as the window
allows (30 imports), and the next waits until the oldest leaves it. Each call is counted from when
its answer came back, never earlier than when the server counted it, so the server never sees one
call too many, however the client's wake-ups jitter. All workers of a run share the same two
lanes. ``MdePace.scale`` shrinks every window alike (0.05: a "minute" lasts 3 s) to match an
emulator started with the same ``--mde-window-scale`` (``--window-scale``, a test aid).

Reads retry by themselves and page with ``$top``/``$skip``; writes are single attempts and the
caller (``target.py``) decides how to retry them.

What goes on the wire differs from the journal's view in two ways, both undone on the way back:

* an IPv6 value is sent with all 8 segments (the API refuses ``::``), while the feeds, the journal
  and ``remote_indicator`` keep the canonical compressed form (``targets.common.remote_of``);
* each indicator carries an ``externalId`` (``external_id``): ``ti-import:`` and 24 hex digits of
  a BLAKE2b digest of the feed's title (its definition id), the wire type and the canonical value
  — stable across runs and hosts, 34 characters (the API documents no limit; kept short anyway).
  A listed indicator with another tool's ``externalId`` is not ours (``ours``), even under our title.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feeds.model import Indicator, Kind
from importer.errors import AmbiguousWriteError
from importer.fields import DESCRIPTION, RECOMMENDED_ACTION, SEVERITY, TITLE
from importer.model import DefinitionSpec, RemoteIndicator, Stamp
from importer.targets.common import epoch_of, iso_utc, remote_of, stamp_of
from importer.targets.mde.fields import ACTION, APPLICATION, GENERATE_ALERT, RBAC_GROUPS
from importer.targets.mde.rules import BATCH_LIMIT, CAP_CODE, MAX_TOP, MDE_TYPES, MdePace
from importer.transport.http import HttpClient
from importer.transport.odata import odata_pages, odata_string
from importer.transport.ratelimit import RateLimiter, WindowLimiter

__all__ = [
    "EXTERNAL_ID_PREFIX",
    "ImportItem",
    "MdeClient",
    "expiry_epoch",
    "external_id",
    "indicator_body",
    "indicator_stamp",
    "ours",
    "remote_indicator",
    "wire_value",
]

_KINDS = {
    "FileMd5": Kind.MD5,
    "FileSha1": Kind.SHA1,
    "FileSha256": Kind.SHA256,
    "DomainName": Kind.DOMAIN,
    "Url": Kind.URL,
    "CertificateThumbprint": Kind.CERT_SHA1,
}
Sleep = Callable[[float], Awaitable[None]]
EXTERNAL_ID_PREFIX = "ti-import:"


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One item of an import answer: the stored id, or why it was not stored."""

    value: str | None
    id: str | None
    failed: bool
    reason: str | None

    @property
    def cap_reached(self) -> bool:
        # The per-item answer carries no separate code: the reason starts with it ("Code: message").
        return self.failed and (self.reason or "").startswith(CAP_CODE)


def wire_value(indicator: Indicator) -> str:
    """The value as the API takes it: IPv6 with all 8 segments (API.md §3), the rest as canonical."""
    if indicator.kind is Kind.IPV6:
        return ipaddress.IPv6Address(indicator.value).exploded
    return indicator.value


def external_id(title: str, wire_type: str, value: str) -> str:
    """Our ``externalId`` of the feed titled ``title`` holding ``value`` (canonical, not wire form)."""
    digest = hashlib.blake2b(f"{title}\x1f{wire_type}\x1f{value}".encode(), digest_size=12)
    return EXTERNAL_ID_PREFIX + digest.hexdigest()


def ours(entity: Mapping[str, Any]) -> bool:
    """Whether a listed indicator may be ours: it carries our ``externalId`` or none at all
    (written before ``externalId`` was sent, or by hand in the portal). One with another tool's
    id is that tool's, whatever its title."""
    given = entity.get("externalId")
    return not given or (isinstance(given, str) and given.startswith(EXTERNAL_ID_PREFIX))


def indicator_body(indicator: Indicator, spec: DefinitionSpec) -> dict[str, Any]:
    """The Indicator JSON: the value and its type, with the feed's definition stamped on it."""
    wire_type = MDE_TYPES[indicator.kind]
    body: dict[str, Any] = {
        "indicatorValue": wire_value(indicator),
        "indicatorType": wire_type,
        "externalId": external_id(spec[TITLE], wire_type, indicator.value),
        "action": spec[ACTION],
        "title": spec[TITLE],
        "description": spec[DESCRIPTION],
        "severity": spec[SEVERITY],
        "generateAlert": spec[GENERATE_ALERT],
    }
    if spec[RECOMMENDED_ACTION]:
        body["recommendedActions"] = spec[RECOMMENDED_ACTION]
    expires = indicator.expires or spec.expires_at
    if expires is not None:
        body["expirationTime"] = iso_utc(expires)
    groups: tuple[str, ...] = spec[RBAC_GROUPS]
    if groups:
        body["rbacGroupNames"] = list(groups)
    if spec[APPLICATION]:
        body["application"] = spec[APPLICATION]
    return body


# The metadata an import changes on an existing value+type, which decides an update; the expiry is
# the stamp's other half. Left out: ``application``, which the API takes from a new indicator only
# (an update never changes it: in the stamp, a changed application would be re-sent on every
# listing run and never land), and ``externalId``, which follows from the title and the value.
_META = (
    "title", "description", "severity", "action", "recommendedActions", "generateAlert", "rbacGroupNames",
)  # fmt: skip
# Where ``application`` was: an empty slot keeps the digests journals already hold (they were
# taken with no application in it), so this change re-sends nothing to a feed without one.
_RETIRED_SLOTS = (None,)


def expiry_epoch(moment: datetime) -> int | None:
    """An expiry as the stamp of a body carrying it has it (sent to the second)."""
    return epoch_of(iso_utc(moment))


def indicator_stamp(fields: Mapping[str, Any]) -> Stamp:
    """The stamp of an indicator body we send, or of an entity the API lists (the same names)."""
    return stamp_of((*(fields.get(name) for name in _META), *_RETIRED_SLOTS), fields.get("expirationTime"))


def remote_indicator(entity: Mapping[str, Any]) -> RemoteIndicator | None:
    """An Indicator entity as a RemoteIndicator (None for a type this importer never writes)."""
    return remote_of(
        entity.get("indicatorType"), entity.get("indicatorValue"), entity.get("id"), _KINDS,
        indicator_stamp(entity),
    )  # fmt: skip


def _import_item(raw: Any) -> ImportItem:
    if not isinstance(raw, dict):
        return ImportItem(None, None, True, "the import answer's item was not an object")
    value, remote_id, reason = raw.get("indicator"), raw.get("id"), raw.get("failureReason")
    return ImportItem(
        value if isinstance(value, str) else None,
        None if remote_id is None else str(remote_id),
        bool(raw.get("isFailed")),
        reason if isinstance(reason, str) else None,
    )


class _Lane:
    """One class of calls: its own HTTP client (429 pause, optional spacing) and sliding windows."""

    def __init__(self, http: HttpClient, windows: Sequence[WindowLimiter]) -> None:
        self.http = http
        self._windows = windows

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        what: str,
        also: Sequence[WindowLimiter] = (),
    ) -> Any:
        """One call, once every window of the lane (and ``also``'s, a limit of this call alone) has room."""
        async with AsyncExitStack() as stack:
            for window in (*also, *self._windows):
                await stack.enter_async_context(window.slot())
            return await self.http.request(method, url, json_body=json_body, params=params, what=what)


class MdeClient:
    """Calls of the Indicators API under ``api_url``, paced per lane; JSON in, typed errors out."""

    def __init__(
        self,
        http: HttpClient,
        api_url: str,
        *,
        pace: MdePace | None = None,
        page_size: int = MAX_TOP,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        pace = pace or MdePace()
        minute, hour = 60.0 * pace.scale, 3600.0 * pace.scale
        self.pace = pace
        self.retrier = http.retrier
        self.api_url = api_url
        self._base = api_url if api_url.endswith("/") else api_url + "/"
        self._page_size = page_size

        def lane(windows: list[WindowLimiter]) -> _Lane:
            # No spacing of our own by default: the windows alone decide when a call may go.
            limiter = RateLimiter(pace.spacing_per_minute, clock=clock, sleep=sleep)
            return _Lane(HttpClient(http.session, http.auth, limiter, http.retrier, http.stats), windows)

        def window(limit: float, seconds: float) -> WindowLimiter:
            return WindowLimiter(max(1, int(limit)), seconds, clock=clock, sleep=sleep)

        self.batch = lane([window(pace.import_per_minute, minute)])
        self._batch_deletes = window(pace.batch_deletes_per_hour, hour)
        self.calls = lane([window(pace.calls_per_minute, minute), window(pace.calls_per_hour, hour)])

    def _url(self, path: str) -> str:
        return self._base + path

    # --- writes (single attempts) -----------------------------------------------------------------
    async def submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST indicators: create or update one indicator (upsert by value and type)."""
        answer = await self.calls.request(
            "POST", self._url("indicators"), json_body=body, what="submitting an indicator"
        )
        if not isinstance(answer, dict) or "id" not in answer:
            raise AmbiguousWriteError("submitting an indicator: the answer carried no indicator")
        return answer

    async def import_indicators(self, bodies: Sequence[Mapping[str, Any]]) -> list[ImportItem]:
        """POST indicators/import (≤ 500): one result per item, in the order sent."""
        if not bodies or len(bodies) > BATCH_LIMIT:
            raise ValueError(f"an import takes 1 to {BATCH_LIMIT} indicators")
        what = f"importing {len(bodies)} indicators"
        answer = await self.batch.request(
            "POST", self._url("indicators/import"), json_body={"Indicators": list(bodies)}, what=what
        )
        items = answer.get("value") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            # Applied, but we cannot tell what happened to each item: like a lost answer.
            raise AmbiguousWriteError(f"{what}: the answer carried no per-item results")
        return [_import_item(raw) for raw in items]

    async def delete(self, remote_id: str) -> None:
        """DELETE indicators/{id} (404 when it is not there)."""
        await self.calls.request(
            "DELETE", self._url(f"indicators/{remote_id}"), what=f"deleting indicator {remote_id}"
        )

    async def batch_delete(self, remote_ids: Sequence[str]) -> None:
        """POST indicators/BatchDelete (1 to 500 ids; a 400 otherwise). All or nothing: a 404 if any
        id is not there (``PermanentError``; ``held_ids`` tells which still are)."""
        if not remote_ids or len(remote_ids) > BATCH_LIMIT:
            raise ValueError(f"a batch delete takes 1 to {BATCH_LIMIT} ids")
        await self.batch.request(
            "POST",
            self._url("indicators/BatchDelete"),
            json_body={"IndicatorIds": list(remote_ids)},
            what=f"deleting {len(remote_ids)} indicators",
            also=(self._batch_deletes,),
        )

    # --- reads (retried) --------------------------------------------------------------------------
    def pages(self, filter_text: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Every indicator (matching ``$filter``), page by page."""
        params = {} if filter_text is None else {"$filter": filter_text}

        async def get(url: str, query: Mapping[str, str] | None) -> Any:
            return await self.retrier.call(
                lambda: self.calls.request("GET", url, params=query, what="listing indicators")
            )

        return odata_pages(get, self._base, "indicators", params, self._page_size)

    async def held_ids(self, remote_ids: Collection[str]) -> set[str]:
        """Which of ``remote_ids`` the tenant still lists: one listing of every indicator (at most
        15,000 active: 2 calls of 10,000), never one call per id. An expired indicator is not listed."""
        wanted, held = set(remote_ids), set[str]()
        async for page in self.pages():
            held.update(str(e.get("id")) for e in page if isinstance(e, dict) and str(e.get("id")) in wanted)
        return held

    def titled(self, title: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The indicators whose title is ``title``, page by page."""
        return self.pages(f"title eq {odata_string(title)}")

    async def any_titled(self, title: str) -> bool:
        """Whether at least one indicator has this title (one small call)."""
        answer = await self.retrier.call(
            lambda: self.calls.request(
                "GET",
                self._url("indicators"),
                params={"$filter": f"title eq {odata_string(title)}", "$top": "1"},
                what="looking up the feed's indicators",
            )
        )
        return bool(answer.get("value")) if isinstance(answer, dict) else False
