"""Filters, warning lists and private addresses end to end: ``ti-import run`` against the emulator over
loopback, the ``filtered`` bucket in the report and the summary, and the rejects file's filtered lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from importer.emulator import Emulator
from tests.helpers import mde_held, run_cli, sha256, use_emulator

HARMLESS = ["8.8.8.8", "google.com", "10.1.2.3", "update.microsoft.com"]


def write_mixed(path: Path, malicious: int = 100) -> Path:
    """The harmless four among ``malicious`` values: hashes, and a few domains no list holds."""
    values = [sha256(n + 1) for n in range(malicious - 10)]
    values += [f"c2-{n}.evil-4f9a1c.invalid" for n in range(10)]
    path.write_text("\n".join([*HARMLESS[:2], *values[:50], *HARMLESS[2:], *values[50:]]) + "\n")
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def use_mde(monkeypatch: pytest.MonkeyPatch, emu: Emulator) -> None:
    use_emulator(monkeypatch, emu, api_url=emu.mde_url)
    monkeypatch.setenv("TI_AUTH_URL", emu.auth_url(2))


async def test_mde_imports_only_the_malicious_values_of_a_feed_with_harmless_ones(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed, rejects, report = (
        write_mixed(tmp_path / "mixed.txt"),
        tmp_path / "rejects.jsonl",
        tmp_path / "r.json",
    )
    use_mde(monkeypatch, emulator)
    code = await run_cli(
        "--target", "mde", "--no-state", str(feed), "--rejects", str(rejects), "--report", str(report)
    )
    assert code == 0  # filtering is not a failure

    held = {item["indicatorValue"] for item in await mde_held(emulator)}
    assert len(held) == 100 and not held & set(HARMLESS)

    (counts,) = json.loads(report.read_text())["feeds"]
    assert (counts["imported"], counts["filtered"], counts["records_read"]) == (100, 4, 104)
    assert counts["reject_reasons"]["private address (RFC 1918)"] == 1
    filtered = {line["value"]: line for line in lines(rejects)}
    assert set(filtered) == set(HARMLESS)
    for line in filtered.values():
        assert (line["bucket"], line["retryable"]) == ("filtered", False) and "definition" not in line
    assert filtered["10.1.2.3"]["reason"] == "private address (RFC 1918)"
    for value in ("8.8.8.8", "google.com", "update.microsoft.com"):
        assert filtered[value]["reason"].startswith("MISP warning list: "), filtered[value]
    assert "filtered" in capsys.readouterr().out  # the summary's column, shown as some were

    # A rerun of the rejects file retries none of them: the same policy would keep them out again.
    assert await run_cli("--target", "mde", "--no-state", "-q", "--retry-from", str(rejects)) == 0
    assert len(await mde_held(emulator)) == 100


async def test_a_filtered_line_is_never_retried_even_if_marked_retryable(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    rejects = tmp_path / "rejects.jsonl"
    line = {"feed": "f", "bucket": "filtered", "retryable": True, "kind": "sha256", "value": sha256(1),
            "origin": "f:1", "definition": {"name": "f"}}  # fmt: skip
    rejects.write_text(json.dumps(line) + "\n")
    assert await run_cli("-q", "--no-state", "--retry-from", str(rejects)) == 0
    assert f"nothing to retry in {rejects}" in capsys.readouterr().err
    assert emulator.state()["totals"]["iocs"] == 0


async def test_ti_keeps_warning_lists_off_and_private_addresses_out_by_default(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed, report = write_mixed(tmp_path / "mixed.txt", malicious=20), tmp_path / "r.json"
    use_emulator(monkeypatch, emulator)
    assert await run_cli("-q", "--no-state", str(feed), "--report", str(report)) == 0
    (counts,) = json.loads(report.read_text())["feeds"]
    assert (counts["imported"], counts["filtered"]) == (23, 1)  # only 10.1.2.3; no warning lists
    assert await run_cli("-q", "--no-state", str(feed), "--allow-private", "--report", str(report)) == 0
    (counts,) = json.loads(report.read_text())["feeds"]
    assert (counts["imported"], counts["already_present"], counts["filtered"]) == (1, 23, 0)


async def test_filters_from_a_config_file(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed = tmp_path / "typed.csv"
    feed.write_text(
        "type,value,confidence,tags\n"
        f"sha256,{sha256(1)},90,tlp:white\n"
        f"sha256,{sha256(2)},10,tlp:white\n"  # below min_confidence
        f"sha256,{sha256(3)},90,tlp:red\n"  # no label of labels_any
        "domain,ok.evil-4f9a1c.invalid,90,TLP:GREEN\n"
        "domain,ours.corp-4f9a1c.invalid,90,tlp:green\n"  # the allowlist's domain covers it
        f"md5,{'a' * 32},90,tlp:green\n"  # not one of kinds
    )
    allow = tmp_path / "allow.txt"
    allow.write_text("# ours\ncorp-4f9a1c.invalid\n")
    config, report, rejects = tmp_path / "feeds.toml", tmp_path / "r.json", tmp_path / "rejects.jsonl"
    config.write_text(
        f"[[feed]]\nsource = '{feed}'\nkinds = ['sha256', 'domain']\nmin_confidence = 50\n"
        f"labels_any = ['tlp:white', 'tlp:green']\nallowlist = '{allow}'\n"
    )
    use_emulator(monkeypatch, emulator)
    code = await run_cli(
        "-q", "--no-state", "--config", str(config), "--report", str(report), "--rejects", str(rejects)
    )
    assert code == 0
    (counts,) = json.loads(report.read_text())["feeds"]
    assert (counts["imported"], counts["filtered"]) == (2, 4)
    assert counts["definition"]["kinds"] == ["sha256", "domain"]  # the feed's options, as run
    reasons = {line["value"]: line["reason"] for line in lines(rejects)}
    assert reasons == {
        sha256(2): "confidence below 50 (min_confidence)",
        sha256(3): "no label of labels_any (tlp:white, tlp:green)",
        "ours.corp-4f9a1c.invalid": f"on the allowlist {allow}",
        "a" * 32: "kind md5 not in kinds",
    }


async def test_a_bad_allowlist_line_stops_the_feed_with_exit_2(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    allow = tmp_path / "allow.txt"
    allow.write_text("8.8.8.8\nnot a value\n")
    use_emulator(monkeypatch, emulator)
    feed = write_mixed(tmp_path / "mixed.txt", malicious=10)
    assert await run_cli("-q", "--no-state", str(feed), "--allowlist", str(allow)) == 2
    err = capsys.readouterr().err
    assert f"the allowlist {allow}, line 2: 'not a value' is not a value" in err and err.count("\n") == 1
    assert emulator.state()["totals"]["iocs"] == 0


async def test_mirror_mode_deletes_what_is_now_filtered(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed, state, report = (
        write_mixed(tmp_path / "mixed.txt", malicious=10),
        tmp_path / "s.sqlite",
        tmp_path / "r.json",
    )
    use_emulator(monkeypatch, emulator)
    assert await run_cli("-q", "--state", str(state), str(feed), "--allow-private") == 0
    assert emulator.state()["totals"]["iocs"] == 14
    # Tomorrow, private addresses are filtered: the one imported yesterday is deleted by mirror mode.
    assert await run_cli("-q", "--state", str(state), str(feed), "--mirror", "--report", str(report)) == 0
    (counts,) = json.loads(report.read_text())["feeds"]
    assert (counts["filtered"], counts["mirror"]["deleted"]) == (1, 1)
    assert emulator.state()["totals"]["iocs"] == 13


async def test_a_dry_run_counts_the_same_filtered_ones(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed, report = write_mixed(tmp_path / "mixed.txt"), tmp_path / "r.json"
    use_mde(monkeypatch, emulator)
    assert (
        await run_cli("--target", "mde", "--no-state", "-q", "--dry-run", str(feed), "--report", str(report))
        == 0
    )
    totals = json.loads(report.read_text())["totals"]
    assert (totals["would_import"], totals["filtered"], totals["records_read"]) == (100, 4, 104)
    assert await mde_held(emulator) == []
