"""Bounded retries of transient failures: exponential backoff with full jitter, Retry-After as a floor.

Every request or batch runs inside ``Retrier.call()``: a first attempt without any machinery, then,
only after a retryable failure, a tenacity ``AsyncRetrying`` loop under the same policy. Only
``RetryableError`` is retried — decided by type, never by message; the budget is bounded twice,
by ``max_attempts`` and by ``max_retry_seconds`` of total time (a wait that would overrun the
budget is not started). A 429 that says when to come back (``Retry-After``) is the server
scheduling us, not a failure: it waits at least that long plus jitter (so the senders it paused
do not return as one herd) and is bounded by the time budget only, so a throttled run with many
workers is slowed down rather than failed. ``reraise=True``: callers see the real last error.
Sleep, clock and RNG are injected so tests never wait.
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

from importer.errors import RetryableError, ThrottledError
from importer.transport.connection import ConnectionSettings
from importer.transport.stats import TransportStats

__all__ = ["Retrier", "RetryPolicy", "Sleep"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


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


class Retrier:
    """Makes retry loops that share one policy, one stats object, one clock and one sleep."""

    def __init__(
        self,
        policy: RetryPolicy,
        stats: TransportStats,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self._stats = stats
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # jitter only; not security-relevant

    # The policy, in terms of attempt numbers (1 = the first call) and the error of the attempt.
    def _delay(self, attempt: int, error: BaseException | None) -> float:
        # Full jitter spreads the retries of many workers; the server's Retry-After is a floor.
        policy = self.policy
        ceiling = min(policy.max_backoff, policy.initial_backoff * 2 ** (attempt - 1))
        delay = self._rng.uniform(0.0, ceiling)
        if (after := _retry_after_of(error)) is not None:
            delay += after
        return delay

    def _give_up(self, attempt: int, scheduled: int, started: float, upcoming: float) -> bool:
        if attempt - scheduled >= self.policy.max_attempts:
            return True
        # Never start a sleep that would end past the time budget.
        return self._clock() - started + upcoming > self.policy.max_retry_seconds

    def _before_sleep(self, attempt: int, error: BaseException | None, wait_s: float) -> None:
        self._stats.retries += 1
        _log.debug("attempt %d failed (%s); retry in %.2fs", attempt, error, wait_s)

    def attempts(self, *, started: float | None = None, done: int = 0, scheduled: int = 0) -> AsyncRetrying:
        """A fresh retry loop: ``async for attempt in retrier.attempts(): with attempt: ...``.

        ``done`` attempts (``scheduled`` of them answered 429 with Retry-After) were already made
        since ``started``: the loop continues their count and their time budget.
        """
        began = self._clock() if started is None else started
        counted = scheduled  # attempts answered 429 with Retry-After: they do not count as failures

        def wait(state: RetryCallState) -> float:
            return self._delay(done + state.attempt_number, _error_of(state))

        def stop(state: RetryCallState) -> bool:
            nonlocal counted
            if _retry_after_of(_error_of(state)) is not None:
                counted += 1
            # tenacity computes the wait before asking stop, so upcoming_sleep is known here.
            return self._give_up(done + state.attempt_number, counted, began, state.upcoming_sleep)

        def before_sleep(state: RetryCallState) -> None:
            self._before_sleep(done + state.attempt_number, _error_of(state), state.upcoming_sleep)

        return AsyncRetrying(
            sleep=self._sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(RetryableError),
            before_sleep=before_sleep,
            reraise=True,
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` until it succeeds, fails permanently, or the budget is spent.

        The first attempt runs bare: a request that succeeds (nearly all of them) costs no retry
        machinery. After a retryable failure, the same policy decides on a wait, and tenacity
        runs the rest of the loop, counting that first attempt.
        """
        started = self._clock()
        try:
            return await fn()
        except RetryableError as error:
            first = error
        scheduled = 1 if _retry_after_of(first) is not None else 0
        delay = self._delay(1, first)
        if self._give_up(1, scheduled, started, delay):
            raise first
        self._before_sleep(1, first, delay)
        await self._sleep(delay)
        async for attempt in self.attempts(started=started, done=1, scheduled=scheduled):
            with attempt:
                return await fn()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _retry_after_of(error: BaseException | None) -> float | None:
    return error.retry_after if isinstance(error, ThrottledError) else None
