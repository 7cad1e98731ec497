"""STIX read streaming: an object at a time, whatever the read size, in memory that does not grow."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from feeds import FeedError, FeedOptions, Indicator, Kind, Record, Rejected, Skipped, jsonstream, read_feed
from feeds.stixfeed import parse

NOW = datetime(2024, 6, 1, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[2] / "feeds" / "samples"


def _ind(n: int, **extra: Any) -> dict[str, Any]:
    obj = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{n}", "pattern_type": "stix"}
    obj["pattern"] = f"[ipv4-addr:value = '10.0.{n // 256 % 256}.{n % 256}']"
    obj.update(extra)
    return obj


def _read(text: str, **options: Any) -> list[Record]:
    return list(parse(io.StringIO(text), "f.json", FeedOptions(now=NOW, **options)))


def _bundle(*objects: Any) -> str:
    return json.dumps({"type": "bundle", "id": "bundle--1", "objects": list(objects)})


def _ips(records: list[Record]) -> list[str]:
    return [r.value for r in records if isinstance(r, Indicator)]


@pytest.fixture(params=[1, 7, 64, 1 << 20], ids=lambda n: f"chunk{n}")
def chunk(request: pytest.FixtureRequest) -> Iterator[int]:
    """Every test below also runs with the JSON read a few characters at a time."""
    original = jsonstream._CHUNK
    jsonstream._CHUNK = request.param
    yield request.param
    jsonstream._CHUNK = original


def _stix_files(real_feeds: Path | None) -> list[Path]:
    found = sorted(p for p in SAMPLES.glob("*.json") if not p.name.startswith("sample_misp"))  # not STIX
    if real_feeds is not None:
        found += sorted((real_feeds / "stix").glob("*.json"))
    return found


def test_every_stix_file_reads_alike_in_any_read_size(chunk: int) -> None:
    root = Path(__file__).resolve().parents[3] / "shared" / "real-feeds"
    for path in _stix_files(root if root.is_dir() else None):
        text = path.read_text(encoding="utf-8")
        jsonstream._CHUNK = 1 << 20
        whole = _read(text)
        jsonstream._CHUNK = chunk
        assert _read(text) == whole, path.name
        assert whole


def test_keys_in_any_order_and_a_late_spec_version(chunk: int) -> None:
    """stix2-elevator writes keys sorted: id, objects, spec_version, type; the objects come first."""
    sorted_bundle = json.dumps(
        {"id": "bundle--1", "objects": [_ind(1)], "spec_version": "2.0", "type": "bundle"}
    )
    assert _ips(_read(sorted_bundle)) == ["10.0.0.1"]
    assert _ips(_read(json.dumps([_ind(1), _ind(2)]))) == ["10.0.0.1", "10.0.0.2"]
    assert _ips(_read(json.dumps(_ind(3)))) == ["10.0.0.3"]


def test_objects_under_another_type_or_none_are_refused(chunk: int) -> None:
    with pytest.raises(FeedError, match="with 'objects' but not a STIX 2 bundle: its type is 'report'"):
        _read(json.dumps({"objects": [_ind(1)], "type": "report"}))
    with pytest.raises(FeedError, match="it has no 'type'"):
        _read(json.dumps({"objects": [_ind(1)]}))


def test_a_huge_number_rejects_its_object_and_the_rest_goes_on(chunk: int) -> None:
    text = _bundle(_ind(1), {"x": 0}, _ind(3)).replace(
        '{"x": 0}', '{"type": "indicator", "confidence": ' + "9" * 5000 + "}"
    )
    records = _read(text)
    assert _ips(records) == ["10.0.0.1", "10.0.0.3"]
    [rejected] = [r for r in records if isinstance(r, Rejected)]
    assert rejected.origin == "f.json:#2" and "a number of 5,000 digits" in rejected.reason
    assert _ips(_read(_bundle(_ind(1, confidence=int("9" * 4000))))) == ["10.0.0.1"]  # long, but an int


def test_a_lone_surrogate_rejects_its_object_but_a_pair_is_text(chunk: int) -> None:
    text = _bundle(_ind(1, description="\U0001f600"), _ind(2, description="x"), _ind(3, name="a\\ud800"))
    text = text.replace('"x"', '"x\\ud800"')  # json.dumps escapes the pair; this one is lone
    records = _read(text)
    assert _ips(records) == ["10.0.0.1", "10.0.0.3"]
    assert records[0].description == "\U0001f600"  # type: ignore[union-attr]
    [rejected] = [r for r in records if isinstance(r, Rejected)]
    assert rejected.origin == "f.json:#2" and "lone UTF-16 surrogate" in rejected.reason
    rejected.raw.encode("utf-8")  # what is reported is text


def test_deep_nesting_and_a_too_big_object_are_skipped_unread(chunk: int) -> None:
    deep = '{"type": "indicator", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    big = json.dumps(_ind(9, description='a "quoted" ] } [ { \\ text ' * 100))
    text = _bundle(_ind(1), {"d": 0}, _ind(2), {"b": 0}, _ind(3))
    text = text.replace('{"d": 0}', deep).replace('{"b": 0}', big)
    records = _read(text, max_object_chars=2000)
    assert _ips(records) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    reasons = [(r.origin, r.reason) for r in records if isinstance(r, Rejected)]
    assert reasons == [
        ("f.json:#2", "JSON nested too deeply to read"),
        ("f.json:#4", "a JSON value of more than 2,000 characters, skipped unread"),
    ]


def test_a_broken_document_is_refused_after_the_objects_before_the_break(chunk: int) -> None:
    text = _bundle(_ind(1), _ind(2))[:-40]
    records: list[Record] = []
    with pytest.raises(FeedError) as caught:
        for record in parse(io.StringIO(text), "f.json", FeedOptions(now=NOW)):
            records.append(record)
    assert _ips(records) == ["10.0.0.1"]
    assert "f.json is not valid JSON (Unterminated string starting at line 1, column" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "bundle",\n "objects": [}',
        '{"type": "bundle", "objects": [{"a": 1}\n\n  {"b": 2}]}',
        '[{"type": "x"}, ]',
        '{"type": "bundle"} {"extra": 1}',
        '{"type": "bundle", "objects": [{"a": tru}]}',
        '\n\n  {"type" "bundle"}',
        '{"a": 1,}',
    ],
)
def test_syntax_errors_name_the_line_and_column_json_would(text: str, chunk: int) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(FeedError) as caught:
        _read(text)
    where = f"at line {expected.value.lineno}, column {expected.value.colno}"
    assert where in str(caught.value)


def _lazy_bundle(count: int) -> Iterator[bytes]:
    yield b'{"type": "bundle", "id": "bundle--1", "objects": ['
    for n in range(count):
        yield (b", " if n else b"") + json.dumps(_ind(n, description="d" * 300)).encode()
    yield b"]}"


class _Lazy(io.RawIOBase):
    """A bundle made as it is read; ``limit``: reading further fails the test."""

    def __init__(self, parts: Iterator[bytes], limit: int | None = None) -> None:
        super().__init__()
        self._parts, self._pending, self._limit, self.read_bytes = parts, b"", limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            self._pending = next(self._parts, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        memoryview(buffer).cast("B")[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.read_bytes += size
        assert self._limit is None or self.read_bytes <= self._limit, "read past the first objects"
        return size


def test_a_bundle_is_read_in_memory_that_does_not_grow_with_it() -> None:
    """10,000 objects (~5 MB): the whole-file reader held all of them at once."""
    tracemalloc.start()
    try:
        counted = sum(1 for _ in read_feed(io.BufferedReader(_Lazy(_lazy_bundle(10_000))), "stix", name="b"))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counted == 10_000
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_detection_and_the_first_records_read_only_the_start() -> None:
    """A 1.5 GB bundle (made as it is read): its first records come after reading ~1 MB."""
    stream = _Lazy(_lazy_bundle(3_000_000), limit=8 << 20)
    first = list(islice(read_feed(io.BufferedReader(stream), name="huge.json"), 5))  # type: ignore[arg-type]
    assert [r.value for r in first] == [f"10.0.0.{n}" for n in range(5)]  # type: ignore[union-attr]
    assert stream.read_bytes < 4 << 20


def test_a_long_pattern_only_the_full_grammar_reads_is_rejected_quickly() -> None:
    slow_shape = (
        "[ipv4-addr:value = '1.2.3.4' OR " + " OR ".join(["file:name = 'x'"] * 2000) + "] WITHIN 5 SECONDS"
    )
    fast_shape = (
        "[" + " OR ".join(f"ipv4-addr:value = '10.1.{n // 256}.{n % 256}'" for n in range(3000)) + "]"
    )
    records = _read(_bundle(_ind(1, pattern=slow_shape), _ind(2, pattern=fast_shape)))
    assert (
        isinstance(records[0], Rejected) and "the parser takes patterns of up to 16,384" in records[0].reason
    )
    assert len(records[0].raw) < 2100
    assert len(_ips(records)) == 3000


def test_a_lone_object_that_cannot_be_held_is_one_reject_saying_why() -> None:
    [record] = _read(json.dumps(_ind(1, description="d" * 5000)), max_object_chars=1000)
    assert isinstance(record, Rejected) and "more than 1,000 characters" in record.reason
    text = json.dumps(_ind(2)).replace('"pattern_type"', '"confidence": ' + "9" * 5000 + ', "pattern_type"')
    [record] = _read(text)
    assert isinstance(record, Rejected) and "a number of 5,000 digits" in record.reason


def test_a_non_object_element_keeps_its_own_text() -> None:
    records = _read("[" + "[" * 500 + "]" * 500 + ', "x", 5, {"type": "malware", "id": "malware--1"}]')
    assert [type(r) for r in records] == [Rejected, Rejected, Rejected, Skipped]
    assert records[0].raw.startswith("[[[") and records[1].raw == '"x"'  # type: ignore[union-attr]
    assert Kind.IPV4  # the model is shared with the other readers
