"""Seeded fuzzing of the readers: mutated sample and real feeds give records or one FeedError, never a crash.

Each bundled sample (``feeds/samples``, so the test runs in a clean clone) and each real feed
beside the project (``../shared/real-feeds``, when present) is mutated the ways hostile or broken
input arrives: cut short, bytes flipped, a huge line, deep nesting, a 5,000-digit number, a lone
surrogate escape, gzipped, a gzip bomb, another encoding. Every case goes through
``feeds.read_feed`` (auto-detected, then forced to one format in turn); one in four also through
``ti-import parse`` in-process. Same seed, same cases: a failure names its file and mutation.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from feeds import FORMATS, Expired, FeedError, Indicator, Rejected, Skipped, read_feed
from importer.cli import main

SEED = 20241130
SAMPLES = Path(__file__).resolve().parents[2] / "feeds" / "samples"
REAL_FEEDS = Path(__file__).resolve().parents[3] / "shared" / "real-feeds"
ROUNDS = 1  # each mutation once per file

Mutation = Callable[[random.Random, bytes], bytes]


def _at(rng: random.Random, data: bytes, insert: bytes, after: bytes | None = None) -> bytes:
    """``insert`` at a random place (right after an ``after`` when the file has one)."""
    places = [m.end() for m in re.finditer(re.escape(after), data)] if after else []
    at = rng.choice(places) if places else rng.randrange(len(data) + 1)
    return data[:at] + insert + data[at:]


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if out:
            out[rng.randrange(len(out))] = rng.choice([*b'"{}[],:\\\n\r\x00#;', rng.randrange(256)])
    return bytes(out)


def _huge_line(rng: random.Random, data: bytes) -> bytes:
    line = rng.choice([b"A", b"1.2.3.4,", b"\xc3\xa9", b'"']) * rng.choice([70_000, 200_000])
    return _at(rng, data, line + rng.choice([b"\n", b"\r\n", b"\r", b""]), b"\n")


def _json_member(rng: random.Random, data: bytes, value: bytes) -> bytes:
    """``value`` as a new member of an object or a new element of an array: still valid JSON."""
    if rng.random() < 0.5:
        return _at(rng, data, b'"x_fuzz": ' + value + b", ", b"{")
    return _at(rng, data, value + b", ", b": [")  # an array value, not a "[" inside a pattern


def _deep(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([900, 3000, 20_000])
    return _json_member(
        rng, data, rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth])
    )


def _huge_number(rng: random.Random, data: bytes) -> bytes:
    for number in rng.sample([b"9" * 5000, b"-" + b"1" * 4301, b"1" * 5000 + b".5e99999", b"1e999999"], 2):
        data = _json_member(rng, data, number)
    return data


def _surrogate(rng: random.Random, data: bytes) -> bytes:
    """Lone surrogate escapes at the start of string values (a description, a name, an id...)."""
    for escape in (b"\\ud800", b"\\udfff"):
        data = _at(rng, data, escape, b'": "')
    return data


def _commented(rng: random.Random, data: bytes) -> bytes:
    """Every line made a comment: an empty feed, whatever the file was (";" only when the cells
    it separates hold no indicator: else it may be a CSV whose first column is empty)."""
    mark = rng.choice([b"#", b"# ", b"//", b"; ", b";"])
    return b"".join(mark + line for line in data.splitlines(keepends=True))


def _gzipped(rng: random.Random, data: bytes) -> bytes:
    return gzip.compress(_flip(rng, data) if rng.random() < 0.5 else data)[: rng.choice([None, -20])]


def _bomb(rng: random.Random, data: bytes) -> bytes:
    # Past the ratio cap's floor (GZIP_RATIO_FLOOR, 1 MiB): blank lines cost the list reader
    # ~0.2 us each until the cap stops them.
    return gzip.compress(data[:1000] + rng.choice([b"A", b"\n", b"[", b"0"]) * (3 << 20), compresslevel=1)


def _encoded(rng: random.Random, data: bytes) -> bytes:
    text = data.decode("utf-8", "replace")
    return rng.choice([text.encode("utf-16"), text.encode("latin-1", "replace"), b"\xef\xbb\xbf" + data])


def _random(rng: random.Random, data: bytes) -> bytes:
    return rng.randbytes(rng.randint(0, 3000))


MUTATIONS: dict[str, Mutation] = {
    "truncate": _truncate,
    "flip": _flip,
    "huge_line": _huge_line,
    "deep": _deep,
    "huge_number": _huge_number,
    "surrogate": _surrogate,
    "gzip": _gzipped,
    "bomb": _bomb,
    "commented": _commented,
    "encoding": _encoded,
    "random": _random,
}


def _seed_files() -> list[Path]:
    files = sorted(p for p in SAMPLES.iterdir() if p.is_file())
    if REAL_FEEDS.is_dir():
        files += sorted(p for p in REAL_FEEDS.glob("*/*") if p.is_file() and p.name != "SOURCES.md")
    return files


def _cases() -> list[tuple[str, str, bytes]]:
    """(file name, mutation name, mutated bytes), the same every run."""
    cases = []
    for number, path in enumerate(_seed_files()):
        data = path.read_bytes()
        rng = random.Random(SEED + number)
        for mutation in sorted(MUTATIONS) * ROUNDS:
            cases.append((path.name, mutation, MUTATIONS[mutation](rng, data)))
    return cases


def _check_records(source: Path, fmt: str, label: str) -> None:
    try:
        for record in read_feed(source, fmt):
            assert isinstance(record, Indicator | Rejected | Expired | Skipped), label
            assert record.origin.startswith(f"{source}:"), label
            # Whatever a record carries can be written out as UTF-8 (no lone surrogate).
            shown = record.to_json() if not isinstance(record, Skipped) else {"what": record.what}
            json.dumps(shown, ensure_ascii=False).encode("utf-8")
    except FeedError as exc:
        message = str(exc)
        assert source.name in message and "\n" not in message, f"{label}: {message!r}"


def test_mutated_feeds_give_records_or_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = _cases()
    assert len(cases) >= 77  # the samples alone: the test means something in a clean clone
    formats = sorted(FORMATS)
    for number, (name, mutation, data) in enumerate(cases):
        label = f"case {number}: {mutation} of {name}"
        source = tmp_path / f"fuzz{number}-{name}"
        source.write_bytes(data)
        if mutation == "commented" and data.startswith((b"#", b"//")) and b"\x00" not in data:
            assert list(read_feed(source)) == [], label  # an empty feed, not a refusal
        else:
            _check_records(source, "auto", label)
            _check_records(source, formats[number % len(formats)], label)  # another reader's view
        if number % 4 == 0:
            code = main(["parse", str(source)])
            out, err = capsys.readouterr()
            assert code in (0, 2), f"{label}: exit {code}: {err[-300:]}"
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, f"{label}: {err[-500:]}"
            if code == 0:
                assert all(json.loads(line) for line in out.splitlines()), label
        source.unlink()
