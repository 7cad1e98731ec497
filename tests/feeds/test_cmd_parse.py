"""``ti-import parse``: JSON lines on stdout, one summary line on stderr, rejects file, exit codes."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from importer.cli import main

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
STIX1 = b"""<?xml version="1.0"?>
<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" version="1.2">
  <stix:Indicators/>
</stix:STIX_Package>
"""


def _run(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "importer", *argv], capture_output=True, timeout=60, check=False
    )


def test_indicators_summary_and_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = tmp_path / "x.txt"
    feed.write_text(f"# banner\n{MD5};GhostLoader\n{MD5}\n{SHA1}s\nexample.com\n")
    rejects = tmp_path / "rejects.jsonl"
    assert main(["parse", str(feed), "--rejects", str(rejects)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [
        {"kind": "md5", "value": MD5, "origin": f"{feed}:2", "description": "GhostLoader"},
        {"kind": "md5", "value": MD5, "origin": f"{feed}:3"},
        {"kind": "domain", "value": "example.com", "origin": f"{feed}:5"},
    ]
    assert err == (
        f"{feed}: 3 indicators (md5 2, domain 1), 2 distinct (md5 1, domain 1), "
        "1 rejected, 0 expired, 0 skipped\n"
    )
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject == {
        "origin": f"{feed}:4",
        "raw": SHA1 + "s",
        "reason": "41 characters, not a valid md5/sha1/sha256: contains non-hex 's'",
    }


def test_explicit_format_and_empty_feed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = tmp_path / "empty.csv"
    feed.write_text("")
    assert main(["parse", str(feed), "--format", "list"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{feed}: 0 records (an empty feed)\n"


def test_csv_columns_option_reaches_the_csv_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "x.csv"
    feed.write_text(f"a,b\nnote,{MD5}\n")
    assert main(["parse", str(feed), "--columns", "2=md5"]) == 0
    out, _ = capsys.readouterr()
    assert [json.loads(line)["value"] for line in out.splitlines()] == [MD5]


def test_refused_feed_exits_2_with_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = tmp_path / "package.xml"
    feed.write_bytes(STIX1)
    assert main(["parse", str(feed)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert f"{feed} is STIX 1.x" in err
    assert "stix2-elevator" in err
    assert main(["parse", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unwritable_rejects_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = tmp_path / "x.txt"
    feed.write_text(MD5)
    assert main(["parse", str(feed), "--rejects", str(tmp_path / "no" / "dir" / "r.jsonl")]) == 2
    assert "cannot write the rejects file" in capsys.readouterr().err


def test_real_stix1_file_exits_2_without_traceback(real_feeds: Path) -> None:
    result = _run("parse", str(real_feeds / "stix/stix1x_elevator_file-hash-reputation.xml"))
    assert result.returncode == 2
    assert result.stdout == b""
    err = result.stderr.decode()
    assert "Traceback" not in err
    assert err.startswith("ti-import: ") and "STIX 1.x" in err and err.count("\n") == 1


def test_gzip_from_stdin_and_broken_pipe(tmp_path: Path) -> None:
    data = gzip.compress("".join(f"{i:032x}\n" for i in range(20_000)).encode())
    piped = subprocess.run(
        [sys.executable, "-m", "importer", "parse", "-"],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0
    assert piped.stderr.decode().startswith("<stdin>: 20000 indicators (md5 20000)")
    assert json.loads(piped.stdout.splitlines()[-1])["origin"] == "<stdin>:20000"
    # the reader stops after one line: no traceback, the conventional SIGPIPE status
    feed = tmp_path / "big.txt.gz"
    feed.write_bytes(data)
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "parse", str(feed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "Traceback" not in err
    assert "Exception ignored" not in err


def test_every_real_feed_reconciles_with_sources(
    real_feeds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The acceptance sweep: exit code and distinct indicators per kind, as SOURCES.md's final table says."""
    table = (real_feeds / "SOURCES.md").read_text(encoding="utf-8").split("## Distinct canonical", 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| (\d) \| ([^|]*) \|", table, re.MULTILINE)
    assert len(rows) == len([p for p in real_feeds.glob("*/*")])
    for relative, exit_code, counts in rows:
        code = main(["parse", str(real_feeds / relative)])
        out, err = capsys.readouterr()
        assert code == int(exit_code), relative
        assert err.count("\n") == 1 and "Traceback" not in err
        distinct: dict[str, set[str]] = {}
        for line in out.splitlines():
            item = json.loads(line)
            distinct.setdefault(item["kind"], set()).add(item["value"])
        expected = {
            kind: int(n) for kind, n in re.findall(r"(md5|sha1|sha256|ipv4|ipv6|domain|url) (\d+)", counts)
        }
        assert {kind: len(values) for kind, values in distinct.items()} == expected, relative
