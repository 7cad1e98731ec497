"""``verify`` on ``sentinel``: the workspace read back through ARM ``queryIndicators`` (when configured),
and refused when it cannot be (an empty listing must never read as "everything absent")."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.emulator import DEMO_WORKSPACE, Emulator
from importer.errors import ConfigError
from importer.model import Options
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions, Tuning
from importer.verify import verify_import
from tests.helpers import FakeTime, connection_settings, spec_for, write_feed

WORKSPACE = (("workspace_id", DEMO_WORKSPACE.workspace_id), ("source_system", "ti-importer"))


def settings(emu: Emulator, feed: Path, *, read_back: bool = True) -> RunSettings:
    where = DEMO_WORKSPACE
    coordinates = (
        ("subscription_id", where.subscription_id), ("resource_group", where.resource_group),
        ("workspace_name", where.name), ("arm_url", emu.base_url + "/"),
    )  # fmt: skip
    options = WORKSPACE + (coordinates if read_back else ())
    return RunSettings(
        target="sentinel",
        connection=connection_settings(emu, version=2, api_url=emu.sentinel_url, target_options=options),
        feeds=(FeedSettings(str(feed), spec_for("Feed A", "sentinel"), Options()),),
        tuning=Tuning(batch_size=20, workers=2),
    )


async def test_a_sentinel_feed_verified_through_the_workspace_listing(
    emulator: Emulator, tmp_path: Path, fake_time: FakeTime
) -> None:
    feed, state = write_feed(tmp_path / "a.txt", range(30)), StateOptions(path=tmp_path / "state.sqlite")
    run = settings(emulator, feed)
    imported = await run_import(run, OutputOptions(progress=False), state=state, sleep=fake_time.sleep)
    assert imported.exit_code() == 0 and imported.feeds[0].imported == 30
    report = await verify_import(run, state=state, sleep=fake_time.sleep)
    (verdict,) = report.feeds
    assert verdict.error is None and verdict.counts["landed"] == 30 and report.exit_code() == 0


async def test_a_workspace_that_cannot_be_read_back_is_refused(
    emulator: Emulator, tmp_path: Path, fake_time: FakeTime
) -> None:
    run = settings(emulator, write_feed(tmp_path / "a.txt", range(3)), read_back=False)
    with pytest.raises(ConfigError, match="subscription_id, resource_group, workspace_name"):
        await verify_import(run, state=StateOptions(path=tmp_path / "state.sqlite"), sleep=fake_time.sleep)
