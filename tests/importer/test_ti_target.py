"""The ti target against the emulator: definitions, bisection, quota, lost answers without
duplicates, paging, deletes, secrets kept out of logs, and a token expiring mid-run under throttling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from feeds.model import Indicator, Kind
from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig, Faults, running_emulator
from importer.errors import AuthError, ConfigError, QuotaError, RetryableError
from importer.model import BatchResult, InFlight, ResolvedDefinition
from importer.pipeline.engine import run_pipeline
from importer.pipeline.sources import job_for
from importer.report.counts import EXIT_FAILED
from importer.settings import FeedSettings
from importer.targets.registry import open_target
from importer.targets.ti.client import TiClient
from importer.targets.ti.rules import DEFAULT_AUDIENCE as TI_DEFAULT_AUDIENCE
from importer.targets.ti.target import TiTarget
from importer.transport.connection import Secret
from importer.transport.http import HttpClient, open_http
from importer.transport.stats import TransportStats
from tests.helpers import spec_for
from tests.importer.conftest import FakeTime, FastTime, connection_settings

SPEC = spec_for("feed-a", title="Feed A", description="Indicators from feed A")


@asynccontextmanager
async def ti_target(
    emu: Emulator,
    fake: FakeTime,
    stats: TransportStats,
    *,
    bulk: bool = True,
    workers: int = 16,
    **overrides: Any,
) -> AsyncIterator[TiTarget]:
    settings = connection_settings(emu, **overrides)
    async with open_target(
        "ti", settings, stats, sleep=fake.sleep, clock=fake.clock, bulk=bulk, in_flight=InFlight(workers)
    ) as t:
        assert isinstance(t, TiTarget)
        yield t


def sha1s(n: int, start: int = 0) -> list[Indicator]:
    return [Indicator(Kind.SHA1, f"{i:040x}", f"feed.txt:{i + 1}") for i in range(start, start + n)]


def tenant(emu: Emulator) -> dict[str, Any]:
    state: dict[str, Any] = emu.state()["tenants"][DEMO_CLIENT.tenant]
    return state


async def send_all(
    target: TiTarget, definition: ResolvedDefinition, items: list[Indicator], batch: int, workers: int
) -> BatchResult:
    """A miniature of the pipeline: ``workers`` concurrent senders over batches of ``batch``."""
    total = BatchResult()
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    queue: asyncio.Queue[list[Indicator]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            result = await target.send(definition, queue.get_nowait())
            total.imported += result.imported
            total.rejected += result.rejected
            total.failed += result.failed

    await asyncio.gather(*(worker() for _ in range(workers)))
    return total


async def test_urls_are_unsupported_on_ti(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_target(emulator, fake_time, TransportStats()) as target:
        assert target.unsupported(Indicator(Kind.URL, "http://x.example/", "f:1")) == (
            "the ti target has no URL indicator type; use --target mde"
        )
        assert target.unsupported(sha1s(1)[0]) is None


async def test_resolve_definition_creates_finds_updates_and_plans(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    async with ti_target(emulator, fake_time, TransportStats()) as target:
        planned = await target.resolve_definition(SPEC, dry_run=True)
        assert (planned.outcome, planned.id) == ("planned", "")
        assert [r async for r in target.existing(planned)] == []
        created = await target.resolve_definition(SPEC, dry_run=False)
        found = await target.resolve_definition(SPEC, dry_run=False)
        changed = spec_for("feed-a", title="Feed A", description="Indicators from feed A", severity="High")
        assert (await target.resolve_definition(changed, dry_run=True)).outcome == "planned"
        updated = await target.resolve_definition(changed, dry_run=False)
    assert created.outcome == "created" and found.outcome == "found" and updated.outcome == "updated"
    assert created.id == found.id == updated.id
    definitions = tenant(emulator)["alert_definitions"]
    assert len(definitions) == 1


async def test_a_refused_definition_is_a_config_error(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_target(emulator, fake_time, TransportStats()) as target:
        with pytest.raises(ConfigError, match=r"refused the alert definition 'feed-a'.*Severity"):
            await target.resolve_definition(
                spec_for("feed-a", title="t", description="d", severity="Catastrophic"),
                dry_run=False,
            )


async def test_a_lost_answer_never_creates_a_second_definition(fake_time: FakeTime) -> None:
    config = EmulatorConfig(api_faults=Faults(lost_after_write_rate=1.0))
    stats = TransportStats()
    async with running_emulator(config) as emu, ti_target(emu, fake_time, stats) as target:
        resolved = await target.resolve_definition(SPEC, dry_run=False)
        assert resolved.outcome == "created"
        assert len(tenant(emu)["alert_definitions"]) == 1
    assert stats.lost_writes_recovered == 1


async def test_bisection_isolates_exactly_the_bad_records(emulator: Emulator, fake_time: FakeTime) -> None:
    items = sha1s(50)
    bad_positions = (3, 17, 41)
    for p in bad_positions:
        items[p] = Indicator(Kind.SHA1, f"zz{p:038d}", f"feed.txt:{p + 1}")  # not hex: the server refuses it
    stats = TransportStats()
    async with ti_target(emulator, fake_time, stats) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        result = await target.send(definition, items)
    assert sorted(i.origin for i, _ in result.rejected) == sorted(f"feed.txt:{p + 1}" for p in bad_positions)
    for _, reason in result.rejected:
        assert "is not a valid Sha1" in reason
    assert len(result.imported) == 47 and not result.failed
    assert all(remote_id for _, remote_id in result.imported)
    assert tenant(emulator)["iocs"] == 47
    assert stats.retries == 0  # a 400 is split, never retried


async def test_single_mode_rejects_a_bad_record_with_the_servers_message(
    emulator: Emulator, fake_time: FakeTime
) -> None:
    async with ti_target(emulator, fake_time, TransportStats(), bulk=False) as target:
        assert target.max_batch == 16  # posted one by one, but journaled per batch
        definition = await target.resolve_definition(SPEC, dry_run=False)
        good = await target.send(definition, sha1s(1))
        bad = await target.send(definition, [*sha1s(3)[1:], Indicator(Kind.DOMAIN, "-bad-.example-", "f:9")])
    assert len(good.imported) == 1
    assert len(bad.imported) == 2
    assert len(bad.rejected) == 1 and "not a valid DomainName" in bad.rejected[0][1]
    assert emulator.state()["requests_by_status"]["400"] == 1
    assert emulator.state()["requests_by_status"]["201"] >= 3 + 1  # one POST per IOC, plus the definition


async def test_quota_fails_the_batch_without_bisecting(fake_time: FakeTime) -> None:
    async with (
        running_emulator(EmulatorConfig(max_iocs=10)) as emu,
        ti_target(emu, fake_time, TransportStats()) as t,
    ):
        definition = await t.resolve_definition(SPEC, dry_run=False)
        result = await t.send(definition, sha1s(20))
        statuses = emu.state()["requests_by_status"]
    assert len(result.failed) == 20 and not result.imported and not result.rejected
    assert "quota" in result.failed[0][1]
    assert statuses["507"] == 1


async def test_a_full_definitions_quota_fails_that_feed_not_the_configuration(
    fake_time: FakeTime, tmp_path: Path
) -> None:
    """507 on creating a definition is a QuotaError (exit 1: a rerun retries), never a ConfigError."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("".join(f"{i:040x}\n" for i in range(5)))
    second.write_text("".join(f"{i:040x}\n" for i in range(100, 103)))
    specs = [SPEC, spec_for("feed-b", title="B", description="b")]
    feeds = [FeedSettings(str(first), specs[0]), FeedSettings(str(second), specs[1])]
    async with (
        running_emulator(EmulatorConfig(max_alert_definitions=1)) as emu,
        ti_target(emu, fake_time, TransportStats()) as target,
    ):
        report = await run_pipeline(target, [job_for(f.source, f.definition) for f in feeds])
        # The two feeds resolve their definitions concurrently: whichever came first got the one slot.
        won = 0 if report.feeds[0].imported else 1
        winner, loser = report.feeds[won], report.feeds[1 - won]
        with pytest.raises(QuotaError, match=rf"alert definition '{specs[1 - won].name}'.*quota of 1 alert"):
            await target.resolve_definition(specs[1 - won], dry_run=False)
        assert emu.state()["requests_by_status"]["507"] == 2
    assert winner.imported == (5, 3)[won] and not winner.error
    assert loser.failed == (5, 3)[1 - won] and loser.imported == 0 and not loser.config_error
    assert loser.error is not None and "quota" in loser.error
    assert report.exit_code() == EXIT_FAILED


