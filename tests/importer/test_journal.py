"""The state journal: schema, isolation, present/seen/stale, durability across kill -9, errors.

Reconciling from a target's listing, and the listing a killed run owes: test_journal_reconcile.py.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from feeds.model import Kind
from importer.errors import ConfigError
from importer.state.journal import Journal, default_state_path
from importer.state.schema import APPLICATION_ID, SCHEMA_VERSION
from tests.helpers import md5
from tests.helpers import md5_items as items
from tests.helpers import md5_keys as keys

ROOT = Path(__file__).resolve().parents[2]
MD5 = Kind.MD5


def one_sentence(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message


def run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )


# -- location and schema ---------------------------------------------------------------------------


def test_default_state_path_follows_xdg(tmp_path: Path) -> None:
    assert default_state_path({"XDG_STATE_HOME": "/var/x"}) == Path("/var/x/ti-importer/state.sqlite")
    home = tmp_path / "home"
    expected = home / ".local/state/ti-importer/state.sqlite"
    assert default_state_path({}, home=home) == expected
    assert default_state_path({"XDG_STATE_HOME": "relative/dir"}, home=home) == expected  # spec: ignored


def test_open_creates_folders_and_schema(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="https://api tenant-1") as journal:
        assert journal.path == state
    conn = sqlite3.connect(state)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        assert {"tenants", "feeds", "scopes", "runs", "indicators", "log", "reconcile_stage"} <= tables
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    with Journal.open(state, target="ti", tenant="https://api tenant-1"):
        pass  # reopening an existing journal is fine


def test_definitions_persist_and_update(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.definition_id("feed-a") is None
        journal.set_definition_id("feed-a", "17")
        journal.set_definition_id("feed-a", "18")  # recreated in the portal: the new id wins
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.definition_id("feed-a") == "18"


def test_targets_and_tenants_are_isolated(state: Path) -> None:
    names = [("ti", "api-1 client-a"), ("ti", "api-1 client-b"), ("mde", "api-1 client-a")]
    for n, (target, tenant) in enumerate(names):
        with Journal.open(state, target=target, tenant=tenant) as journal:
            journal.set_definition_id("feed", f"def-{n}")
            run = journal.begin_run()
            journal.record_imported("D", items(n * 10, n * 10 + 10), run)
    for n, (target, tenant) in enumerate(names):
        with Journal.open(state, target=target, tenant=tenant) as journal:
            assert journal.definition_id("feed") == f"def-{n}"
            assert journal.count("D") == 10
            assert journal.present("D", keys(0, 30)) == set(keys(n * 10, n * 10 + 10))


def test_a_tenants_merge_leaves_another_tenants_log_rows_in_the_file(state: Path) -> None:
    # Alone in its file, a tenant empties the log whole (cheaper); with another tenant there, it
    # takes only its own rows: the other's, not merged yet, must reach that tenant's table.
    with (
        Journal.open(state, target="ti", tenant="t") as first,
        Journal.open(state, target="ti", tenant="u") as second,
    ):
        first.record_imported("D", items(0, 10), first.begin_run())
        second.record_imported("D", items(10, 20), second.begin_run())
        first.close()  # merges t's log
        assert second.count("D") == 10 and second.present("D", keys(0, 20)) == set(keys(10, 20))
    conn = sqlite3.connect(state)
    try:
        assert conn.execute("SELECT count(*) FROM log").fetchone()[0] == 0
    finally:
        conn.close()


# -- present, seen, stale, forget ------------------------------------------------------------------


@pytest.mark.parametrize("merge_every", [3, 100_000])  # folded often, and held in the log
def test_present_mark_seen_stale_forget(state: Path, merge_every: int) -> None:
    with Journal.open(state, target="ti", tenant="t", merge_every=merge_every) as journal:
        assert journal.present("D", keys(0, 5)) == set()  # unknown definition
        assert list(journal.stale("D", 1)) == []
        first = journal.begin_run()
        journal.record_imported("D", items(0, 10), first)
        journal.record_imported("E", items(0, 2), first)  # another definition, same values
        found = journal.present("D", [*keys(5, 15), (Kind.SHA1, md5(5))])
        assert found == set(keys(5, 10))
        assert all(type(kind) is Kind for kind, _ in found)
        assert list(journal.stale("D", first)) == []  # imported in this run: seen

        second = journal.begin_run()
        assert second > first
        journal.mark_seen("D", keys(0, 4), second)
        journal.mark_seen("D", keys(50, 60), second)  # unknown keys are ignored
        journal.record_imported("D", items(8, 9), second)  # re-sent: seen again, keeps one row
        stale = list(journal.stale("D", second))
        assert stale == [(MD5, md5(n), f"r{n}") for n in (4, 5, 6, 7, 9)]
        assert journal.count("D") == 10

        journal.forget("D", ["r4", "r5", "nope"])
        assert journal.count("D") == 8
        assert journal.present("D", keys(0, 10)) == set(keys(0, 10)) - set(keys(4, 6))
        assert journal.count("E") == 2


def test_stale_pages_while_forgetting(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        old = journal.begin_run()
        journal.record_imported("D", items(0, 2500), old)
        now = journal.begin_run()
        journal.mark_seen("D", keys(0, 100), now)
        seen: list[str] = []
        for _kind, _value, remote_id in journal.stale("D", now):
            seen.append(remote_id)
            journal.forget("D", [remote_id])  # deleting as we go must not skip or repeat rows
        assert sorted(seen) == sorted(f"r{n}" for n in range(100, 2500))
        assert journal.count("D") == 100


def test_remote_id_changes_on_reimport(state: Path) -> None:
    with Journal.open(state, target="mde", tenant="t") as journal:
        run = journal.begin_run()
        journal.record_imported("D", [(MD5, md5(1), "old")], run)
        journal.record_imported("D", [(MD5, md5(1), "new")], run)
        assert journal.count("D") == 1
        assert list(journal.stale("D", run + 1)) == [(MD5, md5(1), "new")]


# -- durability and ownership ----------------------------------------------------------------------

_KILLER = """
import os, signal, sys
from collections.abc import Sequence
from pathlib import Path
from feeds.model import Kind
from importer.state.journal import Journal

