"""The Sentinel STIX objects upload API and ARM's ``queryIndicators`` on the wire: URLs, requests, answers.

The objects themselves are ``stix``'s; this module sends them (API.md §4):

    POST {api_url}workspaces/{workspaceId}/threat-intelligence-stix-objects:upload
         ?api-version=2024-02-01-preview      {"sourcesystem": ..., "stixobjects": [≤ 100]}
    POST {arm_url}subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/
         workspaces/{name}/providers/Microsoft.SecurityInsights/threatIntelligence/main/queryIndicators
         ?api-version=2024-03-01              {"pageSize": ..., "sources": [...], "skipToken": ...}

Uploads are **paced ahead** by one sliding window (``WindowLimiter``: 100 in any minute per client
app, scaled by ``--window-scale``) shared by every worker, so the service's limit is met, not
discovered by 429s. A 429 still happens (another process on the same app): its wait is in the
message ("Try again in <n> seconds.") or ``Retry-After``; every sender pauses that long.

An upload is a single attempt (``target`` retries it); a 200 names the objects it refused
(``errors``: ``recordIndex`` and ``errorMessages``). Reads retry by themselves.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from importer.errors import ConfigError, ThrottledError
from importer.targets.sentinel.rules import ARM_API_VERSION, BATCH_LIMIT, UPLOAD_API_VERSION, SentinelPace
from importer.transport.http import HttpClient
from importer.transport.ratelimit import WindowLimiter
from importer.transport.urls import origin_of, shown

__all__ = ["ArmWorkspace", "SentinelClient", "refusals_of", "wait_of"]

_WAIT = re.compile(r"try again in (\d+(?:\.\d+)?) second", re.IGNORECASE)
_PAGE_SIZE = 100  # items per queryIndicators page (ARM's documented example and default)


@dataclass(frozen=True, slots=True)
class ArmWorkspace:
    """Where ARM knows the workspace: what ``queryIndicators`` needs (all three, or no read-back)."""

    arm_url: str
    subscription_id: str
    resource_group: str
    workspace_name: str

    def query_url(self) -> str:
        base = self.arm_url if self.arm_url.endswith("/") else self.arm_url + "/"
        path = "/".join(
            quote(part, safe="")
            for part in ("subscriptions", self.subscription_id, "resourceGroups", self.resource_group)
        )
        name = quote(self.workspace_name, safe="")
        return (
            f"{base}{path}/providers/Microsoft.OperationalInsights/workspaces/{name}"
            "/providers/Microsoft.SecurityInsights/threatIntelligence/main/queryIndicators"
        )


def wait_of(error: ThrottledError) -> float | None:
    """The seconds a 429 asks for: those of its message, else its ``Retry-After``."""
    found = _WAIT.search(str(error))
    return float(found.group(1)) if found else error.retry_after


def refusals_of(answer: Any, count: int) -> dict[int, str]:
    """The upload answer's refused objects, by index in the request, each with the service's words.

    An empty answer refused nothing. An index outside the request is ignored (not ours to judge)."""
    if not isinstance(answer, dict):
        return {}
    errors = answer.get("errors")
    refused: dict[int, str] = {}
    for item in errors if isinstance(errors, list) else ():
        if not isinstance(item, dict):
            continue
        index, messages = item.get("recordIndex"), item.get("errorMessages")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            continue
        words = [m for m in messages if isinstance(m, str)] if isinstance(messages, list) else []
        refused[index] = " ".join(words) or "refused without a reason"
    return refused


class SentinelClient:
    """Uploads to one workspace (paced) and, when ARM is known, reads its indicators back."""

    def __init__(
        self,
        http: HttpClient,
        api_url: str,
        workspace_id: str,
        source_system: str,
        *,
        arm: ArmWorkspace | None = None,
        pace: SentinelPace | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        pace = pace or SentinelPace()
        self.http = http
        self.retrier = http.retrier
        self.workspace_id = workspace_id
        self.source_system = source_system
        self.arm = arm
        base = api_url if api_url.endswith("/") else api_url + "/"
        self.upload_url = (
            f"{base}workspaces/{quote(workspace_id, safe='')}/threat-intelligence-stix-objects:upload"
        )
        self.window = WindowLimiter(pace.uploads_per_minute, pace.window, clock=clock, sleep=sleep)

    async def upload(self, objects: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        """One upload request (1 to 100 objects): the refused ones by index (see ``refusals_of``)."""
        if not objects or len(objects) > BATCH_LIMIT:
            raise ValueError(f"an upload takes 1 to {BATCH_LIMIT} objects")
        what = f"uploading {len(objects)} STIX objects"
        body = {"sourcesystem": self.source_system, "stixobjects": list(objects)}
        async with self.window.slot():
            try:
                answer = await self.http.request(
                    "POST",
                    self.upload_url,
                    json_body=body,
                    params={"api-version": UPLOAD_API_VERSION},
                    what=what,
                )
            except ThrottledError as error:
                raise self._throttled(error) from None
        return refusals_of(answer, len(objects))

    def _throttled(self, error: ThrottledError) -> ThrottledError:
        """The 429 with the wait its message names, every sender paused that long."""
        seconds = wait_of(error)
        if seconds is None:
            return error
        self.http.limiter.pause(seconds)
        return ThrottledError(str(error), retry_after=seconds, status=error.status, code=error.code)

    async def indicators(self) -> AsyncIterator[list[Any]]:
        """Every indicator of our source system in the workspace, page by page (ARM; needs ``arm``)."""
        if self.arm is None:
            raise ValueError("no ARM coordinates: the workspace cannot be read back")
        url: str = self.arm.query_url()
        origin = origin_of(url)
        body: dict[str, Any] = {
            "pageSize": _PAGE_SIZE,
            "sources": [self.source_system],
            "includeDisabled": True,
        }
        params: dict[str, str] | None = {"api-version": ARM_API_VERSION}
        while True:
            answer = await self._read(url, body, params)
            items = answer.get("value") if isinstance(answer, dict) else None
            yield items if isinstance(items, list) else []
            link = answer.get("nextLink") if isinstance(answer, dict) else None
            token = answer.get("skipToken") if isinstance(answer, dict) else None
            if isinstance(link, str) and link:
                if origin_of(link) != origin:  # another party's word on what the workspace holds
                    raise ConfigError(
                        f"ARM's queryIndicators answered a next page at {shown(link)}, another origin than "
                        f"{origin}: refused (check arm_url in the config file's [target] table)"
                    )
                url, params = link, None
            elif isinstance(token, str) and token:
                body = {**body, "skipToken": token}
            else:
                return

    async def _read(self, url: str, body: Mapping[str, Any], params: Mapping[str, str] | None) -> Any:
        async def call() -> Any:
            try:
                return await self.http.request(
                    "POST", url, json_body=body, params=params, what="reading the workspace's indicators"
                )
            except ThrottledError as error:
                raise self._throttled(error) from None

        return await self.retrier.call(call)
