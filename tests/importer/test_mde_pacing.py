"""The mde target paced by the API's sliding windows, not by even spacing: a burst into an empty
window, a wait for the window once it is full, no 429 from the emulator at the documented limits,
a 429's pause holding its lane only, and the window scale from a flag or the config file."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from feeds.model import Indicator, Kind
from importer.cli import build_parser
from importer.cli.run import _cli_options
from importer.emulator import Emulator, EmulatorConfig, running_emulator
from importer.errors import ConfigError, ThrottledError
from importer.model import InFlight
from importer.settings import CliOptions, load_run_settings
from importer.targets.mde.client import MdeClient, indicator_body
from importer.targets.mde.rules import DEFAULT_AUDIENCE, MdePace
from importer.targets.mde.target import open_mde_target
from importer.transport.http import open_http
from importer.transport.stats import TransportStats
from tests.helpers import FakeTime, connection_settings, send_all, sha1, sha1s, spec_for

SPEC = spec_for("paced", "mde", title="Paced", description="pacing tests")
ENV = {"TI_CLIENT_ID": "app", "TI_CLIENT_SECRET": "s", "TI_AUTH_URL": "https://login.example/t/oauth2/token"}


@asynccontextmanager
async def paced_client(
    fake: FakeTime, *, pace: MdePace | None = None, **config: Any
) -> AsyncIterator[tuple[Emulator, MdeClient]]:
    """An emulator and a client on ``fake``'s clock: their windows pass as the client's sleeps do."""
    async with running_emulator(EmulatorConfig(clock=fake.wall, **config)) as emu:
        settings = connection_settings(emu, api="mde")
        async with open_http(
            settings, TransportStats(), default_audience=DEFAULT_AUDIENCE, sleep=fake.sleep, clock=fake.clock
        ) as http:
            yield emu, MdeClient(http, settings.api_url, pace=pace, sleep=fake.sleep, clock=fake.clock)


def one(i: int) -> list[dict[str, Any]]:
    return [indicator_body(Indicator(Kind.SHA1, sha1(i), "f"), SPEC)]


def throttled(emu: Emulator) -> int:
    return int(emu.state()["requests_by_status"].get("429", 0))


async def test_thirty_imports_go_at_once_into_an_empty_window_and_the_31st_waits_for_it(
    fake_time: FakeTime,
) -> None:
    async with paced_client(fake_time) as (emu, client):
        start = fake_time.now
        # Thirty workers at once: none waits (no even spacing), all answered at the same instant.
        await asyncio.gather(*(client.import_indicators(one(i)) for i in range(30)))
        assert fake_time.sleeps == [] and fake_time.now == start
        # The window is full: the 31st goes when the first answers are a minute old, not before.
        await client.import_indicators(one(30))
        assert fake_time.sleeps == [60.0] and fake_time.now == start + 60.0
        assert throttled(emu) == 0


async def test_the_documented_limits_draw_no_429_from_the_emulator(fake_time: FakeTime) -> None:
    # 90 import calls from 30 workers: three full windows, each sent as one burst.
    stats = TransportStats()
    async with running_emulator(EmulatorConfig(clock=fake_time.wall)) as emu:
        settings = connection_settings(emu, api="mde", max_retry_seconds=900.0)
        async with open_mde_target(
            settings, stats, in_flight=InFlight(30), sleep=fake_time.sleep, clock=fake_time.clock
        ) as target:
            definition = await target.resolve_definition(SPEC, dry_run=False)
            start = fake_time.now
            result = await send_all(target, definition, sha1s(900), batch=10, workers=30)
            elapsed = fake_time.now - start
    assert len(result.imported) == 900 and not result.failed
    assert throttled(emu) == 0 and stats.throttled == 0
    # Never sooner than the window allows. (No upper bound here: in virtual time the first waiter's
    # sleep carries the clock past answers still in flight, which then count later - safe, slower.)
    assert elapsed >= 120.0


async def test_the_calls_lane_bursts_to_its_window_too(fake_time: FakeTime) -> None:
    async with paced_client(fake_time) as (emu, client):
        start = fake_time.now
        await asyncio.gather(*(client.any_titled("Paced") for _ in range(100)))
        assert fake_time.now == start  # 100 a minute, all at once
        await client.any_titled("Paced")
        assert fake_time.now == start + 60.0
        assert throttled(emu) == 0


async def test_batch_delete_keeps_its_hourly_window(fake_time: FakeTime) -> None:
    # Three BatchDeletes an hour on both sides (the documented 1,500, shrunk to stay fast).
    pace = MdePace(batch_deletes_per_hour=3)
    async with paced_client(fake_time, pace=pace, mde_batch_delete_per_hour=3) as (emu, client):
        answers = [await client.import_indicators(one(i)) for i in range(4)]
        ids = [str(items[0].id) for items in answers]
        start = fake_time.now
        await asyncio.gather(*(client.batch_delete([remote_id]) for remote_id in ids[:3]))
        assert fake_time.now == start
        await client.batch_delete(ids[3:])
        assert fake_time.now == start + 3600.0  # the hour, not the minute, held the fourth
        assert throttled(emu) == 0


async def test_a_429_pauses_its_lane_for_the_retry_after(fake_time: FakeTime) -> None:
    # The tenant allows one import a minute (another tool took the rest): our window thinks there
    # is room, the server says no; the lane then waits out Retry-After, the other lane does not.
    async with paced_client(fake_time, mde_import_per_minute=1) as (emu, client):
        start = fake_time.now
        await client.import_indicators(one(0))
        with pytest.raises(ThrottledError) as refused:
            await client.import_indicators(one(1))
        assert refused.value.retry_after == 60.0
        assert client.batch.http.limiter.paused_until == start + 60.0
        await client.any_titled("Paced")  # the calls lane is not paused
        assert fake_time.now == start
        await client.import_indicators(one(1))  # waits the pause out, then is accepted
        assert fake_time.now == start + 60.0
        assert throttled(emu) == 1


# --- the window scale: a test aid for scaled emulators -------------------------------------------
def run_parser() -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = subparsers.choices["run"]
    return parser


def test_the_window_scale_comes_from_the_flag_or_the_config_key(tmp_path: Path) -> None:
    cli = _cli_options(run_parser().parse_args(["a.txt", "--target", "mde", "--window-scale", "0.05"]))
    assert cli.window_scale == 0.05
    assert load_run_settings(cli, ENV).connection.window_scale == 0.05
    assert load_run_settings(CliOptions(feeds=("a.txt",)), ENV).connection.window_scale == 1.0
    config = tmp_path / "run.toml"
    config.write_text("[target]\nname = 'mde'\nwindow_scale = 0.01\n[[feed]]\nsource = 'a.txt'\n")
    assert load_run_settings(CliOptions(config=config), ENV).connection.window_scale == 0.01
    flagged = load_run_settings(CliOptions(config=config, window_scale=0.5), ENV)
    assert flagged.connection.window_scale == 0.5  # the flag wins


@pytest.mark.parametrize("value", ["0", "-1", "2", "true", "'fast'", "nan"])
def test_a_window_scale_out_of_range_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    config = tmp_path / "run.toml"
    config.write_text(f"[target]\nwindow_scale = {value}\n[[feed]]\nsource = 'a.txt'\n")
    with pytest.raises(ConfigError, match="window_scale"):
        load_run_settings(CliOptions(config=config), ENV)


def test_a_window_scale_flag_out_of_range_is_refused_naming_the_flag() -> None:
    with pytest.raises(ConfigError, match="--window-scale must be more than 0 and at most 1"):
        load_run_settings(CliOptions(feeds=("a.txt",), window_scale=3.0), ENV)


async def test_the_window_scale_shrinks_the_targets_windows(fake_time: FakeTime) -> None:
    # A "minute" of 3 s on both sides: the 31st import waits 3 s, and the emulator agrees.
    scale = 0.05
    async with running_emulator(EmulatorConfig(clock=fake_time.wall, mde_window_scale=scale)) as emu:
        settings = connection_settings(emu, api="mde", window_scale=scale)
        async with open_mde_target(
            settings, TransportStats(), in_flight=InFlight(31), sleep=fake_time.sleep, clock=fake_time.clock
        ) as target:
            definition = await target.resolve_definition(SPEC, dry_run=False)
            start = fake_time.now
            result = await send_all(target, definition, sha1s(31), batch=1, workers=31)
    assert len(result.imported) == 31
    assert fake_time.now - start == pytest.approx(3.0)
    assert throttled(emu) == 0
