"""One limiter shared by every request to a target: steady pacing, and a global pause after a 429.

``acquire()`` is awaited before each request. With ``rate_per_minute`` set, requests are spaced
evenly (a reservation per request, so concurrent workers queue in order rather than burst). A
429 with ``Retry-After`` calls ``pause(seconds)``: every sender then waits until that moment,
instead of each worker hammering the server and collecting its own 429.

``WindowLimiter`` is the other half, for services that count calls in sliding windows ("at most
30 per minute"): ``async with window.slot():`` admits a call only while fewer than ``limit`` calls
are in flight or *finished* within the last ``window`` seconds. A call is counted from when its
answer came back, which is no earlier than when the server counted it, so client-side jitter
(a late wake-up, a slow request) can never make the server see ``limit + 1`` calls in a window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

__all__ = ["RateLimiter", "WindowLimiter"]


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


class WindowLimiter:
    """At most ``limit`` calls in flight or finished within any ``window`` seconds (see the module)."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a window needs a positive limit and a positive length")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._finished: deque[float] = deque()  # when recent calls finished, oldest first
        self._in_flight = 0
        self._done = asyncio.Event()  # set whenever a call finishes

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._finished and self._finished[0] <= horizon:
            self._finished.popleft()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for room in the window, hold it during the call, and count the call from its end."""
        while True:
            now = self._clock()
            self._expire(now)
            if len(self._finished) + self._in_flight < self.limit:
                break
            if self._finished:
                # Room appears only when the oldest finished call leaves the window.
                await self._sleep(self._finished[0] + self.window - now)
            else:
                # Every counted call is still in flight: wait for one to finish, then look again.
                self._done.clear()
                await self._done.wait()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._finished.append(self._clock())
            self._done.set()
