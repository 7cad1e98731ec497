"""The shared limiter: even pacing across concurrent senders, and a 429 pause that holds everyone."""

from __future__ import annotations

import asyncio

from importer.transport.ratelimit import RateLimiter
from tests.helpers import FakeTime


async def test_no_rate_means_no_waiting(fake_time: FakeTime) -> None:
    limiter = RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep)
    for _ in range(100):
        await limiter.acquire()
    assert fake_time.sleeps == []


async def test_concurrent_senders_are_spaced_evenly(fake_time: FakeTime) -> None:
    limiter = RateLimiter(60.0, clock=fake_time.clock, sleep=fake_time.sleep)  # one a second
    start = fake_time.now
    released: list[float] = []

    async def sender() -> None:
        await limiter.acquire()
        released.append(fake_time.now - start)

    await asyncio.gather(*(sender() for _ in range(5)))
    assert sorted(released) == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_a_pause_holds_every_sender_until_it_ends(fake_time: FakeTime) -> None:
    limiter = RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep)
    start = fake_time.now
    limiter.pause(30.0)
    released: list[float] = []

    async def sender() -> None:
        await limiter.acquire()
        released.append(fake_time.now - start)

    await asyncio.gather(*(sender() for _ in range(10)))
    assert released == [30.0] * 10


async def test_a_pause_extended_while_waiting_is_honoured(fake_time: FakeTime) -> None:
    limiter = RateLimiter(None, clock=fake_time.clock, sleep=fake_time.sleep)
    start = fake_time.now
    limiter.pause(5.0)
    limiter.pause(2.0)  # never shortens the pause in force
    assert limiter.paused_until == start + 5.0

    real_sleep = fake_time.sleep
    extended = False

    async def sleep(seconds: float) -> None:
        nonlocal extended
        await real_sleep(seconds)
        if not extended:  # another 429 arrives while we wait
            extended = True
            limiter.pause(10.0)

    limiter._sleep = sleep
    await limiter.acquire()
    assert fake_time.now - start == 15.0


async def test_pacing_resumes_after_a_pause(fake_time: FakeTime) -> None:
    limiter = RateLimiter(120.0, clock=fake_time.clock, sleep=fake_time.sleep)  # every 0.5 s
    start = fake_time.now
    await limiter.acquire()
    limiter.pause(10.0)
    released: list[float] = []

    async def sender() -> None:
        await limiter.acquire()
        released.append(fake_time.now - start)

    await asyncio.gather(*(sender() for _ in range(3)))
    assert sorted(released) == [10.0, 10.5, 11.0]
