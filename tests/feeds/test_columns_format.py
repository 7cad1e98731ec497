"""A column mapping is for CSV feeds: ``read_feed`` refuses it, naming the feed and its format, for any
other format, whether given or detected (ignoring it would read another layout than described)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds import FeedError, FeedOptions, Indicator, read_feed

SAMPLES = Path(__file__).resolve().parents[2] / "feeds" / "samples"
COLUMNS = FeedOptions(columns="1=sha256")


@pytest.mark.parametrize(
    ("sample", "detected"), [("sample_bundle.json", "stix"), ("sample_hashes.txt", "list")]
)
def test_a_detected_format_other_than_csv_refuses_columns(sample: str, detected: str) -> None:
    path = SAMPLES / sample
    with pytest.raises(FeedError) as caught:
        next(read_feed(path, options=COLUMNS))
    assert str(caught.value) == (
        f"{path} is a {detected} feed; --columns applies to CSV feeds only (give --format csv if it is CSV)."
    )


def test_a_given_format_other_than_csv_refuses_columns_without_the_hint() -> None:
    with pytest.raises(FeedError, match=r"is a list feed; --columns applies to CSV feeds only\.$"):
        next(read_feed(SAMPLES / "sample_hashes.txt", "list", options=COLUMNS))


def test_csv_takes_columns_given_or_detected(tmp_path: Path) -> None:
    sha = "0d0ae934e46b821fec45c7e3f4e3baea4e72a038138f3854a56a6f1eb31dfc6c"
    path = tmp_path / "feed.csv"
    path.write_text(f"first_seen,hash\n2024-01-01,{sha}\n")
    options = FeedOptions(columns="hash=sha256")
    for fmt in ("auto", "csv"):
        values = [r.value for r in read_feed(path, fmt, options=options) if isinstance(r, Indicator)]
        assert values == [sha]
