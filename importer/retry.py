"""Bounded retries of transient failures: exponential backoff with full jitter, Retry-After as a floor.

Every request or batch runs inside ``Retrier.attempts()`` (a tenacity ``AsyncRetrying``). Only
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

from importer.connection import ConnectionSettings
from importer.errors import RetryableError, ThrottledError
from importer.stats import TransportStats

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

    def attempts(self) -> AsyncRetrying:
        """A fresh retry loop: ``async for attempt in retrier.attempts(): with attempt: ...``."""
        started = self._clock()
        policy = self.policy
        scheduled = 0  # attempts answered 429 with Retry-After: they do not count as failures

        def wait(state: RetryCallState) -> float:
            # Full jitter spreads the retries of many workers; the server's Retry-After is a floor.
            ceiling = min(policy.max_backoff, policy.initial_backoff * 2 ** (state.attempt_number - 1))
            delay = self._rng.uniform(0.0, ceiling)
            if (after := _retry_after(state)) is not None:
                delay += after
            return delay

        def stop(state: RetryCallState) -> bool:
            nonlocal scheduled
            if _retry_after(state) is not None:
                scheduled += 1
            if state.attempt_number - scheduled >= policy.max_attempts:
                return True
            # tenacity computes the wait before asking stop: never start a sleep past the budget.
            return self._clock() - started + state.upcoming_sleep > policy.max_retry_seconds

        def before_sleep(state: RetryCallState) -> None:
            self._stats.retries += 1
            error = state.outcome.exception() if state.outcome is not None else None
            wait_s = state.upcoming_sleep
            _log.debug("attempt %d failed (%s); retry in %.2fs", state.attempt_number, error, wait_s)

        return AsyncRetrying(
            sleep=self._sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(RetryableError),
            before_sleep=before_sleep,
            reraise=True,
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` until it succeeds, fails permanently, or the budget is spent."""
        async for attempt in self.attempts():
            with attempt:
                return await fn()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _retry_after(state: RetryCallState) -> float | None:
    error = state.outcome.exception() if state.outcome is not None else None
    return error.retry_after if isinstance(error, ThrottledError) else None
