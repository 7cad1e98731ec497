"""MISP feeds as a pull source: a folder or an http(s) URL of ``manifest.json`` and ``<uuid>.json`` events.

Each test builds a feed folder as MISP publishes one — the two real events of
``/work/shared/misp-events`` when they are there, and small generated ones — and imports it into
the emulator's ``ti`` API with a state journal, as a nightly job would: the first run imports every
event, the second (nothing changed) reads only the manifest, the third only the event added and
the one whose timestamp moved. Over http the feed is served by a static file server on loopback
that notes every request (and wants a header whose value the environment holds).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from feeds import FORMATS, FeedOptions, Indicator
from importer.emulator import Emulator
from importer.errors import ConfigError
from importer.report.counts import RunReport
from importer.run import run_import
from importer.settings import OutputOptions, RunSettings, StateOptions
from importer.state.journal import Journal
from importer.state.store import tenant_key
from importer.verify import verify_import
from tests.helpers import (
    FakeTime,
    checked_run,
    held_values,
    recording_server,
    run_cli,
    table_settings,
    use_emulator,
)

REAL = Path("/work/shared/misp-events")
REAL_EVENTS = {  # file -> the event's uuid (its name in a feed)
    "57c4445b-c548-4654-af0b-4be3950d210f.json": "57c4445b-c548-4654-af0b-4be3950d210f",
    "mainly_objects_1.json": "5c066053-0e94-46eb-9746-4b7d950d210f",
}
KEY = "misp-feed-key-51c0ffee"
T0 = 1_700_000_000


def uuid_of(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def sha256_of(n: int, k: int = 0) -> str:
    return f"{n:08x}{k:056x}"


def small_event(n: int, timestamp: int, hashes: int = 2) -> dict[str, Any]:
    """A generated event: ``hashes`` sha256 attributes for detection, and a link that is not."""
    attributes = [
        {"uuid": f"{uuid_of(n)[:-4]}{k:04d}", "type": "sha256", "to_ids": True, "value": sha256_of(n, k)}
        for k in range(hashes)
    ]
    attributes.append({"type": "link", "to_ids": False, "value": f"https://example.org/{n}"})
    return {
        "Event": {
            "uuid": uuid_of(n),
            "info": f"event {n}",
            "timestamp": str(timestamp),
            "Attribute": attributes,
        }
    }


class FeedFolder:
    """A MISP feed folder: events written as files, and the manifest that lists them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.stamps: dict[str, int] = {}

    def add(self, uuid: str, text: str, timestamp: int) -> None:
        (self.root / f"{uuid}.json").write_text(text, encoding="utf-8")
        self.stamps[uuid] = timestamp
        manifest = {
            u: {"info": "x", "timestamp": str(t), "Orgc": {"name": "CIRCL"}} for u, t in self.stamps.items()
        }
        (self.root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    def add_small(self, n: int, timestamp: int, hashes: int = 2) -> None:
        self.add(uuid_of(n), json.dumps(small_event(n, timestamp, hashes)), timestamp)

    def values(self, uuids: list[str] | None = None) -> set[str]:
        """What the misp format itself makes of the events: the values a pull must import."""
        found = set()
        for uuid in uuids if uuids is not None else list(self.stamps):
            with (self.root / f"{uuid}.json").open(encoding="utf-8") as text:
                found |= {
                    r.value for r in FORMATS["misp"](text, uuid, FeedOptions()) if isinstance(r, Indicator)
                }
        return found


def build_feed(root: Path, *, real: bool = True) -> FeedFolder:
    folder = FeedFolder(root)
    if real and REAL.is_dir():
        for offset, (name, uuid) in enumerate(REAL_EVENTS.items()):
            folder.add(uuid, (REAL / name).read_text(encoding="utf-8"), T0 + offset)
    for n in range(5):
        folder.add_small(n, T0 + 10 + n)
    return folder


def settings(emu: Emulator, source: str, **table: Any) -> RunSettings:
    given = {"source": source, "name": "MISP", **table}
    return table_settings(emu, given, {"MISP_FEED_KEY": KEY})


async def run(emu: Emulator, state: Path, source: str, **table: Any) -> RunReport:
    return await checked_run(settings(emu, source, **table), state)


def cursor(emu: Emulator, state: Path, source: str) -> str | None:
    with Journal.open(state, target="ti", tenant=tenant_key(emu.ti_url, "ti-importer-demo")) as journal:
        return journal.cursor("MISP", source)


async def test_a_folder_first_all_then_nothing_then_only_what_changed(
    emulator: Emulator, tmp_path: Path
) -> None:
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed")
    source = str(feed.root)
    first = await run(emulator, state, source)  # format auto: a folder holding manifest.json
    (report,) = first.feeds
    everything = feed.values()
    assert report.error is None and report.imported == len(everything)
    assert await held_values(emulator, "MISP") == everything
    assert cursor(emulator, state, source) == str(T0 + 14)
    if REAL.is_dir():  # the real events' own counts (SOURCES.md): to_ids false skipped, types rejected
        assert len(everything) == 20 + 10 and report.rejected == 2 + 4

    second = await run(emulator, state, source)
    assert second.feeds[0].records_read == 0 and second.exit_code() == 0
    assert cursor(emulator, state, source) == str(T0 + 14)

    feed.add_small(7, T0 + 30)  # a new event
    feed.add_small(2, T0 + 31, hashes=3)  # an event that changed: one hash more
    third = await run(emulator, state, source)
    (report,) = third.feeds
    assert report.records_read == (2 + 1) + (3 + 1)  # the two events' attributes, nothing else
    assert report.imported == 2 + 1 and report.already_present == 2 and report.skipped == 2
    assert await held_values(emulator, "MISP") == feed.values()
    assert cursor(emulator, state, source) == str(T0 + 31)

    full = await run(emulator, state, source, full=True)  # full: every event again, nothing new
    assert full.feeds[0].imported == 0 and full.feeds[0].already_present == len(feed.values())


def serve_folder(root: Path, keys: list[str | None]) -> Any:
    """A static file server of ``root`` under /feed/ that wants the ``Auth-Key`` header."""

    async def handler(request: web.Request) -> web.StreamResponse:
        keys.append(request.headers.get("Auth-Key"))
        if request.headers.get("Auth-Key") != KEY:
            return web.Response(status=401)
        name = request.path.removeprefix("/feed/")
        if "/" in name or not (root / name).is_file():
            return web.Response(status=404)
        return web.FileResponse(root / name)

    return handler


async def test_over_http_only_the_manifest_when_nothing_changed(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed")
    keys: list[str | None] = []
    async with recording_server(serve_folder(feed.root, keys)) as server:
        source = server.url("/feed/")
        table = {"format": "misp-feed", "headers": {"Auth-Key": "env:MISP_FEED_KEY"}}
        first = await run(emulator, state, source, **table)
        assert first.feeds[0].imported == len(feed.values()) and first.exit_code() == 0
        asked = sorted(seen.path_qs for seen in server.seen)
        assert asked == sorted(["/feed/manifest.json", *(f"/feed/{uuid}.json" for uuid in feed.stamps)])
        assert keys == [KEY] * len(asked)

        server.seen.clear()
        second = await run(emulator, state, source, **table)
        assert [seen.path_qs for seen in server.seen] == ["/feed/manifest.json"]
        assert second.feeds[0].records_read == 0

        server.seen.clear()
        feed.add_small(8, T0 + 40)
        feed.add_small(0, T0 + 41, hashes=4)
        third = await run(emulator, state, source, **table)
        asked = [seen.path_qs for seen in server.seen]
        assert asked == ["/feed/manifest.json", f"/feed/{uuid_of(8)}.json", f"/feed/{uuid_of(0)}.json"]
        assert third.feeds[0].imported == 2 + 2
    assert KEY not in caplog.text


async def test_an_event_that_fails_is_named_and_holds_the_cursor(emulator: Emulator, tmp_path: Path) -> None:
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed", real=False)
    source = str(feed.root)
    await run(emulator, state, source)
    feed.add_small(10, T0 + 50)
    feed.add(uuid_of(11), '{"Event": {"info": "cut', T0 + 51)  # broken JSON
    feed.add_small(12, T0 + 52)
    feed.add_small(13, T0 + 53)
    (feed.root / f"{uuid_of(13)}.json").unlink()  # listed, but not there
    report = (await run(emulator, state, source)).feeds[0]
    assert report.error is None and report.imported == 2 + 2  # events 10 and 12
    reasons = " ".join(report.reject_reasons)
    assert f"MISP event {uuid_of(11)} not read" in reasons and "not valid JSON" in reasons
    assert f"MISP event {uuid_of(13)} not read" in reasons and "no such file" in reasons
    assert cursor(emulator, state, source) == str(T0 + 50)  # not past the first that failed

    feed.add_small(11, T0 + 51)
    feed.add_small(13, T0 + 53)
    again = (await run(emulator, state, source)).feeds[0]
    assert again.imported == 2 + 2 and again.already_present == 2  # 11 and 13; 12 read again
    assert cursor(emulator, state, source) == str(T0 + 53)


async def test_a_manifest_entry_that_can_never_be_read_does_not_hold_the_cursor(
    emulator: Emulator, tmp_path: Path
) -> None:
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed", real=False)
    manifest = json.loads((feed.root / "manifest.json").read_text(encoding="utf-8"))
    manifest["../../etc/passwd"] = {"timestamp": T0}
    manifest[uuid_of(99)] = {"info": "no timestamp"}
    (feed.root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    report = (await run(emulator, state, str(feed.root))).feeds[0]
    assert report.imported == 10 and report.rejected == 2
    assert any("not a uuid" in reason for reason in report.reject_reasons)
    assert cursor(emulator, state, str(feed.root)) == str(T0 + 14)


async def test_no_manifest_is_the_feed_error(emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    report = await run(emulator, tmp_path / "state.sqlite", str(tmp_path / "empty"), format="misp-feed")
    assert "manifest.json" in (report.feeds[0].error or "") and report.exit_code() != 0


async def test_mirror_of_an_incremental_pull_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    feed = build_feed(tmp_path / "feed", real=False)
    with pytest.raises(ConfigError, match="mirror mode needs the whole MISP feed"):
        await run(emulator, tmp_path / "state.sqlite", str(feed.root), mirror=True)


async def test_verify_reads_every_event_not_only_those_after_the_cursor(
    emulator: Emulator, tmp_path: Path
) -> None:
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed", real=False)
    await run(emulator, state, str(feed.root))
    feed.add_small(20, T0 + 60)
    report = await verify_import(settings(emulator, str(feed.root)), state=StateOptions(path=state),
                                 sleep=FakeTime().sleep)  # fmt: skip
    (verdict,) = report.feeds
    assert verdict.error is None and (verdict.counts["landed"], verdict.counts["missing"]) == (10, 2)


async def test_over_http_an_event_refused_is_named_and_nothing_is_left_on_disk(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where downloads go: only this test's
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed", real=False)
    feed_files = serve_folder(feed.root, [])

    async def flaky(request: web.Request) -> web.StreamResponse:
        if request.path == f"/feed/{uuid_of(3)}.json":
            return web.Response(status=503, reason="Busy")
        return await feed_files(request)

    async with recording_server(flaky) as server:
        source = server.url("/feed")  # no final slash: the events are still under /feed/
        table = {"format": "misp-feed", "headers": {"Auth-Key": "env:MISP_FEED_KEY"}}
        report = (await run(emulator, state, source, **table)).feeds[0]
    assert report.imported == 4 * 2 and report.rejected == 1
    ((reason, count),) = report.reject_reasons.items()
    assert count == 1 and f"MISP event {uuid_of(3)} not read" in reason and "HTTP 503" in reason
    assert cursor(emulator, state, source) == str(T0 + 12)
    assert list(spool.iterdir()) == []


async def test_a_run_stopped_halfway_keeps_no_cursor_and_no_file(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed", real=False)
    for n in range(5, 40):  # 3,500 hashes: more than the pipeline reads at one go (2,000 records)
        feed.add_small(n, T0 + 100 + n, hashes=100)
    feed_files, stop = serve_folder(feed.root, []), asyncio.Event()

    async def stopping(request: web.Request) -> web.StreamResponse:
        if request.path == f"/feed/{uuid_of(20)}.json":
            stop.set()  # as a signal would, halfway through the events
        return await feed_files(request)

    async with recording_server(stopping) as server:
        source = server.url("/feed/")
        table = {"format": "misp-feed", "headers": {"Auth-Key": "env:MISP_FEED_KEY"}}
        report = await run_import(
            settings(emulator, source, **table), OutputOptions(progress=False),
            state=StateOptions(path=state), sleep=FakeTime().sleep, stop=stop,
        )  # fmt: skip
        assert report.stopped and report.feeds[0].records_read < 3510 + 40
        assert cursor(emulator, state, source) is None  # the next run reads every event again
        assert list(spool.iterdir()) == []
        again = (await run(emulator, state, source, **table)).feeds[0]
    assert again.imported + report.feeds[0].imported == 3510
    assert cursor(emulator, state, source) == str(T0 + 139)


async def test_from_the_command_line(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_emulator(monkeypatch, emulator)
    state, feed = tmp_path / "state.sqlite", build_feed(tmp_path / "feed", real=False)
    report = tmp_path / "report.json"
    args = ("-q", "--state", str(state), "--report", str(report), "--format", "misp-feed", str(feed.root))
    assert await run_cli(*args) == 0
    assert json.loads(report.read_text(encoding="utf-8"))["feeds"][0]["imported"] == 10
    assert await run_cli(*args, "--full") == 0
    assert json.loads(report.read_text(encoding="utf-8"))["feeds"][0]["already_present"] == 10
