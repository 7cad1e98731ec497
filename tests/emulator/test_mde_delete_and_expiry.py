"""MDE BatchDelete as documented (404 if any id is not found; 400 for an empty or too long list or
an invalid id; 30 a minute and 1,500 an hour) and expired indicators, which are not active: not
listed and not counted against the tenant's cap (issue 14)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import aiohttp

from importer.cli.emulator import add_parser, build_config
from importer.emulator import Emulator, EmulatorConfig, running_emulator
from tests.helpers import FakeTime, get_token, sha1
from tests.helpers.emulator_api import MDE_RESOURCE, mde_call, mde_indicator


async def _import(session: aiohttp.ClientSession, emu: Emulator, token: str, items: list[Any]) -> list[Any]:
    status, body, _ = await mde_call(
        session, "POST", emu.mde_url + "indicators/import", token, {"Indicators": items}
    )
    assert status == 200, body
    results: list[Any] = body["value"]
    return results


async def _batch_delete(
    session: aiohttp.ClientSession, emu: Emulator, token: str, ids: Any
) -> tuple[int, Any, Any]:
    return await mde_call(
        session, "POST", emu.mde_url + "indicators/BatchDelete", token, {"IndicatorIds": ids}
    )


async def _listed_values(session: aiohttp.ClientSession, emu: Emulator, token: str) -> list[str]:
    status, body, _ = await mde_call(session, "GET", emu.mde_url + "indicators", token)
    assert status == 200, body
    return [e["indicatorValue"] for e in body["value"]]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


async def test_batch_delete_of_an_unknown_id_is_404_and_deletes_nothing(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    ids = [
        r["id"]
        for r in await _import(session, emulator, mde_token, [mde_indicator(sha1(n)) for n in range(3)])
    ]
    status, body, _ = await _batch_delete(session, emulator, mde_token, [ids[0], "999999", ids[1]])
    assert (status, body["error"]["code"]) == (404, "NotFound") and "999999" in body["error"]["message"]
    assert len(await _listed_values(session, emulator, mde_token)) == 3
    status, _, _ = await _batch_delete(session, emulator, mde_token, ids[:2])
    assert status == 204
    status, body, _ = await _batch_delete(session, emulator, mde_token, ids)  # two of them are gone now
    assert status == 404
    assert await _listed_values(session, emulator, mde_token) == [sha1(2)]


async def test_batch_delete_refuses_an_empty_or_long_list_and_invalid_ids(
    session: aiohttp.ClientSession, emulator: Emulator, mde_token: str
) -> None:
    (result,) = await _import(session, emulator, mde_token, [mde_indicator(sha1(1))])
    cases = [
        ([], "InvalidRequestBody"),
        ([result["id"]] * 501, "MaximumBatchSizeExceeded"),
        ([result["id"], int(result["id"])], "InvalidRequestBody"),  # ids are strings
        ([result["id"], "abc"], "InvalidRequestBody"),
        ([result["id"], ""], "InvalidRequestBody"),
        ([result["id"], None], "InvalidRequestBody"),
        (result["id"], "InvalidRequestBody"),  # not a list
    ]
    for ids, code in cases:
        status, body, _ = await _batch_delete(session, emulator, mde_token, ids)
        assert (status, body["error"]["code"]) == (400, code), ids
    status, body, _ = await mde_call(
        session,
        "POST",
        emulator.mde_url + "indicators/BatchDelete",
        mde_token,
        {"indicatorIds": [result["id"]]},
    )
    assert (status, body["error"]["code"]) == (400, "MissingRequiredParameter")
    assert await _listed_values(session, emulator, mde_token) == [sha1(1)]


async def test_batch_delete_counts_per_minute_with_imports_and_per_hour_on_its_own(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    config = EmulatorConfig(
        clock=fake_time.wall, mde_import_per_minute=2, mde_batch_delete_per_hour=3, mde_window_scale=0.01
    )
    async with running_emulator(config) as emu:
        token = await get_token(session, emu, MDE_RESOURCE)
        unknown = ["424242"]  # answered 404, and counted all the same
        assert (await _batch_delete(session, emu, token, unknown))[0] == 404
        await _import(session, emu, token, [mde_indicator(sha1(1))])
        status, body, headers = await _batch_delete(session, emu, token, unknown)  # the minute is full
        assert (status, body["error"]["code"], headers["Retry-After"]) == (429, "TooManyRequests", "1")
        fake_time.advance(0.6)  # a scaled minute
        assert (await _batch_delete(session, emu, token, unknown))[0] == 404
        fake_time.advance(0.6)
        assert (await _batch_delete(session, emu, token, unknown))[0] == 404
        fake_time.advance(0.6)
        status, body, headers = await _batch_delete(session, emu, token, unknown)  # 3 in the scaled hour
        assert status == 429 and "3 BatchDelete calls per hour" in body["error"]["message"]
        assert int(headers["Retry-After"]) >= 34  # until the first leaves the 36 s scaled hour
        await _import(session, emu, token, [mde_indicator(sha1(2))])  # imports have no hourly window
        fake_time.advance(36.0)
        assert (await _batch_delete(session, emu, token, unknown))[0] == 404


def test_the_emulator_command_takes_the_hourly_batch_delete_limit() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["emulator", "--mde-batch-delete-per-hour", "7", "--mde-window-scale", "0.5"])
    config = build_config(args)
    assert (config.mde_batch_delete_per_hour, config.mde_window_scale) == (7, 0.5)
    assert build_config(parser.parse_args(["emulator"])).mde_batch_delete_per_hour == 1500


async def test_expired_indicators_are_not_listed_and_leave_room_under_the_cap(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async with running_emulator(EmulatorConfig(clock=fake_time.wall, mde_tenant_cap=3)) as emu:
        token = await get_token(session, emu, MDE_RESOURCE)
        soon = _iso(fake_time.wall() + 60)
        first = await _import(
            session, emu, token, [mde_indicator(sha1(n), expirationTime=soon) for n in range(4)]
        )
        assert [r["isFailed"] for r in first] == [
            False,
            False,
            False,
            True,
        ]  # the cap counts them while active
        fake_time.advance(60)  # they expire at that instant
        assert await _listed_values(session, emu, token) == []
        tenant = emu.state()["tenants"]["contoso-demo"]
        assert (tenant["mde_indicators"], tenant["mde_expired_indicators"]) == (3, 3)
        status, body, _ = await mde_call(
            session, "GET", emu.mde_url + f"indicators?$filter=indicatorValue eq '{sha1(0)}'", token
        )
        assert (status, body["value"]) == (200, [])
        fresh = await _import(session, emu, token, [mde_indicator(sha1(n)) for n in range(10, 13)])
        assert not any(r["isFailed"] for r in fresh)
        # Already expired when sent: stored but not active, so it needs no room.
        past = await _import(session, emu, token, [mde_indicator(sha1(20), expirationTime=_iso(0))])
        assert not past[0]["isFailed"]
        # Bringing an expired one back needs room like a new one, and keeps its id.
        revived = mde_indicator(sha1(0), expirationTime=_iso(fake_time.wall() + 3600))
        status, body, _ = await mde_call(session, "POST", emu.mde_url + "indicators", token, revived)
        assert (status, body["error"]["code"]) == (400, "IndicatorLimitExceeded")
        status, _, _ = await _batch_delete(session, emu, token, [fresh[0]["id"], first[1]["id"]])
        assert status == 204  # an expired indicator is still found by its id
        status, body, _ = await mde_call(session, "POST", emu.mde_url + "indicators", token, revived)
        assert status == 200 and body["id"] == first[0]["id"]
        assert sorted(await _listed_values(session, emu, token)) == sorted([sha1(0), sha1(11), sha1(12)])
        tenant = emu.state()["tenants"]["contoso-demo"]
        assert (tenant["mde_indicators"], tenant["mde_expired_indicators"]) == (5, 2)
