"""A sliding-window request counter that answers "allowed" or "retry after N seconds"."""

from __future__ import annotations

import math
from collections import deque

__all__ = ["SlidingWindow", "retry_after_header"]


class SlidingWindow:
    """At most ``limit`` accepted events in any ``window`` seconds; refused events are not counted.

    Refusals do not count, so a client that honours ``Retry-After`` gets through exactly when the
    oldest accepted event leaves the window, while one that retries sooner is refused again.
    """

    __slots__ = ("_events", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: deque[float] = deque()

    def _expire(self, now: float) -> None:
        events = self._events
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()

    def retry_after(self, now: float) -> float | None:
        """Seconds until one more event fits, or None if it fits now (without recording it)."""
        self._expire(now)
        if len(self._events) < self.limit:
            return None
        return self._events[0] + self.window - now

    def record(self, now: float) -> None:
        self._events.append(now)

    def acquire(self, now: float) -> float | None:
        """Record one event if it fits; otherwise return the seconds to wait (> 0)."""
        wait = self.retry_after(now)
        if wait is None:
            self._events.append(now)
        return wait

    def clear(self) -> None:
        self._events.clear()


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` is whole seconds (RFC 9110); round up so an honest client is never early."""
    return str(max(1, math.ceil(seconds)))

