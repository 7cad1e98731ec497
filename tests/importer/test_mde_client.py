"""The MDE client: wire JSON (stamped definition, kinds), import per-item results, list paging,
delete and BatchDelete against the emulator; the window limiter its lanes rely on; v2 scope."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from feeds.model import Detection, Indicator, Kind
from importer.emulator import Emulator, EmulatorConfig, running_emulator
from importer.errors import ConfigError, PermanentError
from importer.model import RemoteIndicator
from importer.targets.mde.client import MdeClient, external_id, indicator_body, remote_indicator
from importer.targets.mde.rules import DEFAULT_AUDIENCE as MDE_DEFAULT_AUDIENCE
from importer.targets.mde.rules import MdePace, check_definition
from importer.transport.http import open_http
from importer.transport.ratelimit import WindowLimiter
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, settle, sha1, spec_for, wait_until

SPEC = spec_for("feed-a", "mde", title="Feed A", description="Indicators from feed A")


@asynccontextmanager
async def mde_client(
    fake: FakeTime, *, version: int = 1, page_size: int = 10000, **config: object
) -> AsyncIterator[tuple[Emulator, MdeClient]]:
    """An emulator on ``fake``'s clock and a client paced on the same clock (documented limits)."""
    async with running_emulator(EmulatorConfig(clock=fake.wall, **config)) as emu:  # type: ignore[arg-type]
        settings = connection_settings(emu, api="mde", version=version)
        async with open_http(
            settings,
            TransportStats(),
            default_audience=MDE_DEFAULT_AUDIENCE,
            sleep=fake.sleep,
            clock=fake.clock,
        ) as http:
            yield (
                emu,
                MdeClient(http, settings.api_url, page_size=page_size, sleep=fake.sleep, clock=fake.clock),
            )


