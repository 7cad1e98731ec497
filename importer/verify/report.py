"""What ``ti-import verify`` found: per feed the count of each class, the exit code, and the JSON report.

Exit codes are the run's (``report.counts``): 0 every key landed; 1 drift (absent, stale, foreign
or missing), or a feed whose listing failed; 2 configuration (a feed that cannot be read, a
definition the target refuses); 3 authentication. With ``--repair`` the repair run's exit code
stands for the drift it was asked to correct.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from importer import __version__
from importer.report.counts import EXIT_AUTH, EXIT_CONFIG, EXIT_FAILED, EXIT_OK, RunReport
from importer.report.outputs import open_output
from importer.verify.compare import CLASSES

__all__ = ["FeedVerdict", "VerifyReport", "write_json"]


@dataclass(slots=True)
class FeedVerdict:
    """One feed's comparison: how many keys fell in each class, and what was compared."""

    name: str
    definition_id: str = ""
    definition_outcome: str = ""  # "found", "planned" (the target holds no such definition)...
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    journal: int = 0  # rows the journal holds as sent under the definition
    listed: int = 0  # indicators the target listed under it
    feed: int = 0  # distinct indicators today's feed would send
    error: str | None = None  # the feed was not judged: why
    config_error: bool = False  # ... and it is the configuration's (or the feed file's) fault
    corrected: int = 0  # --repair: journal rows corrected before the repair run

    @property
    def drift(self) -> int:
        return sum(n for name, n in self.counts.items() if name != "landed")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "definition_id": self.definition_id,
            "definition_outcome": self.definition_outcome,
            **self.counts,
            "compared": {"journal": self.journal, "listed": self.listed, "feed": self.feed},
        }
        if self.error is not None:
            out["error"] = self.error
        if self.corrected:
            out["journal_corrected"] = self.corrected
        return out


@dataclass(slots=True)
class VerifyReport:
    """Every feed's verdict, the repair run (if any), and how the command ends."""

    target: str
    feeds: list[FeedVerdict] = field(default_factory=list)
    tenant: str = ""
    auth_error: str | None = None
    error: str | None = None  # the command failed before it could judge (one sentence)
    error_exit: int | None = None
    repair: RunReport | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def drifted(self) -> list[FeedVerdict]:
        """The feeds judged with something to repair (absent, stale or missing)."""
        repairable = ("absent", "stale", "missing")
        return [f for f in self.feeds if f.error is None and any(f.counts[c] for c in repairable)]

    def totals(self) -> dict[str, int]:
        return {name: sum(f.counts[name] for f in self.feeds) for name in CLASSES}

    def exit_code(self) -> int:
        if self.error_exit is not None:
            return self.error_exit
        if self.auth_error is not None:
            return EXIT_AUTH
        if any(f.config_error for f in self.feeds):
            return EXIT_CONFIG
        failed = any(f.error is not None for f in self.feeds)
        if self.repair is not None:
            repaired = self.repair.exit_code()
            return repaired if repaired != EXIT_OK else (EXIT_FAILED if failed else EXIT_OK)
        if failed or any(f.drift for f in self.feeds):
            return EXIT_FAILED
        return EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": "verify",
            "version": __version__,
            "target": self.target,
            "tenant_key": self.tenant,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "exit_code": self.exit_code(),
            "error": self.error or self.auth_error,
            "feeds": [f.as_dict() for f in self.feeds],
            "totals": self.totals(),
            "repair": None if self.repair is None else self.repair.as_dict(),
        }


def write_json(report: VerifyReport, path: Path) -> None:
    """Write the report to ``path`` (``-``: stdout), replaced atomically (``report.outputs``)."""
    out = open_output(path, "the report")
    try:
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
        out.commit()
    finally:
        out.discard()


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
