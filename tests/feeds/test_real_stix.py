"""The real STIX feeds in ../shared/real-feeds/stix reconcile with SOURCES.md's table of distinct counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from feeds.model import Expired, FeedError, Indicator, Record, Rejected, Skipped
from feeds.options import FeedOptions
from feeds.stixfeed import looks_like_stix1, parse

# file -> (distinct canonical values per kind, expired objects, a reason every rejected record gives)
EXPECTED: dict[str, tuple[dict[str, int], int, tuple[str, ...]]] = {
    "oasis_examples_poisonivy.json": (
        {"domain": 24, "ipv4": 18},
        0,
        ("not a valid domain name", "file:name is not an indicator kind"),
    ),
    "elevator21_issue-271.json": (
        {"md5": 7, "sha1": 7, "sha256": 7, "domain": 6, "ipv4": 2, "url": 2},
        0,
        ("file:name is not an indicator kind",),
    ),
    "talos_2024-01_new-zardoor-backdoor.json": (
        {"sha256": 20, "ipv4": 10, "domain": 3},
        0,
        ("mutex:name is not an indicator kind",),
    ),
    "opencti_DATA-TEST-STIX2_v2.json": ({}, 3, ()),
    "elevator21_snort-test-mechanism.json": ({}, 0, ("pattern_type 'snort' is not STIX patterning",)),
}


def _read(path: Path) -> list[Record]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(parse(stream, path.name, FeedOptions()))


@pytest.mark.parametrize("file_name", sorted(EXPECTED))
def test_distinct_counts_match_sources_md(real_feeds: Path, file_name: str) -> None:
    kinds, expired, reasons = EXPECTED[file_name]
    records = _read(real_feeds / "stix" / file_name)
    distinct = {(r.kind, r.value) for r in records if isinstance(r, Indicator)}
    assert dict(Counter(str(kind) for kind, _ in distinct)) == kinds
    assert sum(isinstance(r, Expired) for r in records) == expired
    rejected = [r for r in records if isinstance(r, Rejected)]
    assert {next(x for x in reasons if x in r.reason) for r in rejected} == set(reasons)
    assert all(r.origin.startswith(f"{file_name}:") for r in records)


def test_poisonivy_rejects_exactly_the_typo_and_the_file_names(real_feeds: Path) -> None:
    records = _read(real_feeds / "stix" / "oasis_examples_poisonivy.json")
    rejected = sorted(r.raw for r in records if isinstance(r, Rejected))
    assert rejected == [
        "domain-name:value = 'domain autuo.xicp.net'",
        "file:name = 'CBricksDoc'",
        "file:name = 'CPiShellPutDoc'",
    ]
    assert sum(isinstance(r, Skipped) for r in records) == 130


def test_stix1_xml_is_refused_with_the_elevator_sentence(real_feeds: Path) -> None:
    with pytest.raises(FeedError, match=r"STIX 1\.x.*pip install stix2-elevator"):
        _read(real_feeds / "stix" / "stix1x_elevator_file-hash-reputation.xml")


def test_looks_like_stix1_only_on_the_stix1_file(real_feeds: Path) -> None:
    heads = {p.name: p.read_text(encoding="utf-8")[:8192] for p in (real_feeds / "stix").iterdir()}
    assert {name for name, head in heads.items() if looks_like_stix1(head)} == {
        "stix1x_elevator_file-hash-reputation.xml"
    }
