"""The files a run leaves however it ends: the JSON report (``--report``) and the metrics file."""

from __future__ import annotations

import logging
from pathlib import Path

from importer.errors import ConfigError
from importer.report.counts import RunReport
from importer.report.metrics import write_metrics

__all__ = ["write_failure_report", "write_outputs"]

_log = logging.getLogger(__name__)


def write_outputs(report: RunReport, path: Path | None, metrics: Path | None) -> None:
    """Write the JSON report and the metrics file, those asked for; the metrics also when the
    report cannot be written (then its ConfigError goes on: exit 2)."""
    try:
        if path is not None:
            report.write_json(path)
    finally:
        if metrics is not None:
            write_metrics(report, metrics)


def write_failure_report(report: RunReport, path: Path | None, metrics: Path | None = None) -> None:
    """Write the report (and the metrics) of a failed run over the last one, if asked; a failure
    to is logged, so the error that ended the run stays the one raised."""
    for where, write in ((path, report.write_json), (metrics, lambda to: write_metrics(report, to))):
        if where is None:
            continue
        try:
            write(where)
        except ConfigError as exc:
            _log.error("%s", exc)
