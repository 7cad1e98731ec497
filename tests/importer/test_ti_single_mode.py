"""The ti target's single mode: one post per indicator, the server's message for a reject, lost answers
without duplicates, the workers' slots its posts share, and an auth failure among them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from feeds.model import Indicator, Kind
from importer.emulator import Emulator, EmulatorConfig, Faults, running_emulator
from importer.errors import AuthError
from importer.targets.ti.target import TiTarget
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, send_all, sha1, sha1s, spec_for, tenant, ti_target, wait_until

SPEC = spec_for("feed-a", title="Feed A", description="Indicators from feed A")


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


class HeldPosts:
    """A spy on the target's single posts (``create_ioc``) that holds each post until all ``slots``
    are busy, so posts overlap as far as the target lets them - on any machine, rather than if they
    happen to start within some answer time. ``peak``: the most posts ever in flight at once.

    The first posts wait for that as long as it takes (they start in one burst, so it comes at
    once unless the target keeps slots idle, and then ``peak`` tells). Once the slots have been
    full, later posts wait only ``straggle`` seconds: near the end of a run, and while a sender's
    own post is held (it starts no others meanwhile), there may be nobody left to fill them.

    With ``refuse``, the post of that value is refused for auth (AuthError) when it comes, and any
    post still held then never goes on: the target must cancel it.
    """

    def __init__(
        self, target: TiTarget, monkeypatch: pytest.MonkeyPatch, slots: int, *, refuse: str | None = None
    ) -> None:
        self.slots = slots
        self.refuse = refuse
        self.refused = False
        self.in_flight = 0
        self.peak = 0
        self.filled = 0  # how often the slots became all busy
        self.straggle = 0.05
        self._real = target._client.create_ioc
        monkeypatch.setattr(target._client, "create_ioc", self.post)

    async def post(self, body: Any) -> str:
        if body["Value"] == self.refuse:
            self.refused = True
            raise AuthError("the API refused a fresh access token")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.slots:
            self.filled += 1
        filled = self.filled
        try:
            patience = 2.0 if self.peak < self.slots else self.straggle
            # Until the slots are all busy - now, or at any moment since this post came.
            await wait_until(
                lambda: self.filled > filled or self.in_flight >= self.slots, timeout=patience, fail=False
            )
            if self.refused:
                await asyncio.Event().wait()  # held across the refusal: only a cancellation ends it
            return await self._real(body)
        finally:
            self.in_flight -= 1


async def test_single_mode_keeps_workers_requests_in_flight_for_one_batch(
    emulator: Emulator, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One batch left (a small feed, the end of a run): its posts use every free slot."""
    async with ti_target(emulator, fake_time, TransportStats(), bulk=False, workers=8) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        posts = HeldPosts(target, monkeypatch, slots=8)
        result = await target.send(definition, sha1s(16))
    assert len(result.imported) == 16 and not result.failed
    assert posts.peak == 8  # all the slots, never more
    assert tenant(emulator)["iocs"] == 16


async def test_single_mode_never_exceeds_workers_across_batches(
    emulator: Emulator, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ti_target(emulator, fake_time, TransportStats(), bulk=False, workers=4) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        posts = HeldPosts(target, monkeypatch, slots=4)
        total = await send_all(target, definition, sha1s(100), batch=16, workers=4)
    assert len(total.imported) == 100 and posts.peak == 4
    assert tenant(emulator)["duplicate_iocs"] == 0


async def test_single_mode_auth_failure_surfaces_as_itself(
    emulator: Emulator, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One post refused for auth: the batch's other posts are cancelled, the caller gets AuthError."""
    async with ti_target(emulator, fake_time, TransportStats(), bulk=False, workers=8) as target:
        definition = await target.resolve_definition(SPEC, dry_run=False)
        posts = HeldPosts(target, monkeypatch, slots=8, refuse=sha1(5))
        with pytest.raises(AuthError, match="refused a fresh access token"):
            async with asyncio.timeout(10):  # posts left running would keep send from returning
                await target.send(definition, sha1s(16))
    assert posts.refused
