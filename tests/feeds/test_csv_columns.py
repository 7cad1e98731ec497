"""The ``--columns`` override (FeedOptions.columns): mapping by name or number, and bad specs."""

from __future__ import annotations

import io

import pytest

from feeds.csvfeed import parse
from feeds.model import FeedError, Indicator, Record, Rejected
from feeds.options import FeedOptions

SHA256 = "0d0ae934e46b821fec45c7e3f4e3baea4e72a038138f3854a56a6f1eb31dfc6c"
MD5 = "5b8ff6346021854ff5e1c2ecdd7fcbe2"


def records(text: str, columns: str) -> list[Record]:
    return list(parse(io.StringIO(text, newline=""), "t.csv", FeedOptions(columns=columns)))


def values(text: str, columns: str) -> list[tuple[str, str]]:
    return [(str(r.kind), r.value) for r in records(text, columns) if isinstance(r, Indicator)]


def test_by_name_reads_only_the_named_columns() -> None:
    text = f"sha256_hash,md5_hash,dst_ip\n{SHA256},{MD5},1.2.3.4\n"
    assert values(text, "sha256_hash=sha256,DST_IP=ip") == [("sha256", SHA256), ("ipv4", "1.2.3.4")]


def test_by_number_on_a_header_less_file() -> None:
    text = "x,443,evil.example\ny,80,bad.example\n"
    assert values(text, "3=domain") == [("domain", "evil.example"), ("domain", "bad.example")]


def test_by_number_skips_a_header_of_unknown_names() -> None:
    text = "Name,Port,Host\nx,443,evil.example\n"
    assert values(text, "3=domain") == [("domain", "evil.example")]


def test_a_column_the_detector_would_never_read() -> None:
    text = f"sha256,imphash\n{SHA256},{MD5}\n"
    assert values(text, "imphash=md5") == [("md5", MD5)]


def test_typed_layout_by_role() -> None:
    text = f"Kategorie,Wert\nsha256,{SHA256}\nemail,a@b.example\n"
    recs = records(text, "type=Kategorie,value=Wert")
    assert [type(r).__name__ for r in recs] == ["Indicator", "Rejected"]
    assert isinstance(recs[1], Rejected) and recs[1].reason == "unsupported indicator type 'email'"


def test_metadata_roles() -> None:
    text = "Host,Family,Seen\nevil.example,Emotet,2024-01-02\n"
    (ind,) = records(text, "1=domain,2=labels,3=first_seen")
    assert isinstance(ind, Indicator)
    assert ind.labels == ("Emotet",) and ind.first_seen is not None and ind.first_seen.day == 2


def test_kind_mismatch_is_rejected_per_cell() -> None:
    (bad,) = records(f"h\n{SHA256}\n", "h=md5")
    assert isinstance(bad, Rejected) and bad.raw == SHA256


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sha256_hash", "is not a list of COLUMN=KIND items"),
        ("=sha256", "is not a list of COLUMN=KIND items"),
        ("a=url,", "is not a list of COLUMN=KIND items"),
        ("sha256_hash=colour", "unknown kind 'colour' for column 'sha256_hash'"),
        ("type=Indicator_type", "needs both type=COLUMN and value=COLUMN"),
        ("type=a,value=b,c=url", "not both"),
        ("a=description", "names no indicator column"),
        ("0=domain", "column numbers start at 1"),
        ("nope=url", "names column 'nope' but the header has: sha256_hash, dst_ip"),
    ],
)
def test_bad_spec_is_one_sentence(spec: str, message: str) -> None:
    with pytest.raises(FeedError, match="--columns") as caught:
        records(f"sha256_hash,dst_ip\n{SHA256},1.2.3.4\n", spec)
    text = str(caught.value)
    assert message in text and "\n" not in text and text.endswith(".")


def test_name_on_a_header_less_file_asks_for_a_number() -> None:
    with pytest.raises(FeedError, match="has no header; use its number"):
        records("1.2.3.4,x\n", "ip=ip")


def test_short_names_are_a_header_but_a_row_with_numbers_is_data() -> None:
    assert values("a,b\nx,1.2.3.4\n", "2=ip") == [("ipv4", "1.2.3.4")]
    recs = records("host1,443\nx,1.2.3.4\n", "2=ip")
    assert isinstance(recs[0], Rejected) and recs[0].raw == "443"
