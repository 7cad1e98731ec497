"""A third-party client, written from Microsoft's pages alone (API.md sections 1 and 3, not one line
of the importer), completes a 15,000-indicator cycle against the emulator: token, preflight,
sequential imports of 500, a full listing along ``@odata.nextLink``, BatchDelete of what it made.

This is the check issue 14 asked for: a real client of this shape failed on every indicator while
the emulator refused fields the API accepts. The emulator runs at the documented limits (30 import
and BatchDelete calls a minute, 15,000 indicators) on virtual time, so the client's waits for
``Retry-After`` cost no real time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from importer.emulator import DEMO_CLIENT, EmulatorConfig, running_emulator
from tests.helpers import FakeTime

TOTAL = 15_000
BATCH = 500  # the import page's maximum
MDE_SCOPE = "https://api.securitycenter.microsoft.com/.default"


class DocsOnlyClient:
    """The Indicators API as its pages describe it: v2 client-credentials token, JSON calls with a
    bearer token, 429 answered by waiting ``Retry-After`` seconds. Sequential: one call at a time."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        api_url: str,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.session, self.token_url, self.api_url, self.sleep = session, token_url, api_url, sleep
        self.token = ""
        self.throttled = 0

    async def authenticate(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": DEMO_CLIENT.client_id,
            "client_secret": DEMO_CLIENT.client_secret,
            "scope": MDE_SCOPE,
        }
        async with self.session.post(self.token_url, data=form) as response:
            body = await response.json()
            assert response.status == 200, body
            self.token = body["access_token"]

    async def call(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        """One call, repeated after ``Retry-After`` while it is throttled (at most 5 times)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        for _ in range(5):
            async with self.session.request(method, url, json=body, headers=headers) as response:
                payload = None if response.status == 204 else await response.json()
                if response.status != 429:
                    return response.status, payload
                self.throttled += 1
                wait = int(response.headers["Retry-After"])
            await self.sleep(wait)
        raise AssertionError(f"{method} {url}: still throttled after 5 waits")

    async def import_indicators(self, indicators: list[dict[str, Any]]) -> list[dict[str, Any]]:
        status, body = await self.call("POST", self.api_url + "indicators/import", {"Indicators": indicators})
        assert status == 200, body
        results: list[dict[str, Any]] = body["value"]
        return results

    async def list_all(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        url: str | None = self.api_url + "indicators"
        while url is not None:
            status, body = await self.call("GET", url)
            assert status == 200, body
            found.extend(body["value"])
            url = body.get("@odata.nextLink")
        return found

    async def batch_delete(self, ids: list[str]) -> None:
        status, body = await self.call("POST", self.api_url + "indicators/BatchDelete", {"IndicatorIds": ids})
        assert status == 204, body


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(n: int) -> tuple[str, str]:
    """The n-th value, of every indicator type the client knows (IPv6 with all 8 segments)."""
    kind = n % 5
    if kind == 0:
        return "FileSha256", hashlib.sha256(b"docs-%d" % n).hexdigest()
    if kind == 1:
        return "FileSha1", hashlib.sha1(b"docs-%d" % n).hexdigest()
    if kind == 2:
        return "IpAddress", f"2001:db8:0:0:0:0:{n >> 16:x}:{n & 0xFFFF:x}"
    if kind == 3:
        return "DomainName", f"host{n}.docs-client.example.com"
    return "Url", f"https://docs-client.example.com/p/{n}"


def _indicators(now: float) -> list[dict[str, Any]]:
    indicators = []
    for n in range(TOTAL):
        kind, value = _value(n)
        indicators.append(
            {
                "indicatorValue": value,
                "indicatorType": kind,
                "action": "Block",
                "title": "docs-only client",
                "description": "written from the API pages alone",
                "severity": "High",
                "generateAlert": True,
                "externalId": f"docs-client:{n}",
                "lastUpdateTime": _iso(now),
                "expirationTime": _iso(now + 30 * 86400),
            }
        )
    return indicators


async def test_a_client_written_from_the_docs_completes_a_15000_indicator_cycle(fake_time: FakeTime) -> None:
    async with (
        running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu,
        aiohttp.ClientSession() as session,
    ):
        client = DocsOnlyClient(session, emu.auth_url(2), emu.mde_url, fake_time.sleep)
        # Preflight: a token, a one-item listing, an empty import (refused or not, it must not fail).
        await client.authenticate()
        status, body = await client.call("GET", emu.mde_url + "indicators?$top=1")
        assert (status, body["value"]) == (200, [])
        status, body = await client.call("POST", emu.mde_url + "indicators/import", {"Indicators": []})
        assert status in (200, 400), body

        indicators = _indicators(fake_time.wall())
        created: dict[str, str] = {}
        failed = []
        for start in range(0, TOTAL, BATCH):
            chunk = indicators[start : start + BATCH]
            for sent, result in zip(chunk, await client.import_indicators(chunk), strict=True):
                assert result["indicator"] == sent["indicatorValue"]
                if result["isFailed"]:
                    failed.append(result)
                else:
                    created[sent["externalId"]] = result["id"]
        assert failed == [] and len(created) == TOTAL

        listed = await client.list_all()
        mine = {e["externalId"]: e["id"] for e in listed if str(e["externalId"]).startswith("docs-client:")}
        assert mine == created and len(listed) == TOTAL
        sample = next(e for e in listed if e["externalId"] == "docs-client:2")
        assert sample["indicatorValue"] == "2001:db8:0:0:0:0:0:2"
        assert sample["lastUpdateTime"] == indicators[2]["lastUpdateTime"]

        ids = list(mine.values())
        for start in range(0, len(ids), BATCH):
            await client.batch_delete(ids[start : start + BATCH])
        assert await client.list_all() == []
        assert emu.state()["totals"]["mde_indicators"] == 0
    # 61 import and BatchDelete calls at 30 a minute: the client met the limit and waited it out.
    assert client.throttled >= 2 and sum(fake_time.sleeps) >= 120
