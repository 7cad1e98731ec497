"""A full disk, a read-only file system or the file-size limit ends a run cleanly: one sentence,
exit 2, within a bounded time, the journal consistent and the report written if its disk allows.

A worker's failure of any kind stops the run: before, a journal commit failing in the workers
killed every worker task and the producers waited for ever on a queue nobody emptied. The
journal's failure is injected here through a ``PresentStore`` wrapper (a commit raising the
``ConfigError`` a full SQLite disk gives); the CLI cases run the real command in a process whose
file-size limit (``RLIMIT_FSIZE``) makes its writes fail with EFBIG, as a full disk would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from feeds.model import Indicator
from importer.emulator import DEMO_CLIENT, Emulator
from importer.errors import ConfigError
from importer.model import BatchResult, Held, InFlight, ResolvedDefinition
from importer.pipeline.engine import PipelineOptions, run_pipeline
from importer.pipeline.present import Acked, Key
from importer.pipeline.progress import NoProgress
from importer.report.counts import RunReport
from importer.sources.feed import job_for
from importer.state.journal import Journal
from importer.state.store import JournalPresent, tenant_key
from importer.targets.base import Target
from importer.transport.stats import TransportStats
from tests.helpers import ROOT, FakeTime, feed_spec, ti_target, write_list

DEADLINE = 30.0  # seconds: a run that hangs fails the test instead of the suite


class CommitsFailAfter:
    """The journal's ``PresentStore``, whose commits fail after ``good`` of them, as SQLite's do
    once the disk is full."""

    def __init__(self, inner: JournalPresent, good: int) -> None:
        self.inner = inner
        self.good = good
        self.failed = 0

    async def load(self, target: Target, definition: ResolvedDefinition) -> int:
        return await self.inner.load(target, definition)

    async def present(self, definition: ResolvedDefinition, keys: Sequence[Key]) -> dict[Key, Held]:
        return await self.inner.present(definition, keys)

    async def record(self, definition: ResolvedDefinition, acked: Sequence[Acked]) -> None:
        if self.good <= 0:
            self.failed += 1
            raise ConfigError(
                f"cannot write the state journal {self.inner.journal.path}: database or disk is full"
            )
        self.good -= 1
        await self.inner.record(definition, acked)

    async def shared(self, definition: ResolvedDefinition, items: Sequence[tuple[Indicator, Held]]) -> None:
        await self.inner.shared(definition, items)

    async def flush(self) -> None:
        await self.inner.flush()


class SentFailsAfter(NoProgress):
    """Progress whose ``sent`` raises after ``good`` calls: a bug in a worker, after its request."""

    def __init__(self, good: int) -> None:
        self.good = good

    def sent(self, feed: str, indicators: int) -> None:
        self.good -= 1
        if self.good < 0:
            raise RuntimeError("a bug")


async def test_a_journal_that_cannot_commit_stops_the_run(
    emulator: Emulator, fake_time: FakeTime, tmp_path: Path
) -> None:
    feed = write_list(tmp_path / "feed.txt", 2000)
    journal = Journal.open(tmp_path / "state.sqlite", target="ti", tenant=tenant_key(emulator.ti_url, "c"))
    store = CommitsFailAfter(JournalPresent(journal, journal.begin_run()), good=3)
    options = PipelineOptions(batch_size=20, in_flight=InFlight(2))
    try:
        async with ti_target(emulator, fake_time, TransportStats(), workers=2) as target:
            job = job_for(str(feed), feed_spec("Full"))
            # Before: never returned (every worker dead, the reader blocked on a full queue).
            report: RunReport = await asyncio.wait_for(
                run_pipeline(target, [job], options=options, present=store), DEADLINE
            )
        await store.inner.drain()
        assert report.exit_code() == 2 and report.stopped
        assert report.error is not None and "database or disk is full" in report.error
        (feed_report,) = report.feeds
        feed_report.check()  # every record read is in one bucket, the batch that failed to commit too
        assert feed_report.not_attempted > 0 and feed_report.failed == 0
        # What the journal claims was committed: the three good batches, nothing else.
        definition = store.inner.definitions["Full"]
        assert journal.count(definition.id) == 3 * 20
        # The target holds those and the batches whose commit failed, no more.
        assert feed_report.imported == 20 * (3 + store.failed)
    finally:
        journal.close()


async def test_a_worker_failing_for_any_reason_stops_the_run(
    emulator: Emulator, fake_time: FakeTime, tmp_path: Path
) -> None:
    feed = write_list(tmp_path / "feed.txt", 2000)
    options = PipelineOptions(batch_size=20, in_flight=InFlight(2))
    async with ti_target(emulator, fake_time, TransportStats(), workers=2) as target:
        job = job_for(str(feed), feed_spec("Buggy"))
        report = await asyncio.wait_for(
            run_pipeline(target, [job], options=options, progress=SentFailsAfter(2)), DEADLINE
        )
    assert report.exit_code() == 1 and report.stopped
    assert report.error == "stopped by an internal error (RuntimeError); see the log"
    report.feeds[0].check()


# --- the real command, its writes limited in size -------------------------------------------------
_LIMITED = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail with EFBIG
from importer.cli import main
sys.exit(main(sys.argv[2:]))
"""


