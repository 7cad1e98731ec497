"""``ti-import verify`` end to end: import, then change the tenant behind the importer's back through the
emulator's API (delete 10, change 5), and check that ``verify`` sees exactly that, that ``--repair``
puts it right, and that a second ``verify`` finds everything landed — on ``mde`` and on ``ti``.

The commands run in-process (``importer.cli.main`` in a thread) against the in-process emulator
over loopback; what the tenant holds is read back through the API.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from importer.cli import main
from importer.emulator import Emulator
from tests.helpers import sha256, use_emulator, write_feed
from tests.helpers.emulator_api import mde_change, mde_delete, mde_held, ti_change, ti_delete, ti_held

CLASSES = ("landed", "absent", "stale", "foreign", "missing")


async def command(*argv: str) -> int:
    """``ti-import ARGV... --no-progress -q``; its exit code (the emulator keeps serving meanwhile)."""
    return await asyncio.to_thread(main, [*argv, "--no-progress", "-q"])


def counts(report: Path) -> dict[str, int]:
    """The one feed's classes in the JSON report of a verify."""
    (feed,) = json.loads(report.read_text())["feeds"]
    return {name: feed[name] for name in CLASSES}


async def verify_cycle(emu: Emulator, args: list[str], tmp_path: Path, changed_by_hand: Any) -> None:
    """Import, change the tenant by hand, verify (10 absent, 5 stale), repair, verify again."""
    report = tmp_path / "verify.json"
    assert await command("run", *args) == 0
    await changed_by_hand()

    assert await command("verify", *args, "--report", str(report)) == 1
    assert counts(report) == {"landed": 85, "absent": 10, "stale": 5, "foreign": 0, "missing": 0}
    written = json.loads(report.read_text())
    assert written["exit_code"] == 1 and written["totals"]["absent"] == 10

    assert await command("verify", *args, "--repair", "--report", str(report)) == 0
    repaired = json.loads(report.read_text())
    assert repaired["feeds"][0]["journal_corrected"] == 15
    assert repaired["repair"]["totals"]["imported"] == 10 and repaired["repair"]["totals"]["updated"] == 5

    assert await command("verify", *args, "--report", str(report)) == 0
    assert counts(report) == {"landed": 100, "absent": 0, "stale": 0, "foreign": 0, "missing": 0}


async def test_mde_verify_finds_10_absent_and_5_stale_and_repair_puts_them_right(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_emulator(monkeypatch, emulator, api_url=emulator.mde_url)
    feed = write_feed(tmp_path / "feed.txt", range(100))
    args = [str(feed), "--target", "mde", "--title", "Feed A", "--state", str(tmp_path / "state.sqlite")]

    async def by_hand() -> None:
        held = sorted(await mde_held(emulator), key=lambda i: i["indicatorValue"])
        await mde_delete(emulator, [i["id"] for i in held[:10]])
        await mde_change(emulator, held[10:15], severity="Low")

    await verify_cycle(emulator, args, tmp_path, by_hand)
    held = await mde_held(emulator)
    assert len(held) == 100 and {i["severity"] for i in held} != {"Low"}
    assert {i["indicatorValue"] for i in held} == {sha256(n) for n in range(100)}
    assert {i["severity"] for i in held} == {held[0]["severity"]}  # the feed's, everywhere again


async def test_ti_verify_finds_10_absent_and_5_stale_and_repair_puts_them_right(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_feed(tmp_path / "feed.txt", range(100))
    args = [str(feed), "--name", "Feed A", "--state", str(tmp_path / "state.sqlite")]

    async def by_hand() -> None:
        held = sorted(await ti_held(emulator), key=lambda i: i["Value"])
        await ti_delete(emulator, [i["Id"] for i in held[:10]])
        await ti_change(emulator, [i["Id"] for i in held[10:15]], Enabled=False)

    await verify_cycle(emulator, args, tmp_path, by_hand)
    held = await ti_held(emulator)
    assert len(held) == 100 and all(i["Enabled"] for i in held)
    assert {i["Value"] for i in held} == {sha256(n) for n in range(100)}


async def test_missing_and_foreign_ones_are_told_apart(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In today's feed but never sent: missing. Under the definition, known to neither the journal nor
    today's feed: foreign — left by --repair, so verify still reports it (exit 1)."""
    use_emulator(monkeypatch, emulator)
    state, report = tmp_path / "state.sqlite", tmp_path / "verify.json"
    first = write_feed(tmp_path / "first.txt", range(20))
    assert await command("run", str(first), "--name", "Feed A", "--state", str(state)) == 0
    # Today's feed drops 0..4 (the tenant keeps them: no mirror mode) and adds 20..22.
    today = write_feed(tmp_path / "today.txt", range(5, 23))
    args = [str(today), "--name", "Feed A", "--state", str(state), "--report", str(report)]
    assert await command("verify", *args) == 1
    assert counts(report) == {"landed": 20, "absent": 0, "stale": 0, "foreign": 0, "missing": 3}

    # Without the journal, what today's feed no longer lists is foreign to the definition.
    assert await command("verify", *args, "--no-state") == 1
    assert counts(report) == {"landed": 15, "absent": 0, "stale": 0, "foreign": 5, "missing": 3}

    assert await command("verify", *args, "--repair") == 0
    assert await command("verify", *args) == 0
    assert counts(report) == {"landed": 23, "absent": 0, "stale": 0, "foreign": 0, "missing": 0}


async def test_a_feed_never_imported_is_all_missing_and_nothing_is_created(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_feed(tmp_path / "feed.txt", range(7))
    code = await asyncio.to_thread(main, ["verify", str(feed), "--name", "New feed", "--no-progress"])
    assert code == 1
    assert emulator.state()["totals"]["alert_definitions"] == 0  # resolved as a dry run would
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["feed", *CLASSES]
    assert out.splitlines()[1].split() == ["New", "feed", "0", "0", "0", "0", "7"]
    assert "drift in 1 of 1 feeds" in out


async def test_what_the_feeds_policy_filters_is_never_missing(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A private address is filtered by the run (never sent): verify reads the feed the same way."""
    use_emulator(monkeypatch, emulator)
    feed = tmp_path / "feed.txt"
    feed.write_text("".join(f"{sha256(n)}\n" for n in range(5)) + "10.1.2.3\n")
    report = tmp_path / "verify.json"
    args = [str(feed), "--name", "Feed A", "--state", str(tmp_path / "state.sqlite")]
    assert await command("run", *args) == 0
    assert await command("verify", *args, "--report", str(report)) == 0
    assert counts(report) == {"landed": 5, "absent": 0, "stale": 0, "foreign": 0, "missing": 0}


async def test_a_wrong_secret_is_exit_3_and_the_report_says_so(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_emulator(monkeypatch, emulator, secret="not-the-secret")
    feed, report = write_feed(tmp_path / "feed.txt", range(3)), tmp_path / "verify.json"
    assert await command("verify", str(feed), "--name", "Feed A", "--report", str(report)) == 3
    written = json.loads(report.read_text())
    assert written["exit_code"] == 3 and written["error"] and "not-the-secret" not in report.read_text()
