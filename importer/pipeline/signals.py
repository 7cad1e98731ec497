"""Graceful stop on SIGINT/SIGTERM: the first signal asks the run to stop, a second one exits at once.

First signal: ``stop`` is set — downloads in progress are cancelled, producers stop reading, no
new request starts, workers let what is in flight finish (bounded by the pipeline's grace
period), the journal keeps every acknowledged batch, the report is written, and ``ti-import run``
exits 130. Second signal: the process exits 130 immediately with ``os._exit``, which skips every
``finally``: the temporary files registered with ``removed_on_hard_exit`` (downloads) are removed
first. Nothing the journal claims is lost, because each batch was committed in its own
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

__all__ = ["STOP_SIGNALS", "removed_on_hard_exit", "stop_on_signals"]

_log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Files the second signal removes before ``os._exit``. Touched only on the event loop's thread:
# by their owners, and by the handler, which ``loop.add_signal_handler`` runs as an ordinary
# callback of the loop (not in the interrupted C signal context), so plain calls are safe there.
_HARD_EXIT_REMOVES: set[str] = set()


@contextlib.contextmanager
def removed_on_hard_exit(path: str) -> Iterator[None]:
    """Within the block, an immediate exit on a second signal removes ``path`` first. Its owner
    still removes it on every other way out (the immediate exit is the one that runs no
    ``finally``)."""
    _HARD_EXIT_REMOVES.add(path)
    try:
        yield
    finally:
        _HARD_EXIT_REMOVES.discard(path)


def _remove_registered() -> None:
    for path in tuple(_HARD_EXIT_REMOVES):
        with contextlib.suppress(OSError):
            os.remove(path)


class _Handler:
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.received: int | None = None

    def __call__(self, signum: int) -> None:
        if self.stop.is_set() and self.received is not None:
            # Not via logging: a handler must not block on a lock a killed write holds.
            os.write(2, b"ti-import: second signal, stopping at once\n")
            _remove_registered()
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
