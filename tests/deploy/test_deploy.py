"""The deployment files do what their comments say: the systemd units verify, the service's own
command line runs a night against the emulator, and the Dockerfile copies what exists as a
non-root user.

No image is built here (that needs a registry's base image); the Dockerfile is checked for what a
build would trip on first.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, importer_env, start_emulator, stop_process, write_feed

DEPLOY = ROOT / "deploy"
INSTALLED = "/opt/ti-importer/.venv/bin/ti-import"  # where the unit expects the README's set-up
TI_IMPORT = Path(sys.executable).with_name("ti-import")


def unit_with_local_binary(tmp_path: Path) -> Path:
    """The service unit, its ExecStart pointed at this virtualenv's ti-import (verify checks it exists)."""
    text = (DEPLOY / "systemd" / "ti-import.service").read_text()
    assert INSTALLED in text
    unit = tmp_path / "ti-import.service"
    unit.write_text(text.replace(INSTALLED, str(TI_IMPORT)))
    shutil.copy(DEPLOY / "systemd" / "ti-import.timer", tmp_path / "ti-import.timer")
    return unit


def exec_start(unit: Path) -> list[str]:
    """The service's ExecStart as an argument list (continuation lines joined, as systemd does)."""
    text = unit.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def replace_all(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_units_verify_without_a_warning(tmp_path: Path) -> None:
    unit = unit_with_local_binary(tmp_path)
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(unit), str(tmp_path / "ti-import.timer")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == "", checked.stderr


def test_the_service_command_imports_a_night(tmp_path: Path) -> None:
    """ExecStart as written, with systemd's folders (%S, %L, %t) and the config under tmp_path."""
    folders = {spec: tmp_path / name for spec, name in (("%S", "lib"), ("%L", "log"), ("%t", "run"))}
    for folder in folders.values():
        (folder / "ti-import").mkdir(parents=True)
    feed = write_feed(tmp_path / "hashes.txt", range(25))
    config = tmp_path / "feeds.toml"
    config.write_text(f'[[feed]]\nsource = "{feed}"\nname = "Nightly hashes"\n')
    here = {spec: str(folder) for spec, folder in folders.items()}
    here["/etc/ti-import/feeds.toml"] = str(config)
    argv = [replace_all(arg, here) for arg in exec_start(unit_with_local_binary(tmp_path))]
    emu = start_emulator()
    try:
        env = importer_env(emu, tmp_path / "home") | {"XDG_RUNTIME_DIR": str(folders["%t"] / "ti-import")}
        night = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    finally:
        stop_process(emu.proc)
    assert night.returncode == 0, night.stderr
    assert night.stdout == ""  # --quiet: cron and the journal get nothing on a good night
    report = json.loads((folders["%L"] / "ti-import" / "report.json").read_text())
    assert report["exit_code"] == 0 and report["totals"]["imported"] == 25
    assert (folders["%S"] / "ti-import" / "state.sqlite").is_file()


def test_the_dockerfile_copies_what_exists_and_runs_as_a_user() -> None:
    lines = [line.split() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line[0].startswith("#")]
    copies = [line[1:-1] for line in instructions if line[0] == "COPY" and not line[1].startswith("--from")]
    assert copies and all((ROOT / source).exists() for sources in copies for source in sources)
    final_stage = instructions[max(i for i, line in enumerate(instructions) if line[0] == "FROM"):]
    users = [line[1] for line in final_stage if line[0] == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ["ENTRYPOINT", '["ti-import"]'] in final_stage
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored  # the build context stays small and secret-free
