"""The ti target against the emulator: definitions, bisection, quota, lost answers without duplicates,
retries given up, paging, deletes, and the errors that escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from feeds.model import Indicator, Kind
from importer.emulator import Emulator, EmulatorConfig, Faults, running_emulator
from importer.errors import AuthError, ConfigError, QuotaError, RetryableError
from importer.pipeline.engine import run_pipeline
from importer.report.counts import EXIT_FAILED
from importer.settings import FeedSettings
from importer.sources.feed import job_for
from importer.targets.registry import open_target
from importer.transport.connection import Secret
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, send_all, sha1s, spec_for, tenant, ti_target

SPEC = spec_for("feed-a", title="Feed A", description="Indicators from feed A")


async def test_urls_and_certificates_are_unsupported_on_ti(emulator: Emulator, fake_time: FakeTime) -> None:
    async with ti_target(emulator, fake_time, TransportStats()) as target:
        assert target.unsupported(Indicator(Kind.URL, "http://x.example/", "f:1")) == (
            "the ti target has no URL indicator type; use --target mde"
        )
        certificate = Indicator(Kind.CERT_SHA1, sha1s(1)[0].value, "f:2")
        assert "no certificate indicators" in (target.unsupported(certificate) or "")
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
        assert (await target.resolve_definition(changed, dry_run=True)).outcome == "would_update"
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
        deleted = await target.delete(definition, [(Kind.SHA1, "", i) for i in [*ids[:4], "999999"]])
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
