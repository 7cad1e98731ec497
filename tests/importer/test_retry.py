"""Retry: bounded by attempts and total time, Retry-After as a floor, only retryable errors, by type."""

from __future__ import annotations

import random

import pytest

from importer.errors import AuthError, PermanentError, RetryableError, ThrottledError
from importer.transport.http import parse_retry_after
from importer.transport.retry import Retrier, RetryPolicy
from importer.transport.stats import TransportStats
from tests.importer.conftest import FakeTime


def make(fake: FakeTime, **policy: float) -> tuple[Retrier, TransportStats]:
    stats = TransportStats()
    retrier = Retrier(
        RetryPolicy(**policy),  # type: ignore[arg-type]
        stats,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(1),
    )
    return retrier, stats


async def test_retries_until_success_and_counts(fake_time: FakeTime) -> None:
    retrier, stats = make(fake_time, max_attempts=5)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("HTTP 503")
        return "ok"

    assert await retrier.call(flaky) == "ok"
    assert calls == 3
    assert stats.retries == 2
    assert len(fake_time.sleeps) == 2


async def test_gives_up_after_max_attempts_with_the_real_error(fake_time: FakeTime) -> None:
    retrier, stats = make(fake_time, max_attempts=4)
    calls = 0

    async def always() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError(f"HTTP 500 (attempt {calls})", status=500)

    with pytest.raises(RetryableError, match=r"attempt 4"):
        await retrier.call(always)
    assert calls == 4
    assert stats.retries == 3


@pytest.mark.parametrize("error", [PermanentError("HTTP 400", status=400), AuthError("no")])
async def test_permanent_errors_are_never_retried(fake_time: FakeTime, error: Exception) -> None:
    retrier, stats = make(fake_time)
    calls = 0

    async def bad() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await retrier.call(bad)
    assert calls == 1
    assert stats.retries == 0
    assert fake_time.sleeps == []


async def test_retry_after_is_a_floor(fake_time: FakeTime) -> None:
    retrier, _ = make(fake_time, initial_backoff=0.01, max_backoff=0.01)
    calls = 0

    async def throttled() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ThrottledError("429", retry_after=7.0)

    await retrier.call(throttled)
    assert len(fake_time.sleeps) == 1
    assert 7.0 <= fake_time.sleeps[0] <= 7.01  # the floor, plus jitter so paused senders spread out


async def test_total_time_budget_stops_before_overrunning(fake_time: FakeTime) -> None:
    retrier, _ = make(fake_time, max_attempts=100, max_retry_seconds=20.0)
    calls = 0

    async def throttled() -> None:
        nonlocal calls
        calls += 1
        raise ThrottledError("429", retry_after=8.0)

    with pytest.raises(ThrottledError):
        await retrier.call(throttled)
    # 8 s + 8 s fit into 20 s; a third wait would end at 24 s: not started.
    assert calls == 3
    assert sum(fake_time.sleeps) <= 20.0


async def test_throttling_with_retry_after_is_bounded_by_time_not_attempts(fake_time: FakeTime) -> None:
    retrier, stats = make(fake_time, max_attempts=2, max_retry_seconds=100.0)
    calls = 0

    async def throttled_five_times() -> str:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise ThrottledError("429", retry_after=10.0)
        return "ok"

    assert await retrier.call(throttled_five_times) == "ok"
    assert stats.retries == 5

    calls = 0

    async def throttled_forever() -> None:
        nonlocal calls
        calls += 1
        raise ThrottledError("429", retry_after=10.0)

    with pytest.raises(ThrottledError):
        await retrier.call(throttled_forever)
    assert 5 <= calls <= 10  # 10 s plus jitter each, within 100 s: far beyond max_attempts

    calls = 0

    async def throttled_without_retry_after() -> None:
        nonlocal calls
        calls += 1
        raise ThrottledError("429", retry_after=None)

    with pytest.raises(ThrottledError):
        await retrier.call(throttled_without_retry_after)
    assert calls == 2  # no schedule from the server: an ordinary failure


async def test_backoff_is_exponential_with_full_jitter(fake_time: FakeTime) -> None:
    retrier, _ = make(fake_time, max_attempts=8, initial_backoff=1.0, max_backoff=10.0, max_retry_seconds=1e9)

    async def always() -> None:
        raise RetryableError("HTTP 503")

    with pytest.raises(RetryableError):
        await retrier.call(always)
    ceilings = [1, 2, 4, 8, 10, 10, 10]
    assert len(fake_time.sleeps) == 7
    for slept, ceiling in zip(fake_time.sleeps, ceilings, strict=True):
        assert 0.0 <= slept <= ceiling
    assert len(set(fake_time.sleeps)) == 7  # jittered, not a fixed schedule


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=lambda: now) == 30.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=lambda: now) == 0.0
