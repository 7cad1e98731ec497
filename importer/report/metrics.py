"""The run as Prometheus metrics: a text file for node_exporter's textfile collector (``--metrics-file``).

Written at the end of every run, a failed one too, replacing the file atomically (``report.outputs``)
so the collector never reads half of it. Every number is the same as in the JSON report: the
run's start, end, duration and exit code; per destination and feed, each bucket's count and
mirror mode's; per destination, its exit code and what crossed the wire (requests, retries, 429s,
token refreshes). The ``destination`` label is the destination's name: its ``[[destination]]``
table's, or the target's for a config without them.
They are gauges of the last run, not counters: the file is rewritten every run.

``ti_import_last_success_timestamp_seconds`` is the one value that outlives a run: a failed run
carries it over from the file it replaces, so "no successful run for 26 h" is one alert rule::

    time() - ti_import_last_success_timestamp_seconds > 26 * 3600
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from importer.report.counts import BUCKETS, EXIT_OK, RunReport
from importer.report.outputs import open_output

__all__ = ["LAST_SUCCESS", "render", "write_metrics"]

PREFIX = "ti_import"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
_WIRE = {  # TransportStats field -> (metric suffix, help)
    "requests": ("requests", "HTTP requests sent to the target API in the last run (not token calls)"),
    "retries": ("retries", "Attempts beyond the first in the last run"),
    "throttled": ("throttled_responses", "429 answers received in the last run"),
    "server_errors": ("server_error_responses", "5xx answers received in the last run"),
    "connection_errors": ("connection_errors", "Resets, timeouts and refused connections in the last run"),
    "token_refreshes": ("token_refreshes", "Tokens fetched from the token endpoint in the last run"),
}
_MIRROR = ("stale", "deleted", "kept_shared", "delete_failed")


class _RunCollector(Collector):
    """Yields the metric families of one finished run (a registry wants a collector, not values)."""

    def __init__(self, report: RunReport, last_success: float | None) -> None:
        self._report = report
        self._last_success = last_success

    def collect(self) -> Iterator[Metric]:
        report = self._report
        run = {
            "run_started_timestamp_seconds": ("When the last run started (Unix time)", report.started_at),
            "run_finished_timestamp_seconds": ("When the last run ended (Unix time)", report.finished_at),
            "run_duration_seconds": ("How long the last run's import took", report.duration),
            "run_exit_code": ("The last run's exit code (0 ok, 1 some failed, 2 config, 3 auth, 130 stopped)",
                              float(report.exit_code())),
        }  # fmt: skip
        for suffix, (text, value) in run.items():
            if value is not None:
                yield GaugeMetricFamily(f"{PREFIX}_{suffix}", text, value=value)
        if self._last_success is not None:
            yield GaugeMetricFamily(
                LAST_SUCCESS, "When a run last ended with exit code 0 (Unix time)", value=self._last_success
            )
        yield from self._feeds()
        code = GaugeMetricFamily(f"{PREFIX}_destination_exit_code", "Each destination's exit code in the "
                                 "last run (the run's is the worst)", labels=["destination"])  # fmt: skip
        for part in report.parts():
            code.add_metric([part.name], float(part.exit_code()))
        yield code
        for name, (suffix, text) in _WIRE.items():
            family = GaugeMetricFamily(f"{PREFIX}_{suffix}", text, labels=["destination"])
            for part in report.parts():
                family.add_metric([part.name], getattr(part.transport, name))
            yield family

    def _feeds(self) -> Iterator[Metric]:
        records = GaugeMetricFamily(
            f"{PREFIX}_records_read",
            "Records read from each feed in the last run",
            labels=["destination", "feed"],
        )
        buckets = GaugeMetricFamily(
            f"{PREFIX}_indicators",
            "Records of each feed per outcome (bucket) in the last run; the buckets add up to records_read",
            labels=["destination", "feed", "bucket"],
        )
        mirror = GaugeMetricFamily(
            f"{PREFIX}_mirror_indicators",
            "Mirror mode: indicators no longer in a feed, per outcome, in the last run",
            labels=["destination", "feed", "outcome"],
        )
        for part in self._report.parts():
            destination = part.name
            for feed in part.feeds:
                records.add_metric([destination, feed.name], feed.records_read)
                for bucket in BUCKETS:
                    buckets.add_metric([destination, feed.name, bucket], getattr(feed, bucket))
                if feed.mirror:
                    for outcome in _MIRROR:
                        mirror.add_metric([destination, feed.name, outcome], getattr(feed, outcome))
        yield from (records, buckets)
        if mirror.samples:
            yield mirror


def render(report: RunReport, *, last_success: float | None) -> str:
    """The Prometheus text exposition of ``report`` (and of ``last_success``, when known)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(report, last_success))
    return generate_latest(registry).decode("utf-8")


def previous_success(path: Path) -> float | None:
    """``LAST_SUCCESS`` from the file a run is about to replace; None if absent or unreadable
    (a first run, or a file someone else wrote: then a failed run simply has no last success)."""
    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and math.isfinite(sample.value):
                    return sample.value
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def write_metrics(report: RunReport, path: Path) -> None:
    """Replace ``path`` with ``report``'s metrics; a ConfigError says why it cannot be written."""
    succeeded = report.exit_code() == EXIT_OK and report.finished_at is not None
    last_success = report.finished_at if succeeded else previous_success(path)
    out = open_output(path, "the metrics file")
    try:
        out.write(render(report, last_success=last_success))
        out.commit()
    finally:
        out.discard()
