"""The golden harness: every file in feeds/samples/ read by read_feed, compared with its expected file.

Each ``feeds/samples/<file>`` has ``feeds/samples/expected/<file>.jsonl``: one JSON object per
record, in order (``{"record": "indicator", ...}``, ``rejected``, ``expired``, ``skipped``).
``REGEN_GOLDEN=1 pytest tests/feeds/test_samples.py`` rewrites them; review the diff by eye.
Samples are read by auto-detection with the name alone as origin and a fixed "now", so the
expected files do not depend on where the checkout lives or on the date.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feeds import Expired, FeedOptions, Indicator, Record, Rejected, Skipped, read_feed

SAMPLES = Path(__file__).resolve().parents[2] / "feeds" / "samples"
EXPECTED = SAMPLES / "expected"
NOW = datetime(2025, 1, 1, tzinfo=UTC)  # fixed: expiry decisions must not drift with the calendar


def _sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.is_file() and not p.name.startswith("."))


def as_json(record: Record) -> dict[str, Any]:
    """A record as one line of an expected file."""
    if isinstance(record, Indicator):
        return {"record": "indicator", **record.to_json()}
    if isinstance(record, Rejected):
        return {"record": "rejected", **record.to_json()}
    if isinstance(record, Expired):
        return {"record": "expired", **record.to_json()}
    if isinstance(record, Skipped):
        return {"record": "skipped", "origin": record.origin, "what": record.what}
    raise AssertionError(f"not a record: {record!r}")


def read_sample(path: Path) -> list[dict[str, Any]]:
    return [as_json(r) for r in read_feed(path, name=path.name, options=FeedOptions(now=NOW))]


def test_there_are_samples_of_every_format() -> None:
    names = [p.name for p in _sample_files()]
    assert any(n.endswith(".json") for n in names)
    assert any(n.endswith(".csv") for n in names)
    assert any(n.endswith(".txt") for n in names)


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.name)
def test_sample_matches_expected(path: Path) -> None:
    got = read_sample(path)
    expected_path = EXPECTED / f"{path.name}.jsonl"
    if os.environ.get("REGEN_GOLDEN") == "1":
        EXPECTED.mkdir(exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in got)
        expected_path.write_text(text, encoding="utf-8")
    assert expected_path.is_file(), f"no expected output for {path.name}: run with REGEN_GOLDEN=1"
    lines = expected_path.read_text(encoding="utf-8").splitlines()
    expected = [json.loads(line) for line in lines if line.strip()]
    for index, (g, e) in enumerate(zip(got, expected, strict=False)):
        assert g == e, f"{path.name}: record {index + 1} differs"
    assert len(got) == len(expected), f"{path.name}: {len(got)} records, expected {len(expected)}"


@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.name)
def test_sample_is_small_and_mostly_valid(path: Path) -> None:
    """The demo imports every sample: keep them small, realistic, and mostly importable."""
    records = read_sample(path)
    indicators = sum(1 for r in records if r["record"] == "indicator")
    bad = sum(1 for r in records if r["record"] == "rejected")
    assert len(records) <= 200
    assert indicators >= 1
    assert bad <= indicators


def test_every_expected_file_has_its_sample() -> None:
    samples = {p.name for p in _sample_files()}
    orphans = [p.name for p in EXPECTED.glob("*.jsonl") if p.name.removesuffix(".jsonl") not in samples]
    assert not orphans
