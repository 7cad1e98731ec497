"""``SeenSet``, the within-feed duplicate filter: its contract, its growth and its memory.

Contract: ``add`` is False exactly for an indicator already added (same kind and value) and True
for every other, so a duplicate is dropped and a distinct indicator never is. The table compares
whole 64-bit keys; to reach probing, wrap-around and growth with few keys, some tests replace the
module's ``hash`` with one whose low bits (the slot) they choose.
"""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.model import Kind
from importer.pipeline import present
from importer.pipeline.present import SeenSet

KINDS = [Kind.SHA256, Kind.DOMAIN, Kind.IPV4]


class _ShortWalks(SeenSet):
    """Doubling walks the old table 8,192 slots (64 KiB, a page on any common system) at a time
    (the real class: 65,536), so small tests cross many walk boundaries."""

    __slots__ = ()
    _WALK_SLOTS = 8_192


@contextmanager
def forced_hash(monkeypatch: pytest.MonkeyPatch, key: Callable[[str], int]) -> Iterator[None]:
    """``hash((kind, value))`` inside ``present`` becomes ``key(value)`` (the kind ignored)."""
    monkeypatch.setattr(present, "hash", lambda pair: key(pair[1]), raising=False)
    yield
    monkeypatch.delattr(present, "hash")


def reference_run(items: list[tuple[Kind, str]], seen: SeenSet) -> None:
    """``seen.add`` answers as a set of (kind, value) would, item by item."""
    reference: set[tuple[Kind, str]] = set()
    for kind, value in items:
        new = (kind, value) not in reference
        reference.add((kind, value))
        assert seen.add(kind, value) is new, (kind, value)
    assert len(seen) == len(reference)


items_strategy = st.lists(
    st.tuples(st.sampled_from(KINDS), st.text(alphabet="abc01.", max_size=6)), max_size=400
)


@settings(max_examples=200, deadline=None)
@given(items_strategy)
def test_duplicates_dropped_distinct_kept(items: list[tuple[Kind, str]]) -> None:
    reference_run(items, SeenSet())


def test_same_value_other_kind_is_distinct() -> None:
    seen = SeenSet()
    assert seen.add(Kind.DOMAIN, "1.2.3.4") and seen.add(Kind.IPV4, "1.2.3.4")
    assert not seen.add(Kind.IPV4, "1.2.3.4")


@settings(max_examples=100, deadline=None)
@given(items_strategy, st.integers(min_value=0, max_value=3), st.sampled_from([SeenSet, _ShortWalks]))
def test_forced_slot_collisions(items: list[tuple[Kind, str]], slot_bits: int, make: type[SeenSet]) -> None:
    """Keys that differ only above the lowest ``slot_bits`` bits all want the same few slots:
    long probe chains, wrap-around past the table's end, growth mid-chain; none is dropped."""
    distinct = sorted({value for _, value in items})
    numbers = {value: i for i, value in enumerate(distinct, 1)}
    # Injective in the value, a negative hash for every other value (``hash`` is signed), and the
    # slot bits set to the top of the table for some values (the chain then wraps to slot 0).
    low = (1 << slot_bits) - 1

    def key(value: str) -> int:
        n = numbers[value]
        forced = (n << 20) | (0xFFF if n % 3 == 0 else n & low)
        return -forced if n % 2 else forced

    with pytest.MonkeyPatch.context() as monkeypatch, forced_hash(monkeypatch, key):
        reference_run([(Kind.SHA256, value) for _, value in items], make())


def test_one_slot_for_thousands_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key in slot 0 of every table size (the worst case): still exact, across growths."""
    values = [str(i) for i in range(1_500)]
    with forced_hash(monkeypatch, lambda value: (int(value) + 1) << 32):
        seen = SeenSet()
        assert all(seen.add(Kind.SHA256, value) for value in values)
        assert not any(seen.add(Kind.SHA256, value) for value in values)
        assert len(seen) == 1_500


def test_equal_keys_count_as_one_and_zero_is_stored_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented limit: two indicators whose 64-bit keys are equal count as one (the second a
    duplicate), as with the set of hashes before; a hash of 0 (the empty-slot mark) is stored as 1;
    negative keys (``hash`` is signed) are distinct from their absolute values."""
    keys = {"a": 7, "b": 7, "zero": 0, "one": 1, "minus-two": -2}
    with forced_hash(monkeypatch, keys.__getitem__):
        seen = SeenSet()
        assert seen.add(Kind.DOMAIN, "a") and not seen.add(Kind.DOMAIN, "b")
        assert seen.add(Kind.DOMAIN, "zero") and not seen.add(Kind.DOMAIN, "one")
        assert seen.add(Kind.DOMAIN, "minus-two")
        assert len(seen) == 3


@pytest.mark.parametrize("make", [SeenSet, _ShortWalks])
def test_growth_keeps_every_key_and_the_load_bounds(make: type[SeenSet]) -> None:
    rng = random.Random(15)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(60_000)]
    seen = make()
    sizes = []
    for i, value in enumerate(values, 1):
        assert seen.add(Kind.SHA256, value)
        slots = seen.table_bytes // 8
        if not sizes or sizes[-1] != slots:
            sizes.append(slots)
        assert i <= slots * 3 // 4  # never fuller than 3/4
    assert sizes == [2**13, 2**15, 2**17]  # fourfold while small
    assert not any(seen.add(Kind.SHA256, value) for value in values)  # all still there
    assert len(seen) == 60_000


class _TwofoldAlways(SeenSet):
    """The real class's growth beyond 8 MiB, reached with few keys: twofold from the start."""

    __slots__ = ()
    _QUADRUPLE_BELOW_BITS = 0


class _SetOfHashes:
    """The design it replaced (a Python set of 64-bit hashes), for scale."""

    def __init__(self) -> None:
        self._keys: set[int] = set()

    def add(self, kind: Kind, value: str) -> bool:
        key = hash((kind, value))
        if key in self._keys:
            return False
        self._keys.add(key)
        return True


def _bytes_held(make: Callable[[], SeenSet | _SetOfHashes], count: int) -> int:
    """Bytes held by ``make()`` after ``count`` distinct adds: what tracemalloc traces, plus the
    table's memory map (which it cannot see: not Python's allocator)."""
    values = [f"v{i}" for i in range(count)]  # made before tracing: the strings are the feed's
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seen = make()
        add = seen.add
        for value in values:
            add(Kind.DOMAIN, value)
        traced = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    if isinstance(seen, SeenSet):
        assert traced < 1_000  # the object, its memoryview and map handles: not per indicator
        return traced + seen.table_bytes
    return traced


@pytest.mark.parametrize("count", [12_289, 24_576])  # just past a doubling (3/8 full), at 3/4
def test_bytes_per_indicator_bounded(count: int) -> None:
    """8 bytes a slot at a load of 3/8 to 3/4: at most 21.4 bytes per indicator held; the set of
    ints it replaced took over twice as much."""
    held = _bytes_held(_TwofoldAlways, count)
    assert held / count <= 8 / (3 / 8) + 0.1
    assert held < _bytes_held(_SetOfHashes, count) / 2
