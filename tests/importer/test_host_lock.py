"""One run per target and tenant on a host, whatever the journal; refusals name the other run.

The process tests run the real command line: a first run reading its feed from a pipe holds the
tenant for as long as the test keeps the pipe open, so "the second one is refused" does not
depend on how fast anything is.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from importer.errors import ConfigError
from importer.state.host_lock import default_lock_dir, hold_tenant
from importer.state.journal import Journal
from tests.helpers import (
    ROOT,
    EmulatorProcess,
    importer_env,
    start_emulator,
    stop_process,
    wait_until_sync,
    write_feed,
)

TENANT = "https://api.example/v1.0 client-id"


def assert_names_the_holder(message: str, pid: int) -> None:
    assert f"pid {pid} on host {socket.gethostname()}, started 20" in message
    assert "wait for it to finish, or stop it" in message
    assert "--state" not in message and "another state" not in message  # how runs double-post


# --- in process -------------------------------------------------------------------------------------


def test_a_held_tenant_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with hold_tenant(tmp_path, "ti", TENANT):
        with pytest.raises(ConfigError) as refused, hold_tenant(tmp_path, "ti", TENANT):
            pass
        assert_names_the_holder(str(refused.value), os.getpid())
        with hold_tenant(tmp_path, "mde", TENANT), hold_tenant(tmp_path, "ti", TENANT + "-other"):
            pass  # another target, another tenant: not this lock's business
    with hold_tenant(tmp_path, "ti", TENANT):  # released with the block
        pass
    names = [path.name for path in tmp_path.iterdir()]
    assert len(names) == 3 and not any("example" in name or "client" in name for name in names)


def test_the_journals_lock_names_the_holder_too(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with (
        Journal.open(state, target="ti", tenant=TENANT),
        pytest.raises(ConfigError, match="in use by another ti-import run") as refused,
    ):
        Journal.open(state, target="ti", tenant=TENANT)
    assert_names_the_holder(str(refused.value), os.getpid())


def test_the_lock_folder_is_the_runtime_one_else_beside_the_default_journal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert default_lock_dir({"XDG_RUNTIME_DIR": "/run/user/7"}, home) == Path("/run/user/7/ti-importer")
    assert default_lock_dir({"XDG_RUNTIME_DIR": "relative"}, home) == home / ".local/state/ti-importer"
    assert default_lock_dir({"XDG_STATE_HOME": "/st"}, home) == Path("/st/ti-importer")


# --- real processes ---------------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[EmulatorProcess]:
    process = start_emulator()
    try:
        yield process
    finally:
        stop_process(process.proc)


def command(state: str | Path, *argv: str) -> list[str]:
    state_flags = ["--no-state"] if state == "none" else ["--state", str(state)]
    return [sys.executable, "-m", "importer", "run", "--no-progress", "-q", *state_flags, *argv]


def environment(emu: EmulatorProcess, tmp: Path) -> dict[str, str]:
    # Each run its own journal, one runtime folder: as two cron jobs of one user would be.
    return {**importer_env(emu, tmp), "XDG_RUNTIME_DIR": str(tmp / "runtime")}


def start_holder(emu: EmulatorProcess, tmp: Path) -> subprocess.Popen[str]:
    """A run of a feed on stdin: it holds the tenant until the test closes the pipe."""
    holder = subprocess.Popen(
        command(tmp / "a.sqlite", "-", "--name", "Piped"), cwd=ROOT, env=environment(emu, tmp),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # The journal is opened after the host's lock is taken: once it exists, the lock is held.
    wait_until_sync(
        (tmp / "a.sqlite").exists, give_up=lambda: holder.poll() is not None, what="the first run"
    )
    assert holder.poll() is None
    return holder


def run(emu: EmulatorProcess, tmp: Path, state: str | Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(state, *argv), cwd=ROOT, env=environment(emu, tmp), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_a_second_run_on_the_tenant_is_refused_whatever_its_journal(
    emu: EmulatorProcess, tmp_path: Path
) -> None:
    feed = write_feed(tmp_path / "feed.txt", range(20))
    feed_args = (str(feed), "--name", "Piped")  # the holder's definition
    report = tmp_path / "report.json"
    holder = start_holder(emu, tmp_path)
    try:
        other_journal = run(emu, tmp_path, tmp_path / "b.sqlite", *feed_args, "--report", str(report))
        no_journal = run(emu, tmp_path, "none", *feed_args)
        assert holder.poll() is None  # refused while the first one still runs: at once, no wait
    finally:
        assert holder.stdin is not None
        holder.stdin.write("".join(line for line in feed.read_text().splitlines(keepends=True)[:5]))
        holder.stdin.close()
    assert holder.wait(60) == 0, holder.stderr.read() if holder.stderr else ""
    for refused in (other_journal, no_journal):
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.splitlines()
        assert line.startswith("ti-import: another ti-import run is importing into this ti tenant")
        assert_names_the_holder(line, holder.pid)
    written = json.loads(report.read_text())
    assert written["exit_code"] == 2 and written["error"] == other_journal.stderr.strip()[len("ti-import: "):]
    assert emu.state()["totals"]["iocs"] == 5  # only the first run's

    after = run(emu, tmp_path, tmp_path / "c.sqlite", *feed_args)  # the lock went with the first run
    assert after.returncode == 0, after.stderr
    assert emu.state()["totals"]["iocs"] == 20


def test_a_killed_holder_blocks_nobody(emu: EmulatorProcess, tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "feed.txt", range(10))
    holder = start_holder(emu, tmp_path)
    holder.kill()  # SIGKILL: no clean-up ran; the kernel drops its locks
    assert holder.wait(30) == -9
    after = run(emu, tmp_path, tmp_path / "b.sqlite", str(feed))
    assert after.returncode == 0, after.stderr
    assert emu.state()["totals"]["iocs"] == 10
