"""What a run did: per-feed and total counts that add up, transport stats, the summary table, the exit code.

Every record read ends in exactly one bucket (``BUCKETS``), so ``records_read`` equals their sum —
``FeedReport.check()`` asserts it and the tests rely on it. In a dry run, indicators that would
be sent are counted as ``would_import`` instead of ``imported``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.stats import TransportStats

__all__ = ["BUCKETS", "EXIT_AUTH", "EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "FeedReport", "RunReport"]

BUCKETS = (
    "imported",
    "would_import",
    "already_present",
    "duplicate_in_feed",
    "expired",
    "skipped",
    "rejected",
    "failed",
)
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_AUTH = 0, 1, 2, 3


@dataclass(slots=True)
class FeedReport:
    """One feed's outcome; mutated by the pipeline as records are classified and batches answered."""

    name: str  # the alert definition's name (unique per run)
    source: str
    definition_id: str | None = None
    definition_outcome: str | None = None  # found / created / updated / planned
    error: str | None = None  # the feed could not be read, or its definition not resolved
    config_error: bool = False  # the error is the feed's or its configuration's (exit 2), not the target's
    records_read: int = 0
    imported: int = 0
    would_import: int = 0
    already_present: int = 0
    duplicate_in_feed: int = 0
    expired: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)  # reason -> count (rejected+failed)

    def buckets(self) -> dict[str, int]:
        return {bucket: getattr(self, bucket) for bucket in BUCKETS}

    def check(self) -> None:
        """Raise AssertionError if the buckets do not add up to the records read."""
        total = sum(self.buckets().values())
        if total != self.records_read:
            raise AssertionError(f"feed {self.name!r}: buckets add up to {total}, {self.records_read} read")

    def note_reason(self, reason: str, count: int = 1) -> None:
        # Bounded: a feed with a million distinct server messages must not grow this without end.
        if reason in self.reject_reasons or len(self.reject_reasons) < 50:
            self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + count

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "definition_id": self.definition_id,
            "definition_outcome": self.definition_outcome,
            "records_read": self.records_read,
            **self.buckets(),
        }
        if self.error is not None:
            out["error"] = self.error
        if self.reject_reasons:
            out["reject_reasons"] = dict(sorted(self.reject_reasons.items(), key=lambda kv: -kv[1]))
        return out


@dataclass(slots=True)
class RunReport:
    """The whole run: its feeds, the wire counters, timing, and a fatal error if one stopped it."""

    target: str
    mode: str
    dry_run: bool = False
    feeds: list[FeedReport] = field(default_factory=list)
    transport: TransportStats = field(default_factory=TransportStats)
    duration: float = 0.0
    auth_error: str | None = None  # authentication failed: the run stopped (exit 3)
    stopped: bool = False  # a stop was requested before every feed was read

    def totals(self) -> dict[str, int]:
        keys = ("records_read", *BUCKETS)
        return {key: sum(getattr(feed, key) for feed in self.feeds) for key in keys}

    def indicators_per_second(self) -> float:
        sent = self.totals()["imported"] + self.totals()["would_import"]
        return sent / self.duration if self.duration > 0 else 0.0

    def exit_code(self) -> int:
        """3 authentication failed; 2 a feed could not be read; 1 some indicators failed; else 0."""
        if self.auth_error is not None:
            return EXIT_AUTH
        if any(feed.config_error for feed in self.feeds):
            return EXIT_CONFIG
        if any(feed.failed or feed.error for feed in self.feeds):
            return EXIT_FAILED
        return EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code(),
            "auth_error": self.auth_error,
            "duration_seconds": round(self.duration, 3),
            "indicators_per_second": round(self.indicators_per_second(), 1),
            "totals": self.totals(),
            "transport": self.transport.as_dict(),
            "feeds": [feed.as_dict() for feed in self.feeds],
        }

    def write_json(self, path: Path) -> None:
        """Write the JSON report (via a temporary file, so a reader never sees half of it)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def summary(self) -> str:
        """The terminal table: one row per feed, a total row, then the wire counters."""
        first = "would import" if self.dry_run else "imported"
        columns = (first, "present", "dup", "expired", "skipped", "rejected", "failed", "read")
        rows: list[tuple[str, ...]] = []
        for feed in self.feeds:
            b = feed.buckets()
            rows.append(
                (feed.name, str(b["would_import"] if self.dry_run else b["imported"]),
                 str(b["already_present"]), str(b["duplicate_in_feed"]), str(b["expired"]),
                 str(b["skipped"]), str(b["rejected"]), str(b["failed"]), str(feed.records_read))
            )  # fmt: skip
        t = self.totals()
        rows.append(
            ("total", str(t["would_import"] if self.dry_run else t["imported"]), str(t["already_present"]),
             str(t["duplicate_in_feed"]), str(t["expired"]), str(t["skipped"]), str(t["rejected"]),
             str(t["failed"]), str(t["records_read"]))
        )  # fmt: skip
        header = ("feed", *columns)
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        out = [line(header), *(line(r) for r in rows[:-1]), "-" * len(line(header)), line(rows[-1])]
        s = self.transport
        out.append(
            f"{self.duration:.1f} s, {self.indicators_per_second():,.0f} indicators/s; "
            f"{s.requests} requests, {s.retries} retries, {s.throttled} throttled (429), "
            f"{s.server_errors} server errors, {s.connection_errors} connection errors, "
            f"{s.token_refreshes} tokens"
        )
        return "\n".join(out)

    def problems(self) -> list[str]:
        """One sentence per thing that went wrong as a whole (for stderr), most serious first."""
        out = [f"authentication failed: {self.auth_error}"] if self.auth_error else []
        out += [f"{feed.name}: {feed.error}" for feed in self.feeds if feed.error and feed.config_error]
        out += [f"{feed.name}: {feed.error}" for feed in self.feeds if feed.error and not feed.config_error]
        failed = self.totals()["failed"]
        if failed and not self.auth_error:  # after an auth failure, that is the one sentence
            out.append(
                f"{failed} indicators could not be imported; a rerun retries them (--rejects lists them)"
            )
        return out
