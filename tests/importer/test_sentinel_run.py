"""``--target sentinel`` against the emulator over loopback: the real feeds exactly once, reruns that
upload nothing, a new version for a changed ``valid_until``, mirror mode revoking, the read-back
through ARM, and a workspace the API does not know (exit 2)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importer.emulator import DEMO_CLIENT, DEMO_WORKSPACE, Emulator, EmulatorConfig
from tests.helpers import (
    FAST_IMPORTER,
    ROOT,
    importer_env,
    reached_before_exit,
    run_cli,
    sha256,
    start_emulator,
    stop_process,
    use_emulator,
    write_feed,
)

SCALED = EmulatorConfig(sentinel_window_scale=0.01)  # a "minute" of uploads lasts 0.6 s
WINDOW = ("--window-scale", "0.01")


def use_sentinel(monkeypatch: pytest.MonkeyPatch, emu: Emulator) -> None:
    use_emulator(monkeypatch, emu, api_url=emu.sentinel_url)
    monkeypatch.setenv("TI_WORKSPACE_ID", DEMO_WORKSPACE.workspace_id)


def workspace(emu: Emulator) -> dict[str, Any]:
    totals: dict[str, Any] = emu.state()["totals"]
    return {key: value for key, value in totals.items() if key.startswith("sentinel_")}


async def run(tmp_path: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    """``ti-import run --target sentinel`` with a journal in ``tmp_path``: exit code and report."""
    report = tmp_path / "report.json"
    state = tmp_path / "state.sqlite"
    code = await run_cli(
        "--target", "sentinel", "--state", str(state), "--report", str(report), "-q", *WINDOW, *argv
    )
    return code, json.loads(report.read_text())


def totals(report: dict[str, Any], key: str) -> int:
    return sum(int(feed[key]) for feed in report["feeds"])


async def listed(emu: Emulator) -> list[dict[str, Any]]:
    """Every indicator ARM lists for the demo workspace (revoked ones too), as any client reads them."""
    form = {"grant_type": "client_credentials", "client_id": DEMO_CLIENT.client_id,
            "client_secret": DEMO_CLIENT.client_secret,
            "scope": "https://management.azure.com/.default"}  # fmt: skip
    found: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(emu.auth_url(2), data=form) as answer:
            headers = {"Authorization": "Bearer " + (await answer.json())["access_token"]}
        url: str | None = emu.query_indicators_url()
        while url is not None:
            async with session.post(url, json={"includeDisabled": True}, headers=headers) as answer:
                assert answer.status == 200
                page = await answer.json()
            found.extend(page["value"])
            url = page.get("nextLink")
    return found


def stix_feed(path: Path, valid_until: str) -> Path:
    bundle = {"type": "bundle", "id": "bundle--3d8c0e0e-3f3c-4c2a-9d1a-0a1b2c3d4e5f", "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--a8d9f9a4-6a0b-4a3e-8d3f-2a1b0c9d8e7f",
         "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z", "name": "C2",
         "pattern": "[domain-name:value = 'c2.example.com']", "pattern_type": "stix",
         "valid_from": "2026-01-01T00:00:00Z", "valid_until": valid_until,
         "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}]},
    ]}  # fmt: skip
    path.write_text(json.dumps(bundle))
    return path


@pytest.mark.parametrize("emulator", [SCALED], indirect=True)
async def test_the_real_feeds_go_in_exactly_once_and_a_rerun_uploads_nothing(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, real_feeds: Path
) -> None:
    feeds = sorted(
        str(p)
        for folder in ("csv", "hashlist", "misc", "stix")
        for p in (real_feeds / folder).iterdir()
        if p.suffix != ".xml"
    )  # fmt: skip  (STIX 1.x is refused: exit 2)
    use_sentinel(monkeypatch, emulator)
    code, first = await run(tmp_path, *feeds)
    held = workspace(emulator)
    assert code == 0 and totals(first, "imported") > 7000
    assert held["sentinel_duplicate_patterns"] == 0 and held["sentinel_revoked"] == 0
    # One object per distinct value (feeds share some: the last to send one names it), one
    # identity per feed that sent any.
    assert held["sentinel_indicators"] <= totals(first, "imported")
    assert held["sentinel_objects"] - held["sentinel_indicators"] == sum(
        1 for f in first["feeds"] if f["imported"]
    )
    code, again = await run(tmp_path, *feeds)
    assert code == 0 and totals(again, "imported") == 0 and totals(again, "updated") == 0
    assert totals(again, "already_present") == totals(first, "imported")
    assert again["transport"]["requests"] == 0 and workspace(emulator) == held


@pytest.mark.parametrize("emulator", [SCALED], indirect=True)
async def test_a_changed_valid_until_uploads_a_new_version_of_the_same_object(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_sentinel(monkeypatch, emulator)
    feed = stix_feed(tmp_path / "c2.json", "2099-01-01T00:00:00Z")
    assert (await run(tmp_path, str(feed)))[0] == 0
    (before,) = await listed(emulator)
    stix_feed(feed, "2099-06-01T00:00:00Z")
    code, report = await run(tmp_path, str(feed))
    (after,) = await listed(emulator)
    assert code == 0 and totals(report, "updated") == 1 and totals(report, "imported") == 0
    assert after["properties"]["externalId"] == before["properties"]["externalId"]  # the same object
    assert after["properties"]["validUntil"] == "2099-06-01T00:00:00.000Z"
    assert after["properties"]["modified"] > before["properties"]["modified"]
    assert after["properties"]["killChainPhases"] == [{"killChainName": "mitre-attack",
                                                      "phaseName": "command-and-control"}]  # fmt: skip
    assert workspace(emulator)["sentinel_indicators"] == 1


@pytest.mark.parametrize("emulator", [SCALED], indirect=True)
async def test_mirror_mode_revokes_what_left_the_feed_and_the_journal_forgets_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_sentinel(monkeypatch, emulator)
    feed = write_feed(tmp_path / "hashes.txt", range(10))
    assert (await run(tmp_path, str(feed)))[0] == 0
    write_feed(feed, range(7))
    code, report = await run(tmp_path, str(feed), "--mirror")
    assert code == 0 and report["feeds"][0]["mirror"]["deleted"] == 3
    assert totals(report, "already_present") == 7
    held = workspace(emulator)
    assert held["sentinel_revoked"] == 3 and held["sentinel_indicators"] == 10
    revoked = {e["properties"]["pattern"] for e in await listed(emulator) if e["properties"]["revoked"]}
    assert revoked == {f"[file:hashes.'SHA-256' = '{sha256(i)}']" for i in (7, 8, 9)}
    code, again = await run(tmp_path, str(feed), "--mirror")  # forgotten: nothing left to revoke
    assert code == 0 and again["feeds"][0]["mirror"]["deleted"] == 0 and again["transport"]["requests"] == 0


@pytest.mark.parametrize("emulator", [SCALED], indirect=True)
async def test_a_value_back_after_its_revocation_lands_under_a_new_id(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """STIX revocation is permanent: the same id again would be ignored while the run said imported."""
    use_sentinel(monkeypatch, emulator)
    feed = write_feed(tmp_path / "hashes.txt", range(4))
    assert (await run(tmp_path, str(feed)))[0] == 0
    for cycle in (1, 2):  # out of the feed (revoked), back in (a new object): twice
        write_feed(feed, range(3))
        code, report = await run(tmp_path, str(feed), "--mirror", "--force")
        assert code == 0 and report["feeds"][0]["mirror"]["deleted"] == 1
        write_feed(feed, range(4))
        code, report = await run(tmp_path, str(feed))
        assert code == 0 and totals(report, "imported") == 1 and totals(report, "already_present") == 3
        back = [e for e in await listed(emulator) if e["properties"]["pattern"].endswith(f"'{sha256(3)}']")]
        assert sorted(e["properties"]["revoked"] for e in back) == [False] + [True] * cycle
        assert len({e["properties"]["externalId"] for e in back}) == cycle + 1  # a new id each time
    held = workspace(emulator)
    assert held["sentinel_revoked"] == 2 and held["sentinel_duplicate_patterns"] == 0
    assert held["sentinel_indicators"] == 6  # 0..3 live, and the two revoked versions of 3
    code, report = await run(tmp_path, str(feed))  # and the journal knows the new one
    assert code == 0 and report["transport"]["requests"] == 0


@pytest.mark.parametrize("emulator", [SCALED], indirect=True)
async def test_without_a_read_back_an_interrupted_run_keeps_what_the_journal_committed(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No listing to repair from: an empty one must not wipe the journal (and re-send everything)."""
    use_sentinel(monkeypatch, emulator)
    feed = write_feed(tmp_path / "hashes.txt", range(30))
    assert (await run(tmp_path, str(feed)))[0] == 0
    conn = sqlite3.connect(tmp_path / "state.sqlite")  # a run that began writing and was killed
    with conn:
        conn.execute("INSERT INTO runs (tenant_id, started_at) SELECT id, 0 FROM tenants")
        conn.execute("INSERT INTO run_scopes (run, scope) SELECT last_insert_rowid(), id FROM scopes")
    conn.close()
    code, report = await run(tmp_path, str(feed))
    assert code == 0 and totals(report, "already_present") == 30 and report["transport"]["requests"] == 0
    assert workspace(emulator)["sentinel_duplicate_patterns"] == 0


