"""The real plain lists (hashlist/, misc/) reconcile with the final table of SOURCES.md."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from feeds import Indicator, Rejected, read_feed

_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<exit>\d) \| (?P<counts>[^|]*) \|", re.MULTILINE)
_DIRS = ("hashlist/", "misc/")
# Lines each list must reject (and why), beyond SOURCES' counts of indicators.
_REJECTED = {
    "hashlist/eset_modiloader_samples.sha1": {
        13: "41 characters, not a valid md5/sha1/sha256: contains non-hex 's'"
    },
    "hashlist/unit42_Redaman_2018-09_hashes_with_filenames.txt": dict.fromkeys(
        (1, 3, 5, 7, 30, 32, 55), "prose"
    ),
}


def _expected(real_feeds: Path) -> dict[str, dict[str, int]]:
    table = (real_feeds / "SOURCES.md").read_text(encoding="utf-8").split("## Distinct canonical", 1)[1]
    expected: dict[str, dict[str, int]] = {}
    for row in _ROW.finditer(table):
        if row["file"].startswith(_DIRS):
            pairs = re.findall(r"(md5|sha1|sha256|ipv4|ipv6|domain|url) (\d+)", row["counts"])
            expected[row["file"]] = {kind: int(n) for kind, n in pairs}
    return expected


def test_the_table_lists_the_plain_lists(real_feeds: Path) -> None:
    files = {str(p.relative_to(real_feeds)) for d in _DIRS for p in (real_feeds / d).iterdir()}
    assert set(_expected(real_feeds)) == files


@pytest.mark.parametrize(
    "relative",
    [
        "hashlist/abusech_malwarebazaar_recent_md5_2023-11-23.txt",
        "hashlist/eset_modiloader_samples.sha1",
        "hashlist/eset_xdspy_samples.sha256",
        "hashlist/neo23x0_signature-base_hash-iocs.txt",
        "hashlist/unit42_Redaman_2018-09_hashes_with_filenames.txt",
        "misc/talos_2022-06_avoslocker_mixed-ioc-list.txt",
    ],
)
def test_distinct_indicators_match_sources(real_feeds: Path, relative: str) -> None:
    distinct: dict[str, set[str]] = defaultdict(set)
    rejected: dict[int, str] = {}
    for record in read_feed(real_feeds / relative, name=relative):
        if isinstance(record, Indicator):
            distinct[str(record.kind)].add(record.value)
        elif isinstance(record, Rejected):
            rejected[int(record.origin.rsplit(":", 1)[1])] = record.reason
        else:
            raise AssertionError(f"a list yields only indicators and rejects: {record!r}")
    assert {kind: len(values) for kind, values in distinct.items()} == _expected(real_feeds)[relative]
    wanted = _REJECTED.get(relative, {})
    assert sorted(rejected) == sorted(wanted)
    for line, reason in wanted.items():
        assert reason in rejected[line]


def test_neo23x0_commented_examples_and_scores(real_feeds: Path) -> None:
    path = real_feeds / "hashlist/neo23x0_signature-base_hash-iocs.txt"
    records = [r for r in read_feed(path) if isinstance(r, Indicator)]
    example = "0c2674c3a97c53082187d930efb645c2"  # only in the commented-out EXAMPLES block
    assert all(r.value != example for r in records)
    assert min(int(r.origin.rsplit(":", 1)[1]) for r in records) > 18
    scored = [r for r in records if r.confidence is not None]
    assert scored
    assert all(r.description and not re.match(r"\d+;", r.description) for r in scored)


def test_redaman_descriptions_are_the_file_names(real_feeds: Path) -> None:
    path = real_feeds / "hashlist/unit42_Redaman_2018-09_hashes_with_filenames.txt"
    first = next(r for r in read_feed(path) if isinstance(r, Indicator))
    assert first.value.startswith("0da16e2a")
    assert first.description is not None
    assert first.description.endswith(".zip")
    assert not first.description.startswith(("-", " "))