class DiesMidway(Sequence):
    # A batch whose iteration kills the process after half of it went into the transaction.
    def __init__(self, rows): self.rows = rows
    def __len__(self): return len(self.rows)
    def __getitem__(self, i): return self.rows[i]
    def __iter__(self):
        for n, row in enumerate(self.rows):
            if n == len(self.rows) // 2:
                os.kill(os.getpid(), signal.SIGKILL)
            yield row

journal = Journal.open(Path(sys.argv[1]), target="ti", tenant="t", merge_every=int(sys.argv[3]))
run = journal.begin_run()
batches = int(sys.argv[2])
for b in range(batches + 1):
    rows = [(Kind.MD5, f"{b * 100 + n:032x}", f"r{b * 100 + n}") for n in range(100)]
    journal.record_imported("D", rows if b < batches else DiesMidway(rows), run)
    print("committed", b, flush=True)
"""


@pytest.mark.parametrize("merge_every", [250, 100_000])  # killed with some rows merged, or none
def test_committed_batches_survive_kill_9(state: Path, merge_every: int) -> None:
    child = run_child(_KILLER, str(state), "7", str(merge_every))
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split("\n").count("committed 6") == 1
    with Journal.open(state, target="ti", tenant="t") as journal:  # the lock died with the child
        assert journal.count("D") == 700  # exactly the committed batches, none of the eighth
        assert journal.present("D", keys(0, 800)) == set(keys(0, 700))
        assert journal.unfinished_runs() == [1]  # the killed run: worth a --reconcile
        run = journal.begin_run()
        journal.finish_run(run)
        assert journal.unfinished_runs() == [1]


_HOLDER = """
import sys, time
from pathlib import Path
from importer.state.journal import Journal
journal = Journal.open(Path(sys.argv[1]), target="ti", tenant=sys.argv[2])
print("open", flush=True)
time.sleep(30)
"""


def test_second_process_on_the_same_tenant_fails_clearly(state: Path) -> None:
    with Journal.open(state, target="ti", tenant="t") as journal:
        run = journal.begin_run()
        journal.record_imported("D", items(0, 3), run)
        other = run_child(
            """
            import sys
            from pathlib import Path
            from importer.errors import ConfigError
            from importer.state.journal import Journal
            for tenant in ("t", "u"):
                try:
                    with Journal.open(Path(sys.argv[1]), target="ti", tenant=tenant) as j:
                        j.record_imported("D", [], j.begin_run())
                        print(tenant, "ok", j.count("D"))
                except ConfigError as exc:
                    print(tenant, "refused:", exc)
            """,
            str(state),
        )
        lines = other.stdout.splitlines()
        assert lines[0].startswith("t refused: the state journal") and "in use by another" in lines[0]
        assert f"pid {os.getpid()}" in lines[0]
        assert lines[1] == "u ok 0"  # another tenant in the same file works alongside


def test_lock_is_released_when_the_holder_is_killed(state: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(state), "t"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(ConfigError, match="in use by another ti-import run"):
            Journal.open(state, target="ti", tenant="t")
    finally:
        holder.kill()
        holder.wait()
    with Journal.open(state, target="ti", tenant="t") as journal:
        assert journal.count("D") == 0


# -- unusable files ------------------------------------------------------------------------------


def test_not_a_database_is_one_sentence(state: Path) -> None:
    state.parent.mkdir(parents=True)
    state.write_bytes(b"this is a spreadsheet, honest\n" * 200)
    with pytest.raises(ConfigError) as caught:
        Journal.open(state, target="ti", tenant="t")
    one_sentence(str(caught.value))
    assert "not a usable SQLite database" in str(caught.value) and str(state) in str(caught.value)


def test_someone_elses_database_is_refused(state: Path) -> None:
    state.parent.mkdir(parents=True)
    conn = sqlite3.connect(state)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="not a ti-import journal") as caught:
        Journal.open(state, target="ti", tenant="t")
    one_sentence(str(caught.value))


def test_newer_schema_is_refused(state: Path) -> None:
    Journal.open(state, target="ti", tenant="t").close()
    conn = sqlite3.connect(state)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer ti-import"):
        Journal.open(state, target="ti", tenant="t")


def test_unusable_locations_are_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for path in (tmp_path, tmp_path / "a-file" / "state.sqlite"):
        with pytest.raises(ConfigError) as caught:
            Journal.open(path, target="ti", tenant="t")
        one_sentence(str(caught.value))
    with pytest.raises(ConfigError, match="target and a tenant"):
        Journal.open(tmp_path / "s.sqlite", target="ti", tenant="")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_journal_is_one_sentence(state: Path) -> None:
    Journal.open(state, target="ti", tenant="t").close()
    state.chmod(0o444)
    try:
        with pytest.raises(ConfigError) as caught:
            Journal.open(state, target="ti", tenant="other")
        one_sentence(str(caught.value))
    finally:
        state.chmod(0o644)