@pytest.mark.parametrize("emulator", [SCALED], indirect=True)
async def test_an_empty_journal_reads_the_workspace_back_through_arm(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_sentinel(monkeypatch, emulator)
    feed = tmp_path / "hashes.txt"
    feed.write_text("".join(f"{i:032x}\n" for i in range(250)))
    first = tmp_path / "first"
    first.mkdir()
    assert (await run(first, str(feed)))[0] == 0
    config = tmp_path / "run.toml"
    config.write_text(
        f'[target]\nname = "sentinel"\narm_url = "{emulator.sentinel_url}"\n'
        f'subscription_id = "{DEMO_WORKSPACE.subscription_id}"\n'
        f'resource_group = "{DEMO_WORKSPACE.resource_group}"\nworkspace_name = "{DEMO_WORKSPACE.name}"\n'
        f'[[feed]]\nsource = "{feed}"\n'
    )
    code, report = await run(tmp_path, "--config", str(config))  # another journal: empty
    assert code == 0 and totals(report, "already_present") == 250 and totals(report, "imported") == 0
    assert report["transport"]["requests"] == 3  # three pages of 100 from ARM, no upload


async def test_a_workspace_the_api_does_not_know_is_exit_2_naming_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_sentinel(monkeypatch, emulator)
    monkeypatch.setenv("TI_WORKSPACE_ID", "00000000-0000-4000-8000-000000000000")
    feed = write_feed(tmp_path / "hashes.txt", range(1))
    code = await run_cli("--target", "sentinel", "--no-state", "-q", str(feed))
    assert code == 2
    assert "workspace 00000000-0000-4000-8000-000000000000 (HTTP 404)" in capsys.readouterr().err


def test_kill9_half_way_under_faults_then_one_more_run_leaves_every_indicator_once(tmp_path: Path) -> None:
    # Emulator and importer on time 50x fast: a window's minute passes in 1.2 s.
    factor = 50.0
    faults = {
        "latency_ms": 20.0,
        "error_rate": 0.05,
        "reset_rate": 0.03,
        "lost_after_write_rate": 0.05,
        "seed": 5,
    }
    emu = start_emulator(fast=(factor, faults, 3600))
    try:
        feed = write_feed(tmp_path / "feed.txt", range(3000))
        config = tmp_path / "feeds.toml"
        config.write_text(
            f'[target]\nname = "sentinel"\napi_url = "{emu.base}/"\n'
            f'workspace_id = "{DEMO_WORKSPACE.workspace_id}"\n'
            f'[tuning]\nbatch_size = 50\nworkers = 2\n[[feed]]\nsource = "{feed}"\n'
        )
        env = importer_env(emu, tmp_path)
        env.pop("TI_API_URL")  # the config file names the API
        report = tmp_path / "report.json"
        state = tmp_path / "state.sqlite"
        command = [sys.executable, "-c", FAST_IMPORTER, str(factor), str(config), str(state), str(report)]
        first = subprocess.Popen(command, cwd=ROOT, env=env, text=True)
        reached = reached_before_exit(first, lambda: emu.state()["totals"]["sentinel_indicators"] >= 1500)
        first.kill()
        first.wait(30)
        assert reached, "the first run ended before the kill point"
        assert 1500 <= emu.state()["totals"]["sentinel_indicators"] < 3000
        assert subprocess.Popen(command, cwd=ROOT, env=env, text=True).wait(120) == 0
        after = {k: v for k, v in emu.state()["totals"].items() if k.startswith("sentinel_")}
        assert after["sentinel_indicators"] == 3000 and after["sentinel_duplicate_patterns"] == 0
        assert subprocess.Popen(command, cwd=ROOT, env=env, text=True).wait(120) == 0  # one more: no change
        again = json.loads(report.read_text())
        assert again["totals"]["already_present"] == 3000 and again["totals"]["imported"] == 0
        assert {k: v for k, v in emu.state()["totals"].items() if k.startswith("sentinel_")} == after
    finally:
        stop_process(emu.proc)
