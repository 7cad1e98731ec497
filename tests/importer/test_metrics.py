"""The metrics file: parses with prometheus_client's own parser, says what the JSON report says, and
keeps the last success across a failed run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from importer.errors import ConfigError
from importer.report.counts import BUCKETS, FeedReport, RunReport
from importer.report.metrics import LAST_SUCCESS, write_metrics


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the file, keyed by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def a_run(*, failed: int = 0, finished: float = 1_800_000_100.0) -> RunReport:
    hashes = FeedReport("Hashes", "hashes.txt", records_read=10, imported=6, already_present=2, rejected=1,
                        duplicate_in_feed=1 - failed, failed=failed)  # fmt: skip
    domains = FeedReport("C2 domains", "c2.txt", records_read=4, updated=3, expired=1, mirror=True, stale=5,
                         deleted=4, kept_shared=1)  # fmt: skip
    report = RunReport("mde", "bulk", feeds=[hashes, domains], duration=12.5,
                       started_at=finished - 13, finished_at=finished)  # fmt: skip
    report.transport.requests, report.transport.throttled, report.transport.token_refreshes = 7, 2, 1
    return report


def test_every_number_is_the_json_reports(tmp_path: Path) -> None:
    report, path = a_run(), tmp_path / "ti_import.prom"
    write_metrics(report, path)
    got, want = samples(path), report.as_dict()
    assert got[("ti_import_run_exit_code", ())] == want["exit_code"] == 0
    assert got[("ti_import_run_duration_seconds", ())] == 12.5
    assert got[("ti_import_run_finished_timestamp_seconds", ())] == 1_800_000_100.0
    assert got[(LAST_SUCCESS, ())] == 1_800_000_100.0  # a good run is the last success
    for feed in want["feeds"]:
        labels = (("destination", "mde"), ("feed", feed["name"]))
        assert got[("ti_import_records_read", labels)] == feed["records_read"]
        by_bucket = {b: got[("ti_import_indicators", (("bucket", b), *labels))] for b in BUCKETS}
        assert by_bucket == {b: feed[b] for b in BUCKETS}
        assert sum(by_bucket.values()) == feed["records_read"]
    mirror = (("destination", "mde"), ("feed", "C2 domains"))
    assert got[("ti_import_mirror_indicators", (*mirror, ("outcome", "deleted")))] == 4
    assert not any(key[0] == "ti_import_mirror_indicators" and ("feed", "Hashes") in key[1] for key in got)
    wire = (("destination", "mde"),)
    assert got[("ti_import_requests", wire)] == want["transport"]["requests"] == 7
    assert got[("ti_import_throttled_responses", wire)] == 2
    assert got[("ti_import_token_refreshes", wire)] == 1


def test_a_failed_run_keeps_the_last_success_and_says_it_failed(tmp_path: Path) -> None:
    path = tmp_path / "ti_import.prom"
    write_metrics(a_run(finished=1_800_000_000.0), path)
    write_metrics(a_run(failed=1, finished=1_800_086_400.0), path)
    got = samples(path)
    assert got[("ti_import_run_exit_code", ())] == 1
    assert got[("ti_import_run_finished_timestamp_seconds", ())] == 1_800_086_400.0
    assert got[(LAST_SUCCESS, ())] == 1_800_000_000.0  # the night before's


def test_a_run_that_failed_before_counting_is_written_too(tmp_path: Path) -> None:
    path = tmp_path / "ti_import.prom"
    path.write_text("not prometheus {{{\n")  # someone else's file: no last success to carry over
    write_metrics(RunReport.failed("the client secret is empty", 2, target=None), path)
    got = samples(path)
    assert got[("ti_import_run_exit_code", ())] == 2
    assert not any(name == LAST_SUCCESS for name, _ in got)


def test_the_file_is_replaced_whole_and_a_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ti_import.prom"
    write_metrics(a_run(), path)
    inode = path.stat().st_ino
    write_metrics(a_run(), path)
    assert path.stat().st_ino != inode  # a new file renamed over the old: never half written
    assert [p.name for p in tmp_path.iterdir()] == ["ti_import.prom"]  # no temporary left behind
    with pytest.raises(ConfigError, match="metrics file"):
        write_metrics(a_run(), tmp_path)
    assert os.listdir(tmp_path) == ["ti_import.prom"]
