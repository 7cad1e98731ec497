"""``--report`` and ``--rejects`` write only where they may: a regular file, replaced whole, or
``-`` for stdout. A device, folder or FIFO is refused, and so is a path the run reads (a feed,
the config file, the journal, the ``--retry-from`` file) or the other output — before anything
is read or sent."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from importer.emulator import Emulator
from tests.helpers import run_cli, use_emulator, write_list


def _definitions(emu: Emulator) -> int:
    count: int = emu.state()["totals"]["alert_definitions"]
    return count


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _not_a_file(kind: str, folder: Path) -> Path:
    """A folder, FIFO, socket or device node in ``folder`` — never a system device: replacing
    ``/dev/null`` is exactly the bug refused here, and the tests may run as root."""
    target = folder / kind
    if kind == "folder":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(target))
    else:
        try:  # the null device's numbers, under another name
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs privileges")
    return target


@pytest.mark.parametrize("kind", ["folder", "fifo", "socket", "device"])
@pytest.mark.parametrize("flag", ["--report", "--rejects"])
async def test_a_target_that_is_not_a_regular_file_is_refused_before_anything_is_sent(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    flag: str,
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 20)
    target = _not_a_file(kind, tmp_path)
    mode = target.stat().st_mode
    code = await run_cli("-q", str(feed), flag, str(target), "--no-state")
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "not a regular file" in err and str(target) in err
    assert _definitions(emulator) == 0  # refused before the run began
    assert _leftovers(tmp_path) == []
    assert target.stat().st_mode == mode  # not replaced
    if kind == "folder":
        assert list(target.iterdir()) == []


async def test_a_rejects_path_that_is_a_feed_is_refused_and_the_feed_kept(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 20)
    before = feed.read_bytes()
    report = tmp_path / "report.json"
    code = await run_cli("-q", str(feed), "--rejects", str(feed), "--report", str(report), "--no-state")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "the rejects file" in err and "feed" in err
    assert feed.read_bytes() == before
    assert _definitions(emulator) == 0
    # The report's own path is fine: it says why the run was refused.
    written = json.loads(report.read_text())
    assert written["exit_code"] == 2 and "rejects file" in written["error"]


async def test_outputs_that_alias_an_input_by_another_name_are_refused(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hard link and a relative path name the same file: compared as files, not as text."""
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 20)
    before = feed.read_bytes()
    os.link(feed, tmp_path / "linked.txt")
    monkeypatch.chdir(tmp_path)
    for alias in ("linked.txt", "./sub/../feed.txt"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert await run_cli("-q", str(feed), "--report", alias, "--no-state") == 2
        assert "writing it would destroy" in capsys.readouterr().err
    assert feed.read_bytes() == before
    assert _definitions(emulator) == 0


async def test_a_feed_of_the_config_file_is_protected_too(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 20)
    before = feed.read_bytes()
    config = tmp_path / "feeds.toml"
    config.write_text("[[feed]]\nsource = 'feed.txt'\n")  # relative to the config file
    assert await run_cli("-q", "--config", str(config), "--rejects", str(feed), "--no-state") == 2
    assert "the feed 'feed.txt'" in capsys.readouterr().err
    assert await run_cli("-q", "--config", str(config), "--report", str(config), "--no-state") == 2
    assert "the config file" in capsys.readouterr().err
    assert feed.read_bytes() == before and "[[feed]]" in config.read_text()
    assert _definitions(emulator) == 0


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--state", "{dir}/state.sqlite", "--report", "{dir}/state.sqlite"), "the state journal"),
        (("--no-state", "--retry-from", "{dir}/r.jsonl", "--rejects", "{dir}/r.jsonl"), "--retry-from"),
        (("--no-state", "--report", "{dir}/o.json", "--rejects", "{dir}/o.json"), "are one file"),
        (("--no-state", "--report", "-", "--rejects", "-"), "cannot both go to stdout"),
    ],
)
async def test_outputs_never_overwrite_the_journal_the_retry_file_or_each_other(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    says: str,
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 20)
    (tmp_path / "r.jsonl").write_text("")
    argv = [arg.format(dir=tmp_path) for arg in extra]
    assert await run_cli("-q", str(feed), *argv) == 2
    captured = capsys.readouterr()
    assert says in captured.err
    if "-" in argv:  # the report itself may go to stdout: it says why the run was refused
        assert json.loads(captured.out)["exit_code"] == 2
    else:
        assert captured.out == ""
    assert _definitions(emulator) == 0
    assert (tmp_path / "r.jsonl").read_text() == ""


async def test_report_to_stdout_is_json_alone_and_the_summary_goes_to_stderr(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 30, bad_every=10)
    assert await run_cli(str(feed), "--report", "-", "--no-state") == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # all of stdout is the one JSON document
    assert report["exit_code"] == 0 and report["totals"]["imported"] == 30
    assert "imported" in captured.err  # the summary table


async def test_rejects_to_stdout_are_json_lines_alone(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 30, bad_every=10)
    report = tmp_path / "report.json"
    assert await run_cli(str(feed), "--rejects", "-", "--report", str(report), "--no-state") == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert len(lines) == json.loads(report.read_text())["totals"]["rejected"] > 0
    assert all(line["bucket"] == "rejected" for line in lines)
    assert "imported" in captured.err


async def test_a_report_behind_a_link_replaces_the_linked_file_and_keeps_the_link(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_list(tmp_path / "feed.txt", 10)
    real = tmp_path / "reports" / "last.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "report.json"
    link.symlink_to(real)
    assert await run_cli("-q", str(feed), "--report", str(link), "--no-state") == 0
    assert link.is_symlink() and json.loads(real.read_text())["exit_code"] == 0
    assert _leftovers(tmp_path) == []
