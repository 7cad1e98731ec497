"""A run killed after writing to some definitions: each of them is listed once by the next run that
imports its feed, however many runs of other feeds come in between.

The kill is staged in-process (its bookkeeping written, then the journal closed without finishing
the run) so that the window it leaves open — indicators the target acknowledged, the journal never
committed — is there every time; ``test_resume.py`` kills real processes at random points.
"""

from __future__ import annotations

from pathlib import Path

from feeds.model import Indicator, Kind
from importer.emulator import Emulator
from importer.model import ResolvedDefinition
from importer.report.counts import RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions, Tuning
from importer.state.journal import Journal
from importer.state.store import tenant_key
from importer.targets.registry import open_target
from importer.transport.stats import TransportStats
from tests.helpers import connection_settings, feed_spec, sha256, write_feed


async def run(emu: Emulator, state: Path, *feeds: tuple[str, Path]) -> RunReport:
    settings = RunSettings(
        target="ti",
        connection=connection_settings(emu),
        feeds=tuple(FeedSettings(str(path), feed_spec(name)) for name, path in feeds),
        tuning=Tuning(batch_size=40, workers=4),
    )
    return await run_import(settings, OutputOptions(progress=False), state=StateOptions(path=state))


async def test_a_killed_runs_other_feed_is_listed_when_it_next_runs(
    emulator: Emulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    feed_a = ("A", write_feed(tmp_path / "a.txt", range(0, 50)))
    feed_b = ("B", write_feed(tmp_path / "b.txt", range(100, 150)))
    first = await run(emulator, state, feed_a, feed_b)  # night 1: both feeds, all fine
    assert first.exit_code() == 0 and first.totals()["imported"] == 100
    b_id = first.feeds[1].definition_id
    assert b_id is not None

    # Night 2 dies after it began writing to B: the target acknowledged 20 new indicators of B
    # whose batch the journal never committed.
    connection = connection_settings(emulator)
    tenant = tenant_key(connection.api_url, connection.client_id)
    with Journal.open(state, target="ti", tenant=tenant) as journal:
        killed = journal.begin_run()
        journal.note_writing(b_id, killed)
    async with open_target("ti", connection, TransportStats()) as target:
        acknowledged = [Indicator(Kind.SHA256, sha256(n), origin="night 2") for n in range(150, 170)]
        sent = await target.send(ResolvedDefinition(b_id, feed_spec("B"), "found"), acknowledged)
        assert len(sent.imported) == 20

    # A one-off load of feed A alone finishes: it must not settle the killed run's account of B.
    one_off = await run(emulator, state, feed_a)
    assert one_off.exit_code() == 0 and one_off.journal is not None
    assert one_off.journal["listed_definitions"] == {}  # night 2 never wrote to A

    # Night 3 imports B, now with those 20: they are found in the target, not posted again.
    feed_b = ("B", write_feed(tmp_path / "b.txt", range(100, 170)))
    third = await run(emulator, state, feed_a, feed_b)
    assert third.exit_code() == 0 and third.journal is not None
    assert third.journal["listed_definitions"] == {b_id: 70}
    b = third.feeds[1]
    assert b.imported == 0 and b.already_present == 70
    assert emulator.state()["totals"]["duplicate_iocs"] == 0

    # Listed once: the killed run is settled, and the next run lists nothing.
    fourth = await run(emulator, state, feed_a, feed_b)
    assert fourth.journal is not None and fourth.journal["listed_definitions"] == {}
    assert fourth.journal["resumed_after_interrupted_run"] is False
