"""The ti target's tokens: neither the secret nor a token in any log, and a token expiring mid-run
under throttling with 64 concurrent uploads."""

from __future__ import annotations

import asyncio
import logging

import pytest

from feeds.model import Indicator, Kind
from importer.emulator import DEMO_CLIENT, EmulatorConfig, Faults, running_emulator
from importer.errors import AuthError
from importer.model import InFlight
from importer.targets.registry import open_target
from importer.targets.ti.client import TiClient
from importer.targets.ti.rules import DEFAULT_AUDIENCE as TI_DEFAULT_AUDIENCE
from importer.targets.ti.target import TiTarget
from importer.transport.connection import Secret
from importer.transport.http import HttpClient, open_http
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, sha1s, spec_for

SPEC = spec_for("feed-a", title="Feed A", description="Indicators from feed A")


async def test_secret_and_tokens_never_appear_in_debug_logs(
    caplog: pytest.LogCaptureFixture, fake_time: FakeTime
) -> None:
    caplog.set_level(logging.DEBUG)
    server_time = FakeTime()
    config = EmulatorConfig(
        clock=server_time.wall, api_faults=Faults(lost_after_write_rate=0.2, error_rate=0.1)
    )
    tokens: list[str] = []
    errors: list[str] = []
    async with running_emulator(config) as emu:
        settings = connection_settings(emu, max_attempts=8)
        stats = TransportStats()
        async with open_http(
            settings,
            stats,
            default_audience=TI_DEFAULT_AUDIENCE,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        ) as http:
            target = TiTarget(TiClient(http, settings.api_url), http.retrier, stats)
            definition = await target.resolve_definition(SPEC, dry_run=False)
            tokens.append(_current_token(http))
            await target.send(definition, sha1s(100))
            server_time.advance(4000)  # the server expires the token: a 401, a refresh, a re-send
            result = await target.send(definition, [*sha1s(100, start=100), Indicator(Kind.SHA1, "x", "f:0")])
            tokens.append(_current_token(http))
            errors += [reason for _, reason in result.rejected + result.failed]
            errors.append(repr(http.auth))
            [r async for r in target.existing(definition)]
        async with open_http(
            connection_settings(emu, client_secret=Secret("wrong-" + DEMO_CLIENT.client_secret)),
            TransportStats(),
            default_audience=TI_DEFAULT_AUDIENCE,
        ) as http:
            with pytest.raises(AuthError) as caught:
                await http.request("GET", emu.ti_url + "AlertDefinitions")
            errors.append(str(caught.value))
    assert stats.auth_retries >= 1 and len(set(tokens)) == 2
    assert caplog.records, "expected DEBUG records to inspect"
    text = "\n".join([caplog.text, *(r.getMessage() for r in caplog.records), *errors])
    assert DEMO_CLIENT.client_secret not in text
    for token in tokens:
        assert token not in text


def _current_token(http: HttpClient) -> str:
    token = http.auth._token  # the test needs the real strings to prove they never leak
    assert token is not None
    return token.value


async def test_token_expiring_mid_run_under_throttling_with_64_concurrent_uploads() -> None:
    """The closing scenario of the API-client issue (see the README's api-client section).

    64 bulk uploads start at once; the server takes 40 requests a minute (429 + Retry-After
    beyond), and its clock runs 25 % fast, so the 70 s tokens die on the server ~56 s after
    issue while we would refresh them at 63 s: the wave that resumes after the throttle pause
    meets an expired token (401), and every proactive refresh window is exercised too.
    """
    fast = FakeTime(speedup=50.0)  # 1 s of test time is 50 s for both sides
    server_clock = lambda: 1_700_000_000.0 + 1.25 * (fast.clock() - fast.start)  # noqa: E731
    config = EmulatorConfig(
        clock=server_clock,
        token_faults=Faults(token_lifetime=70),
        api_faults=Faults(throttle_per_minute=40),
    )
    stats = TransportStats()
    items = sha1s(640)
    async with running_emulator(config) as emu:
        settings = connection_settings(emu, max_attempts=6, max_retry_seconds=600.0)
        async with open_target(
            "ti", settings, stats, sleep=fast.sleep, clock=fast.clock, in_flight=InFlight(64)
        ) as target:
            definition = await target.resolve_definition(SPEC, dry_run=False)
            started = fast.clock()
            results = await asyncio.gather(
                *(target.send(definition, items[i * 10 : i * 10 + 10]) for i in range(64))
            )
            elapsed = fast.clock() - started
        state = emu.state()
    imported = [i for r in results for i, _ in r.imported]
    assert sorted(i.value for i in imported) == sorted(i.value for i in items)
    assert not any(r.failed or r.rejected for r in results)
    assert state["totals"]["iocs"] == 640 and state["totals"]["duplicate_iocs"] == 0
    # Throttled: at least the 24 uploads beyond the first minute's 40 were told to wait, and did.
    assert stats.throttled >= 24 and stats.throttled == state["faults_injected"]["throttle"]
    assert elapsed >= 50.0
    # The token expired mid-run, yet token calls stay one per lifetime, never one per request.
    assert 2 <= state["tokens_issued"] <= 2 + elapsed / 50.0
    assert stats.token_refreshes == state["tokens_issued"]
    # Every 401 was re-sent exactly once, and none survived its refresh.
    assert stats.auth_retries == state["requests_by_status"].get("401", 0)
