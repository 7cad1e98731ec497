"""``--metrics-file`` on the command line: written at the end of a run, of a failed one too (bad
settings before anything is read, an authentication failure), refused where an output is refused
(a folder, a file the run reads) before anything is read; its destination label the target's name
for a single-target run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from importer.emulator import Emulator
from tests.helpers import run_cli, use_emulator, write_feed


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_a_run_writes_its_metrics_and_they_equal_the_report(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_emulator(monkeypatch, emulator)
    feed, metrics, report = (
        write_feed(tmp_path / "hashes.txt", range(40)),
        tmp_path / "m.prom",
        tmp_path / "r.json",
    )
    code = await run_cli(
        str(feed), "--no-state", "--report", str(report), "--metrics-file", str(metrics), "-q"
    )
    assert code == 0
    got, want = samples(metrics), json.loads(report.read_text())
    assert got[("ti_import_run_exit_code", ())] == 0
    assert ("ti_import_last_success_timestamp_seconds", ()) in got
    labels = (("destination", "ti"), ("feed", "hashes.txt"))
    assert (
        got[("ti_import_indicators", (("bucket", "imported"), *labels))] == want["totals"]["imported"] == 40
    )
    assert got[("ti_import_requests", (("destination", "ti"),))] == want["transport"]["requests"]


async def test_bad_settings_and_a_failed_authentication_write_them_too(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = tmp_path / "m.prom"
    missing = tmp_path / "no-such.toml"
    assert await run_cli("--config", str(missing), "--metrics-file", str(metrics), "-q") == 2
    assert samples(metrics)[("ti_import_run_exit_code", ())] == 2
    use_emulator(monkeypatch, emulator, secret="wrong")
    feed = write_feed(tmp_path / "hashes.txt", range(5))
    assert await run_cli(str(feed), "--no-state", "--metrics-file", str(metrics), "-q") == 3
    assert samples(metrics)[("ti_import_run_exit_code", ())] == 3


@pytest.mark.parametrize("which", ["folder", "feed"])
async def test_a_metrics_file_that_would_destroy_something_is_refused(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    use_emulator(monkeypatch, emulator)
    feed = write_feed(tmp_path / "hashes.txt", range(5))
    target = tmp_path if which == "folder" else feed
    before = feed.read_text()
    assert await run_cli(str(feed), "--no-state", "--metrics-file", str(target), "-q") == 2
    assert feed.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["hashes.txt"]
