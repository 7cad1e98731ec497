"""Auth against the emulator's token endpoint: caching, single-flight refresh, one re-send on 401,
clear token-endpoint errors, and no secret anywhere it could leak."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from importer.emulator import ClientApp, Emulator, EmulatorConfig, Faults, running_emulator
from importer.errors import AuthError, ConfigError
from importer.targets.registry import package
from importer.transport.connection import ConnectionSettings, Secret
from importer.transport.http import HttpClient, open_http
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings


@asynccontextmanager
async def http_for(
    emu: Emulator, fake: FakeTime, stats: TransportStats, **overrides: Any
) -> AsyncIterator[HttpClient]:
    settings = connection_settings(emu, **overrides)
    async with open_http(
        settings,
        stats,
        default_audience=package("ti").default_audience,
        sleep=fake.sleep,
        clock=fake.clock,
        wall_clock=fake.wall,
    ) as http:
        yield http


async def list_definitions(http: HttpClient, emu: Emulator) -> Any:
    return await http.request("GET", emu.ti_url + "AlertDefinitions")


def test_the_secret_never_shows_in_reprs() -> None:
    secret = Secret("hunter2-very-secret")
    settings = ConnectionSettings(
        "https://login.example/t/oauth2/token", "https://api.example/", "app", secret
    )
    for text in (repr(secret), str(secret), repr(settings), str(settings), f"{settings}"):
        assert "hunter2" not in text
    assert secret.reveal() == "hunter2-very-secret"


@pytest.mark.parametrize("version", [1, 2])
async def test_one_token_serves_many_requests(emulator: Emulator, fake_time: FakeTime, version: int) -> None:
    stats = TransportStats()
    async with http_for(emulator, fake_time, stats, auth_url=emulator.auth_url(version)) as http:
        for _ in range(5):
            assert (await list_definitions(http, emulator))["value"] == []
    assert emulator.state()["tokens_issued"] == 1
    assert stats.token_refreshes == 1
    assert stats.requests == 5


async def test_refreshes_shortly_before_expiry_not_on_every_call(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    stats = TransportStats()
    async with http_for(emulator, fake_time, stats) as http:
        await list_definitions(http, emulator)
        fake_time.advance(3299)  # lifetime 3600 s: refresh 5 minutes early, at 3300 s
        await list_definitions(http, emulator)
        await list_definitions(http, emulator)
        assert emulator.state()["tokens_issued"] == 1
        fake_time.advance(2)
        await list_definitions(http, emulator)
        await list_definitions(http, emulator)
    assert emulator.state()["tokens_issued"] == 2


async def test_fifty_concurrent_requests_with_an_expired_token_make_one_token_call(
    fake_time: FakeTime,
) -> None:
    stats = TransportStats()
    async with (
        running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu,
        http_for(emu, fake_time, stats) as http,
    ):
        await list_definitions(http, emu)
        fake_time.advance(3601)  # expired for both sides
        await asyncio.gather(*(list_definitions(http, emu) for _ in range(50)))
        state = emu.state()
    assert state["tokens_issued"] == 2
    assert state["requests_by_status"].get("401", 0) == 0  # refreshed before sending, not after
    assert stats.token_refreshes == 2


async def test_fifty_concurrent_401s_for_one_token_make_one_refresh(fake_time: FakeTime) -> None:
    # Only the server's clock moves: our cache still trusts the token, every request gets a 401.
    server_time = FakeTime()
    stats = TransportStats()
    async with (
        running_emulator(EmulatorConfig(clock=server_time.wall)) as emu,
        http_for(emu, fake_time, stats) as http,
    ):
        await list_definitions(http, emu)
        server_time.advance(3601)
        answers = await asyncio.gather(*(list_definitions(http, emu) for _ in range(50)))
        state = emu.state()
    assert all(a["value"] == [] for a in answers)
    assert state["tokens_issued"] == 2  # one refresh for fifty 401s
    assert state["requests_by_status"]["401"] == 50
    assert stats.auth_retries == 50  # each request re-sent exactly once


async def test_a_second_401_is_an_auth_error_after_exactly_one_refresh(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    # A token for the MDE API is a valid token that the TI API refuses: 401 however often we refresh.
    stats = TransportStats()
    async with http_for(
        emulator, fake_time, stats, audience="https://api.securitycenter.microsoft.com"
    ) as http:
        with pytest.raises(AuthError, match=r"HTTP 401"):
            await list_definitions(http, emulator)
    state = emulator.state()
    assert state["tokens_issued"] == 2
    assert state["requests_by_status"]["401"] == 2
    assert stats.auth_retries == 1
    assert stats.retries == 0  # an auth error is never retried


class ServerClock:
    """The emulator's wall clock on fake time, making time pass at chosen reads of it.

    ``jumps``: advance before answering, one per read (the server's reads are one per token issued
    and one per API request authorized). ``after_next``: advance right after the next read - time
    that passes once the server has answered, before we see the answer.
    """

    def __init__(self, fake: FakeTime) -> None:
        self.fake = fake
        self.jumps: list[float] = []
        self.after_next = 0.0

    def __call__(self) -> float:
        if self.jumps:
            self.fake.advance(self.jumps.pop(0))
        now = self.fake.wall()
        if self.after_next:
            self.fake.advance(self.after_next)
            self.after_next = 0.0
        return now


async def test_a_token_lifetime_counts_from_when_it_was_asked_for(fake_time: FakeTime) -> None:
    server = ServerClock(fake_time)
    config = EmulatorConfig(clock=server, token_faults=Faults(token_lifetime=2))
    async with running_emulator(config) as emu, http_for(emu, fake_time, TransportStats()) as http:
        server.after_next = 1.5  # the token's answer takes 1.5 s to reach us
        await list_definitions(http, emu)
        fake_time.advance(0.6)  # 2.1 s after the server issued it: expired there
        await list_definitions(http, emu)
        state = emu.state()
    assert state["requests_by_status"].get("401", 0) == 0  # we knew: refreshed before sending
    assert state["tokens_issued"] == 2


async def test_a_token_expiring_in_flight_during_the_re_send_is_refreshed_again(fake_time: FakeTime) -> None:
    server = ServerClock(fake_time)
    config = EmulatorConfig(clock=server, token_faults=Faults(token_lifetime=1))
    stats = TransportStats()
    async with running_emulator(config) as emu, http_for(emu, fake_time, stats) as http:
        # issue, then 2 s pass before the server checks it (401); the same for the refreshed token.
        server.jumps = [0, 2, 0, 2]
        assert (await list_definitions(http, emu))["value"] == []
        state = emu.state()
    assert state["requests_by_status"]["401"] == 2
    assert state["tokens_issued"] == 3
    assert stats.auth_retries == 2


async def test_tokens_that_always_expire_in_flight_end_in_an_auth_error(fake_time: FakeTime) -> None:
    server = ServerClock(fake_time)
    config = EmulatorConfig(clock=server, token_faults=Faults(token_lifetime=1))
    stats = TransportStats()
    async with running_emulator(config) as emu, http_for(emu, fake_time, stats) as http:
        server.jumps = [0, 2] * 20
        with pytest.raises(AuthError, match=r"HTTP 401"):
            await list_definitions(http, emu)
        state = emu.state()
    assert state["requests_by_status"]["401"] == 5  # the request and four re-sends, then it stops
    assert stats.auth_retries == 4


BAD_CLIENTS = [
    ("wrong secret", {"client_secret": Secret("not-the-secret")}, r"AADSTS7000215.*TI_CLIENT_SECRET"),
    ("unknown app", {"client_id": "no-such-app"}, r"no-such-app.*AADSTS700016"),
    ("resource on v2", {"auth_version": "v1", "auth_url": "{v2}"}, r"AADSTS901002"),
    ("unknown resource", {"audience": "https://nowhere.example"}, r"AADSTS500011"),
]


@pytest.mark.parametrize(("case", "overrides", "message"), BAD_CLIENTS, ids=[c[0] for c in BAD_CLIENTS])
async def test_token_endpoint_refusals_are_one_clear_sentence(
    emulator: Emulator, fake_time: FakeTime, case: str, overrides: dict[str, Any], message: str
) -> None:
    if overrides.get("auth_url") == "{v2}":
        overrides = {**overrides, "auth_url": emulator.auth_url(2)}
    async with http_for(emulator, fake_time, TransportStats(), **overrides) as http:
        with pytest.raises(AuthError, match=message) as caught:
            await list_definitions(http, emulator)
    assert "\n" not in str(caught.value)
    assert emulator.state()["requests_by_status"].get("200", 0) == 0


async def test_unknown_tenant_and_expired_secret(fake_time: FakeTime) -> None:
    expired = ClientApp("old-app", "old-secret", "contoso-demo", secret_expired=True)
    async with running_emulator(EmulatorConfig(clients=(expired,))) as emu:
        async with http_for(
            emu, fake_time, TransportStats(), client_id="old-app", client_secret=Secret("old-secret")
        ) as h:
            with pytest.raises(AuthError, match=r"expired \(AADSTS7000222\): create a new secret"):
                await list_definitions(h, emu)
        async with http_for(emu, fake_time, TransportStats(), auth_url=emu.auth_url(1, "nobody")) as h:
            with pytest.raises(AuthError, match=r"tenant was not found \(AADSTS90002\)"):
                await list_definitions(h, emu)


async def test_a_refused_token_stops_every_waiter_without_more_token_calls(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    async with http_for(emulator, fake_time, TransportStats(), client_secret=Secret("wrong")) as http:
        results = await asyncio.gather(
            *(list_definitions(http, emulator) for _ in range(20)), return_exceptions=True
        )
    assert all(isinstance(r, AuthError) for r in results)
    assert emulator.state()["tokens_issued"] == 0
    # One token call, not twenty (a wrong secret is 401 invalid_client).
    assert emulator.state()["requests_by_status"].get("401", 0) == 1


async def test_an_unreachable_token_endpoint_is_a_config_error(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/contoso-demo/oauth2/token"
    stats = TransportStats()
    async with http_for(emulator, fake_time, stats, auth_url=url) as http:
        with pytest.raises(ConfigError, match=rf"cannot reach the token endpoint http://127.0.0.1:{port}/"):
            await list_definitions(http, emulator)
    assert stats.connection_errors == 4  # max_attempts, with injected sleeps in between


async def test_a_failing_token_endpoint_is_retried_then_an_auth_error(fake_time: FakeTime) -> None:
    config = EmulatorConfig(token_faults=Faults(error_rate=1.0))
    async with running_emulator(config) as emu, http_for(emu, fake_time, TransportStats()) as http:
        with pytest.raises(AuthError, match=r"kept failing"):
            await list_definitions(http, emu)
        statuses = emu.state()["requests_by_status"]
    assert statuses.get("500", 0) + statuses.get("503", 0) == 4


async def test_a_flaky_token_endpoint_is_retried_until_it_answers(fake_time: FakeTime) -> None:
    config = EmulatorConfig(token_faults=Faults(error_rate=0.5, seed=3))
    stats = TransportStats()
    async with running_emulator(config) as emu, http_for(emu, fake_time, stats, max_attempts=10) as http:
        assert (await list_definitions(http, emu))["value"] == []
        assert emu.state()["tokens_issued"] == 1
