"""The six real CSV feeds reconcile with SOURCES.md's table of distinct canonical indicators."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from feeds.csvfeed import parse
from feeds.model import Indicator, Record, Rejected, Skipped
from feeds.options import FeedOptions

# file -> distinct (kind, value) counts per kind, from SOURCES.md's final table.
EXPECTED = {
    "abusech_feodotracker_ipblocklist_2021-12-20.csv": {"ipv4": 728},
    "abusech_malwarebazaar_recent_2024-05-07.csv": {"md5": 481, "sha1": 481, "sha256": 481},
    "c2list_commented-header_IPC2s-30day.csv": {"ipv4": 1315},
    "citizenlab_misp_201512_PackRAT_iocs.csv": {"domain": 66, "ipv4": 13, "md5": 37, "url": 5},
    "sophos_Troj-Qakbot.csv": {"ipv4": 62, "sha256": 40, "url": 117},
    "volexity_2021-12-06_XEGroup_indicators.csv": {
        "domain": 84,
        "ipv4": 8,
        "md5": 52,
        "sha1": 52,
        "sha256": 52,
    },
}


def read(real_feeds: Path, name: str) -> list[Record]:
    # As feeds.source hands streams over: UTF-8 with the BOM removed, newline="".
    with open(real_feeds / "csv" / name, encoding="utf-8-sig", errors="replace", newline="") as stream:
        return list(parse(stream, name, FeedOptions()))


def distinct(records: list[Record]) -> dict[str, int]:
    pairs = {(str(r.kind), r.value) for r in records if isinstance(r, Indicator)}
    return dict(Counter(kind for kind, _ in pairs))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_distinct_counts_match_sources(real_feeds: Path, name: str) -> None:
    assert distinct(read(real_feeds, name)) == EXPECTED[name]


def test_the_folder_holds_exactly_these_csv_files(real_feeds: Path) -> None:
    assert sorted(p.name for p in (real_feeds / "csv").iterdir()) == sorted(EXPECTED)


def test_malwarebazaar_three_hashes_per_row_and_no_imphash(real_feeds: Path) -> None:
    name = "abusech_malwarebazaar_recent_2024-05-07.csv"
    records = read(real_feeds, name)
    assert all(isinstance(r, Indicator) for r in records)
    assert Counter(str(r.kind) for r in records if isinstance(r, Indicator)) == {
        "sha256": 481,
        "md5": 481,
        "sha1": 481,
    }
    with open(real_feeds / "csv" / name, encoding="utf-8", errors="replace", newline="") as stream:
        rows = [row for row in csv.reader(stream, skipinitialspace=True) if not row[0].startswith("#")]
    imphashes = {row[11] for row in rows}
    md5s = {r.value for r in records if isinstance(r, Indicator) and r.kind == "md5"}
    assert len(imphashes - {"n/a", ""}) > 50 and not (imphashes & md5s)
    # Every row's three hashes share the row's physical line; data starts after 9 banner lines.
    assert Counter(r.origin for r in records)[f"{name}:10"] == 3


def test_feodo_rows_by_line_with_malware_labels(real_feeds: Path) -> None:
    records = read(real_feeds, "abusech_feodotracker_ipblocklist_2021-12-20.csv")
    assert len(records) == 750 and all(isinstance(r, Indicator) for r in records)
    first = records[0]
    assert isinstance(first, Indicator)
    assert first.origin.endswith(":10") and first.value == "51.178.161.32" and first.labels == ("Dridex",)
    assert records[-1].origin.endswith(":759")


def test_sophos_rejects_the_63_hex_sha256_and_user_agent_and_skips_the_description_row(
    real_feeds: Path,
) -> None:
    records = read(real_feeds, "sophos_Troj-Qakbot.csv")
    rejected = {r.raw: r for r in records if isinstance(r, Rejected)}
    assert len(rejected) == 2
    bad_hash = rejected["784ca9fe97e58d553f2f974abb678c8e86c930aa25e5246382f9d9caaa6070c"]
    assert bad_hash.origin.endswith(":12") and "63" in bad_hash.reason
    (agent,) = [r for r in rejected.values() if r.raw.startswith("Mozilla/5.0")]
    assert agent.reason == "unsupported indicator type 'user_agent'"
    (skipped,) = [r for r in records if isinstance(r, Skipped)]
    assert skipped.origin.endswith(":2")
    urls = {r.value for r in records if isinstance(r, Indicator) and r.kind == "url"}
    assert {"jvtransportes.log.br/kBZqvr6C/3.gif", "216.238.72.121/t4"} <= urls  # kept scheme-less
    assert (
        "https://news.sophos.com/en-us/2022/03/10/qakbot-injects-itself-into-the-middle-of-your-conversations/"
        not in urls
    )


def test_volexity_unpacks_three_hash_cells_on_one_origin(real_feeds: Path) -> None:
    records = read(real_feeds, "volexity_2021-12-06_XEGroup_indicators.csv")
    assert [(str(r.kind), r.origin) for r in records[:3] if isinstance(r, Indicator)] == [
        ("sha1", "volexity_2021-12-06_XEGroup_indicators.csv:2"),
        ("sha256", "volexity_2021-12-06_XEGroup_indicators.csv:2"),
        ("md5", "volexity_2021-12-06_XEGroup_indicators.csv:2"),
    ]
    assert not [r for r in records if not isinstance(r, Indicator)]


def test_misp_rejects_link_text_regkey_and_email(real_feeds: Path) -> None:
    records = read(real_feeds, "citizenlab_misp_201512_PackRAT_iocs.csv")
    reasons = Counter(r.reason for r in records if isinstance(r, Rejected))
    assert reasons == {
        "unsupported indicator type 'email-src'": 7,
        "unsupported indicator type 'regkey'": 3,
        "unsupported indicator type 'text'": 4,
        "unsupported indicator type 'link'": 1,
    }


def test_c2list_never_reads_the_free_text_column(real_feeds: Path) -> None:
    records = read(real_feeds, "c2list_commented-header_IPC2s-30day.csv")
    assert len(records) == 1318 and all(isinstance(r, Indicator) and r.kind == "ipv4" for r in records)
    assert records[0].origin.endswith(":2") and records[0].value == "172.21.25.140"  # type: ignore[union-attr]
