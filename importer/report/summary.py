"""A run report rendered for people: the terminal table, the reasons records were not imported,
and one sentence per problem for stderr. The counts and the exit code are ``counts``' job."""

from __future__ import annotations

from importer.report.counts import RunReport

__all__ = ["headroom_line", "problems", "summary"]


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


def summary(report: RunReport) -> str:
    """The terminal table: one row per feed, a total row, then the wire counters."""
    first = "would import" if report.dry_run else "imported"
    columns = (first, "present", "dup", "expired", "skipped", "rejected", "failed", "read")
    rows: list[tuple[str, ...]] = []
    for feed in report.feeds:
        b = feed.buckets()
        rows.append(
            (feed.name, str(b["would_import"] if report.dry_run else b["imported"]),
             str(b["already_present"]), str(b["duplicate_in_feed"]), str(b["expired"]),
             str(b["skipped"]), str(b["rejected"]), str(b["failed"]), str(feed.records_read))
        )  # fmt: skip
    t = report.totals()
    rows.append(
        ("total", str(t["would_import"] if report.dry_run else t["imported"]), str(t["already_present"]),
         str(t["duplicate_in_feed"]), str(t["expired"]), str(t["skipped"]), str(t["rejected"]),
         str(t["failed"]), str(t["records_read"]))
    )  # fmt: skip
    header = ("feed", *columns)
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
    room = headroom_line(report)
    if room is not None:
        out.append(room)
    out.extend(_top_reasons(report))
    for feed in report.feeds:
        if feed.mirror and (feed.deleted or feed.stale):
            out.append(
                f"{feed.name}: mirror mode deleted {feed.deleted:,} of {feed.stale:,} stale indicators"
            )
    return "\n".join(out)


def _top_reasons(report: RunReport, shown: int = 5) -> list[str]:
    """The commonest reasons records were rejected or failed, so the table's numbers say why."""
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
    """One sentence per thing that went wrong as a whole (for stderr), most serious first."""
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
