"""What a run did: per-feed and total counts that add up, transport stats, the exit code, the JSON report.

Every record read ends in exactly one bucket (``BUCKETS``), so ``records_read`` equals their sum —
``FeedReport.check()`` asserts it and the tests rely on it. In a dry run, indicators that would
be sent are counted as ``would_import`` instead of ``imported`` (``would_update`` for ``updated``).
``report.summary`` renders a report for a terminal.

A run of several destinations (``[[destination]]`` tables) is one ``RunReport`` whose
``destinations`` are each one's own report, named (``destination``): its exit code is the worst
of theirs, its totals and wire counters their sums, and its JSON lists them under
``destinations``. A run of one destination is reported as it always was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from importer import __version__
from importer.model import Headroom
from importer.report.outputs import open_output
from importer.transport.stats import TransportStats

__all__ = [
    "BUCKETS",
    "EXIT_AUTH",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "FeedReport",
    "Headroom",
    "RunReport",
]

BUCKETS = (
    "imported",
    "would_import",
    "updated",
    "would_update",
    "already_present",
    "duplicate_in_feed",
    "expired",
    "skipped",
    "filtered",
    "rejected",
    "failed",
    "not_attempted",
)
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_AUTH = 0, 1, 2, 3
EXIT_STOPPED = 130  # SIGINT/SIGTERM: stopped gracefully; a rerun carries on (128 + SIGINT, as shells do)
# Which exit code wins when several apply (the README's order): the run of several destinations'.
_SEVERITY = {EXIT_OK: 0, EXIT_FAILED: 1, EXIT_STOPPED: 2, EXIT_CONFIG: 3, EXIT_AUTH: 4}


@dataclass(slots=True)
class FeedReport:
    """One feed's outcome; mutated by the pipeline as records are classified and batches answered."""

    name: str  # the alert definition's name (unique per run)
    source: str
    definition_id: str | None = None
    definition_outcome: str | None = None  # found / created / updated / planned
    definition: dict[str, Any] | None = None  # the feed's options as sent (fields.definition_to_json)
    error: str | None = None  # the feed could not be read, or its definition not resolved
    config_error: bool = False  # the error is the feed's or its configuration's (exit 2), not the target's
    records_read: int = 0
    imported: int = 0
    would_import: int = 0
    updated: int = 0  # held already, but its metadata or expiry changed: sent again (see pipeline.freshness)
    would_update: int = 0  # the dry run's ``updated``
    already_present: int = 0
    duplicate_in_feed: int = 0
    expired: int = 0
    skipped: int = 0
    # Kept out by the feed's policy (``importer.policy``: its filters, allowlist, the warning
    # lists, private addresses): in the rejects file with the rule's reason, never retried.
    filtered: int = 0
    rejected: int = 0
    failed: int = 0
    not_attempted: int = 0  # read, but the run stopped before a request carried it (a rerun sends it)
    # reason -> count (filtered, rejected and failed ones)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    # Mirror mode (not buckets: these are indicators of earlier runs, not records read now).
    mirror: bool = False
    stale: int = 0  # held under the definition, no longer in the feed
    deleted: int = 0
    kept_shared: int = 0  # stale here, but another feed of the journal lists the value (mde): kept
    delete_failed: int = 0
    removed: int = 0  # retired by the source (TAXII revoked, a past valid_until), deleted from the target
    mirror_refused: str | None = None  # the guard tripped: nothing was deleted
    mirror_skipped: str | None = None  # the run cannot tell what is stale (feed incomplete, failures)

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
            **({"definition": self.definition} if self.definition is not None else {}),
            "records_read": self.records_read,
            **self.buckets(),
        }
        if self.error is not None:
            out["error"] = self.error
        if self.removed:
            out["removed"] = self.removed
        if self.reject_reasons:
            out["reject_reasons"] = dict(sorted(self.reject_reasons.items(), key=lambda kv: -kv[1]))
        if self.mirror:
            out["mirror"] = {
                "stale": self.stale,
                "deleted": self.deleted,
                "kept_shared": self.kept_shared,
                "delete_failed": self.delete_failed,
                "refused": self.mirror_refused,
                "skipped": self.mirror_skipped,
            }
        return out


