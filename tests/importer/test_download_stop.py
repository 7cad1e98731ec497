"""A stop stops a feed download too, and its temporary file goes with it.

A real aiohttp server on loopback plays the two URLs a user met: one that sends as fast as it can
and never ends, one that sends a byte every 5 seconds. A stop (the run's ``stop`` Event in
process; SIGTERM to ``ti-import run``) cancels the download at once: the run ends, the feed's
report says it stopped (not a configuration error: exit 130, not 2), no ``ti-import-*.feed`` file
is left — not even after a second signal's immediate exit. The download's own timeouts are
per-feed options.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from importer.emulator import Emulator
from importer.fields import DOWNLOAD_READ_TIMEOUT, DOWNLOAD_TIMEOUT
from importer.model import Field, Options
from importer.pipeline.engine import run_pipeline
from importer.report.counts import RunReport
from importer.settings import CliOptions, load_run_settings
from importer.sources.feed import job_for
from importer.targets.registry import open_target
from importer.transport.stats import TransportStats
from tests.helpers import (
    ROOT,
    connection_settings,
    feed_spec,
    start_emulator,
    start_importer,
    stop_process,
    wait_until,
    wait_until_sync,
)

LINE = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
TRICKLE_EVERY = 5.0  # seconds between bytes: longer than any wait here, shorter than the read timeout


@dataclass
class FeedServer:
    """Loopback feeds: ``/endless`` (as fast as it goes, for ever), ``/trickle`` (a byte every 5 s)."""

    base: str = ""
    sent: Counter[str] = field(default_factory=Counter)  # bytes written, by path
    gone: set[str] = field(default_factory=set)  # paths whose client went away

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def endless(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, LINE * 1024, 0.0)

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, b"e", TRICKLE_EVERY)

    async def _stream(self, request: web.Request, piece: bytes, pause: float) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            while True:
                await response.write(piece)
                self.sent[request.path] += len(piece)
                await _pause(request, pause)
        except ConnectionError:  # reset, or lost while draining: the client went away
            self.gone.add(request.path)
        return response


async def _pause(request: web.Request, seconds: float) -> None:
    """Wait ``seconds`` between writes, but notice a client that went away meanwhile at once."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        if request.transport is None or request.transport.is_closing():
            raise ConnectionResetError("the client went away")
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.02))


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    app = web.Application()
    app.router.add_get("/endless", server.endless)
    app.router.add_get("/trickle", server.trickle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where downloads put their files in this test (and in the processes it starts)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def feed_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("ti-import-*.feed"))


async def import_url(
    emu: Emulator, url: str, stop: asyncio.Event, reading: Options | None = None
) -> RunReport:
    async with open_target("ti", connection_settings(emu), TransportStats()) as target:
        return await run_pipeline(target, [job_for(url, feed_spec("Far"), reading)], stop=stop)


@pytest.mark.parametrize(("path", "started"), [("/endless", 4 << 20), ("/trickle", 1)])
async def test_a_stop_cancels_the_download_and_removes_its_file(
    emulator: Emulator, feeds: FeedServer, temp_dir: Path, path: str, started: int
) -> None:
    stop = asyncio.Event()
    run = asyncio.create_task(import_url(emulator, feeds.url(path), stop))
    await wait_until(lambda: feeds.sent[path] >= started and feed_files(temp_dir), 20, what="the download")
    stop.set()
    report = await asyncio.wait_for(run, 10)  # today's code: 4 GB or 30 minutes later
    await wait_until(lambda: path in feeds.gone, 5, what="the server to see the client go")
    assert feed_files(temp_dir) == []
    (feed,) = report.feeds
    assert report.stopped and feed.records_read == 0
    assert feed.error is not None and "stopped" in feed.error
    assert not feed.config_error  # the run was stopped; nothing is wrong with the feed


@pytest.mark.parametrize(
    ("path", "option", "said"),
    [
        ("/trickle", DOWNLOAD_READ_TIMEOUT, "no data for 0.2 s (download_read_timeout)"),
        ("/endless", DOWNLOAD_TIMEOUT, "not done after 0.2 s (download_timeout)"),
    ],
)
async def test_the_download_timeouts_are_per_feed_options(
    emulator: Emulator, feeds: FeedServer, temp_dir: Path, path: str, option: Field[float], said: str
) -> None:
    reading = Options({option.key: 0.2})
    report = await asyncio.wait_for(import_url(emulator, feeds.url(path), asyncio.Event(), reading), 20)
    (feed,) = report.feeds
    assert feed.config_error and feed.error is not None and feed.error.endswith(f"timed out: {said}")
    assert feed_files(temp_dir) == []


def test_download_timeouts_are_flags_and_config_keys(tmp_path: Path) -> None:
    env = {
        "TI_CLIENT_ID": "app",
        "TI_CLIENT_SECRET": "s",
        "TI_AUTH_URL": "https://login.example/t/oauth2/token",
    }
    (flagged,) = load_run_settings(
        CliOptions(feeds=("https://feeds.example/a.txt",), feed_options={"download_read_timeout": 2.5}), env
    ).feeds
    assert flagged.options[DOWNLOAD_READ_TIMEOUT] == 2.5 and flagged.options[DOWNLOAD_TIMEOUT] == 1800.0
    config = tmp_path / "feeds.toml"
    config.write_text('[[feed]]\nsource = "https://feeds.example/a.txt"\ndownload_timeout = 0\n')
    with pytest.raises(
        Exception, match=r"key 'download_timeout' must be a positive number of seconds, got 0"
    ):
        load_run_settings(CliOptions(config=config), env)


@pytest.mark.parametrize(("path", "started"), [("/endless", 4 << 20), ("/trickle", 1)])
async def test_sigterm_during_a_download_exits_130_at_once_and_leaves_no_file(
    feeds: FeedServer, temp_dir: Path, tmp_path: Path, path: str, started: int
) -> None:
    emu = start_emulator()  # the importer's credentials point at it; no request reaches it here
    try:
        report = tmp_path / "report.json"
        proc = start_importer(emu, tmp_path, feeds.url(path), "--name", "Far", "--report", str(report))
        await wait_until(
            lambda: feeds.sent[path] >= started and feed_files(temp_dir), 20, what="the download"
        )
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 130  # today's code: 4 GB or 30 minutes later
        assert feed_files(temp_dir) == []
        (feed,) = json.loads(report.read_text())["feeds"]
        assert "stopped" in feed["error"]
        assert "Traceback" not in (tmp_path / "err.txt").read_text()
    finally:
        stop_process(emu.proc)


# A download's file, held open as long as a download that never ends: the second signal's
# immediate exit must remove it, though it runs no ``finally``.
HELD_FILE = """
import asyncio, tempfile
from importer.pipeline.signals import removed_on_hard_exit, stop_on_signals
async def main():
    fd, name = tempfile.mkstemp(prefix="ti-import-", suffix=".feed")
    with stop_on_signals(asyncio.Event()), removed_on_hard_exit(name):
        print(name, flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


def test_the_second_signals_immediate_exit_removes_a_downloads_file(tmp_path: Path) -> None:
    err = tmp_path / "err.txt"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with err.open("w") as errors:
        proc = subprocess.Popen([sys.executable, "-c", HELD_FILE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=errors, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        held = Path(proc.stdout.readline().strip())
        assert held.parent == tmp_path and held.exists()
        proc.send_signal(signal.SIGINT)
        wait_until_sync(
            lambda: "finishing requests in flight" in err.read_text(), 10, what="the first signal"
        )
        assert held.exists()  # the first signal leaves it to its owner
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
        assert not held.exists()
    finally:
        stop_process(proc)
