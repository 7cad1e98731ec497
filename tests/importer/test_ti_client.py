"""The TI client on the wire: JSON shapes, paging, lookups, and status codes turned into error types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from feeds.model import Detection, Indicator, Kind
from importer.emulator import Emulator, EmulatorConfig, Faults, running_emulator
from importer.errors import ConfigError, PermanentError, QuotaError, RetryableError, ThrottledError
from importer.model import RemoteIndicator
from importer.targets.ti.client import (
    TiClient,
    definition_body,
    definition_changes,
    ioc_body,
    ioc_stamp,
    remote_indicator,
    sent_stamp,
)
from importer.targets.ti.rules import DEFAULT_AUDIENCE as TI_DEFAULT_AUDIENCE
from importer.transport.http import open_http
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, sha1, spec_for

SPEC = spec_for("feed-a", title="Feed A", description="Indicators from feed A")


@asynccontextmanager
async def ti_client(
    emu: Emulator, fake: FakeTime, stats: TransportStats, **overrides: Any
) -> AsyncIterator[TiClient]:
    settings = connection_settings(emu, **overrides)
    async with open_http(
        settings, stats, default_audience=TI_DEFAULT_AUDIENCE, sleep=fake.sleep, clock=fake.clock
    ) as http:
        yield TiClient(http, settings.api_url)


def test_ioc_body_maps_kinds_detection_and_expiry() -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = ioc_body(
        Indicator(Kind.IPV6, "2001:db8::1", "f:1", expires=expires), "7", detection=None, expires_at=None
    )
    assert body == {
        "Type": "IpAddress",
        "Value": "2001:db8::1",
        "DetectionFunction": "Equals",
        "Enabled": True,
        "ExpiresAt": "2030-01-02T03:04:05Z",
        "AlertDefinition@odata.bind": "AlertDefinitions(7)",
    }
    # The definition's detection wins over the indicator's own; its expiry fills a missing one.
    body = ioc_body(
        Indicator(Kind.DOMAIN, "example.com", "f:2", detection=Detection.ENDS_WITH),
        "7",
        detection=Detection.CONTAINS,
        expires_at=datetime(2031, 1, 1),
    )
    assert body["Type"] == "DomainName"
    assert body["DetectionFunction"] == "Contains"
    assert body["ExpiresAt"] == "2031-01-01T00:00:00Z"
    assert (
        ioc_body(
            Indicator(Kind.MD5, "a" * 32, "f:3", detection=Detection.STARTS_WITH),
            "7",
            detection=None,
            expires_at=None,
        )["DetectionFunction"]
        == "StartWith"
    )


def test_definition_body_refuses_overlong_fields() -> None:
    body = definition_body(SPEC)
    assert body["Name"] == "feed-a"
    assert body["InternalDescription"] == body["UxDescription"] == "Indicators from feed A"
    with pytest.raises(ConfigError, match=r"'title' is 121 characters long.*at most 120 for Title"):
        definition_body(spec_for("n", title="t" * 121, description="d"))
    with pytest.raises(ConfigError, match=r"'description' is 351 characters.*InternalDescription"):
        definition_body(spec_for("n", title="t", description="d" * 351))
    assert definition_changes({**body, "Id": 1}, body) == {}
    assert definition_changes({**body, "Severity": "Low"}, {**body, "Severity": "High"}) == {
        "Severity": "High"
    }


def test_remote_indicator_from_the_wire() -> None:
    unstamped = {"DetectionFunction": None, "Enabled": None, "ExpiresAt": None}
    stamp = ioc_stamp(unstamped)
    assert remote_indicator({"Id": 3, "Type": "IpAddress", "Value": "10.0.0.1"}) == RemoteIndicator(
        Kind.IPV4, "10.0.0.1", "3", stamp
    )
    assert remote_indicator({"Id": 4, "Type": "Sha256", "Value": "ab"}) == RemoteIndicator(
        Kind.SHA256, "ab", "4", stamp
    )
    assert remote_indicator({"Id": 5, "Type": "Url", "Value": "x"}) is None


def test_the_stamp_of_what_is_sent_is_the_stamp_of_what_is_listed_back() -> None:
    """A held IOC is sent again only when its stamp differs: the stamp computed without building
    a body must equal the body's, and the service's listing of that body (its own spelling of the
    same values: 7 fractional digits, another letter case) must give the same stamp too."""
    expiry = datetime(2031, 5, 1, 12, 30, 15, 999_000, tzinfo=UTC)
    for indicator, detection, default in (
        (Indicator(Kind.SHA256, "a" * 64, origin="f:1"), None, None),
        (Indicator(Kind.DOMAIN, "x.example", origin="f:2", expires=expiry), Detection.ENDS_WITH, None),
        (Indicator(Kind.MD5, "b" * 32, origin="f:3"), None, datetime(2030, 1, 1)),  # naive: UTC
    ):
        body = ioc_body(indicator, "9", detection=detection, expires_at=default)
        assert sent_stamp(indicator, detection=detection, expires_at=default) == ioc_stamp(body)
        listed = {**body, "Id": 1, "DetectionFunction": body["DetectionFunction"].upper()}
        if "ExpiresAt" in body:
            listed["ExpiresAt"] = body["ExpiresAt"].replace("Z", ".0000000Z")
        remote = remote_indicator(listed)
        assert remote is not None and remote.stamp == ioc_stamp(body)
    changed = ioc_body(Indicator(Kind.MD5, "b" * 32, origin="f:3"), "9", detection=None, expires_at=expiry)
    assert ioc_stamp(changed) != ioc_stamp({**changed, "ExpiresAt": "2031-05-02T12:30:15Z"})
    assert ioc_stamp(changed).meta != ioc_stamp({**changed, "DetectionFunction": "Contains"}).meta


async def test_definition_create_find_patch(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_client(emulator, fake_time, TransportStats()) as client:
        assert await client.find_definitions("feed-a") == []
        created = await client.create_definition(definition_body(SPEC))
        await client.create_definition(definition_body(spec_for("feed-b", title="B", description="b")))
        found = await client.find_definitions("feed-a")
        assert [d["Id"] for d in found] == [created["Id"]]
        patched = await client.patch_definition(str(created["Id"]), {"Severity": "High"})
        assert patched["Severity"] == "High"
        assert len(await client.list_definitions()) == 2


@pytest.mark.parametrize("emulator", [EmulatorConfig(page_size=7)], indirect=True)
async def test_paging_follows_next_links_and_returns_everything_once(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    stats = TransportStats()
    async with ti_client(emulator, fake_time, stats) as client:
        definition = await client.create_definition(definition_body(SPEC))
        other = await client.create_definition(definition_body(spec_for("other", title="O", description="o")))
        bodies = [
            ioc_body(
                Indicator(Kind.SHA1, sha1(i), "f"), str(definition["Id"]), detection=None, expires_at=None
            )
            for i in range(25)
        ]
        await client.bulk_create_iocs(bodies)
        await client.bulk_create_iocs(
            [
                ioc_body(
                    Indicator(Kind.SHA1, sha1(999), "f"), str(other["Id"]), detection=None, expires_at=None
                )
            ]
        )
        before = stats.requests
        pages = [page async for page in client.iocs_of(str(definition["Id"]))]
        values = [ioc["Value"] for page in pages for ioc in page]
        assert sorted(values) == sorted(sha1(i) for i in range(25))
        assert len(pages) == 4 and stats.requests - before == 4  # 7 + 7 + 7 + 4
        assert await client.count_iocs(str(definition["Id"])) == 25
        found = await client.find_iocs(str(definition["Id"]), "Sha1", sha1(3).upper())
        assert [f["Value"] for f in found] == [sha1(3)]
        assert await client.find_iocs(str(other["Id"]), "Sha1", sha1(3)) == []


async def test_bulk_upload_answers_ids_in_order(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_client(emulator, fake_time, TransportStats()) as client:
        definition = await client.create_definition(definition_body(SPEC))
        bodies = [
            ioc_body(
                Indicator(Kind.SHA1, sha1(i), "f"), str(definition["Id"]), detection=None, expires_at=None
            )
            for i in range(3)
        ]
        ids = await client.bulk_create_iocs(bodies)
        single = await client.create_ioc(
            ioc_body(
                Indicator(Kind.DOMAIN, "example.org", "f"),
                str(definition["Id"]),
                detection=None,
                expires_at=None,
            )
        )
        stored = {i["Id"]: i["Value"] async for page in client.iocs_of(str(definition["Id"])) for i in page}
    assert [stored[int(i)] for i in ids] == [sha1(0), sha1(1), sha1(2)]
    assert stored[int(single)] == "example.org"


async def test_400_is_permanent_and_never_retried(emulator: Emulator, fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with ti_client(emulator, fake_time, stats) as client:
        definition = await client.create_definition(definition_body(SPEC))
        bad = ioc_body(
            Indicator(Kind.SHA1, "not-a-hash", "f"), str(definition["Id"]), detection=None, expires_at=None
        )
        with pytest.raises(PermanentError, match=r"HTTP 400 BadRequest: .*not a valid Sha1") as caught:
            await client.http.retrier.call(lambda: client.create_ioc(bad))
    assert caught.value.status == 400
    assert emulator.state()["requests_by_status"]["400"] == 1
    assert stats.retries == 0


async def test_5xx_is_retried_then_given_up_after_the_bound(fake_time: FakeTime) -> None:
    stats = TransportStats()
    config = EmulatorConfig(api_faults=Faults(error_rate=1.0))
    async with running_emulator(config) as emu, ti_client(emu, fake_time, stats, max_attempts=5) as client:
        with pytest.raises(RetryableError, match=r"HTTP 50[03]"):
            await client.list_definitions()
        statuses = emu.state()["requests_by_status"]
    assert statuses.get("500", 0) + statuses.get("503", 0) == 5
    assert stats.retries == 4 and stats.server_errors == 5
    assert len(fake_time.sleeps) == 4


async def test_429_waits_at_least_retry_after_and_pauses_everyone(fake_time: FakeTime) -> None:
    stats = TransportStats()
    config = EmulatorConfig(api_faults=Faults(throttle_per_minute=2), clock=fake_time.wall)
    async with running_emulator(config) as emu, ti_client(emu, fake_time, stats) as client:
        await client.list_definitions()
        await client.list_definitions()
        start = fake_time.now
        assert await client.list_definitions() == []  # the third in a minute: 429, wait, succeed
        waited = fake_time.now - start
        assert emu.state()["requests_by_status"]["429"] == 1
    assert stats.throttled == 1 and stats.retries == 1
    retry_after = 60.0 - 0.0  # a sliding minute that began at start: the emulator asks to wait it out
    assert max(fake_time.sleeps) >= retry_after - 1.0
    assert waited >= retry_after - 1.0


async def test_throttled_error_carries_retry_after(fake_time: FakeTime) -> None:
    config = EmulatorConfig(api_faults=Faults(throttle_per_minute=1), clock=fake_time.wall)
    async with running_emulator(config) as emu, ti_client(emu, fake_time, TransportStats()) as client:
        await client.list_definitions()
        with pytest.raises(ThrottledError) as caught:
            await client.http.request("GET", emu.ti_url + "AlertDefinitions")
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


async def test_quota_is_507(fake_time: FakeTime) -> None:
    async with (
        running_emulator(EmulatorConfig(max_iocs=2)) as emu,
        ti_client(emu, fake_time, TransportStats()) as c,
    ):
        definition = await c.create_definition(definition_body(SPEC))
        bodies = [
            ioc_body(
                Indicator(Kind.SHA1, sha1(i), "f"), str(definition["Id"]), detection=None, expires_at=None
            )
            for i in range(3)
        ]
        with pytest.raises(QuotaError, match=r"quota"):
            await c.bulk_create_iocs(bodies)
