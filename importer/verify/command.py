"""``verify_import(settings)``: what landed, per feed, under the run's lock; and ``--repair``.

It takes the same settings as ``run_import`` and the same host lock of the target and tenant (a
run importing meanwhile would make the comparison a race), opens the journal read-mostly (a
journal file that does not exist is not created: nothing was sent), opens the target, and verifies
each feed in turn (``verify.feed``). With ``repair`` the journal is corrected feed by feed, the
locks are released, and ``run_import`` imports the feeds that drifted — the normal pipeline, which
sends what is absent or missing and updates what is stale. The JSON report is written however the
command ends, as for a run. It prints nothing; the command line renders the report.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from importer.errors import AuthError, ConfigError
from importer.fields import FORMAT, TAXII
from importer.pipeline.job import FeedJob
from importer.report.outputs import check_outputs
from importer.run import failure, run_import, run_inputs
from importer.settings import FeedSettings, OutputOptions, RunSettings, StateOptions
from importer.sources.feed import job_for
from importer.sources.misp_feed import is_misp_feed, misp_feed_pull
from importer.sources.taxii import taxii_pull
from importer.state.host_lock import default_lock_dir, hold_tenant
from importer.state.journal import Journal
from importer.state.store import tenant_key
from importer.targets.registry import open_target, package
from importer.transport.connection import NetworkSettings
from importer.transport.stats import TransportStats
from importer.verify.feed import verify_feed
from importer.verify.report import FeedVerdict, VerifyReport, write_json

__all__ = ["verify_import"]

_log = logging.getLogger(__name__)
# Targets that read their definitions back only when told where (else their listing is empty,
# which verify would take for "everything absent"): the target options that must be set.
_READ_BACK: dict[str, tuple[str, ...]] = {"sentinel": ("subscription_id", "resource_group", "workspace_name")}


async def verify_import(
    settings: RunSettings,
    output: OutputOptions | None = None,
    *,
    state: StateOptions | None = None,
    repair: bool = False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    signals: bool = False,
) -> VerifyReport:
    """Verify every feed of ``settings``; with ``repair``, correct the journal and import the drifted
    feeds (``signals``: SIGINT/SIGTERM stop that import gracefully, as for a run)."""
    output = output or OutputOptions()
    state = state or StateOptions()
    tenant = tenant_key(settings.connection.tenant_url, settings.connection.client_id)
    report = VerifyReport(settings.target, tenant=tenant, started_at=wall())
    check_outputs({"the report": output.report}, run_inputs(settings, state))
    try:
        if repair and settings.dry_run:
            raise ConfigError("--repair writes to the target and the journal: drop --dry-run")
        _check_read_back(settings)
        await _verify_locked(settings, state, report, repair=repair, sleep=sleep, clock=clock)
        drifted = {f.name for f in report.drifted()}
        if repair and drifted and report.auth_error is None:
            feeds = tuple(f for f in settings.feeds if f.definition.name in drifted)
            report.repair = await run_import(
                replace(settings, feeds=feeds, retry_from=None), replace(output, report=None),
                state=state, sleep=sleep, clock=clock, wall=wall, signals=signals,
            )  # fmt: skip
    except BaseException as exc:
        report.error_exit, report.error = failure(exc)
        report.finished_at = wall()
        if output.report is not None:
            try:
                write_json(report, output.report)
            except ConfigError as error:  # the command's own error is the one raised
                _log.error("%s", error)
        raise
    report.finished_at = wall()
    if output.report is not None:
        write_json(report, output.report)
    return report


async def _verify_locked(
    settings: RunSettings,
    state: StateOptions,
    report: VerifyReport,
    *,
    repair: bool,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
) -> None:
    """Each feed's verdict into ``report``, under this host's lock of the target and tenant."""
    with hold_tenant(state.lock_dir or default_lock_dir(), settings.target, report.tenant):
        journal = None
        if state.path is not None and state.path.exists():
            journal = Journal.open(
                state.path,
                target=settings.target,
                tenant=report.tenant,
                unique_values=package(settings.target).unique_values,
            )
        try:
            async with open_target(
                settings.target, settings.connection, TransportStats(),
                in_flight=settings.tuning.in_flight, bulk=settings.tuning.mode == "bulk",
                sleep=sleep, clock=clock,
            ) as target:  # fmt: skip
                network = settings.connection.network
                for feed in settings.feeds:
                    try:
                        job = _job(feed, network, sleep)
                    except ConfigError as exc:
                        failed = FeedVerdict(feed.definition.name, error=str(exc), config_error=True)
                        report.feeds.append(failed)
                        continue
                    report.feeds.append(await verify_feed(target, journal, job, repair=repair))
        except AuthError as exc:
            report.auth_error = str(exc)
        finally:
            if journal is not None:
                journal.close()


def _job(feed: FeedSettings, network: NetworkSettings, sleep: Callable[[float], Awaitable[None]]) -> FeedJob:
    """The feed's job as ``run`` builds it, except that a TAXII collection or a MISP feed is read
    whole: today's feed is all of it, not what was added since the run's cursor."""
    if feed[FORMAT] == TAXII:
        return taxii_pull(feed.source, feed.definition, feed.options, network, sleep=sleep).job
    if is_misp_feed(feed.source, feed[FORMAT]):
        return misp_feed_pull(feed.source, feed.definition, feed.options, network).job
    return job_for(feed.source, feed.definition, feed.options, network)


def _check_read_back(settings: RunSettings) -> None:
    needed = _READ_BACK.get(settings.target, ())
    if any(settings.connection.option(key) is None for key in needed):
        raise ConfigError(
            f"verify reads the {settings.target} target back, which needs {', '.join(needed)} in [target]"
        )
