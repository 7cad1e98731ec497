"""Fault injection: latency, 500/503 answers, throttling, and dropped connections, all seeded."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from importer.emulator.config import Faults
from importer.emulator.ratelimit import SlidingWindow, retry_after_header
from importer.emulator.replies import error_response

__all__ = ["DROP", "FAULT_KINDS", "ErrorShape", "FaultInjector", "hold_until"]

FAULT_KINDS = ("latency", "error", "throttle", "reset", "lost_after_write")

# Sentinel answer meaning "close the connection instead of answering"; compared by identity.
DROP = web.Response(status=599)


class ErrorShape(Protocol):
    """Builds an error answer in the surface's own shape (OData for the APIs, Azure AD for tokens)."""

    def __call__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> web.Response: ...


def _odata_shape(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return error_response(status, code, message, headers=headers)


class FaultInjector:
    """Applies one :class:`Faults` setting to the requests of one surface (API or token endpoint).

    ``counters`` is shared between surfaces so the inspection endpoint reports one total per kind.
    """

    def __init__(self, faults: Faults, clock: Callable[[], float], counters: dict[str, int],
                 shape: ErrorShape = _odata_shape) -> None:
        self.clock = clock
        self.counters = counters
        self.shape = shape
        self.configure(faults)

    def configure(self, faults: Faults) -> None:
        """Install new settings; the RNG is re-seeded so a run is reproducible from here on."""
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.window = (SlidingWindow(faults.throttle_per_minute, 60.0)
                       if faults.throttle_per_minute is not None else None)
        # Nothing to do on the hot path when every fault is off.
        self.active = bool(faults.latency_ms or faults.jitter_ms or faults.error_rate
                           or self.window is not None or faults.reset_rate
                           or faults.lost_after_write_rate)

    def admit(self, arrived: float, shape: ErrorShape | None = None) -> tuple[web.Response | None, float]:
        """Faults that strike before the request is applied (an answer here replaces the handler's),
        and the loop time at which any answer may leave: ``arrived`` plus the latency. ``shape``
        words an injected error where one surface differs from its injector's (the MDE API).

        The latency runs from the request's arrival, so the emulator's own work counts towards it
        as a real service's does; it does not add its queueing on top of the configured delay.
        """
        faults = self.faults
        shape = shape or self.shape
        due = arrived
        if faults.latency_ms or faults.jitter_ms:
            delay = faults.latency_ms + (self.rng.uniform(0.0, faults.jitter_ms) if faults.jitter_ms else 0.0)
            self.counters["latency"] += 1
            due += delay / 1000.0
        if self.window is not None:
            wait = self.window.acquire(self.clock())
            if wait is not None:
                self.counters["throttle"] += 1
                return shape(429, "TooManyRequests", "Rate limit is exceeded. Try again later.",
                             {"Retry-After": retry_after_header(wait)}), due
        if faults.error_rate and self.rng.random() < faults.error_rate:
            self.counters["error"] += 1
            if self.rng.random() < 0.5:
                return shape(500, "InternalServerError", "An internal server error occurred."), due
            return shape(503, "ServiceUnavailable", "The service is temporarily unavailable."), due
        if faults.reset_rate and self.rng.random() < faults.reset_rate:
            self.counters["reset"] += 1
            return DROP, due
        return None, due

    def lose_after_write(self, request: web.BaseRequest) -> bool:
        """Whether to drop the connection after a write was applied (never for reads)."""
        rate = self.faults.lost_after_write_rate
        if not rate or request.method in ("GET", "HEAD", "OPTIONS"):
            return False
        if self.rng.random() < rate:
            self.counters["lost_after_write"] += 1
            return True
        return False


async def hold_until(due: float) -> None:
    """Sleep until the loop time ``due`` (at once if it has passed)."""
    delay = due - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)

