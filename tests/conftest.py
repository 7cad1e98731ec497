"""Shared fixtures: the real feeds folder, and fake time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import FakeTime

ROOT = Path(__file__).resolve().parent.parent
REAL_FEEDS = ROOT.parent / "shared" / "real-feeds"


@pytest.fixture
def real_feeds() -> Path:
    """The folder of real public feeds beside the project; tests using it skip where it is absent."""
    if not REAL_FEEDS.is_dir():
        pytest.skip(f"real feeds folder not found at {REAL_FEEDS}")
    return REAL_FEEDS


@pytest.fixture
def fake_time() -> FakeTime:
    """Virtual time (``tests.helpers.FakeTime``): sleeps return at once and move the clock; its
    ``wall`` can drive the emulator's clock too (``EmulatorConfig(clock=fake_time.wall)``)."""
    return FakeTime()
