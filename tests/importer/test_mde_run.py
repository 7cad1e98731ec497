"""``--target mde`` end to end: the same feed on both targets, the mde fields, mirror, kill -9 resume."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from importer.cli import main
from importer.emulator import DEMO_CLIENT, Emulator, EmulatorConfig, running_emulator
from tests.helpers import (
    FAST_IMPORTER,
    ROOT,
    FakeTime,
    importer_env,
    journaled_run,
    mde_held,
    reached_before_exit,
    sha256,
    start_emulator,
    stop_process,
    write_feed,
)

MIXED = """\
# one of each kind
44d88612fea8a8f36de82e1f5d4d4e87aa8f4e3c1f9e4a3b2c1d0e9f8a7b6c5d
8.8.4.4
2001:db8::7
evil.example
hxxp://evil[.]example/payload.bin
"""


async def cli(*argv: str) -> int:
    # The command runs its own event loop; the emulator keeps serving from this one.
    return await asyncio.to_thread(main, ["run", "--no-progress", "--no-state", "-q", *argv])


def use(monkeypatch: pytest.MonkeyPatch, emu: Emulator, api_url: str) -> None:
    monkeypatch.setenv("TI_CLIENT_ID", DEMO_CLIENT.client_id)
    monkeypatch.setenv("TI_CLIENT_SECRET", DEMO_CLIENT.client_secret)
    monkeypatch.setenv("TI_AUTH_URL", emu.auth_url(2))
    monkeypatch.setenv("TI_API_URL", api_url)


async def test_urls_are_rejected_by_ti_and_taken_by_mde_with_the_feeds_fields(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed = tmp_path / "mixed.txt"
    feed.write_text(MIXED)
    rejects = tmp_path / "rejects.jsonl"

    # 8.8.4.4 is on a MISP warning list and 2001:db8::7 a documentation address: kept here.
    keep = ("--allow-private", "--warninglists", "false")
    use(monkeypatch, emulator, emulator.ti_url)
    assert await cli(str(feed), "--rejects", str(rejects), *keep) == 0  # a rejected URL is not a failure
    assert emulator.state()["totals"]["iocs"] == 4
    (line,) = [json.loads(text) for text in rejects.read_text().splitlines()]
    assert line["value"] == "http://evil.example/payload.bin" and "url" in line["reason"].lower()

    use(monkeypatch, emulator, emulator.mde_url)
    code = await cli(str(feed), "--target", "mde", "--title", "Mixed feed", "--action", "Block",
                     "--rbac-group", "Servers", "--rbac-group", "Laptops", "--severity", "High",
                     *keep)  # fmt: skip
    assert code == 0
    stored = await mde_held(emulator)
    assert {(item["indicatorType"], item["indicatorValue"]) for item in stored} == {
        ("FileSha256", "44d88612fea8a8f36de82e1f5d4d4e87aa8f4e3c1f9e4a3b2c1d0e9f8a7b6c5d"),
        ("IpAddress", "8.8.4.4"),
        ("IpAddress", "2001:0db8:0000:0000:0000:0000:0000:0007"),  # the API takes all 8 segments
        ("DomainName", "evil.example"),
        ("Url", "http://evil.example/payload.bin"),
    }
    for item in stored:
        assert (item["title"], item["action"], item["severity"]) == ("Mixed feed", "Block", "High")
        assert item["rbacGroupNames"] == ["Servers", "Laptops"]

    assert await cli(str(feed), "--target", "mde", "--title", "Mixed feed", "--action", "Block", *keep) == 0
    assert emulator.state()["totals"]["mde_indicators"] == 5  # a rerun adds nothing


async def test_mde_mirror_deletes_exactly_the_stale_ones_through_batch_delete(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    state = tmp_path / "state.sqlite"
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        first = await journaled_run(emu, write_feed(tmp_path / "a.txt", range(600)), state, api="mde",
                                    fake=fake_time, mirror=True)  # fmt: skip
        assert first.exit_code() == 0 and emu.state()["totals"]["mde_indicators"] == 600
        today = [*range(100, 600), *range(1000, 1005)]  # 100 gone (more than one BatchDelete is 500)
        report = await journaled_run(emu, write_feed(tmp_path / "b.txt", today), state, api="mde",
                                     fake=fake_time, mirror=True)  # fmt: skip
        feed = report.feeds[0]
        assert (feed.imported, feed.stale, feed.deleted) == (5, 100, 100) and report.exit_code() == 0
        values = {item["indicatorValue"] for item in await mde_held(emu)}
    assert values == {sha256(n) for n in today}


def test_mde_kill9_half_way_then_rerun_leaves_every_indicator_once(tmp_path: Path) -> None:
    # Emulator and importer run 50x fast: the documented 30 imports/min pass in a second or two.
    factor = 50.0
    emu = start_emulator(fast=(factor, {"latency_ms": 20.0, "seed": 3}, 3600))
    try:
        feed = write_feed(tmp_path / "feed.txt", range(3000))
        config = tmp_path / "feeds.toml"
        config.write_text(
            f'[target]\nname = "mde"\napi_url = "{emu.base}/api/"\n[tuning]\nbatch_size = 100\nworkers = 2\n'
            f'[[feed]]\nsource = "{feed}"\ntitle = "Resumed feed"\n'
        )
        env = importer_env(emu, tmp_path)
        env.pop("TI_API_URL")  # the config file names the mde API
        report = tmp_path / "report.json"
        command = [sys.executable, "-c", FAST_IMPORTER, str(factor), str(config),
                   str(tmp_path / "state.sqlite"), str(report)]  # fmt: skip
        first = subprocess.Popen(command, cwd=ROOT, env=env, text=True)
        reached = reached_before_exit(first, lambda: emu.state()["totals"]["mde_indicators"] >= 1500)
        first.kill()
        first.wait(30)
        assert reached, "the first run ended before the kill point"
        held = emu.state()["totals"]["mde_indicators"]
        assert 1500 <= held < 3000
        second = subprocess.Popen(command, cwd=ROOT, env=env, text=True)
        assert second.wait(90) == 0
        assert emu.state()["totals"]["mde_indicators"] == 3000
        totals = json.loads(report.read_text())["totals"]
        assert totals["imported"] + totals["already_present"] == 3000
        assert totals["already_present"] >= held - 100  # the journal kept what was acknowledged
    finally:
        stop_process(emu.proc)
