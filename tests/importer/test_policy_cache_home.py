"""Without a journal (``--no-state``) the warning lists' compiled tables are kept in the user's cache
folder, so an ``mde`` run does not build them afresh (~3 s, ~130 MB) every time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, importer_env, start_emulator, stop_process, write_feed


def test_no_state_runs_keep_the_warning_lists_under_xdg_cache_home(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "hashes.txt", range(3))
    emu = start_emulator()
    try:
        env = importer_env(emu, tmp_path / "home") | {
            "TI_API_URL": emu.ti_url.replace("/V1.0/", "/api/"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
        }  # fmt: skip
        command = [sys.executable, "-m", "importer", "run", str(feed), "--target", "mde", "--no-state",
                   "--no-progress", "-q", "-v"]  # fmt: skip
        runs = [subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                               check=False) for _ in range(2)]  # fmt: skip
    finally:
        stop_process(emu.proc)
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert "warning lists (from the package" in runs[0].stderr
    assert "warning lists (from the cache" in runs[1].stderr
    assert list((tmp_path / "cache" / "ti-importer").iterdir())  # the tables, beside nothing else of ours
    assert not (tmp_path / "home" / "ti-importer" / "state.sqlite").exists()  # no journal was made