async def test_exhausted_retries_on_a_definition_raise_the_last_error(
    emulator: Emulator, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    async def unavailable(body: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        raise RetryableError("creating the alert definition failed (HTTP 503)", status=503)

    async with ti_target(emulator, fake_time, TransportStats(), max_attempts=3) as target:
        monkeypatch.setattr(target._client, "create_definition", unavailable)
        with pytest.raises(RetryableError, match=r"HTTP 503") as raised:
            await target.resolve_definition(SPEC, dry_run=False)
    assert not isinstance(raised.value, ConfigError) and calls == 3


async def test_exhausted_retries_fail_the_batch_with_the_last_error(fake_time: FakeTime) -> None:
    stats = TransportStats()
    async with running_emulator() as emu, ti_target(emu, fake_time, stats, max_attempts=3) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        emu.set_api_faults(Faults(error_rate=1.0))
        result = await target.send(definition, sha1s(10))
    assert len(result.failed) == 10
    assert "HTTP 50" in result.failed[0][1]
    assert stats.retries == 2 and stats.server_errors == 3


async def test_lost_answers_in_bulk_leave_no_duplicates(fake_time: FakeTime) -> None:
    config = EmulatorConfig(api_faults=Faults(lost_after_write_rate=0.05, reset_rate=0.02, seed=7))
    stats = TransportStats()
    items = sha1s(2000)
    async with running_emulator(config) as emu, ti_target(emu, fake_time, stats, max_attempts=8) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        result = await send_all(target, definition, items, batch=100, workers=8)
        state = emu.state()
    assert state["faults_injected"]["lost_after_write"] >= 1
    assert state["totals"]["duplicate_iocs"] == 0
    assert state["totals"]["iocs"] == 2000
    assert len(result.imported) == 2000 and not result.failed and not result.rejected
    assert sorted(i.value for i, _ in result.imported) == sorted(i.value for i in items)
    assert stats.lost_writes_recovered >= state["faults_injected"]["lost_after_write"]


async def test_lost_answers_in_single_mode_leave_no_duplicates(fake_time: FakeTime) -> None:
    config = EmulatorConfig(api_faults=Faults(lost_after_write_rate=0.1, reset_rate=0.05, seed=11))
    stats = TransportStats()
    async with (
        running_emulator(config) as emu,
        ti_target(emu, fake_time, stats, bulk=False, max_attempts=8) as t,
    ):
        definition = await t.resolve_definition(SPEC, dry_run=False)
        result = await send_all(t, definition, sha1s(200), batch=1, workers=16)
        state = emu.state()
    assert state["faults_injected"]["lost_after_write"] >= 5
    assert state["totals"]["duplicate_iocs"] == 0
    assert state["totals"]["iocs"] == 200 and len(result.imported) == 200


@pytest.mark.parametrize("emulator", [EmulatorConfig(page_size=7)], indirect=True)
async def test_existing_pages_through_the_definition(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_target(emulator, fake_time, TransportStats()) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        other = await target.resolve_definition(spec_for("other", title="O", description="o"), dry_run=False)
        sent = await target.send(definition, sha1s(30))
        await target.send(other, sha1s(5, start=100))
        held = [r async for r in target.existing(definition)]
    assert sorted(r.value for r in held) == sorted(i.value for i in sha1s(30))
    assert {r.remote_id for r in held} == {remote_id for _, remote_id in sent.imported}


async def test_delete_removes_the_given_indicators(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_target(emulator, fake_time, TransportStats()) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        sent = await target.send(definition, sha1s(10))
        ids = [remote_id for _, remote_id in sent.imported]
        deleted = await target.delete(definition, [*ids[:4], "999999"])
        held = [r async for r in target.existing(definition)]
    assert sorted(deleted) == sorted([*ids[:4], "999999"])  # 999999: already gone counts as deleted
    assert len(held) == 6


async def test_an_auth_error_escapes_send(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_target(emulator, fake_time, TransportStats()) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
    async with ti_target(emulator, fake_time, TransportStats(), client_secret=Secret("wrong")) as target:
        with pytest.raises(AuthError, match="AADSTS7000215"):
            await target.send(definition, sha1s(3))


async def test_an_unknown_target_is_a_config_error(emulator: Emulator, fake_time: FakeTime) -> None:
    # (the mde target has its own tests: tests/importer/test_mde_target.py)
    with pytest.raises(ConfigError, match="unknown target 'xdr': use ti or mde"):
        async with open_target("xdr", connection_settings(emulator), TransportStats()):  # type: ignore[arg-type]
            pass


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
    fast = FastTime(factor=50.0)  # 1 s of test time is 50 s for both sides
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


async def _in_flight_peak(target: TiTarget, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on single POSTs: [now in flight, most ever in flight]."""
    counts = [0, 0]
    real = target._client.create_ioc

    async def counted(body: Any) -> str:
        counts[0] += 1
        counts[1] = max(counts[1], counts[0])
        try:
            await asyncio.sleep(0.01)  # an answer that takes a moment, so posts overlap if they can
            return await real(body)
        finally:
            counts[0] -= 1

    monkeypatch.setattr(target._client, "create_ioc", counted)
    return counts


async def test_single_mode_keeps_workers_requests_in_flight_for_one_batch(
    emulator: Emulator, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One batch left (a small feed, the end of a run): its posts use every free slot."""
    async with ti_target(emulator, fake_time, TransportStats(), bulk=False, workers=8) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        counts = await _in_flight_peak(target, monkeypatch)
        result = await target.send(definition, sha1s(16))
    assert len(result.imported) == 16 and not result.failed
    assert counts[1] == 8  # all the slots, never more
    assert tenant(emulator)["iocs"] == 16


async def test_single_mode_never_exceeds_workers_across_batches(
    emulator: Emulator, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ti_target(emulator, fake_time, TransportStats(), bulk=False, workers=4) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        counts = await _in_flight_peak(target, monkeypatch)
        total = await send_all(target, definition, sha1s(100), batch=16, workers=4)
    assert len(total.imported) == 100 and counts[1] == 4
    assert tenant(emulator)["duplicate_iocs"] == 0


async def test_single_mode_auth_failure_surfaces_as_itself(
    emulator: Emulator, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One post refused for auth: the batch's other posts are cancelled, the caller gets AuthError."""
    async with ti_target(emulator, fake_time, TransportStats(), bulk=False, workers=8) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        real = target._client.create_ioc

        async def refused_once(body: Any) -> str:
            if body["Value"] == f"{5:040x}":
                raise AuthError("the API refused a fresh access token")
            await asyncio.sleep(0.05)
            return await real(body)

        monkeypatch.setattr(target._client, "create_ioc", refused_once)
        with pytest.raises(AuthError, match="refused a fresh access token"):
            await target.send(definition, sha1s(16))
