"""``verify``'s parts without a network: the classes of one key, the on-disk comparison, and a listing
that breaks off (an error for the feed, never "absent").

The stand-in target implements the ``Target`` protocol's read side over a list; it is not a mock
of HTTP (the end-to-end tests in ``test_verify.py`` talk to the emulator).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from feeds.model import Indicator, Kind, Record
from importer.errors import ApiError
from importer.model import DefinitionSpec, Held, RemoteIndicator, ResolvedDefinition, Stamp
from importer.pipeline.freshness import Freshness
from importer.pipeline.job import FeedJob
from importer.state.journal import Journal
from importer.verify.compare import CLASSES, Comparison, Row, Wanted, classify
from importer.verify.feed import verify_feed
from tests.helpers import spec_for

A, B = Stamp(1, None), Stamp(2, None)
DAY = 86_400


def row(
    sent: Stamp | bool | None = False, listed: Stamp | bool | None = False, wanted: Stamp | None = None
) -> Row:
    """A key as the three views see it; ``False``: the view lacks it."""
    return Row(
        Kind.MD5,
        "v",
        None if sent is False else Held("r", None if sent is True else sent),
        None if listed is False else RemoteIndicator(Kind.MD5, "v", "r", None if listed is True else listed),
        None if wanted is None else Wanted(wanted, own_expiry=False),
    )


def test_each_combination_of_views_has_one_class() -> None:
    keep = Freshness()
    assert classify(row(sent=A, listed=A, wanted=A), keep) == "landed"
    assert classify(row(sent=A, listed=A), keep) == "landed"  # dropped by the feed, still held as sent
    assert classify(row(listed=A, wanted=A), keep) == "landed"  # the journal did not know: the target does
    assert classify(row(sent=A, wanted=A), keep) == "absent"
    assert classify(row(sent=A), keep) == "absent"
    assert classify(row(sent=A, listed=B, wanted=A), keep) == "stale"  # changed in the tenant
    assert classify(row(sent=A, listed=A, wanted=B), keep) == "stale"  # today's feed says otherwise
    assert classify(row(listed=B, wanted=A), keep) == "stale"
    assert classify(row(listed=A), keep) == "foreign"
    assert classify(row(wanted=A), keep) == "missing"
    # A stamp one side cannot tell (None) matches any.
    assert classify(row(sent=True, listed=A, wanted=A), keep) == "landed"


def test_a_rolling_expiry_is_stale_only_once_it_is_due() -> None:
    rolling = Freshness(rolling_days=10, refresh_share=0.5)
    sent = Stamp(1, 100 * DAY)
    assert classify(row(sent=sent, listed=sent, wanted=Stamp(1, 104 * DAY)), rolling) == "landed"
    assert classify(row(sent=sent, listed=sent, wanted=Stamp(1, 106 * DAY)), rolling) == "stale"


def test_the_comparison_walks_every_key_once_from_disk() -> None:
    comparison = Comparison()
    try:
        comparison.add_sent((Kind.MD5, f"{n:032x}", Held(f"r{n}", A)) for n in range(0, 3000))
        for n in range(1000, 4000):
            comparison.add_listed(RemoteIndicator(Kind.MD5, f"{n:032x}", f"r{n}", A))
        comparison.end_listing()
        comparison.add_wanted((Kind.MD5, f"{n:032x}", Wanted(A, False)) for n in [*range(2000, 5000), 2000])
        assert comparison.counts == {"sent": 3000, "listed": 3000, "wanted": 3000}  # a repeat is kept once
        found = dict.fromkeys(CLASSES, 0)
        for key in comparison.rows():
            found[classify(key, Freshness())] += 1
    finally:
        comparison.close()
    # 0..999 absent, 1000..3999 held (1000..2999 sent; 3000..3999 in today's feed), 4000..4999 missing
    assert found == {"landed": 3000, "absent": 1000, "stale": 0, "foreign": 0, "missing": 1000}


class ListingBreaksOff:
    """A target whose listing yields ``good`` indicators, then fails as a lost connection would."""

    name = "stand-in"

    def __init__(self, good: int) -> None:
        self.good = good

    def unsupported(self, indicator: Indicator) -> str | None:
        return None

    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        assert dry_run  # verify never creates a definition
        return ResolvedDefinition("7", spec, "found")

    async def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        for n in range(self.good):
            yield RemoteIndicator(Kind.MD5, f"{n:032x}", f"r{n}", A)
        raise ApiError("the connection was reset (page 2)")

    def stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        return A


def job(spec: DefinitionSpec, values: list[str]) -> FeedJob:
    @contextlib.asynccontextmanager
    async def open_records() -> AsyncIterator[Iterator[Record]]:
        yield iter([Indicator(Kind.MD5, value, "test") for value in values])

    return FeedJob("test", spec, open_records)


async def test_a_listing_that_breaks_off_is_an_error_never_absent(tmp_path: Path) -> None:
    spec = spec_for("Feed A")
    values = [f"{n:032x}" for n in range(10)]
    with Journal.open(tmp_path / "state.sqlite", target="ti", tenant="t") as journal:
        journal.set_definition_id("Feed A", "7")
        journal.record(
            [("7", [(Kind.MD5, value, f"r{n}", A) for n, value in enumerate(values)])], journal.begin_run()
        )
        verdict = await verify_feed(ListingBreaksOff(good=4), journal, job(spec, values), repair=True)  # type: ignore[arg-type]
        assert journal.count("7") == 10  # --repair corrected nothing
    assert verdict.error is not None and "could not be read to the end" in verdict.error
    assert not verdict.config_error
    assert verdict.counts == dict.fromkeys(CLASSES, 0)
