"""What the target already holds, per alert definition: the protocol the pipeline asks, and a memory map.

The pipeline never lists the target itself: it asks a ``PresentStore``. The in-memory store lists
each definition once at the start of its feed; a persistent journal (SQLite) can implement the
same protocol and answer from disk instead, so a rerun needs no listing at all.

An answer is a ``model.Held`` per key: the remote id and the stamp of what the target holds
(metadata digest and expiry), from which ``pipeline.freshness`` decides whether to send it again.

Keys are compact: a 16-byte BLAKE2b digest of ``kind`` and ``value`` instead of the strings, so a
million indicators cost tens of megabytes, not hundreds (a collision needs ~2**64 indicators).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Sequence
from typing import Protocol

from feeds.model import Indicator, Kind
from importer.model import Held, ResolvedDefinition, Stamp
from importer.targets.base import Target

__all__ = ["Acked", "InMemoryPresent", "Key", "PresentStore", "SeenSet", "indicator_key"]


def indicator_key(kind: Kind | str, value: str) -> bytes:
    """The compact identity of an indicator under one definition."""
    return hashlib.blake2b(f"{kind}\x00{value}".encode(), digest_size=16).digest()


# Where the platform has it, the advice that drops a mapping's pages (they read as zeros again).
_GIVE_BACK: int | None = getattr(mmap, "MADV_DONTNEED", None)

Key = tuple[Kind, str]
# Acknowledged: kind, value, remote id and what it now holds, in the shape the journal writes them
# (built once per indicator on the hot path; a store that keeps nothing never looks inside).
Acked = tuple[Kind, str, str, Stamp]


class PresentStore(Protocol):
    """Answers "which of these does the definition already hold?" and learns what was imported.

    Calls are per chunk of a feed (hundreds of keys), never per indicator, so a store on disk
    can answer with one query; they are async so such a store can run them off the event loop.
    """

    async def load(self, target: Target, definition: ResolvedDefinition) -> int:
        """Get ready to answer for ``definition``; returns how many indicators it holds."""
        ...

    async def present(self, definition: ResolvedDefinition, keys: Sequence[Key]) -> dict[Key, Held]:
        """What the definition holds of ``keys`` (absent: not held). The pipeline asks about each
        key at most once per run (repeats within a feed are dropped before), so a store may forget
        a key once it has answered for it."""
        ...

    async def record(self, definition: ResolvedDefinition, acked: Sequence[Acked]) -> None:
        """The target acknowledged these under ``definition`` (or, with the remote id it had, they
        were found to hold this stamp already)."""
        ...

    async def shared(self, definition: ResolvedDefinition, items: Sequence[tuple[Indicator, Held]]) -> None:
        """The feed lists these, which another definition of the tenant holds (``Held.elsewhere``)."""
        ...

    async def flush(self) -> None:
        """Wait until everything ``record`` was given is kept; raise what kept it from being kept
        (``record`` may return before, so that sending goes on while a store on disk commits)."""
        ...


class InMemoryPresent:
    """Lists each definition from the target once; forgets everything when the run ends."""

    def __init__(self) -> None:
        self._held: dict[str, dict[bytes, Held]] = {}

    async def load(self, target: Target, definition: ResolvedDefinition) -> int:
        held = self._held.setdefault(definition.id, {})
        if definition.outcome == "created" or not definition.id:
            return len(held)  # a new (or would-be, in a dry run) definition holds nothing yet
        async for remote in target.existing(definition):
            held[indicator_key(remote.kind, remote.value)] = Held(remote.remote_id, remote.stamp)
        return len(held)

    async def present(self, definition: ResolvedDefinition, keys: Sequence[Key]) -> dict[Key, Held]:
        held = self._held.get(definition.id)
        found: dict[Key, Held] = {}
        if not held:
            return found
        for kind, value in keys:
            # Popped: the feed's own dedup set remembers it from now on, so memory stays at one
            # entry per distinct indicator instead of two.
            hit = held.pop(indicator_key(kind, value), None)
            if hit is not None:
                found[kind, value] = hit
        return found

    async def record(self, definition: ResolvedDefinition, acked: Sequence[Acked]) -> None:
        # Nothing to keep: within this run the feed's dedup set already stops a second send,
        # and the next run lists the target again.
        return None

    async def shared(self, definition: ResolvedDefinition, items: Sequence[tuple[Indicator, Held]]) -> None:
        return None  # a listing per definition never answers ``elsewhere``

    async def flush(self) -> None:
        return None


class SeenSet:
    """The indicators one feed has yielded so far (for dropping duplicates within the feed).

    Each is kept as its 64-bit key, the process's own ``hash`` of ``(kind, value)``, in a flat table
    of 8-byte slots (a key's slot is its low bits; two's complement makes that right for negative
    keys too) used as an open-addressing hash table (linear probing): no object per indicator.
    A Python set of ints cost ~60 to 106 bytes per indicator (the int and its slot), so a
    ten-million-line feed needed over a gigabyte; this costs 8 bytes / load. Past 16 MiB (~400,000
    indicators) the load stays between 3/8 and 3/4 (the table doubles at 3/4): 10.7 to 21.3 bytes
    per distinct indicator; below, the table grows fourfold and is at most 16 MiB.

    What counts as a duplicate is unchanged: two indicators are the same when their 64-bit keys are,
    as with the set before. Different indicators share a key with probability ~n**2 / 2**65 (about
    3e-8 for a million-indicator feed, 3e-6 for ten million); the second would then count as a
    duplicate. A slot shared by different keys is never mistaken for one: probing compares whole keys.
    Key 0 marks an empty slot, so a hash of 0 is stored as 1 (one more colliding value in 2**64).

    The table is an anonymous memory map seen through a ``memoryview`` of signed 64-bit items
    (indexing it costs what indexing an ``array`` does). Unlike an array, a new map costs no memory
    until written, and a walked part of the old one can be handed back (``madvise``): doubling moves
    a key from slot ``i`` to ``i`` or ``i + size``, so walking the old table from its end fills the
    new one from its two ends as the old one is given back, and the peak while doubling is about
    the new table, not the new and the old together (at ten million indicators, 128 MiB instead
    of 192 MiB).
    """

    __slots__ = ("_count", "_limit", "_map", "_mask", "_table")

    _MIN_BITS = 13  # 64 KiB to start (and no memory until written): a small feed costs next to nothing
    # Up to 16 MiB the table grows fourfold: fewer rebuilds (each re-places every key in Python,
    # the dearest part of adding), at a cost too small to matter; beyond, twofold, for memory.
    _QUADRUPLE_BELOW_BITS = 21
    _MAX_LOAD = (3, 4)  # numerator, denominator
    _WALK_SLOTS = 1 << 16  # while doubling, the old table is given back 512 KiB at a time

    def __init__(self) -> None:
        self._count = 0
        self._allocate(self._MIN_BITS)

    def _allocate(self, bits: int) -> None:
        size = 1 << bits
        # Anonymous, so it reads as zeros (every slot empty); private, so that pages given back
        # are freed (a shared mapping keeps them until it is closed).
        self._map = mmap.mmap(-1, size * 8, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._table = memoryview(self._map).cast("q")  # signed, as ``hash`` is: no conversion
        self._mask = size - 1
        numerator, denominator = self._MAX_LOAD
        self._limit = size * numerator // denominator

    def add(self, kind: Kind, value: str) -> bool:
        """Remember the indicator; False if it was already there (a duplicate)."""
        # On every indicator's path: locals, and as few operations as a Python set's add.
        key = hash((kind, value)) or 1  # never -1 (CPython reserves it); 0 marks an empty slot
        table = self._table
        mask = self._mask
        slot = key & mask
        held = table[slot]
        while held:
            if held == key:
                return False
            slot = (slot + 1) & mask
            held = table[slot]
        table[slot] = key
        self._count += 1
        if self._count > self._limit:
            self._grow()
        return True

    def _grow(self) -> None:
        old_map, old = self._map, self._table
        size = len(old)
        bits = size.bit_length() - 1  # size is a power of two
        self._allocate(bits + (2 if bits < self._QUADRUPLE_BELOW_BITS else 1))
        table, mask = self._table, self._mask
        for end in range(size, 0, -self._WALK_SLOTS):
            start = max(0, end - self._WALK_SLOTS)
            for key in filter(None, old[start:end]):
                slot = key & mask
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = key
            if _GIVE_BACK is not None:  # start * 8 is page-aligned: a multiple of 512 KiB, or 0
                old_map.madvise(_GIVE_BACK, start * 8, (end - start) * 8)
        old.release()
        old_map.close()

    def __len__(self) -> int:
        return self._count

    @property
    def table_bytes(self) -> int:
        """The table's size in bytes (at most this is resident): all the set costs beyond ~200 bytes."""
        return len(self._map)
