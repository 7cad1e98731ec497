"""Opening feeds (paths, stdin-like streams, gzip by magic, BOM, bad bytes) and detecting their format."""

from __future__ import annotations

import gzip
import io
import os
import random
from pathlib import Path

import pytest

from feeds import FeedError, Indicator, read_feed
from feeds.detect import detect_format
from feeds.source import HEAD_BYTES, open_feed

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# What every real feed must be read as (SOURCES.md): format, or None when it must be refused.
REAL_FORMATS = {
    "csv/abusech_feodotracker_ipblocklist_2021-12-20.csv": "csv",
    "csv/abusech_malwarebazaar_recent_2024-05-07.csv": "csv",
    "csv/c2list_commented-header_IPC2s-30day.csv": "csv",
    "csv/citizenlab_misp_201512_PackRAT_iocs.csv": "csv",
    "csv/sophos_Troj-Qakbot.csv": "csv",
    "csv/volexity_2021-12-06_XEGroup_indicators.csv": "csv",
    "hashlist/abusech_malwarebazaar_recent_md5_2023-11-23.txt": "list",
    "hashlist/eset_modiloader_samples.sha1": "list",
    "hashlist/eset_xdspy_samples.sha256": "list",
    "hashlist/neo23x0_signature-base_hash-iocs.txt": "list",
    "hashlist/unit42_Redaman_2018-09_hashes_with_filenames.txt": "list",
    "misc/talos_2022-06_avoslocker_mixed-ioc-list.txt": "list",
    "stix/elevator21_issue-271.json": "stix",
    "stix/elevator21_snort-test-mechanism.json": "stix",
    "stix/oasis_examples_poisonivy.json": "stix",
    "stix/opencti_DATA-TEST-STIX2_v2.json": "stix",
    "stix/stix1x_elevator_file-hash-reputation.xml": "stix",  # routed to the STIX reader, which refuses
    "stix/talos_2024-01_new-zardoor-backdoor.json": "stix",
}


