"""``verify`` of a TAXII feed reads the whole collection: today's feed is all of it, not only what was
added after the cursor the last run kept (which would leave older indicators out of the comparison).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from importer.emulator import Emulator
from importer.run import run_import
from importer.settings import OutputOptions, RunSettings, StateOptions
from importer.verify import verify_import
from tests.helpers import FakeTime, table_settings
from tests.helpers.taxii import PASSWORD, USER, TaxiiServer, at, serve_taxii, sha256_indicator


@pytest.fixture(scope="module")
def taxii() -> Iterator[TaxiiServer]:
    with serve_taxii(max_page_size=1000) as server:
        yield server


def settings(emu: Emulator, source: str) -> RunSettings:
    given = {"source": source, "format": "taxii", "name": "Collection", "page_size": 7,
             "username": USER, "password_env": "TAXII_PASSWORD"}  # fmt: skip
    return table_settings(emu, given, {"TAXII_PASSWORD": PASSWORD})


async def test_a_taxii_feed_is_verified_against_the_whole_collection(
    taxii: TaxiiServer, emulator: Emulator, tmp_path: Path
) -> None:
    state, source = StateOptions(path=tmp_path / "state.sqlite"), taxii.new_collection()
    taxii.add(source, [sha256_indicator(n) for n in range(10)], at(1))
    imported = await run_import(settings(emulator, source), OutputOptions(progress=False), state=state,
                                sleep=FakeTime().sleep)  # fmt: skip
    assert imported.exit_code() == 0 and imported.feeds[0].imported == 10
    taxii.add(source, [sha256_indicator(n) for n in (10, 11)], at(2))

    taxii.asked.clear()
    report = await verify_import(settings(emulator, source), state=state, sleep=FakeTime().sleep)
    (feed,) = report.feeds
    assert feed.error is None and feed.feed == 12
    assert (feed.counts["landed"], feed.counts["missing"]) == (10, 2) and report.exit_code() == 1
    assert all("added_after" not in asked.query for asked in taxii.objects_requests(source))
