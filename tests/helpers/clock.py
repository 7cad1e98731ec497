"""The tests' one injected clock (``FakeTime``) and polling waits under a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


# --- time ----------------------------------------------------------------------------------------
class FakeTime:
    """The tests' one notion of injected time: ``clock`` (monotonic), ``wall`` (epoch seconds,
    moving with it) and ``sleep`` (recording every wait in ``sleeps``), handed to the code under
    test in place of ``time.monotonic``, ``time.time`` and ``asyncio.sleep`` - and to the emulator
    as ``EmulatorConfig(clock=fake.wall)``, so both sides of a test live on the same time.

    Its time is ``start + moved + speedup * (real seconds since it was made)``, where ``moved`` is
    what ``advance`` and sleeps added. One parameter chooses how time passes:

    * virtual (``speedup=None``, the default): time stands still unless something moves it.
      ``advance(s)`` jumps it; ``sleep(s)`` yields to the event loop once and returns with the
      clock at its deadline (never earlier than it already is: sleepers that started together
      each wake at their own deadline, and the clock never goes back). Tokens expire and
      Retry-After minutes pass without anyone waiting, and every instant is exact.
    * sped up (``speedup=k``): time also flows by itself, ``k`` times faster than real time, and
      ``sleep(s)`` really waits ``s / k``. For scenarios where many tasks sleep while requests are
      in flight: in virtual time one sleeper's jump would carry the clock past everyone else's
      pending I/O (a whole throttle window passing during a single request), while here time
      passes for all alike, only faster. ``advance`` still jumps it.

    The same class runs in child processes too (the importer and emulator of ``FAST_IMPORTER`` and
    ``FAST_EMULATOR``), sped up.
    """

    def __init__(
        self, start: float = 1000.0, epoch: float = 1_700_000_000.0, *, speedup: float | None = None
    ) -> None:
        if speedup is not None and speedup <= 0:
            raise ValueError("speedup is a positive factor (or None: virtual time)")
        self.start = start
        self.speedup = speedup
        self.sleeps: list[float] = []
        self._moved_to = start  # start plus whatever advance() and virtual sleeps added
        self._epoch_offset = epoch - start
        self._real_start = time.monotonic()

    def clock(self) -> float:
        if self.speedup is None:
            return self._moved_to
        return self._moved_to + (time.monotonic() - self._real_start) * self.speedup

    @property
    def now(self) -> float:
        """``clock()``, as a value to read in assertions."""
        return self.clock()

    def wall(self) -> float:
        return self.clock() + self._epoch_offset

    def advance(self, seconds: float) -> None:
        self._moved_to += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.speedup is not None:
            await asyncio.sleep(max(0.0, seconds) / self.speedup)
            return
        deadline = self._moved_to + max(0.0, seconds)
        await asyncio.sleep(0)
        self._moved_to = max(self._moved_to, deadline)


async def wait_until(
    condition: Callable[[], object],
    timeout: float = 5.0,
    *,
    what: str = "the condition",
    fail: bool = True,
    interval: float = 0.001,
) -> bool:
    """Poll ``condition`` (letting the event loop run in between) until it is true: True.

    After ``timeout`` seconds of real time: AssertionError naming ``what`` - or, with
    ``fail=False``, False (a gate that lets a straggler through rather than wait for ever).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            if fail:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            return False
        await asyncio.sleep(interval)
    return True


async def settle(steps: int = 50) -> None:
    """Let every ready task take up to ``steps`` more steps of the event loop; no time passes on a
    ``FakeTime`` and no real waiting is involved, so the outcome is the same on any machine.

    For asserting that something did *not* happen: first ``wait_until`` the event it would follow
    (a task reaching the point where it must block), then ``settle``, then assert.
    """
    for _ in range(steps):
        await asyncio.sleep(0)


def wait_until_sync(
    condition: Callable[[], object],
    timeout: float = 30.0,
    *,
    give_up: Callable[[], object] | None = None,
    what: str = "the condition",
    interval: float = 0.01,
) -> bool:
    """Blocking ``wait_until``: True once ``condition`` holds; False if ``give_up`` holds first
    (say, the process being watched has exited); AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if give_up is not None and give_up():
            return False
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
