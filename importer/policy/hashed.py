"""Millions of named strings as 64-bit keys in one sorted ``array('Q')``: which name, if any, holds a value.

A warning list's values (2.4 million host names, hashes and addresses) as Python strings in a dict
cost ~180 MB; as 64-bit keys they cost 8 bytes each. A value's key is the first 64 bits of its
text when the text is a lower-case hex digest (an MD5, SHA-1 or SHA-256 is already uniform, and
``int`` reads it in a tenth of a BLAKE2b call), else the 8-byte BLAKE2b digest of its UTF-8.

The table stores, per value, one 64-bit word: the key shifted left by ``id_bits`` with the list's
id (its rank by name) in the freed low bits; the key's top bits, lost to the shift, are implied by
the *directory* (``heads``: where each run of equal top ``dir_bits`` bits starts, ~4 values a run).
A look-up is one key, two directory reads and a ``bisect`` over a handful of words. A value on two
lists is stored twice, side by side, the lower id first: the look-up answers the list first by
name, as a dict filled in that order did.

False matches: a value not in the table matches one that is with probability n·m/2⁶⁴ for m
look-ups against n values (2.4 M values, a million look-ups: ~1.3·10⁻⁷) — the same 64-bit-key
standard as ``pipeline.present.SeenSet``. A false match filters an indicator (a rejects line names
the list), it never imports a harmless one.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from hashlib import blake2b

__all__ = ["HashTable", "TableBuilder", "value_key"]

_MASK64 = (1 << 64) - 1
_HEX_LENGTHS = frozenset({32, 40, 64})
_is_hex = re.compile("[0-9a-f]+").fullmatch
_from_bytes = int.from_bytes


def value_key(value: str) -> int:
    """The 64-bit key of ``value`` (see the module's docstring)."""
    if len(value) in _HEX_LENGTHS and _is_hex(value):
        return int(value[:16], 16)
    return _from_bytes(blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class HashTable:
    """Sorted words ``key << id_bits | id`` under a directory of their top bits; ``get(value)`` its name."""

    __slots__ = ("dir_bits", "find", "get", "heads", "id_bits", "names", "words")

    def __init__(self, words: array[int], heads: array[int], id_bits: int, dir_bits: int,
                 names: Sequence[str]) -> None:  # fmt: skip
        self.words, self.heads, self.names = words, heads, tuple(names)
        self.id_bits, self.dir_bits = id_bits, dir_bits
        self.find = self._finder()  # a key's name
        self.get = self._value_finder()  # a value's name

    def __len__(self) -> int:
        return len(self.words)

    def _finder(self) -> Callable[[int], str | None]:
        words, heads, names = self.words, self.heads, self.names
        id_bits, dir_shift = self.id_bits, 64 - self.dir_bits
        id_mask, bisect = (1 << id_bits) - 1, bisect_left

        def find(key: int) -> str | None:
            run = key >> dir_shift
            low, high = heads[run], heads[run + 1]
            probe = (key << id_bits) & _MASK64
            at = bisect(words, probe, low, high)
            if at < high and (word := words[at]) >> id_bits == probe >> id_bits:
                return names[word & id_mask]
            return None

        return find

    def _value_finder(self) -> Callable[[str], str | None]:
        # ``value_key`` inlined: this runs per domain, per suffix of it and per URL.
        find, lengths, is_hex, digest = self.find, _HEX_LENGTHS, _is_hex, blake2b

        def get(value: str) -> str | None:
            if len(value) in lengths and is_hex(value):
                return find(int(value[:16], 16))
            data = value.encode("utf-8", "surrogatepass")
            return find(_from_bytes(digest(data, digest_size=8).digest(), "little"))

        return get


class TableBuilder:
    """Collects ``(value, id)`` pairs in 2^id_bits buckets by their key's top bits (8 bytes a pair,
    no string kept), then sorts each bucket into a ``HashTable``."""

    def __init__(self, id_bits: int) -> None:
        self.id_bits = id_bits
        self._shift = 64 - id_bits
        self._buckets = [array("Q") for _ in range(1 << id_bits)]
        self.count = 0

    def add(self, values: Iterable[str], list_id: int) -> None:
        """Adds every value of one list (``list_id`` < 2^id_bits)."""
        appends = [bucket.append for bucket in self._buckets]
        shift, bits, lengths, is_hex, digest = self._shift, self.id_bits, _HEX_LENGTHS, _is_hex, blake2b
        count = 0
        for value in values:  # ``value_key`` inlined: 2.4 million values on a cold load
            if len(value) in lengths and is_hex(value):
                key = int(value[:16], 16)
            else:
                data = value.encode("utf-8", "surrogatepass")
                key = _from_bytes(digest(data, digest_size=8).digest(), "little")
            appends[key >> shift](((key << bits) & _MASK64) | list_id)
            count += 1
        self.count += count

    def build(self, names: Sequence[str], rank: Sequence[int] | None = None) -> HashTable:
        """The table, ids mapped through ``rank`` (provisional id -> final id) when given; the
        buckets are emptied as they are sorted, so the peak is one bucket's Python ints."""
        bits, mask = self.id_bits, (1 << self.id_bits) - 1
        dir_bits = max(bits, self.count.bit_length() - 3)  # ~4 to 8 words a directory run
        sub_bits = dir_bits - bits
        words, heads = array("Q"), array("I")
        for n, bucket in enumerate(self._buckets):
            if rank is not None:
                ordered = sorted([(word & ~mask) | rank[word & mask] for word in bucket])
            else:
                ordered = sorted(bucket)
            self._buckets[n] = array("Q")
            start = len(words)
            for sub in range(1 << sub_bits):  # where each run of the next top bits starts
                heads.append(start + bisect_left(ordered, sub << (64 - sub_bits)) if sub else start)
            words.extend(ordered)
        heads.append(len(words))
        return HashTable(words, heads, bits, dir_bits, names)
