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
from collections.abc import Sequence
from typing import Protocol

from feeds.model import Indicator, Kind
from importer.model import Held, ResolvedDefinition, Stamp
from importer.targets.base import Target

__all__ = ["Acked", "InMemoryPresent", "Key", "PresentStore", "SeenSet", "indicator_key"]


def indicator_key(kind: Kind | str, value: str) -> bytes:
    """The compact identity of an indicator under one definition."""
    return hashlib.blake2b(f"{kind}\x00{value}".encode(), digest_size=16).digest()


Key = tuple[Kind, str]
Acked = tuple[Indicator, str, Stamp]  # acknowledged: the indicator, its remote id, what it now holds


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

    def close(self) -> None:
        """Flush and release whatever the store holds (a journal commits here)."""
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

    def close(self) -> None:
        self._held.clear()


class SeenSet:
    """The indicators one feed has yielded so far (for dropping duplicates within the feed).

    Kept as the process's own 64-bit ``hash`` of ``(kind, value)``: an int per distinct
    indicator (~60 bytes with the set's slot, against ~90 for a 16-byte digest), and no digest
    to compute. Two different indicators share a hash with probability ~n**2 / 2**65 (about
    3e-8 for a million-indicator feed); the second would then count as a duplicate.
    """

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: set[int] = set()

    def add(self, kind: Kind, value: str) -> bool:
        """Remember the indicator; False if it was already there (a duplicate)."""
        key = hash((kind, value))
        if key in self._keys:
            return False
        self._keys.add(key)
        return True

    def __len__(self) -> int:
        return len(self._keys)