class _Pipe(io.RawIOBase):
    """A non-seekable stream that returns short reads, like stdin on a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), 1000, len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def _values(records: object) -> list[str]:
    return [r.value for r in records if isinstance(r, Indicator)]  # type: ignore[attr-defined]


def test_every_real_feed_is_detected_as_its_format(real_feeds: Path) -> None:
    found = {str(p.relative_to(real_feeds)) for p in real_feeds.glob("*/*")}
    assert found == set(REAL_FORMATS), "a real feed was added or removed: list its format here"
    for relative, expected in REAL_FORMATS.items():
        opened = open_feed(real_feeds / relative)
        try:
            assert detect_format(opened.head, opened.name) == expected, relative
        finally:
            opened.close()


def test_gzip_is_detected_by_magic_not_by_name(tmp_path: Path) -> None:
    path = tmp_path / "hashes.dat"  # no .gz
    path.write_bytes(gzip.compress(f"{MD5}\n{SHA1}\n".encode()))
    assert _values(read_feed(path)) == [MD5, SHA1]


def test_large_gzip_from_a_pipe_reads_every_line(tmp_path: Path) -> None:
    lines = [f"{i:032x}" for i in range(HEAD_BYTES // 20)]  # more than the head, uncompressed
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    assert _values(read_feed(_Pipe(data), name="<stdin>")) == lines  # type: ignore[arg-type]


def test_non_seekable_stream_keeps_its_head(tmp_path: Path) -> None:
    text = "".join(f"{i:040x}\n" for i in range(5000)).encode()
    records = list(read_feed(_Pipe(text), name="<stdin>"))  # type: ignore[arg-type]
    assert len(records) == 5000
    assert records[-1].origin == "<stdin>:5000"


def test_callers_stream_is_not_closed() -> None:
    stream = io.BytesIO(f"{MD5}\n".encode())
    assert _values(read_feed(stream, name="mem")) == [MD5]
    assert not stream.closed


def test_bom_is_removed_and_bad_bytes_replaced(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"\xef\xbb\xbf" + MD5.encode() + b";caf\xe9\n")
    (record,) = read_feed(path)
    assert isinstance(record, Indicator)
    assert (record.value, record.description) == (MD5, "caf\ufffd")


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    class _Stdin:
        buffer = io.BytesIO(f"{SHA256}\n".encode())

    monkeypatch.setattr("sys.stdin", _Stdin)
    (record,) = read_feed("-")
    assert record.origin == "<stdin>:1"


def test_empty_file_is_an_empty_feed(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert list(read_feed(path)) == []
    path.write_bytes(b"# only a banner\n\n")
    assert list(read_feed(path)) == []


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00", "is a binary file (it holds NUL bytes)"),
        (bytes(range(128, 256)) * 40, "is not UTF-8 text"),
        (b'<?xml version="1.0"?><feed><entry/></feed>', "is XML, not a CSV, STIX 2 JSON or plain-list feed"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "is an HTML page"),
        (b"PK\x03\x04rest-of-zip", "is a zip archive: extract it first"),
        (b"\xff\xfe1\x002\x00", "is UTF-16 text: convert it to UTF-8 first"),
        (b"<stix:STIX_Package xmlns:stix='http://stix.mitre.org/stix-1'>", "STIX 1.x"),
        (gzip.compress(b"\x00\x01\x02"), "is a binary file"),
        (gzip.compress(b"x" * 5000)[:-6], "is a corrupt or truncated gzip file"),
    ],
)
def test_refusals_are_one_sentence_naming_the_file(tmp_path: Path, data: bytes, sentence: str) -> None:
    path = tmp_path / "feed.txt"
    path.write_bytes(data)
    with pytest.raises(FeedError) as info:
        list(read_feed(path))
    message = str(info.value)
    assert sentence in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"cannot read .*nope\.txt: no such file\.$"):
        list(read_feed(tmp_path / "nope.txt"))
    with pytest.raises(FeedError, match="it is a directory"):
        list(read_feed(tmp_path))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every file")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text(MD5)
    path.chmod(0)
    with pytest.raises(FeedError, match="permission denied"):
        list(read_feed(path))


def test_unknown_format_is_refused() -> None:
    with pytest.raises(FeedError, match="unknown feed format 'xml'"):
        list(read_feed(io.BytesIO(b""), "xml"))


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        ('{"type": "bundle"}', "x.txt", "stix"),
        ('  [\n {"type": "indicator"}]', "x.txt", "stix"),
        ("[2001:db8::1]:443\n[2001:db8::2]:443\n", "x.txt", "list"),
        (f"{MD5};desc one\n{SHA1};55;desc; two\n{SHA256};three\n", "hash-iocs.txt", "list"),
        (f"{MD5};desc one\n{SHA1};desc two\n{SHA256};three\n", "hash-iocs.csv", "csv"),  # a tie: the name
        (f"{MD5},{SHA1}\n{MD5},{SHA1}\n", "x.txt", "csv"),  # two indicator columns: a table
        ("1.2.3.4,443,online\n5.6.7.8,80,offline\n", "x.txt", "list"),
        ("1.2.3.4,443,online\n5.6.7.8,80,offline\n", "x.csv", "csv"),
        ("date,dst_ip\n2024-01-01,1.2.3.4\n", "x.txt", "csv"),  # a header naming an indicator column
        ('# "first_seen","sha256_hash"\n"2024",' + f'"{SHA256}"\n', "x", "csv"),  # commented header
        ('"a","b"\n"c","d"\n', "x.txt", "csv"),  # quoted rows
        ("evil.example\nhxxp://x[.]y/z\n1.2.3.4\n", "x.csv", "list"),  # one token per line
        ("ip\n1.2.3.4\n5.6.7.8\n", "x.csv", "csv"),  # one column under its header
        ("Part 1 of 3: text\n\n" + f"{SHA256} - a, b.zip\n" * 3, "x.txt", "list"),
        ("", "x.csv", "list"),
    ],
)
def test_detection_cases(head: str, name: str, expected: str) -> None:
    assert detect_format(head, name) == expected


def test_gzip_truncated_after_the_head_is_a_feed_error(tmp_path: Path) -> None:
    rnd = random.Random(7)
    text = "".join(f"{rnd.getrandbits(128):032x}\n" for _ in range(20000))  # ~660 KB, incompressible hex
    data = gzip.compress(text.encode())
    path = tmp_path / "big.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    records = []
    with pytest.raises(FeedError, match=r"big\.txt\.gz is a corrupt or truncated gzip file"):
        records.extend(read_feed(path))
    assert len(records) > 2000  # what came before the damage was read
