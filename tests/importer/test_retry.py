"""Retry: bounded by attempts and total time, Retry-After as a floor, only retryable errors, by type."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from importer.errors import AuthError, PermanentError, RetryableError, ThrottledError
from importer.transport import retry as retry_module
from importer.transport.http import parse_retry_after
from tests.helpers import FAILED, SCHEDULED, UNSCHEDULED, FakeTime
from tests.helpers import fake_retrier as make


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


async def test_backoff_wins_over_a_short_retry_after(fake_time: FakeTime) -> None:
    # From the fourth attempt on, the backoff window (up to 8 s) dwarfs a 0.1 s Retry-After.
    retrier, _ = make(fake_time, max_attempts=1, initial_backoff=1.0, max_backoff=8.0, max_retry_seconds=1e9)
    calls = 0

    async def throttled() -> None:
        nonlocal calls
        calls += 1
        if calls <= 30:
            raise ThrottledError("429", retry_after=0.1)

    await retrier.call(throttled)
    assert calls == 31  # 30 throttles, none counted against max_attempts=1
    assert min(fake_time.sleeps) >= 0.1  # the floor
    assert fake_time.sleeps[0] <= 1.1  # attempt 1: backoff <= 1 s, schedule 0.1 s + jitter <= 1 s
    assert max(fake_time.sleeps[3:]) > 1.1  # later ones: the larger backoff decided


async def test_mixed_failures_and_throttles_count_only_failures(fake_time: FakeTime) -> None:
    retrier, stats = make(fake_time, max_attempts=3, max_retry_seconds=1000.0)
    script: list[Exception] = [FAILED, SCHEDULED, SCHEDULED, UNSCHEDULED, SCHEDULED, FAILED, FAILED]
    calls = 0

    async def scripted() -> None:
        nonlocal calls
        calls += 1
        raise script[calls - 1]

    with pytest.raises(RetryableError) as raised:
        await retrier.call(scripted)
    assert calls == 6  # failures at calls 1, 4 and 6: the third one stops; throttles in between free
    assert raised.value is script[5]  # reraise=True: the real last error, not tenacity's RetryError
    assert stats.retries == 5


async def test_a_first_success_builds_no_retry_loop(
    fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loop(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tenacity loop was built for a call that succeeded at once")

    retrier, stats = make(fake_time)
    monkeypatch.setattr(retry_module, "AsyncRetrying", no_loop)

    async def ok() -> str:
        return "ok"

    assert await retrier.call(ok) == "ok"
    assert fake_time.sleeps == []
    assert stats.retries == 0


async def test_the_first_failure_is_replayed_not_called_again(fake_time: FakeTime) -> None:
    retrier, stats = make(fake_time, max_attempts=2)
    calls = 0

    async def once_flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryableError("HTTP 503")
        return calls

    assert await retrier.call(once_flaky) == 2  # fn ran twice: the loop's first attempt replayed
    assert stats.retries == 1
    assert len(fake_time.sleeps) == 1


async def test_retried_by_type_not_by_message(fake_time: FakeTime) -> None:
    retrier, stats = make(fake_time, max_attempts=3)
    calls = 0

    async def sounds_transient() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("HTTP 503 Service Unavailable, try again", status=400)

    with pytest.raises(PermanentError):
        await retrier.call(sounds_transient)
    assert calls == 1

    class Custom(RetryableError):
        pass

    calls = 0

    async def sounds_permanent() -> None:
        nonlocal calls
        calls += 1
        raise Custom("HTTP 400 Bad Request")

    with pytest.raises(Custom):
        await retrier.call(sounds_permanent)
    assert calls == 3
    assert stats.retries == 2


async def test_concurrent_calls_keep_their_own_loops(fake_time: FakeTime) -> None:
    retrier, stats = make(fake_time, max_attempts=3)
    calls = {"a": 0, "b": 0}

    def flaky(name: str, failures: int) -> Callable[[], Awaitable[str]]:
        async def attempt() -> str:
            calls[name] += 1
            if calls[name] <= failures:
                raise ThrottledError("429", retry_after=None) if name == "a" else FAILED
            return name

        return attempt

    assert list(await asyncio.gather(retrier.call(flaky("a", 2)), retrier.call(flaky("b", 2)))) == ["a", "b"]
    assert calls == {"a": 3, "b": 3}  # each call had its own three attempts
    assert stats.retries == 4


async def test_before_sleep_counts_and_logs_at_debug(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    retrier, stats = make(fake_time, max_attempts=3)

    async def always() -> None:
        raise RetryableError("HTTP 502")

    with caplog.at_level(logging.DEBUG, logger="importer.transport.retry"), pytest.raises(RetryableError):
        await retrier.call(always)
    assert stats.retries == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "importer.transport.retry"]
    assert [m.split(";")[0] for m in messages] == [
        "attempt 1 failed (HTTP 502)",
        "attempt 2 failed (HTTP 502)",
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "importer.transport.retry")
