"""JournalPresent's group commit: batches acknowledged together share a transaction, none is lost;
workers go on while it commits, up to a backlog, and a failed commit is heard."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from feeds.model import Kind
from importer.errors import ConfigError
from importer.model import ResolvedDefinition, Stamp
from importer.state import store as store_module
from importer.state.journal import Journal
from importer.state.store import JournalPresent
from tests.helpers import settle, spec_for, wait_until

DEFINITIONS = [
    ResolvedDefinition(id=str(n), spec=spec_for(f"feed {n}", title="t", description="d"), outcome="found")
    for n in (1, 2)
]


def acknowledged(start: int, count: int) -> list[tuple[Kind, str, str, Stamp]]:
    return [
        (Kind.MD5, f"{n:032x}", f"r{n}", Stamp(7, None))
        for n in range(start, start + count)
    ]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path / "state.sqlite", target="ti", tenant="t") as opened:
        yield opened


def count_transactions(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, hold: threading.Event | None = None
) -> list[int]:
    """Spy on ``record``: the number of batches of each call (= each transaction).
    With ``hold``, each commit waits in its thread until ``hold`` is set."""
    calls: list[int] = []
    real = journal.record

    def spy(batches: Sequence[tuple[str, Sequence[tuple[Kind, str, str]]]], run_id: int) -> None:
        calls.append(len(batches))
        if hold is not None:
            hold.wait(10.0)
        real(batches, run_id)

    monkeypatch.setattr(journal, "record", spy)
    return calls


async def test_concurrent_batches_share_one_commit(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JournalPresent(journal, journal.begin_run())
    calls = count_transactions(journal, monkeypatch)
    # 64 workers acknowledging at once, under two definitions.
    await asyncio.gather(*(store.record(DEFINITIONS[n % 2], acknowledged(n * 16, 16)) for n in range(64)))
    await store.flush()
    assert calls == [64]  # all were waiting when the first commit started
    for definition in DEFINITIONS:
        keys = [(kind, value) for n in range(64) if n % 2 == int(definition.id) - 1
                for kind, value, _, _ in acknowledged(n * 16, 16)]  # fmt: skip
        assert journal.present(definition.id, keys) == set(keys)


async def test_batches_arriving_during_a_commit_go_into_the_next(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JournalPresent(journal, journal.begin_run())
    hold = threading.Event()
    calls = count_transactions(journal, monkeypatch, hold)
    first = asyncio.ensure_future(store.record(DEFINITIONS[0], acknowledged(0, 10)))
    await wait_until(lambda: calls, what="the first commit to start")  # under way in its thread, held
    later = [
        asyncio.ensure_future(store.record(DEFINITIONS[0], acknowledged(10 * n, 10))) for n in range(1, 5)
    ]
    await settle()  # each hands its batch over while the first commit is still under way
    hold.set()
    await asyncio.gather(first, *later)
    await store.flush()
    assert calls == [1, 4]
    keys = [(kind, value) for kind, value, _, _ in acknowledged(0, 50)]
    assert journal.present("1", keys) == set(keys)


async def test_workers_go_on_while_a_commit_is_under_way_up_to_the_backlog(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BACKLOG", 25)
    store = JournalPresent(journal, journal.begin_run())
    hold = threading.Event()
    calls = count_transactions(journal, monkeypatch, hold)
    # Under the backlog, a batch is handed over and the worker goes on: the commit is still held.
    for n in range(2):
        await asyncio.wait_for(store.record(DEFINITIONS[0], acknowledged(10 * n, 10)), 5.0)
    await wait_until(lambda: calls, what="the first commit to start")
    # The third batch makes 30 waiting, over the backlog of 25: its worker waits for the journal.
    third = asyncio.ensure_future(store.record(DEFINITIONS[0], acknowledged(20, 10)))
    await settle()
    assert not third.done()
    hold.set()
    await asyncio.wait_for(third, 5.0)
    await store.flush()
    keys = [(kind, value) for kind, value, _, _ in acknowledged(0, 30)]
    assert journal.present("1", keys) == set(keys)


async def test_a_failed_commit_stops_the_next_record_and_the_flush(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JournalPresent(journal, journal.begin_run())

    def disk_full(batches: object, run_id: int) -> None:
        raise ConfigError("cannot write the state journal: database or disk is full")

    monkeypatch.setattr(journal, "record", disk_full)
    await store.record(DEFINITIONS[0], acknowledged(0, 4))  # handed over; its commit fails later
    await store.drain()  # waits for the commit, says nothing
    with pytest.raises(ConfigError, match="disk is full"):
        await store.record(DEFINITIONS[0], acknowledged(4, 4))
    with pytest.raises(ConfigError, match="disk is full"):
        await store.flush()


async def test_a_failed_commit_reaches_every_waiter(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BACKLOG", 0)  # every worker waits for its commit
    store = JournalPresent(journal, journal.begin_run())

    def disk_full(batches: object, run_id: int) -> None:
        raise ConfigError("cannot write the state journal: database or disk is full")

    monkeypatch.setattr(journal, "record", disk_full)
    outcomes = await asyncio.gather(
        *(store.record(DEFINITIONS[0], acknowledged(n * 4, 4)) for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, ConfigError) for o in outcomes)


async def test_a_cancelled_workers_batch_is_still_committed(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BACKLOG", 0)  # the worker waits for its commit
    store = JournalPresent(journal, journal.begin_run())
    worker = asyncio.ensure_future(store.record(DEFINITIONS[0], acknowledged(0, 8)))
    # One step of the loop, not a wait for anything: the worker hands its batch over and awaits
    # its commit, which has not begun yet (the committer task has not run). Cancelled there, its
    # batch must be committed all the same. (Waiting for the commit to start would test less: a
    # commit already under way in its thread finishes whatever happens to the worker.)
    await asyncio.sleep(0)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    await store.drain()
    keys = [(kind, value) for kind, value, _, _ in acknowledged(0, 8)]
    assert journal.present("1", keys) == set(keys)
