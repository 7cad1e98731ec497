"""Retry under test: a retrier on fake time, and tenacity call states built by hand."""

from __future__ import annotations

import random

from tenacity import AsyncRetrying, RetryCallState

from importer.errors import RetryableError, ThrottledError
from importer.transport.retry import Retrier, RetryPolicy
from importer.transport.stats import TransportStats
from tests.helpers.clock import FakeTime


def fake_retrier(fake: FakeTime, **policy: float) -> tuple[Retrier, TransportStats]:
    """A retrier on ``fake``'s time with a seeded RNG, and the stats it counts into."""
    stats = TransportStats()
    retrier = Retrier(
        RetryPolicy(**policy),  # type: ignore[arg-type]
        stats,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(1),
    )
    return retrier, stats


def failed_state(attempt: int, error: BaseException, *, upcoming_sleep: float = 0.0) -> RetryCallState:
    """A tenacity call state after ``attempt`` failed with ``error``, ``upcoming_sleep`` chosen."""
    state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    state.upcoming_sleep = upcoming_sleep
    return state


SCHEDULED = ThrottledError("429", retry_after=5.0)
UNSCHEDULED = ThrottledError("429", retry_after=None)
FAILED = RetryableError("HTTP 503", status=503)
