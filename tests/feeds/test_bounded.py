"""Lists and CSV in bounded memory: a line over ``max_line_bytes`` is one rejected record, skipped unread."""

from __future__ import annotations

import argparse
import gzip
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import FeedError, FeedOptions, Indicator, Kind, Record, Rejected, lines, read_feed
from feeds.csvfeed import parse as parse_csv
from feeds.lines import LongLine, too_long
from feeds.listfeed import parse as parse_list
from importer.fields import COMMON, MAX_LINE_BYTES, build_definition, options_of
from importer.sources.feed import job_for

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
LIMIT = 1024
SMALL = FeedOptions(max_line_bytes=LIMIT)


def _list(text: str, options: FeedOptions = SMALL) -> list[Record]:
    return list(parse_list(io.StringIO(text, newline=""), "f.txt", options))


def _csv(text: str, options: FeedOptions = SMALL) -> list[Record]:
    return list(parse_csv(io.StringIO(text, newline=""), "f.csv", options))


def _long_reject(record: Record, line: int, length: int) -> bool:
    return (
        isinstance(record, Rejected)
        and record.origin.endswith(f":{line}")
        and f"a line of {length:,} characters" in record.reason
        and "max_line_bytes" in record.reason
    )


class _Endless(io.RawIOBase):
    """``size`` bytes of ``fill`` after ``head`` and before ``tail``, made as they are read."""

    def __init__(self, head: bytes, fill: bytes, size: int, tail: bytes) -> None:
        super().__init__()
        self._parts: Iterator[bytes] = iter([head, *([fill * (size // len(fill) // 64)] * 64), tail])
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            part = next(self._parts, None)
            if part is None:
                return 0
            self._pending = part
        size = min(len(buffer), len(self._pending))
        memoryview(buffer).cast("B")[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


# --- lists ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_a_long_list_line_is_one_reject_and_the_rest_goes_on(end: str) -> None:
    text = f"{MD5}{end}{'x' * 5000}{end}{MD5.upper()}{end}1.2.3.4"
    records = _list(text)
    assert records[0] == Indicator(Kind.MD5, MD5, "f.txt:1")
    assert _long_reject(records[1], 2, 5000)
    assert records[1].raw.startswith("x" * 200) and len(records[1].raw) < 300  # type: ignore[union-attr]
    assert records[2:] == [Indicator(Kind.MD5, MD5, "f.txt:3"), Indicator(Kind.IPV4, "1.2.3.4", "f.txt:4")]


def test_the_limit_counts_bytes_and_holds_any_line_shape() -> None:
    at_limit = "é" * (LIMIT // 2)  # 1024 bytes: allowed
    over = "é" * (LIMIT // 2 + 1)  # 1026 bytes in 513 characters
    spaced = " " * 2000 + MD5  # a digest, but the line is over the limit
    described = MD5 + ";" + "d" * 2000  # a digest and a description over the limit
    records = _list("\n".join([at_limit, over, spaced, described, MD5]))
    assert "max_line_bytes" not in records[0].reason  # type: ignore[union-attr]
    assert _long_reject(records[1], 2, 513)
    assert _long_reject(records[2], 3, 2032)
    assert _long_reject(records[3], 4, 2033)
    assert records[4] == Indicator(Kind.MD5, MD5, "f.txt:5")


def test_the_default_limit_is_64_kib() -> None:
    records = _list(f"{'a' * 65536}\n{'a' * 65537}\n", FeedOptions())
    assert "max_line_bytes" not in records[0].reason  # type: ignore[union-attr]
    assert _long_reject(records[1], 2, 65537)


def test_a_limit_below_1024_is_refused() -> None:
    with pytest.raises(ValueError, match="between 1,024 and 16,777,216"):
        FeedOptions(max_line_bytes=100)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([MD5, "x" * 1500, "é" * 600, "1.2.3.4", "", "# c", "\r", "\n", "\r\n"]), max_size=14
    ),
    st.sampled_from([1, 3, 7, 1000, 1 << 18]),
)
def test_list_lines_are_numbered_alike_however_the_reads_split_them(parts: list[str], block: int) -> None:
    """Over-long lines read in any block size: each is one reject at its own line; nothing else changes."""
    text = "".join(parts)
    unlimited = FeedOptions(max_line_bytes=1 << 24)
    original = lines._BLOCK
    try:
        lines._BLOCK = block
        got = _list(text)
        plain = _list(text, unlimited)
    finally:
        lines._BLOCK = original
    expected: list[Record] = []
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        body = line.rstrip("\r\n")
        if too_long(body, LIMIT):
            expected.append(
                Rejected(
                    f"f.txt:{number}", LongLine(body, len(body)).head, LongLine(body, len(body)).reason(LIMIT)
                )
            )
        else:
            expected.extend(r for r in plain if r.origin == f"f.txt:{number}")
    assert got == expected


# --- the CSV reader's lines ----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "é", ",", "x" * 9, "\r", "\n", "\r\n", '"']), max_size=30),
    st.integers(min_value=1, max_value=12),
    st.sampled_from([1, 2, 3, 5, 8192]),
)
def test_csv_lines_are_the_stream_s_own_lines_with_long_ones_replaced(
    parts: list[str], limit: int, chunk: int
) -> None:
    """``lines`` splits as iterating the stream does (CRLF across any read, CR-only, no final end)."""
    text = "".join(parts)
    stream = io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8", newline="")
    stream._CHUNK_SIZE = chunk  # type: ignore[attr-defined]
    keep = min(limit + 1, lines.HEAD_CHARS)  # a long line's start: all of it the reader saw, at most
    got = [(x.head[:keep], x.length) if isinstance(x, LongLine) else x for x in lines.lines(stream, limit)]
    expected: list[object] = []
    for line in io.StringIO(text, newline=""):
        body = line.rstrip("\r\n")
        expected.append((body[:keep], len(body)) if too_long(body, limit) else line)
    assert got == expected


def test_a_long_csv_line_is_one_reject_in_file_order() -> None:
    text = (
        "ip,note\r\n1.2.3.4,a\r\n" + "x" * 5000 + "\r\n"
        '5.6.7.8,"two\nlines"\r\n'
        '9.9.9.9,"a field with a long line\n' + "y" * 3000 + '\nin it"\r\n'
        "8.8.8.8," + "é" * 600 + "\r\n4.4.4.4,c"
    )
    records = _csv(text)
    assert [r.origin for r in records] == [
        "f.csv:2",
        "f.csv:3",
        "f.csv:4",
        "f.csv:6",
        "f.csv:7",
        "f.csv:9",
        "f.csv:10",
    ]
    assert _long_reject(records[1], 3, 5000)
    assert records[3] == Indicator(Kind.IPV4, "9.9.9.9", "f.csv:6", "a field with a long line\n\nin it")
    assert _long_reject(records[4], 7, 3000)  # inside the quoted field: reported after its row
    assert _long_reject(records[5], 9, 608)
    assert records[6] == Indicator(Kind.IPV4, "4.4.4.4", "f.csv:10", "c")


def test_a_long_line_before_the_csv_header_is_reported_too() -> None:
    records = _csv("# banner\n" + "z" * 3000 + "\nip,note\n1.2.3.4,a\n")
    assert _long_reject(records[0], 2, 3000)
    assert records[1:] == [Indicator(Kind.IPV4, "1.2.3.4", "f.csv:4", "a")]


# --- memory and time -----------------------------------------------------------------------------


@pytest.mark.parametrize(("head", "tail"), [(b"", b"\n" + MD5.encode()), (b"ip,note\n", b"\n1.2.3.4,x\n")])
def test_a_32_mib_line_is_read_in_flat_memory(head: bytes, tail: bytes) -> None:
    """The old reader grew the line by concatenation (quadratic) and kept it; now none of it is kept."""
    stream = io.BufferedReader(_Endless(head, b"A" * 1024, 32 << 20, tail))
    tracemalloc.start()
    try:
        records = list(read_feed(stream, name="big"))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"
    assert any(isinstance(r, Rejected) and "max_line_bytes" in r.reason for r in records)
    assert isinstance(records[-1], Indicator)


# --- gzip ----------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_in_one_sentence_naming_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.txt.gz"
    bomb.write_bytes(gzip.compress(MD5.encode() + b"\n" + b"A" * (8 << 20), compresslevel=6))
    with pytest.raises(FeedError) as caught:
        list(read_feed(bomb))
    message = str(caught.value)
    assert str(bomb) in message and "100 times its compressed size" in message and "\n" not in message
    # Without the cap, the same file reads: its long line is one reject.
    records = list(read_feed(bomb, options=FeedOptions(max_gzip_ratio=None)))
    assert records[0] == Indicator(Kind.MD5, MD5, f"{bomb}:1")
    assert isinstance(records[1], Rejected) and "max_line_bytes" in records[1].reason


def test_ordinary_gzip_feeds_are_far_from_the_cap(tmp_path: Path) -> None:
    feed = tmp_path / "feed.txt.gz"
    text = "".join(f"{i:032x}\n" for i in range(100_000))  # 3.3 MB, past the cap's 1 MiB floor
    feed.write_bytes(gzip.compress(text.encode()))
    assert sum(1 for _ in read_feed(feed)) == 100_000


# --- the per-feed option -------------------------------------------------------------------------


async def test_max_line_bytes_is_a_per_feed_option_the_job_reads_with(tmp_path: Path) -> None:
    feed = tmp_path / "f.txt"
    feed.write_text(f"{MD5}\n{'x' * 3000}\n{MD5.upper()}\n")
    definition = build_definition(COMMON, "f")
    for values, over in (
        ({}, False),
        ({"max_line_bytes": 2048}, True),
        ({"max_line_bytes": 4096}, False),
    ):
        job = job_for(str(feed), definition, options_of(COMMON, values))
        async with job.open() as records:
            [rejected] = [r for r in records if isinstance(r, Rejected)]
        assert ("max_line_bytes" in rejected.reason) is over  # else: "not a hash, IP address..."


def test_max_line_bytes_values_are_checked_with_their_range() -> None:
    assert MAX_LINE_BYTES.check(2048) == 2048
    with pytest.raises(ValueError, match="must be between 1,024 and 16,777,216, got 100"):
        MAX_LINE_BYTES.check(100)
    with pytest.raises(ValueError, match="must be an integer"):
        MAX_LINE_BYTES.check("2048")
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
        MAX_LINE_BYTES.flag_type("64k")
