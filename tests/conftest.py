"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REAL_FEEDS = ROOT.parent / "shared" / "real-feeds"


@pytest.fixture
def real_feeds() -> Path:
    """The folder of real public feeds beside the project; tests using it skip where it is absent."""
    if not REAL_FEEDS.is_dir():
        pytest.skip(f"real feeds folder not found at {REAL_FEEDS}")
    return REAL_FEEDS
