"""Bounded retries of transient failures, composed from tenacity's strategies.

The policy: only ``RetryableError`` is retried (by type, never by message); ``reraise=True``, so
callers see the real last error. It stops at ``max_attempts`` failures *or* when the next sleep
would end past ``max_retry_seconds`` since the first attempt (measured on the injected clock). It
waits the larger of exponential backoff with full jitter and the server's schedule.

A 429 with ``Retry-After`` is the server scheduling us, not a failure: it waits that long plus a
little jitter (so the senders it paused do not wake as one herd) and counts against the time
budget only, so a throttled run with many workers slows down instead of failing.

When a 429's wait starts a new pause (or pushes the current one further), it is logged (``-v``)
and told to ``TransportStats.paused``, so the progress bars can say why nothing moves; the other
workers answered 429 in the same wave are the same pause and are not told again.

Nearly every request succeeds at once, so ``Retrier.call`` runs the first attempt bare; only
after a retryable failure does it build a tenacity loop, whose first attempt replays that error
so the same strategies count and schedule it. Sleep, clock and RNG are injected: tests never wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential

from importer.errors import RetryableError, ThrottledError
from importer.transport.connection import ConnectionSettings
from importer.transport.stats import TransportStats

__all__ = ["Retrier", "RetryPolicy", "Sleep"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
# A 429's wait ending within this long of the pause already announced is that pause, met by
# another worker (Retry-After plus its own jitter): not news.
_SAME_PAUSE = 1.0
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts, total time, and the backoff curve (seconds)."""

    max_attempts: int = 6
    max_retry_seconds: float = 300.0
    initial_backoff: float = 0.5
    max_backoff: float = 30.0

    @classmethod
    def from_settings(cls, settings: ConnectionSettings) -> RetryPolicy:
        return cls(max_attempts=settings.max_attempts, max_retry_seconds=settings.max_retry_seconds)


# The strategies are named like tenacity's own (stop_after_attempt, wait_random_exponential...) and
# compose with its ``|``, ``&`` and ``+``.

# --- stop strategies (tenacity asks them after the wait is chosen: ``upcoming_sleep`` is known) ---


class stop_after_failures(stop_base):
    """Stop once ``max_failures`` attempts have failed, not counting server-scheduled ones.

    An attempt answered 429 with ``Retry-After`` is the server's schedule, not a failure, so it is
    not counted (``stop_after_attempt`` would count it). The strategy remembers which attempts
    were scheduled, so it is stateful: make one per retry loop. It may be asked more than once
    about the same attempt.
    """

    def __init__(self, max_failures: int) -> None:
        self.max_failures = max_failures
        self._scheduled: set[int] = set()

    def __call__(self, retry_state: RetryCallState) -> bool:
        attempt = retry_state.attempt_number
        if _retry_after_of(_error_of(retry_state)) is not None:
            self._scheduled.add(attempt)
        return attempt - len(self._scheduled) >= self.max_failures


class stop_before_budget(stop_base):
    """Stop when the upcoming sleep would end more than ``max_seconds`` after ``started``.

    ``stop_before_delay`` with an injected ``clock``: tenacity's own time-based stops read
    ``time.monotonic()`` and start counting at the loop, whereas ``started`` here is the start of
    the bare first attempt, on the clock the caller chose. A sleep ending exactly at the budget
    is still started. Stateless, but ``started`` is per loop.
    """

    def __init__(self, max_seconds: float, *, clock: Clock, started: float) -> None:
        self.max_seconds = max_seconds
        self.clock = clock
        self.started = started

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() - self.started + retry_state.upcoming_sleep > self.max_seconds


# --- wait strategies (stateless; randomness from the injected RNG) ---


class wait_full_jitter(wait_exponential):
    """``wait_random_exponential``, drawing from an injected RNG instead of the ``random`` module.

    Full jitter: uniform in [0, multiplier * 2**(attempt-1)], the ceiling capped at ``max``.
    """

    def __init__(self, *, multiplier: float, max: float, rng: random.Random) -> None:
        super().__init__(multiplier=multiplier, max=max)
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(0.0, super().__call__(retry_state))


class wait_retry_after(wait_base):
    """The server's schedule: a 429's ``Retry-After`` plus up to ``jitter`` seconds; else 0."""

    def __init__(self, *, jitter: float, rng: random.Random) -> None:
        self.jitter = jitter
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        after = _retry_after_of(_error_of(retry_state))
        return 0.0 if after is None else after + self.rng.uniform(0.0, self.jitter)


class wait_longest(wait_base):
    """The longest of several waits (tenacity's ``+`` would add them)."""

    def __init__(self, *strategies: wait_base) -> None:
        self.strategies = strategies

    def __call__(self, retry_state: RetryCallState) -> float:
        return max(strategy(retry_state) for strategy in self.strategies)


class Retrier:
    """Runs calls under one policy, one stats object, one clock, one sleep and one RNG."""

    def __init__(
        self,
        policy: RetryPolicy,
        stats: TransportStats,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self._stats = stats
        self._sleep = sleep
        self._clock = clock
        rng = rng or random.Random()  # jitter only; not security-relevant
        self._pause_ends = float("-inf")  # when the last pause announced ends (on ``clock``)
        self._retry = retry_if_exception_type(RetryableError)
        self._wait = wait_longest(
            wait_full_jitter(multiplier=policy.initial_backoff, max=policy.max_backoff, rng=rng),
            wait_retry_after(jitter=min(policy.initial_backoff, policy.max_backoff), rng=rng),
        )

    def stop(self, started: float) -> stop_base:
        """A fresh stop for one loop whose first attempt began at ``started`` (on this clock)."""
        policy = self.policy
        return stop_after_failures(policy.max_attempts) | stop_before_budget(
            policy.max_retry_seconds, clock=self._clock, started=started
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` until it succeeds, fails permanently, or the budget is spent.

        The first attempt runs bare: a request that succeeds (nearly all of them) costs no retry
        machinery. Only a retryable failure enters the tenacity loop.
        """
        started = self._clock()
        try:
            return await fn()
        except RetryableError as error:  # what ``self._retry`` retries; anything else propagates
            first = error
        return await self._retry_after_first(fn, first, started)

    async def _retry_after_first(
        self, fn: Callable[[], Awaitable[T]], first: RetryableError, started: float
    ) -> T:
        # One AsyncRetrying per loop: its iteration state (thread-local, so shared by every
        # coroutine on this thread) and the stop's count of throttles belong to one call.
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=self.stop(started),
            wait=self._wait,
            retry=self._retry,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number == 1:
                    raise first  # the bare attempt's outcome, replayed: counted and scheduled alike
                return await fn()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        self._stats.retries += 1
        error = _error_of(retry_state)
        if _retry_after_of(error) is not None:  # the server scheduled us: the limiter holds everyone
            self._announce_pause(retry_state.upcoming_sleep, error)
        _log.debug(
            "attempt %d failed (%s); retry in %.2fs",
            retry_state.attempt_number,
            error,
            retry_state.upcoming_sleep,
        )

    def _announce_pause(self, seconds: float, error: BaseException | None) -> None:
        ends = self._clock() + seconds
        if ends <= self._pause_ends + _SAME_PAUSE:
            return
        self._pause_ends = ends
        _log.info("paused %.0f s: %s", seconds, error)
        self._stats.paused(seconds, "throttled")


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _retry_after_of(error: BaseException | None) -> float | None:
    return error.retry_after if isinstance(error, ThrottledError) else None
