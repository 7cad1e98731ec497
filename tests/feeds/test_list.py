"""Plain lists: comments, blanks, trailing text, mixed kinds, rejects with precise reasons; never a crash."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import FeedError, lines, read_feed
from feeds.listfeed import parse
from feeds.model import Detection, Indicator, Kind, Record, Rejected
from feeds.options import FeedOptions

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
NOT_IOC = "not a hash, IP address, domain name or URL"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _parse(text: str) -> list[Record]:
    return list(parse(io.StringIO(text, newline=""), "f.txt", FeedOptions()))


def test_bare_hashes_of_every_kind_with_line_numbers() -> None:
    records = _parse(f"{MD5}\n{SHA1}\r\n\n{SHA256.upper()}\r  \t{MD5}  \n")
    assert records == [
        Indicator(Kind.MD5, MD5, "f.txt:1"),
        Indicator(Kind.SHA1, SHA1, "f.txt:2"),
        Indicator(Kind.SHA256, SHA256, "f.txt:4"),  # lone CR ends line 4
        Indicator(Kind.MD5, MD5, "f.txt:5"),
    ]


def test_comments_and_commented_out_examples_are_not_imported() -> None:
    text = f"# header\n# {MD5};EXAMPLE\n// {SHA1}\n; {SHA256}\n   # indented {MD5}\n"
    assert _parse(text) == []


def test_trailing_text_becomes_the_description() -> None:
    records = _parse(
        f"{MD5};Dark Caracal - PE32\n"
        f"{SHA1};55;Vulnerable Log4j\n"
        f"{SHA256} - Счёт.zip\n"
        f"{MD5}\tinvoice.iso  \n"
        f"{SHA1},comma text\n"
        f"{SHA256} | pipe text\n"
        f"{MD5};;\n"
    )
    assert [(r.description, r.confidence) for r in records if isinstance(r, Indicator)] == [
        ("Dark Caracal - PE32", None),
        ("Vulnerable Log4j", 55),
        ("Счёт.zip", None),
        ("invoice.iso", None),
        ("comma text", None),
        ("pipe text", None),
        (None, None),
    ]


def test_score_above_100_is_description_not_confidence() -> None:
    (record,) = _parse(f"{MD5};555;text\n")
    assert isinstance(record, Indicator)
    assert record.confidence is None
    assert record.description == "555;text"


def test_mixed_kinds_are_classified_and_refanged() -> None:
    records = _parse(
        "hxxp://45.136.230[.]191:4000/D234R23\n176.113.115.107\nevil[.]example.\n2001:DB8::1 note\n"
        "evil.example;C2\nhttp://evil.example/a;b=c desc\n"
    )
    assert [(r.kind, r.value, r.description) for r in records if isinstance(r, Indicator)] == [
        (Kind.URL, "http://45.136.230.191:4000/D234R23", None),
        (Kind.IPV4, "176.113.115.107", None),
        (Kind.DOMAIN, "evil.example", None),
        (Kind.IPV6, "2001:db8::1", "note"),
        (Kind.DOMAIN, "evil.example", "C2"),
        (Kind.URL, "http://evil.example/a;b=c", "desc"),  # a URL is cut at whitespace only
    ]


def test_malformed_and_prose_lines_are_rejected_with_line_and_reason() -> None:
    records = _parse(
        f"Part 1 of 3: malspam attachments\n{SHA256[:63]}\n{SHA1}s\n{MD5}0 - file\nAPPENDIX B\n10.0.0.0/8\n"
    )
    assert records == [
        Rejected(
            "f.txt:1",
            "Part 1 of 3: malspam attachments",
            "a line of prose or a title, not an indicator ('Part' is " + NOT_IOC + ")",
        ),
        Rejected(
            "f.txt:2", SHA256[:63], "63 hex digits, not a valid md5/sha1/sha256 (those have 32, 40 or 64)"
        ),
        Rejected("f.txt:3", SHA1 + "s", "41 characters, not a valid md5/sha1/sha256: contains non-hex 's'"),
        Rejected(
            "f.txt:4",
            MD5 + "0 - file",
            "33 hex digits, not a valid md5/sha1/sha256 (those have 32, 40 or 64)",
        ),
        Rejected(
            "f.txt:5",
            "APPENDIX B",
            "a line of prose or a title, not an indicator ('APPENDIX' is " + NOT_IOC + ")",
        ),
        Rejected("f.txt:6", "10.0.0.0/8", "an address range (CIDR), not a single IP address"),
    ]


def test_very_long_lines_are_clipped_in_reports() -> None:
    (record,) = _parse("x" * 100_000 + "\n")
    assert isinstance(record, Rejected)
    assert len(record.raw) < 600


def test_fast_constructor_builds_the_same_indicator() -> None:
    assert Indicator.fast(Kind.MD5, MD5, "o:1") == Indicator(Kind.MD5, MD5, "o:1")
    (bare,) = _parse(MD5)
    assert bare == Indicator(Kind.MD5, MD5, "f.txt:1")
    assert type(bare) is Indicator
    assert bare.detection is Detection.EQUALS
    assert (bare.description, bare.labels, bare.confidence, bare.first_seen, bare.expires) == (
        None,
        (),
        None,
        None,
        None,
    )


def test_every_line_shape_reads_as_the_dataclass_constructor_builds() -> None:
    """Bare digests, described digests and other kinds all go through ``Indicator.fast``."""
    text = f"{MD5}\n{SHA1};x\n{SHA1.upper()};80;Loader\nevil.com - c2\nbad line\n"
    assert _parse(text) == [
        Indicator(Kind.MD5, MD5, "f.txt:1"),
        Indicator(Kind.SHA1, SHA1, "f.txt:2", description="x"),
        Indicator(Kind.SHA1, SHA1, "f.txt:3", description="Loader", confidence=80),
        Indicator(Kind.DOMAIN, "evil.com", "f.txt:4", description="c2"),
        Rejected(
            "f.txt:5", "bad line", "a line of prose or a title, not an indicator ('bad' is " + NOT_IOC + ")"
        ),
    ]
    built = Indicator.fast(Kind.SHA1, SHA1, "o:2", description="d", confidence=7)
    assert built == Indicator(Kind.SHA1, SHA1, "o:2", description="d", confidence=7)
    assert built.detection is Detection.EQUALS
    assert built.labels == ()
    assert hash(built) == hash(Indicator(Kind.SHA1, SHA1, "o:2", description="d", confidence=7))


_LINE_PARTS = st.sampled_from(
    [MD5, SHA1, SHA256, SHA1 + "s", "#", "//", ";", " - ", "\t", " ", ",", "|", "[.]", "hxxp://", "evil.com",
     "1.2.3.4", ":443", "/24", "::1", "[", "]", "@", "bücher", "\x00", "\ufeff", "\r", "\n", "\r\n", "%"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_LINE_PARTS, st.text(max_size=12)), max_size=30))
def test_no_text_makes_the_list_parser_raise(parts: list[str]) -> None:
    records = _parse("".join(parts))
    assert all(isinstance(r, Indicator | Rejected) for r in records)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300) | st.lists(_LINE_PARTS, max_size=20).map(lambda p: "".join(p).encode()))
def test_no_bytes_make_read_feed_raise_anything_but_feed_error(data: bytes) -> None:
    try:
        for _ in read_feed(io.BytesIO(data), name="fuzz"):
            pass
    except FeedError as exc:
        assert "fuzz" in str(exc)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([MD5, SHA1 + ";d", "x y", "", " ", "\r", "\n", "\r\n", "#c"]), max_size=40))
def test_blocks_split_anywhere_keep_lines_and_numbers(parts: list[str]) -> None:
    """Reading in tiny blocks (CRLF split across reads, CR-only text) changes nothing."""
    text = "".join(parts)
    whole = _parse(text)
    original = lines._BLOCK
    try:
        lines._BLOCK = 3
        assert _parse(text) == whole
    finally:
        lines._BLOCK = original
    numbered = [
        (f"f.txt:{n}", line.strip())
        for n, line in enumerate(io.StringIO(text, newline=""), 1)
        if line.strip() and not line.strip().startswith("#")
    ]
    assert [r.origin for r in whole] == [origin for origin, _ in numbered]
