"""The import pipeline end to end against the emulator on loopback: buckets, reruns, faults, back-pressure."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from feeds.model import Indicator
from importer.emulator import Emulator, EmulatorConfig, Faults, running_emulator
from importer.fields import FORMAT
from importer.model import (
    BatchResult,
    DefinitionSpec,
    InFlight,
    Options,
    RemoteIndicator,
    ResolvedDefinition,
    Stamp,
)
from importer.pipeline.engine import PipelineOptions, run_pipeline
from importer.pipeline.progress import NoProgress
from importer.report.counts import BUCKETS, RunReport
from importer.run import run_import
from importer.settings import FeedSettings, OutputOptions, RunSettings, Tuning
from importer.sources.feed import job_for
from tests.helpers import FakeTime, connection_settings, feed_spec, write_list


def write_csv(path: Path, rows: int) -> Path:
    # Public addresses: private ones (10/8...) are filtered by default (importer.policy).
    lines = ["type,value"] + [f"ip,11.1.{i // 250}.{i % 250}" for i in range(rows)]
    lines += ["ip,11.1.0.0", "ip,999.1.1.1", "domain,csv-only.example.com"]  # a duplicate, a bad one
    path.write_text("\n".join(lines) + "\n")
    return path


def write_stix(path: Path, count: int) -> Path:
    def obj(kind: str, i: int, pattern: str, **extra: Any) -> dict[str, Any]:
        stamp = "2024-01-01T00:00:00Z"
        return {
            "type": kind,
            "spec_version": "2.1",
            "id": f"{kind}--{uuid.UUID(int=i)}",
            "created": stamp,
            "modified": stamp,
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": stamp,
            **extra,
        }

    objects = [obj("indicator", i, f"[domain-name:value = 'bad{i}.example.net']") for i in range(count)]
    objects.append(
        obj("indicator", 10_000, "[ipv4-addr:value = '1.2.3.4']", valid_until="2021-01-01T00:00:00Z")
    )
    objects.append(
        {
            "type": "malware",
            "spec_version": "2.1",
            "id": f"malware--{uuid.UUID(int=1)}",
            "created": "2024-01-01T00:00:00Z",
            "modified": "2024-01-01T00:00:00Z",
            "name": "x",
            "is_family": False,
        }
    )
    path.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.UUID(int=2)}", "objects": objects}))
    return path


def settings_for(emu: Emulator, feeds: Sequence[FeedSettings], **conn: Any) -> RunSettings:
    tuning = Tuning(
        mode=conn.pop("mode", "bulk"), batch_size=conn.pop("batch_size", 200), workers=conn.pop("workers", 8)
    )
    dry_run = conn.pop("dry_run", False)
    return RunSettings(
        target="ti",
        connection=connection_settings(emu, **conn),
        feeds=tuple(feeds),
        tuning=tuning,
        dry_run=dry_run,
    )


def assert_adds_up(report: RunReport) -> None:
    for feed in report.feeds:
        assert sum(feed.buckets().values()) == feed.records_read, feed.as_dict()
    totals = report.totals()
    assert sum(totals[b] for b in BUCKETS) == totals["records_read"]


async def test_three_formats_concurrently_under_three_definitions_then_rerun(
    emulator: Emulator, tmp_path: Path
) -> None:
    feeds = [
        FeedSettings(str(write_csv(tmp_path / "ips.csv", 300)), feed_spec("csv feed")),
        FeedSettings(str(write_stix(tmp_path / "bundle.json", 40)), feed_spec("stix feed")),
        FeedSettings(str(write_list(tmp_path / "hashes.txt", 700, bad_every=100)), feed_spec("list feed")),
    ]
    settings = settings_for(emulator, feeds)
    first = await run_import(settings, OutputOptions(progress=False))
    assert_adds_up(first)
    by_name = {f.name: f for f in first.feeds}
    assert by_name["csv feed"].imported == 301  # 300 IPs + one domain
    assert by_name["csv feed"].duplicate_in_feed == 1 and by_name["csv feed"].rejected == 1
    assert by_name["stix feed"].imported == 40
    assert by_name["stix feed"].expired == 1 and by_name["stix feed"].skipped == 1
    assert by_name["list feed"].imported == 700 and by_name["list feed"].rejected == 14  # 7 bad + 7 URLs
    assert first.exit_code() == 0

    state = emulator.state()
    definitions = {d["name"]: d for d in state["tenants"]["contoso-demo"]["alert_definitions"]}
    assert {n: d["ioc_count"] for n, d in definitions.items()} == {
        "csv feed": 301,
        "stix feed": 40,
        "list feed": 700,
    }
    assert state["totals"]["duplicate_iocs"] == 0

    second = await run_import(settings, OutputOptions(progress=False))
    assert_adds_up(second)
    assert second.totals()["imported"] == 0
    assert second.totals()["already_present"] == 1041
    assert {f.definition_outcome for f in second.feeds} == {"found"}
    assert second.exit_code() == 0
    assert emulator.state()["totals"]["iocs"] == 1041
    assert emulator.state()["totals"]["alert_definitions"] == 3


# Eight workers with 2 s tokens on the fake clock, whose jumps (a Retry-After of a minute passes in
# one step) expire tokens while their requests are in flight - even during the re-send after a 401:
# the client must tell such expiries from a refused token and never stop the run for them.
async def test_under_combined_faults_every_indicator_is_stored_exactly_once(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    config = EmulatorConfig(
        clock=fake_time.wall,
        api_faults=Faults(
            error_rate=0.05, throttle_per_minute=120, lost_after_write_rate=0.02, reset_rate=0.01, seed=11
        ),
        token_faults=Faults(token_lifetime=2),
    )
    source = write_list(tmp_path / "big.txt", 20_000, seed=5)
    async with running_emulator(config) as emu:
        settings = settings_for(
            emu,
            [FeedSettings(str(source), feed_spec("big"))],
            batch_size=100,
            workers=8,
            max_attempts=12,
            max_retry_seconds=3600.0,
            auth_url=emu.auth_url(2),
        )
        report = await run_import(
            settings, OutputOptions(progress=False), sleep=fake_time.sleep, clock=fake_time.clock
        )
        state = emu.state()
    assert_adds_up(report)
    assert report.totals()["imported"] == 20_000, report.as_dict()
    assert report.exit_code() == 0
    assert state["totals"]["iocs"] == 20_000
    assert state["totals"]["duplicate_iocs"] == 0
    injected = state["faults_injected"]
    assert injected["error"] and injected["throttle"] and injected["lost_after_write"] and injected["reset"]
    assert report.transport.retries > 0 and report.transport.lost_writes_recovered > 0
    assert report.transport.token_refreshes > 1
    # Each 401 (a token that expired in flight) was sent again. Whether one happens at all depends on
    # how the workers' requests fall around the refreshes (1 run in ~40 had none); test_auth.py
    # forces them.
    assert report.transport.auth_retries == state["requests_by_status"].get("401", 0)


async def test_bad_and_unreadable_feeds_never_stop_the_others(emulator: Emulator, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 40)
    feeds = [
        FeedSettings(str(write_list(tmp_path / "mixed.txt", 300, bad_every=3)), feed_spec("mixed")),
        FeedSettings(str(tmp_path / "missing.txt"), feed_spec("missing")),
        FeedSettings(str(garbage), feed_spec("garbage"), Options({FORMAT.key: "list"})),
    ]
    report = await run_import(settings_for(emulator, feeds), OutputOptions(progress=False))
    assert_adds_up(report)
    mixed, missing, _ = report.feeds
    assert mixed.imported == 300 and mixed.rejected == 200
    assert missing.error and missing.config_error and missing.records_read == 0
    assert report.exit_code() == 2
    # An unreadable feed creates no alert definition.
    names = [d["name"] for d in emulator.state()["tenants"]["contoso-demo"]["alert_definitions"]]
    assert "missing" not in names


async def test_dry_run_plans_and_writes_nothing(emulator: Emulator, tmp_path: Path) -> None:
    feeds = [FeedSettings(str(write_list(tmp_path / "h.txt", 50)), feed_spec("dry"))]
    report = await run_import(settings_for(emulator, feeds, dry_run=True), OutputOptions(progress=False))
    assert_adds_up(report)
    assert report.feeds[0].would_import == 50 and report.feeds[0].imported == 0
    assert report.feeds[0].definition_outcome == "planned"
    assert emulator.state()["totals"] == {
        "alert_definitions": 0,
        "iocs": 0,
        "duplicate_iocs": 0,
        "mde_indicators": 0,
        "sentinel_objects": 0,
        "sentinel_indicators": 0,
        "sentinel_revoked": 0,
        "sentinel_duplicate_patterns": 0,
    }


async def test_single_mode_posts_one_indicator_per_request(emulator: Emulator, tmp_path: Path) -> None:
    feeds = [FeedSettings(str(write_list(tmp_path / "h.txt", 60)), feed_spec("single"))]
    report = await run_import(settings_for(emulator, feeds, mode="single"), OutputOptions(progress=False))
    assert report.feeds[0].imported == 60
    assert report.transport.requests >= 60
    assert emulator.state()["totals"]["iocs"] == 60


class _SlowTarget:
    """A target that records how many indicators were read but not yet answered."""

    name = "fake"
    max_batch = 5000
    max_update_batch = 5000

    def __init__(self) -> None:
        self.sent = 0

    def stamp(self, definition: ResolvedDefinition, indicator: Indicator) -> Stamp:
        return Stamp(0, None)

    async def update(
        self,
        definition: ResolvedDefinition,
        items: Sequence[tuple[Indicator, str]],
        *,
        stopping: object = None,
    ) -> BatchResult:
        return await self.send(definition, [indicator for indicator, _ in items])

    def unsupported(self, indicator: Indicator) -> str | None:
        return None

    async def resolve_definition(self, spec: DefinitionSpec, *, dry_run: bool) -> ResolvedDefinition:
        return ResolvedDefinition("1", spec, "created")

    async def existing(self, definition: ResolvedDefinition) -> AsyncIterator[RemoteIndicator]:
        return
        yield  # pragma: no cover

    async def send(
        self, definition: ResolvedDefinition, batch: Sequence[Indicator], *, stopping: object = None
    ) -> BatchResult:
        # A slow target on purpose (the behaviour under test: reading must wait for sending, not
        # run ahead of it); more latency only makes the bound harder to keep.
        await asyncio.sleep(0.001)
        self.sent += len(batch)
        return BatchResult(imported=[(i, str(n)) for n, i in enumerate(batch)])

    async def delete(self, definition: ResolvedDefinition, remote_ids: Sequence[str]) -> list[str]:
        return []


async def test_memory_is_bounded_by_the_queue_not_the_feed(tmp_path: Path) -> None:
    """Read-but-unsent indicators never exceed (workers + queue + 1) batches plus one read chunk."""
    source = write_list(tmp_path / "h.txt", 30_000)
    target = _SlowTarget()
    options = PipelineOptions(batch_size=100, in_flight=InFlight(4), chunk=1000)
    peak = 0
    job = job_for(str(source), feed_spec("bounded"))

    class Spy(NoProgress):
        reads = 0

        def read(self, feed: str, records: int) -> None:
            Spy.reads += records

    async def watch_reads() -> None:
        nonlocal peak
        while True:
            peak = max(peak, Spy.reads - target.sent)
            await asyncio.sleep(0)  # not a wait: yield, to sample again after every step of the run

    watcher = asyncio.create_task(watch_reads())
    report = await run_pipeline(target, [job], options=options, progress=Spy())  # type: ignore[arg-type]
    watcher.cancel()
    assert report.feeds[0].imported == 30_000
    assert peak <= (4 + 4 + 1) * 100 + 1000, peak


async def test_an_http_source_is_downloaded_by_streaming(emulator: Emulator, tmp_path: Path) -> None:
    from aiohttp import web  # noqa: PLC0415

    source = write_list(tmp_path / "served.txt", 150)

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(source) if request.path == "/feed.txt" else web.Response(status=404)

    runner = web.AppRunner(web.Application())
    runner.app.router.add_get("/{name}", serve)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        feeds = [
            FeedSettings(f"http://127.0.0.1:{port}/feed.txt", feed_spec("served")),
            FeedSettings(f"http://127.0.0.1:{port}/gone.txt", feed_spec("gone")),
        ]
        report = await run_import(settings_for(emulator, feeds), OutputOptions(progress=False))
    finally:
        await runner.cleanup()
    served, gone = report.feeds
    assert served.imported == 150
    assert gone.config_error and "HTTP 404" in (gone.error or "")
    assert report.exit_code() == 2
