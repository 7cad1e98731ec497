"""A run report rendered for people: the terminal table, what happened to the alert definitions and
to mirror mode, the reasons records were not imported, and one sentence per problem for stderr.
The counts and the exit code are ``counts``' job.

The table's columns are the report's buckets. Those most runs never fill (``updated``,
``filtered``, ``not sent``) appear only when some feed has one, so the everyday table stays
narrow; the others are always there, so a script reading it finds them in the same place.

A run of several destinations prints a section per destination, each headed by its name, target
and exit code; its problems are said with the destination's name in front.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from importer.report.counts import FeedReport, RunReport

__all__ = ["cap_line", "definitions_line", "headroom_line", "mirror_lines", "problems", "summary"]


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    count: Callable[[dict[str, int]], int]  # from a feed's (or the total's) buckets and records_read
    always: bool = True


def _columns(dry_run: bool) -> tuple[_Column, ...]:
    sent, changed = ("would_import", "would_update") if dry_run else ("imported", "updated")
    return (
        _Column("would import" if dry_run else "imported", lambda b: b[sent]),
        _Column("would update" if dry_run else "updated", lambda b: b[changed], always=False),
        _Column("present", lambda b: b["already_present"]),
        _Column("dup", lambda b: b["duplicate_in_feed"]),
        _Column("expired", lambda b: b["expired"]),
        _Column("skipped", lambda b: b["skipped"]),
        # Kept out by the feed's policy (filters, warning lists, private addresses): shown when any was.
        _Column("filtered", lambda b: b["filtered"], always=False),
        _Column("rejected", lambda b: b["rejected"]),
        _Column("failed", lambda b: b["failed"]),
        # Read, but the run stopped before a request carried it: not a failure, a rerun sends it.
        _Column("not sent", lambda b: b["not_attempted"], always=False),
        _Column("read", lambda b: b["records_read"]),
    )


def _counts(feed: FeedReport) -> dict[str, int]:
    return {**feed.buckets(), "records_read": feed.records_read}


def headroom_line(report: RunReport) -> str | None:
    """ "15,000 cap: 120 held, 14,880 free; this run would add N" (None for an uncapped target)."""
    if report.headroom is None:
        return None
    h = report.headroom_dict()
    verb = "would add" if report.dry_run else "added"
    line = f"{h['cap']:,} cap: {h['held']:,} held, {h['free']:,} free; "
    line += f"this run {verb} {h['this_run_adds']:,}"
    if h["this_run_adds"] > h["free"]:
        line += f" ({h['this_run_adds'] - h['free']:,} past the cap would fail)"
    return line


def cap_line(report: RunReport) -> str | None:
    """The cap's choice (``pipeline.cap``), when the run's new indicators did not all fit: how many
    were kept, and per feed how many fail (would fail, in a dry run) and why."""
    choice = report.cap_choice
    if choice is None:
        return None
    verb = "would fail" if report.dry_run else "failed"
    feeds = ", ".join(f"{name} {count:,}" for name, count in choice["failed_by_feed"].items())
    return (
        f"cap's choice: {choice['kept']:,} of {choice['new']:,} new kept (by feed priority, confidence, "
        f"first seen); {verb}: {feeds} ({choice['reason']})"
    )


def summary(report: RunReport) -> str:
    """The terminal table: one row per feed, a total row, then the wire counters and what else
    happened; a section of those per destination in a run of several."""
    if not report.destinations:
        return _one_summary(report)
    sections = []
    for part in report.destinations:
        head = f"== {part.name} ({part.target}"
        head += f", {part.tenant})" if part.tenant else ")"
        sections.append(f"{head}: exit {part.exit_code()} ==\n{_one_summary(part)}")
    return "\n\n".join(sections)


def _one_summary(report: RunReport) -> str:
    per_feed = [(feed.name, _counts(feed)) for feed in report.feeds]
    total = report.totals()
    columns = [c for c in _columns(report.dry_run) if c.always or c.count(total)]
    header = ("feed", *(c.header for c in columns))
    rows = [(name, *(str(c.count(counts)) for c in columns)) for name, counts in per_feed]
    rows.append(("total", *(str(c.count(total)) for c in columns)))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(header), *(line(r) for r in rows[:-1]), "-" * len(line(header)), line(rows[-1])]
    s = report.transport
    out.append(
        f"{report.duration:.1f} s, {report.indicators_per_second():,.0f} indicators/s; "
        f"{s.requests} requests, {s.retries} retries, {s.throttled} throttled (429), "
        f"{s.server_errors} server errors, {s.connection_errors} connection errors, "
        f"{s.token_refreshes} tokens"
    )
    for extra in (definitions_line(report), headroom_line(report), cap_line(report)):
        if extra is not None:
            out.append(extra)
    out.extend(mirror_lines(report))
    out.extend(_top_reasons(report))
    return "\n".join(out)


# What a definition's outcome is called in the summary; "found" (unchanged) goes unsaid. A dry run
# resolves a definition it would create as "planned" and one whose settings changed as "would_update".
_OUTCOME_WORDS = {
    "planned": "would create",
    "would_update": "would update",
    "created": "created",
    "updated": "updated",
}


def definitions_line(report: RunReport) -> str | None:
    """ "alert definitions: would create 'A'; would update 'B'" (None when none changes)."""
    named: dict[str, list[str]] = {}
    for feed in report.feeds:
        words = _OUTCOME_WORDS.get(feed.definition_outcome or "")
        if words is not None:
            named.setdefault(words, []).append(repr(feed.name))
    if not named:
        return None
    order = [words for words in _OUTCOME_WORDS.values() if words in named]
    return "alert definitions: " + "; ".join(f"{words} {', '.join(named[words])}" for words in order)


def mirror_lines(report: RunReport) -> list[str]:
    """What mirror mode did (or, in a dry run, would do) per mirrored feed.

    A refusal is left to ``problems``: it is the run's failure, said once, on stderr."""
    out = []
    for feed in report.feeds:
        if not feed.mirror or feed.mirror_refused:
            continue
        if feed.mirror_skipped:
            out.append(f"{feed.name}: {feed.mirror_skipped}")
        elif report.dry_run and feed.stale:
            out.append(f"{feed.name}: mirror mode would delete {feed.stale:,} stale indicators")
        elif feed.stale:
            done = f"{feed.deleted:,} of {feed.stale:,}"
            kept = f" ({feed.kept_shared:,} kept: another feed lists them)" if feed.kept_shared else ""
            out.append(f"{feed.name}: mirror mode deleted {done} stale indicators{kept}")
    return out