# --- wire JSON ---------------------------------------------------------------------------------------
def test_indicator_body_stamps_the_definition_and_maps_every_kind() -> None:
    spec = spec_for(
        "f",
        "mde",
        title="T",
        description="D",
        severity="High",
        recommended_action="Isolate the host",
        expires_at=datetime(2030, 1, 2, 3, 4, 5),
        rbac_groups=("SOC", "Tier2"),
        application="feedapp",
    )
    kinds = {
        Kind.MD5: ("d41d8cd98f00b204e9800998ecf8427e", "FileMd5", None),
        Kind.SHA1: (sha1(1), "FileSha1", None),
        Kind.SHA256: ("a" * 64, "FileSha256", None),
        Kind.IPV4: ("192.0.2.1", "IpAddress", None),
        Kind.IPV6: ("2001:db8::1", "IpAddress", "2001:0db8:0000:0000:0000:0000:0000:0001"),  # all 8 segments
        Kind.DOMAIN: ("evil.example", "DomainName", None),
        Kind.URL: ("http://evil.example/x", "Url", None),
        Kind.CERT_SHA1: (sha1(3), "CertificateThumbprint", None),
    }
    for kind, (value, wire, sent) in kinds.items():
        body = indicator_body(Indicator(kind, value, "f:1"), spec)
        assert body == {
            "indicatorValue": sent or value,
            "indicatorType": wire,
            "externalId": external_id("T", wire, value),
            "action": "Audit",
            "generateAlert": True,
            "title": "T",
            "description": "D",
            "severity": "High",
            "recommendedActions": "Isolate the host",
            "expirationTime": "2030-01-02T03:04:05Z",
            "rbacGroupNames": ["SOC", "Tier2"],
            "application": "feedapp",
        }
    # An indicator's own expiry wins over the definition's default; optional fields stay out.
    own = datetime(2031, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    body = indicator_body(Indicator(Kind.SHA1, sha1(2), "f:2", expires=own), SPEC)
    assert body["expirationTime"] == "2031-01-01T10:00:00Z"
    assert not {"recommendedActions", "rbacGroupNames", "application"} & body.keys()


def test_check_definition_refuses_what_the_api_would_refuse_for_every_indicator() -> None:
    check_definition(SPEC)
    bad = {
        "title": spec_for("f", "mde", title=" ", description="d"),
        "description": spec_for("f", "mde", title="t", description=""),
        "'action' must be": spec_for("f", "mde", title="t", description="d", action="Nuke"),
        "Audit requires": spec_for("f", "mde", title="t", description="d", generate_alert=False),
        "severity": spec_for("f", "mde", title="t", description="d", severity="Catastrophic"),
        "exact values": spec_for(
            "f", "mde", title="t", description="d", detection_function=Detection.CONTAINS
        ),
    }
    for words, spec in bad.items():
        with pytest.raises(ConfigError, match=words):
            check_definition(spec)
    check_definition(spec_for("f", "mde", title="t", description="d", action="Block", generate_alert=False))


def test_remote_indicator_maps_types_back_to_kinds() -> None:
    def entity(wire: str, value: str) -> dict[str, object]:
        return {"id": "7", "indicatorType": wire, "indicatorValue": value}

    def identity(fields: dict[str, object]) -> RemoteIndicator | None:  # the stamp is tested apart
        remote = remote_indicator(fields)
        return None if remote is None else replace(remote, stamp=None)

    assert identity(entity("IpAddress", "2001:db8::1")) == RemoteIndicator(
        Kind.IPV6, "2001:db8::1", "7"
    )
    # Listed with all 8 segments (as sent), known by the feeds' canonical form.
    assert identity(entity("IpAddress", "2001:0DB8:0000:0000:0000:0000:0000:0001")) == RemoteIndicator(
        Kind.IPV6, "2001:db8::1", "7"
    )
    assert identity(entity("IpAddress", "192.0.2.1")) == RemoteIndicator(Kind.IPV4, "192.0.2.1", "7")
    assert identity(entity("Url", "http://x.example/")) == RemoteIndicator(
        Kind.URL, "http://x.example/", "7"
    )
    assert identity(entity("FileSha256", "a" * 64)) == RemoteIndicator(Kind.SHA256, "a" * 64, "7")
    assert identity(entity("CertificateThumbprint", "a" * 40)) == RemoteIndicator(
        Kind.CERT_SHA1, "a" * 40, "7"
    )
    assert identity(entity("WebCategory", "Gambling")) is None  # a type we never write
    assert remote_indicator({"indicatorType": "Url"}) is None


def test_a_configured_rate_adds_even_spacing_and_keeps_the_windows() -> None:
    assert MdePace().capped(None) == MdePace()
    assert MdePace().capped(20) == MdePace(spacing_per_minute=20)
    assert MdePace().capped(60).capped(20).capped(40) == MdePace(spacing_per_minute=20)  # only slower
    with pytest.raises(ConfigError):
        MdePace(scale=0)


# --- the window limiter ------------------------------------------------------------------------------
async def test_window_limiter_counts_calls_from_their_end(fake_time: FakeTime) -> None:
    window = WindowLimiter(3, 60.0, clock=fake_time.clock, sleep=fake_time.sleep)
    starts: list[float] = []

    async def call(duration: float) -> None:
        async with window.slot():
            starts.append(fake_time.now)
            await fake_time.sleep(duration)

    await asyncio.gather(*(call(5.0) for _ in range(7)))
    # Three at once; each next three only once the three before have been finished for 60 s.
    assert starts == [1000.0, 1000.0, 1000.0, 1065.0, 1065.0, 1065.0, 1130.0]


async def test_window_limiter_waits_for_calls_still_in_flight(fake_time: FakeTime) -> None:
    window = WindowLimiter(1, 10.0, clock=fake_time.clock, sleep=fake_time.sleep)
    release = asyncio.Event()
    order: list[str] = []

    async def slow() -> None:
        async with window.slot():
            order.append("slow in")
            await release.wait()
            order.append("slow out")

    async def second() -> None:
        order.append("second waits")
        async with window.slot():
            order.append(f"second in at {fake_time.now - 1000.0:.0f}")

    task = asyncio.create_task(slow())
    await wait_until(lambda: order == ["slow in"], what="the slow call to take the slot")
    waiter = asyncio.create_task(second())
    await wait_until(lambda: "second waits" in order, what="the second call to ask for the slot")
    await settle()  # every chance to get in (loop steps; the fake clock stays put): it must not
    assert order == ["slow in", "second waits"]  # the one slot is taken by a call that has not finished
    release.set()
    await asyncio.gather(task, waiter)
    assert order == ["slow in", "second waits", "slow out", "second in at 10"]


# --- against the emulator ----------------------------------------------------------------------------
async def test_import_answers_per_item_in_order(fake_time: FakeTime) -> None:
    async with mde_client(fake_time, version=2) as (emu, client):  # v2: scope=<audience>/.default
        bodies = [indicator_body(Indicator(Kind.SHA1, sha1(i), "f"), SPEC) for i in range(3)]
        bodies.insert(1, indicator_body(Indicator(Kind.SHA1, "zz" * 20, "f"), SPEC))
        items = await client.import_indicators(bodies)
        again = await client.import_indicators(bodies[:1])  # an upsert: same id, nothing new
        listed = [e async for page in client.titled("Feed A") for e in page]
        with pytest.raises(ValueError, match="1 to 500"):
            await client.import_indicators(bodies * 126)
    assert [i.failed for i in items] == [False, True, False, False]
    assert items[1].reason is not None and items[1].reason.startswith("InvalidHashValue")
    assert not items[1].cap_reached
    assert [i.value for i in items] == [b["indicatorValue"] for b in bodies]
    assert again[0].id == items[0].id
    assert sorted(e["id"] for e in listed) == sorted(i.id for i in items if i.id)
    assert emu.state()["totals"]["mde_indicators"] == 3


async def test_a_certificate_thumbprint_is_stored_and_listed_back(fake_time: FakeTime) -> None:
    async with mde_client(fake_time) as (_, client):
        # The same 40 hex digits as a file SHA-1 and as a certificate: two indicators, not one.
        bodies = [indicator_body(Indicator(kind, sha1(5), "f"), SPEC) for kind in (Kind.CERT_SHA1, Kind.SHA1)]
        items = await client.import_indicators(bodies)
        listed = [remote_indicator(e) async for page in client.titled("Feed A") for e in page]
    assert [i.failed for i in items] == [False, False]
    assert sorted((r.kind, r.value) for r in listed if r) == [(Kind.CERT_SHA1, sha1(5)), (Kind.SHA1, sha1(5))]


async def test_listing_pages_with_top_and_skip(fake_time: FakeTime) -> None:
    async with mde_client(fake_time, page_size=4) as (_, client):
        other = spec_for("b", "mde", title="Feed B", description="d")
        await client.import_indicators(
            [indicator_body(Indicator(Kind.SHA1, sha1(i), "f"), SPEC) for i in range(10)]
        )
        await client.import_indicators(
            [indicator_body(Indicator(Kind.SHA1, sha1(i), "f"), other) for i in range(10, 13)]
        )
        pages = [page async for page in client.titled("Feed A")]
        everything = [e async for page in client.pages() for e in page]
        assert await client.any_titled("Feed B") and not await client.any_titled("Feed C")
        quoted = [e async for page in client.titled("it's") for e in page]  # a quote in the literal
    assert [len(p) for p in pages] == [4, 4, 2]
    assert sorted(e["indicatorValue"] for p in pages for e in p) == [sha1(i) for i in range(10)]
    assert len(everything) == 13 and quoted == []


async def test_delete_and_batch_delete(fake_time: FakeTime) -> None:
    async with mde_client(fake_time) as (emu, client):
        items = await client.import_indicators(
            [indicator_body(Indicator(Kind.SHA1, sha1(i), "f"), SPEC) for i in range(6)]
        )
        ids = [i.id for i in items if i.id]
        await client.delete(ids[0])
        with pytest.raises(PermanentError) as info:
            await client.delete(ids[0])
        # All or nothing: one id already gone refuses the call; the listing tells which are left.
        with pytest.raises(PermanentError) as gone:
            await client.batch_delete([*ids[1:4], ids[0]])
        assert await client.held_ids([*ids[1:4], ids[0], "999999"]) == set(ids[1:4])
        await client.batch_delete(ids[1:4])
        left = [e["id"] async for page in client.pages() for e in page]
        created = await client.submit(indicator_body(Indicator(Kind.URL, "https://x.example/a", "f"), SPEC))
        for wrong in ([], ids * 100):  # never sent: the API answers 400 to both
            with pytest.raises(ValueError):
                await client.batch_delete(wrong)
        state = emu.state()
    assert info.value.status == gone.value.status == 404
    assert sorted(left) == sorted(ids[4:])
    assert created["indicatorType"] == "Url" and created["title"] == "Feed A"
    assert state["totals"]["mde_indicators"] == 3
