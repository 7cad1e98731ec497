"""One limiter shared by every request to a target: steady pacing, and a global pause after a 429.

``acquire()`` is awaited before each request. With ``rate_per_minute`` set, requests are spaced
evenly (a reservation per request, so concurrent workers queue in order rather than burst). A
429 with ``Retry-After`` calls ``pause(seconds)``: every sender then waits until that moment,
instead of each worker hammering the server and collecting its own 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Paces requests to ``rate_per_minute`` (None: no pacing) and honours global pauses."""

    def __init__(
        self,
        rate_per_minute: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = None if rate_per_minute is None else 60.0 / rate_per_minute
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._paused_until = float("-inf")

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every sender for ``seconds`` from now (a pause never shortens an earlier one)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    async def acquire(self) -> None:
        """Wait until this request may go: after any pause, and at its paced slot."""
        await self._wait_out_pause()
        if self._interval is None:
            return
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)
        # A 429 may have arrived while we waited for our slot.
        await self._wait_out_pause()

    async def _wait_out_pause(self) -> None:
        # Loop: another 429 may extend the pause while we sleep.
        while (remaining := self._paused_until - self._clock()) > 0:
            await self._sleep(remaining)