@dataclass(slots=True)
class RunReport:
    """The whole run: its feeds, the wire counters, timing, and a fatal error if one stopped it.

    A run that failed before its pipeline ran (bad settings, a held lock, an unwritable rejects
    file) is a report too (``failed``): with ``--report`` the file always says how the run ended.
    """

    target: str | None  # None: the settings failed before naming it
    mode: str | None
    dry_run: bool = False
    feeds: list[FeedReport] = field(default_factory=list)
    transport: TransportStats = field(default_factory=TransportStats)
    duration: float = 0.0
    auth_error: str | None = None  # authentication failed: the run stopped (exit 3)
    stopped: bool = False  # a stop was requested before every feed was read
    unsettled: int = 0  # batches cancelled in flight after the grace period (outcome unknown)
    signalled: bool = False  # the stop came from SIGINT/SIGTERM (exit 130)
    headroom: Headroom | None = None  # a capped target's room before the run
    # The cap's choice when the run's new indicators did not fit (``pipeline.cap.CapChoice.as_dict``).
    cap_choice: dict[str, Any] | None = None
    journal: dict[str, Any] | None = None  # the state journal used: path, resumed, reconciled definitions
    tenant: str | None = None  # the tenant key: API URL and client id (never a secret)
    started_at: float | None = None  # wall-clock seconds since the epoch
    finished_at: float | None = None
    # What ended the run early, in one sentence: before its pipeline did, or during it (a journal
    # or rejects file that cannot be written, ``pipeline.shared.Shared.halt``).
    error: str | None = None
    error_exit: int | None = None  # the exit code ``error`` means (2 configuration, 130 a signal, ...)
    version: str = __version__
    destination: str | None = None  # the destination's name ([[destination]]); None: the target's
    destinations: list[RunReport] = field(default_factory=list)  # a run of several: each one's report
    # Retryable lines of --retry-from naming a destination not in this run, by its name: not sent.
    retry_not_sent: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The destination's name (the target's when the config names none)."""
        return self.destination or self.target or ""

    def parts(self) -> list[RunReport]:
        """The reports of the run's destinations: its ``destinations``, or itself when it has one."""
        return self.destinations or [self]

    @classmethod
    def failed(cls, error: str, exit_code: int, *, target: str | None, mode: str | None = None) -> RunReport:
        """The report of a run that ended with ``error`` before it had counts to give."""
        return cls(target=target, mode=mode, error=error, error_exit=exit_code)

    def totals(self) -> dict[str, int]:
        keys = ("records_read", *BUCKETS)
        if self.destinations:
            parts = [part.totals() for part in self.destinations]
            return {key: sum(part[key] for part in parts) for key in keys}
        return {key: sum(getattr(feed, key) for feed in self.feeds) for key in keys}

    def wire(self) -> dict[str, int]:
        """What crossed the wire (``TransportStats``): the destinations' sums in a run of several."""
        if not self.destinations:
            return self.transport.as_dict()
        parts = [part.wire() for part in self.destinations]
        return {key: sum(part[key] for part in parts) for key in parts[0]}

    def indicators_per_second(self) -> float:
        totals = self.totals()
        sent = sum(totals[key] for key in ("imported", "would_import", "updated", "would_update"))
        return sent / self.duration if self.duration > 0 else 0.0

    def exit_code(self) -> int:
        """``error_exit`` if the run failed early; 3 authentication failed; 2 a feed could not be
        read; 130 a signal stopped it; 1 some indicators failed; else 0."""
        if self.error_exit is not None:
            return self.error_exit
        if self.destinations:  # the worst of them, as one run ranks its reasons: 3, 2, 130, 1, 0
            codes = [part.exit_code() for part in self.destinations]
            return max(codes, key=lambda code: _SEVERITY.get(code, 1))
        if self.auth_error is not None:
            return EXIT_AUTH
        if any(feed.config_error for feed in self.feeds):
            return EXIT_CONFIG
        if self.signalled:
            return EXIT_STOPPED
        if any(feed.failed or feed.error or feed.mirror_refused or feed.delete_failed for feed in self.feeds):
            return EXIT_FAILED
        return EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        if self.destinations:
            return self._as_dict_of_many()
        return {
            "version": self.version,
            "target": self.target,
            "tenant_key": self.tenant,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "started_at": self._iso(self.started_at),
            "finished_at": self._iso(self.finished_at),
            "exit_code": self.exit_code(),
            "error": self.error_sentence(),
            "auth_error": self.auth_error,
            "duration_seconds": round(self.duration, 3),
            "indicators_per_second": round(self.indicators_per_second(), 1),
            "totals": self.totals(),
            "transport": self.transport.as_dict(),
            "feeds": [feed.as_dict() for feed in self.feeds],
            **({"stopped_by_signal": True} if self.signalled else {}),
            **({"headroom": self.headroom_dict()} if self.headroom is not None else {}),
            **({"cap_choice": self.cap_choice} if self.cap_choice is not None else {}),
            **({"journal": self.journal} if self.journal is not None else {}),
            **({"retry_not_sent": self.retry_not_sent} if self.retry_not_sent else {}),
        }

    def _as_dict_of_many(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "started_at": self._iso(self.started_at),
            "finished_at": self._iso(self.finished_at),
            "exit_code": self.exit_code(),
            "error": self.error_sentence(),
            "duration_seconds": round(self.duration, 3),
            "indicators_per_second": round(self.indicators_per_second(), 1),
            "totals": self.totals(),
            "transport": self.wire(),
            "destinations": [part.destination_dict() for part in self.destinations],
            **({"stopped_by_signal": True} if self.signalled else {}),
            **({"retry_not_sent": self.retry_not_sent} if self.retry_not_sent else {}),
        }

    def destination_dict(self) -> dict[str, Any]:
        """This destination's section of a run of several: its name and its report less the run's times."""
        run_wide = ("version", "mode", "dry_run", "started_at", "finished_at")
        return {"name": self.name, **{k: v for k, v in self.as_dict().items() if k not in run_wide}}

    def error_sentence(self) -> str | None:
        """Why the run failed as a whole (exit 2 or 3, or an early end), in one sentence; else None."""
        if self.error is not None:
            return self.error
        if self.destinations:
            failed = [(part.name, part.error_sentence()) for part in self.destinations]
            return "; ".join(f"{name}: {sentence}" for name, sentence in failed if sentence) or None
        if self.auth_error is not None:
            return f"authentication failed: {self.auth_error}"
        unreadable = next((feed for feed in self.feeds if feed.error and feed.config_error), None)
        return None if unreadable is None else f"{unreadable.name}: {unreadable.error}"

    @staticmethod
    def _iso(seconds: float | None) -> str | None:
        if seconds is None:
            return None
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")

    def headroom_dict(self) -> dict[str, int]:
        assert self.headroom is not None
        room = self.headroom
        adds = self.totals()["would_import" if self.dry_run else "imported"]
        return {"cap": room.cap, "held": room.held, "free": room.free, "this_run_adds": adds}

    def write_json(self, path: Path) -> None:
        """Write the JSON report to ``path`` (``-``: stdout), replacing the file atomically so a
        reader never sees half of it; a ConfigError says why it cannot be (``report.outputs``)."""
        out = open_output(path, "the report")
        try:
            out.write(json.dumps(self.as_dict(), indent=2) + "\n")
            out.commit()
        finally:
            out.discard()  # after a commit: nothing left to remove