async def _run_limited(emu: Emulator, tmp: Path, limit: int | None, *argv: str) -> tuple[int, str]:
    """``ti-import run --no-progress -q ARGV`` in a process whose files may not grow past
    ``limit`` bytes (None: no limit); its exit code and stderr, within the deadline. Its run
    locks go under ``tmp / "home"``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TI_")}
    env.update(
        TI_CLIENT_ID=DEMO_CLIENT.client_id, TI_CLIENT_SECRET=DEMO_CLIENT.client_secret,
        TI_AUTH_URL=emu.auth_url(1), TI_API_URL=emu.ti_url, XDG_STATE_HOME=str(tmp / "home"),
    )  # fmt: skip
    size = str(limit if limit is not None else -1)  # RLIM_INFINITY
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LIMITED, size, "run", "--no-progress", "-q", *argv,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"ti-import run {' '.join(argv)} still running after {DEADLINE} s") from None
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _one_sentence(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


async def test_a_journal_past_the_file_size_limit_ends_the_run_and_a_rerun_completes_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    feed = write_list(tmp_path / "feed.txt", 3000, seed=5)
    state, report = tmp_path / "state.sqlite", tmp_path / "report.json"
    args = (str(feed), "--name", "Big", "--batch-size", "50", "--workers", "2", "--state", str(state))
    # Room for the schema (8 KiB pages) and a few batches (SQLite says "disk I/O error" for EFBIG).
    code, err = await _run_limited(emulator, tmp_path, 256 * 1024, *args, "--report", str(report))
    assert code == 2
    assert _one_sentence(err).startswith(f"ti-import: cannot write the state journal {state}")
    written = json.loads(report.read_text())  # the report's small file still fits
    assert written["exit_code"] == 2 and "state journal" in written["error"], written
    held = emulator.state()["totals"]["iocs"]
    assert 0 < held < 3000
    assert written["totals"]["imported"] == held  # the counts of the run, not an empty report

    # With room again, the rerun lists the definition (the run was left unfinished) and completes it.
    code, err = await _run_limited(emulator, tmp_path, None, *args, "--report", str(report))
    assert code == 0, err
    totals = emulator.state()["totals"]
    assert totals["iocs"] == 3000 and totals["duplicate_iocs"] == 0
    assert json.loads(report.read_text())["journal"]["resumed_after_interrupted_run"] is True


async def test_a_rejects_file_past_the_limit_ends_the_run_and_leaves_no_temporary_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    feed = write_list(out / "feed.txt", 600, bad_every=1)  # 1,200 rejects, ~150 KB of lines
    rejects, report = out / "rejects.jsonl", out / "report.json"
    rejects.write_text("last night's\n")
    code, err = await _run_limited(
        emulator,
        tmp_path,
        32 * 1024,
        str(feed),
        "--no-state",
        "--rejects",
        str(rejects),
        "--report",
        str(report),
    )
    assert code == 2
    assert _one_sentence(err) == f"ti-import: the rejects file {rejects} cannot be written: file too large"
    assert sorted(p.name for p in out.iterdir()) == ["feed.txt", "rejects.jsonl", "report.json"]
    assert rejects.read_text() == "last night's\n"  # the old file stays whole
    written = json.loads(report.read_text())
    assert written["exit_code"] == 2 and "rejects file" in written["error"]


async def test_a_report_past_the_limit_says_so_and_leaves_no_temporary_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    feed = write_list(out / "feed.txt", 10)
    report = out / "report.json"
    code, err = await _run_limited(emulator, tmp_path, 1024, str(feed), "--no-state", "--report", str(report))
    assert code == 2
    assert _one_sentence(err) == f"ti-import: the report {report} cannot be written: file too large"
    assert sorted(p.name for p in out.iterdir()) == ["feed.txt"]


class RefusedAfter:
    """The ti target, whose ``send`` meets a configuration error after ``good`` batches — as when
    the API starts redirecting, or its certificate changes to one not trusted, mid-run."""

    def __init__(self, inner: Target, good: int) -> None:
        self.inner = inner
        self.good = good

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def send(
        self, definition: ResolvedDefinition, batch: Sequence[Indicator], **kw: Any
    ) -> BatchResult:
        self.good -= 1
        if self.good < 0:
            raise ConfigError("the API at https://api.example/ redirected to https://elsewhere.example/")
        return await self.inner.send(definition, batch, **kw)


async def test_a_configuration_error_met_while_sending_stops_the_run_with_exit_2(
    emulator: Emulator, fake_time: FakeTime, tmp_path: Path
) -> None:
    feed = write_list(tmp_path / "feed.txt", 2000)
    options = PipelineOptions(batch_size=20, in_flight=InFlight(2))
    async with ti_target(emulator, fake_time, TransportStats(), workers=2) as target:
        job = job_for(str(feed), feed_spec("Redirected"))
        report = await asyncio.wait_for(
            run_pipeline(RefusedAfter(target, 3), [job], options=options),
            DEADLINE,  # type: ignore[arg-type]
        )
    assert report.exit_code() == 2 and report.stopped
    assert report.error is not None and "redirected" in report.error
    (feed_report,) = report.feeds
    feed_report.check()
    assert feed_report.imported == 60 and "internal error" not in str(feed_report.reject_reasons)
