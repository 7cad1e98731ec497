"""Address ranges as sorted integer tables: which named range, if any, holds an address — by bisection.

A ``RangeTable`` is built once from CIDR blocks, each with a name (the reason a match gives) and
a rank (lower wins). CIDR blocks are nested or disjoint, never partly overlapping, so one sweep
turns them into disjoint segments, each naming the best block that covers it: the lowest rank,
then the innermost (most specific). A look-up is one ``bisect`` on a list of ints and one compare:
no ``ipaddress`` object per indicator (``address_int`` reads the canonical text with ``socket``).
"""

from __future__ import annotations

import ipaddress
import socket
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = ["Block", "CompactRanges", "RangeTable", "address_int", "cidr_block"]

_inet_aton = socket.inet_aton
_inet_pton = socket.inet_pton
_AF_INET6 = socket.AF_INET6
_from_bytes = int.from_bytes


class Block(NamedTuple):
    """One CIDR block of a table, as integers (``first`` and ``last`` included)."""

    first: int
    last: int
    name: str
    rank: int = 0

    @classmethod
    def of(cls, network: ipaddress.IPv4Network | ipaddress.IPv6Network, name: str, rank: int = 0) -> Block:
        return cls(int(network.network_address), int(network.broadcast_address), name, rank)


def address_int(value: str) -> tuple[int, int] | None:
    """``(version, integer)`` of an address in canonical text (as ``feeds.canonical`` writes it), or
    None if ``value`` is not one. ``inet_aton`` takes shorthand (``"1"``) too: callers give it only
    canonical IPv4 text, or check with ``ipaddress`` when the text is a person's (an allowlist)."""
    try:
        if ":" in value:
            return 6, _from_bytes(_inet_pton(_AF_INET6, value), "big")
        return 4, _from_bytes(_inet_aton(value), "big")
    except (OSError, ValueError):
        return None


def cidr_block(text: str, name: str, rank: int = 0) -> tuple[int, Block] | None:
    """``(version, block)`` of ``a.b.c.d/n`` or ``v6::/n`` (or one address), host bits ignored; None
    if ``text`` is neither. ``ipaddress`` takes ~25 us a block: a warning list has 60,000 of them."""
    address, _, prefix = text.strip().partition("/")
    parsed = address_int(address)
    if parsed is None or (prefix and not prefix.isdigit()):
        return None
    version, first = parsed
    bits = 32 if version == 4 else 128
    length = int(prefix) if prefix else bits
    if length > bits:
        return None
    span = (1 << (bits - length)) - 1
    first &= ~span
    return version, Block(first, first | span, name, rank)


class RangeTable:
    """Disjoint segments ``[starts[i], ends[i]]`` named ``names[i]``, sorted: ``find`` bisects."""

    __slots__ = ("_ends", "_names", "_starts")

    def __init__(self, blocks: Iterable[Block]) -> None:
        segments = _segments(sorted(blocks, key=lambda b: (b.first, -b.last)))
        self._starts = [s[0] for s in segments]
        self._ends = [s[1] for s in segments]
        self._names = [s[2] for s in segments]

    def __len__(self) -> int:
        return len(self._starts)

    def columns(self) -> tuple[list[int], list[int], list[str]]:
        """The segments' first addresses, last addresses and names (for a caller's own bisect)."""
        return self._starts, self._ends, self._names

    def find(self, address: int) -> str | None:
        """The name of the segment holding ``address``, or None."""
        at = bisect_right(self._starts, address) - 1
        if at >= 0 and address <= self._ends[at]:
            return self._names[at]
        return None


class CompactRanges:
    """A ``RangeTable`` kept for a long time: segments in integer arrays (IPv4 in 4-byte words,
    IPv6's 128-bit ones in lists), each naming one of ``names`` by its index in ``ids``."""

    __slots__ = ("ends", "ids", "names", "starts")

    def __init__(self, starts: Sequence[int], ends: Sequence[int], ids: array[int],
                 names: Sequence[str]) -> None:  # fmt: skip
        self.starts, self.ends, self.ids, self.names = starts, ends, ids, tuple(names)

    @classmethod
    def of(cls, table: RangeTable, names: Sequence[str], id_code: str) -> CompactRanges:
        """``table`` with its names as indexes into ``names`` (each of its names is one of them)."""
        starts, ends, named = table.columns()
        index = {name: n for n, name in enumerate(names)}
        ids = array(id_code, [index[name] for name in named])
        if not ends or ends[-1] < 1 << 32:
            return cls(array("I", starts), array("I", ends), ids, names)
        return cls(starts, ends, ids, names)

    def __len__(self) -> int:
        return len(self.starts)

    def find(self, address: int) -> str | None:
        """The name of the segment holding ``address``, or None."""
        at = bisect_right(self.starts, address) - 1
        if at >= 0 and address <= self.ends[at]:
            return self.names[self.ids[at]]
        return None


class _Open(NamedTuple):
    """A block the sweep is inside of, with the best name among it and the blocks around it."""

    last: int
    name: str  # the best of this block and those it is nested in
    rank: int


def _segments(blocks: list[Block]) -> list[tuple[int, int, str]]:
    """Disjoint named segments from blocks sorted by (first, -last), nested or disjoint.

    A stack holds the blocks the sweep is inside of, innermost on top; each keeps the best name of
    itself and its parents (lowest rank; on a tie the inner one), so the segment between two
    boundaries is named by the top of the stack. Adjacent segments of one name are joined."""
    out: list[tuple[int, int, str]] = []
    stack: list[_Open] = []
    at = 0  # the first address not yet given to a segment, inside the top of the stack

    def emit(first: int, last: int, name: str) -> None:
        if first > last:
            return
        if out and out[-1][2] == name and out[-1][1] + 1 == first:
            out[-1] = (out[-1][0], last, name)
        else:
            out.append((first, last, name))

    def close_until(limit: int | None) -> None:
        nonlocal at
        while stack and (limit is None or stack[-1].last < limit):
            top = stack.pop()
            emit(at, top.last, top.name)
            at = max(at, top.last + 1)

    for block in blocks:
        close_until(block.first)
        if stack:
            emit(at, block.first - 1, stack[-1].name)
            parent = stack[-1]
            best = block if block.rank <= parent.rank else parent
            stack.append(_Open(block.last, best.name, best.rank))
        else:
            stack.append(_Open(block.last, block.name, block.rank))
        at = block.first
    close_until(None)
    return out
