"""Graceful stop on SIGINT/SIGTERM: the first signal asks the run to stop, a second one exits at once.

First signal: ``stop`` is set — producers stop reading, workers finish what is in flight (bounded
by the pipeline's grace period), the journal keeps every acknowledged batch, the report is
written, and ``ti-import run`` exits 130. Second signal: the process exits 130 immediately with
``os._exit``; nothing the journal claims is lost, because each batch was committed in its own
transaction (an unfinished run makes the next one list the target once, see ``journal_store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator

__all__ = ["STOP_SIGNALS", "stop_on_signals"]

_log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Handler:
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.received: int | None = None

    def __call__(self, signum: int) -> None:
        if self.stop.is_set() and self.received is not None:
            # Not via logging: a handler must not block on a lock a killed write holds.
            os.write(2, b"ti-import: second signal, stopping at once\n")
            os._exit(130)
        self.received = signum
        sys.stderr.write(
            f"ti-import: {signal.Signals(signum).name}: finishing requests in flight, then stopping "
            "(send it again to stop at once)\n"
        )
        self.stop.set()


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[_Handler]:
    """Within the block, SIGINT/SIGTERM set ``stop`` (the running loop's handlers; main thread only).

    Off the main thread (tests running the command in a thread) nothing is installed."""
    loop = asyncio.get_running_loop()
    handler = _Handler(stop)
    installed: list[signal.Signals] = []
    try:
        for signum in STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, handler, signum)
                installed.append(signum)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread
                break
        yield handler
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
