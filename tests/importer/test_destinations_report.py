"""The report of a run of several destinations: a section each, the worst exit code, the sums; the
terminal summary a section per destination; the problems named by destination."""

from __future__ import annotations

from importer.report.counts import FeedReport, RunReport
from importer.report.summary import problems, summary


def part(name: str, target: str, **counts: int) -> RunReport:
    feed = FeedReport("Hashes", "hashes.txt", **counts)
    report = RunReport(target, "bulk", feeds=[feed], destination=name)
    report.tenant = f"https://{target}.example/ app-{name}"
    report.transport.requests = 3
    return report


def test_sections_sums_and_the_worst_exit_code() -> None:
    good = part("contoso", "mde", records_read=10, imported=10)
    bad = part("fabrikam", "sentinel", records_read=10, failed=10)
    bad.auth_error = "AADSTS7000215: invalid client secret"
    run = RunReport(None, "bulk", destinations=[good, bad])
    out = run.as_dict()
    assert out["exit_code"] == 3 and run.exit_code() == 3
    assert out["totals"]["records_read"] == 20 and out["transport"]["requests"] == 6
    assert "feeds" not in out and "target" not in out
    names = [(d["name"], d["target"], d["exit_code"]) for d in out["destinations"]]
    assert names == [("contoso", "mde", 0), ("fabrikam", "sentinel", 3)]
    first = out["destinations"][0]
    assert {"tenant_key", "error", "totals", "transport", "feeds"} <= set(first)
    assert out["error"] == "fabrikam: authentication failed: AADSTS7000215: invalid client secret"
    text = summary(run)
    assert "== contoso (mde, https://mde.example/ app-contoso): exit 0 ==" in text
    assert "== fabrikam (sentinel, https://sentinel.example/ app-fabrikam): exit 3 ==" in text
    assert problems(run) == ["fabrikam: authentication failed: AADSTS7000215: invalid client secret"]


def test_one_destination_is_reported_as_ever() -> None:
    one = part("mde", "mde", records_read=4, imported=4)
    out = one.as_dict()
    assert "destinations" not in out and out["target"] == "mde" and len(out["feeds"]) == 1
    assert not summary(one).startswith("==")


def test_the_worst_exit_code_ranks_as_one_run_does() -> None:
    stopped = part("a", "mde", records_read=1, not_attempted=1)
    stopped.signalled = True
    config = part("b", "mde", records_read=1, rejected=1)
    config.error, config.error_exit = "the journal cannot be written: disk full", 2
    assert RunReport(None, "bulk", destinations=[stopped, config]).exit_code() == 2  # 2 before 130
    assert RunReport(None, "bulk", destinations=[stopped, part("c", "ti")]).exit_code() == 130
