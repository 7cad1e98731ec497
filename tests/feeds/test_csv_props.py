"""Properties: no text makes the CSV reader raise anything but FeedError; fast paths match canonical."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.canonical import InvalidValue, normalise, normalise_ip
from feeds.csvfeed import parse
from feeds.csvvocab import COLUMN_KINDS
from feeds.model import FeedError, Indicator, Kind, Rejected, Skipped
from feeds.options import FeedOptions

_PIECES = st.sampled_from(
    [
        "#",
        '"',
        ",",
        ";",
        "\t",
        "|",
        "\n",
        "\r\n",
        "\r",
        " ",
        "n/a",
        "ip",
        "type",
        "value",
        "sha256",
        "url",
        "domain",
        "1.2.3.4",
        "evil.example",
        "http://x.example/a",
        "5b8ff6346021854ff5e1c2ecdd7fcbe2",
        "filename|md5",
        "file",
        "\ufeff",
        "\x00",
        "ü",
    ]
)
_TEXT = st.one_of(st.text(max_size=300), st.lists(_PIECES | st.text(max_size=5), max_size=60).map("".join))


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, columns=st.sampled_from([None, "1=any", "type=1,value=2", "2=ip,3=url"]))
def test_any_text_gives_records_or_one_feed_error(text: str, columns: str | None) -> None:
    try:
        for record in parse(io.StringIO(text, newline=""), "t.csv", FeedOptions(columns=columns)):
            assert isinstance(record, Indicator | Rejected | Skipped)
            assert record.origin.startswith("t.csv:")
    except FeedError as exc:
        assert str(exc) and "\n" not in str(exc)


_OCTET = st.integers(0, 255).map(str) | st.sampled_from(["00", "01", "256", "1e1", "٣"])


@given(parts=st.lists(_OCTET, min_size=3, max_size=5), port=st.sampled_from(["", ":443", "/32"]))
def test_ipv4_fast_path_agrees_with_canonical(parts: list[str], port: str) -> None:
    raw = ".".join(parts) + port
    fast = COLUMN_KINDS["ip"]
    try:
        expected: tuple[Kind, str] | str = normalise_ip(raw)
    except InvalidValue as exc:
        expected = str(exc)
    try:
        got: tuple[Kind, str] | str = fast(raw)
    except InvalidValue as exc:
        got = str(exc)
    assert got == expected


@given(text=st.text(alphabet="0123456789abcdefABCDEFg ", min_size=30, max_size=66))
def test_hash_fast_path_agrees_with_canonical(text: str) -> None:
    for kind in (Kind.MD5, Kind.SHA1, Kind.SHA256):
        try:
            expected: tuple[Kind, str] | str = (kind, normalise(kind, text))
        except InvalidValue as exc:
            expected = str(exc)
        try:
            got: tuple[Kind, str] | str = COLUMN_KINDS[str(kind)](text)
        except InvalidValue as exc:
            got = str(exc)
        assert got == expected
