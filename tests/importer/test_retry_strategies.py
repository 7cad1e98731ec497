"""The retry strategies one by one (tenacity's stop and wait parts, as the Retrier composes them)."""

from __future__ import annotations

import random

from tenacity.stop import stop_any
from tenacity.wait import wait_fixed

from importer.transport.retry import (
    stop_after_failures,
    stop_before_budget,
    wait_full_jitter,
    wait_longest,
    wait_retry_after,
)
from tests.helpers import FAILED, SCHEDULED, UNSCHEDULED, FakeTime, failed_state
from tests.helpers import fake_retrier as make


def test_stop_after_failures_does_not_count_scheduled_throttles() -> None:
    stop = stop_after_failures(2)
    assert not stop(failed_state(1, FAILED))
    assert not stop(failed_state(2, SCHEDULED))  # the server's schedule: not a failure
    assert not stop(failed_state(3, SCHEDULED))
    assert not stop(failed_state(3, SCHEDULED))  # asked twice about one attempt: counted once
    assert stop(failed_state(4, UNSCHEDULED))  # a 429 without Retry-After is an ordinary failure


def test_stop_after_failures_is_per_loop() -> None:
    used = stop_after_failures(2)
    for attempt in range(1, 6):
        assert not used(failed_state(attempt, SCHEDULED))
    assert stop_after_failures(2)(failed_state(2, FAILED))  # a fresh one remembers no throttles
    assert stop_after_failures(1)(failed_state(1, FAILED))  # max_attempts=1: no retry at all


def test_stop_before_budget_reads_the_injected_clock(fake_time: FakeTime) -> None:
    stop = stop_before_budget(20.0, clock=fake_time.clock, started=fake_time.clock())
    fake_time.advance(15.0)
    assert not stop(failed_state(1, FAILED, upcoming_sleep=5.0))  # ends exactly at the budget
    assert stop(failed_state(1, FAILED, upcoming_sleep=5.01))  # would end past it: not started
    fake_time.advance(5.0)
    assert not stop(failed_state(2, FAILED, upcoming_sleep=0.0))
    fake_time.advance(0.01)
    assert stop(failed_state(2, FAILED, upcoming_sleep=0.0))  # tenacity's own clock never consulted


def test_composed_stop_is_attempts_or_time(fake_time: FakeTime) -> None:
    retrier, _ = make(fake_time, max_attempts=3, max_retry_seconds=60.0)
    stop = retrier.stop(fake_time.clock())
    assert isinstance(stop, stop_any)  # tenacity's `|`
    assert not stop(failed_state(1, FAILED, upcoming_sleep=1.0))
    assert not stop(failed_state(2, SCHEDULED, upcoming_sleep=5.0))
    assert not stop(failed_state(3, FAILED, upcoming_sleep=1.0))
    assert stop(failed_state(4, FAILED, upcoming_sleep=1.0))  # the third failure; the throttle free

    stop = retrier.stop(fake_time.clock())
    fake_time.advance(59.0)
    assert stop(failed_state(1, SCHEDULED, upcoming_sleep=5.0))  # time, though no failure counted
    assert retrier.stop(fake_time.clock()) is not retrier.stop(fake_time.clock())  # one per loop


def test_wait_is_the_larger_of_backoff_and_the_servers_schedule() -> None:
    assert wait_longest(wait_fixed(2), wait_fixed(5))(failed_state(1, FAILED)) == 5.0
    assert wait_longest(wait_fixed(7), wait_fixed(5))(failed_state(1, FAILED)) == 7.0

    schedule = wait_retry_after(jitter=0.5, rng=random.Random(3))
    assert schedule(failed_state(1, FAILED)) == 0.0
    assert schedule(failed_state(1, UNSCHEDULED)) == 0.0
    draws = [schedule(failed_state(1, SCHEDULED)) for _ in range(50)]
    assert all(5.0 <= d <= 5.5 for d in draws)
    assert len(set(draws)) == 50  # paused senders do not all wake at the same instant

    expected = random.Random(4)
    backoff = wait_full_jitter(multiplier=1.0, max=10.0, rng=random.Random(4))
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (40, 10.0)]:
        assert backoff(failed_state(attempt, FAILED)) == expected.uniform(0.0, ceiling)
