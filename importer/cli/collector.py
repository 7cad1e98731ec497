"""The cyclic garbage collector, tuned for a process that streams millions of short-lived objects.

An import allocates a few tuples, strings and lists per indicator, nearly all freed within the
batch and none in a reference cycle. With CPython's default threshold (a young collection every
700 net allocations) the collector ran thousands of times a run and each older collection walked
everything alive (queued batches, the journal's backlog): 1.5 to 2.6 s of a 1 M-line bulk import
(16-18 % of its CPU). At 50,000 it runs a handful of times; 1 M sha256 into the emulator with the
journal took 12.4 s instead of 15.7, and 7.7 instead of 9.0 without it (one run each, measured with
``gc.callbacks``). Real cycles are still collected: the young generation's count only grows by
what is not freed, so at most 50,000 such objects wait for a collection.

Only the command line tunes it (``main`` called as the process's entry): a test session calling
``main`` keeps the interpreter's defaults.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune"]

YOUNG_THRESHOLD = 50_000


def tune() -> None:
    """Move what start-up made (modules, tables) out of the collector's walks, and collect the
    young generation every ``YOUNG_THRESHOLD`` net allocations instead of every 700."""
    gc.freeze()  # lives as long as the process: walking it again finds nothing
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