def _top_reasons(report: RunReport, shown: int = 5) -> list[str]:
    """The commonest reasons records were filtered, rejected or failed, so the table's numbers say why."""
    reasons: dict[str, int] = {}
    for feed in report.feeds:
        for reason, count in feed.reject_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    if not reasons:
        return []
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = ["not imported, by reason (--rejects lists every record):"]
    lines += [f"  {count:>6,}  {reason}" for reason, count in ranked[:shown]]
    if len(ranked) > shown:
        lines.append(f"  {sum(c for _, c in ranked[shown:]):>6,}  {len(ranked) - shown} other reasons")
    return lines


def problems(report: RunReport) -> list[str]:
    """One sentence per thing that went wrong as a whole (for stderr), most serious first; in a run
    of several destinations, each one's, its name in front."""
    if report.destinations:
        out = []
        for part in report.destinations:
            said = [part.error] if part.error is not None else problems(part)
            out += [f"{part.name}: {sentence}" for sentence in said]
        return out
    out = [f"authentication failed: {report.auth_error}"] if report.auth_error else []
    out += [f"{feed.name}: {feed.error}" for feed in report.feeds if feed.error and feed.config_error]
    out += [f"{feed.name}: {feed.error}" for feed in report.feeds if feed.error and not feed.config_error]
    out += [f"{feed.name}: {feed.mirror_refused}" for feed in report.feeds if feed.mirror_refused]
    if report.signalled:
        out.append("stopped by a signal; what was acknowledged is in the journal, a rerun carries on")
    failed = report.totals()["failed"]
    if failed and not report.auth_error:  # after an auth failure, that is the one sentence
        out.append(f"{failed} indicators could not be imported; a rerun retries them (--rejects lists them)")
    return out
