"""Benchmark of the feed readers: speed and peak RSS per format, on ordinary and on hostile feeds.

Generates, in a temporary directory (same seed, same bytes):

- ordinary feeds, each at its full size (lists and CSV also at half, to show flat memory):
  ``list`` — 85 % bare md5/sha1/sha256, 10 % ``HASH;DESC`` or ``HASH - file.exe``, 2 %
  IPs/domains/URLs, 3 % comments and blanks; ``csv`` — a Feodo-style quoted CSV with a ``#``
  banner, one indicator per row; ``csv3`` — a MalwareBazaar-style ``", "`` CSV, three hashes a
  row plus imphash and ssdeep; ``stix`` — a STIX 2.1 bundle of 100,000 indicators
  (sha256/md5/ipv4/domain/url, 5 % OR compounds) and a few other objects;
- hostile or huge feeds (``--skip-big`` leaves them out): ``long_line`` — a list whose second of
  three lines is 64 MiB; ``long_line_gz`` — the same shape with a 1 GiB line, gzipped to ~1 MB,
  read with the gzip ratio cap (refused, as a bomb) and without it (the line skipped unread);
  ``stix_big`` — a 3,000,000-indicator bundle of ``stix``'s objects (~1.4 GB).

Each measurement runs ``feeds.read_feed`` (detection included) in its own subprocess, so the peak
RSS (``ru_maxrss``) is that feed's alone; the child's RSS before parsing is reported beside it.
Ordinary feeds run ``--repeat`` times (default 3): the median time, its range, and rates from the
median. ``--baseline REV`` also runs every ordinary feed and ``long_line`` with the feeds package
of git revision REV (checked out in the temporary directory), alternating runs, and reports
new/old ratios: today's code against the one before a change, in one run on one machine
(``--baseline-big`` adds ``stix_big`` to that, which the whole-file reader needs GBs for).
Writes ``benchmarks/results/parse.json``; prints a table. ``--quick``: every feed 10x smaller
(the big ones 16x), a smoke run.

    python benchmarks/bench_parse.py [--quick] [--repeat N] [--baseline REV [--baseline-big]]
                                     [--skip-big] [--out FILE]

(Over the ~350-line guide: the feed writers, the child, the runs and the report of one benchmark
belong together, and no other script shares them.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "parse.json"
SEED = 20240507
FULL = {"list": 1_000_000, "csv": 1_000_000, "csv3": 1_000_000, "stix": 100_000}
BIG = {"long_line": 64 << 20, "long_line_gz": 1 << 30, "stix_big": 3_000_000}
GOALS = {
    "list": ("indicators_per_s", 500_000, "lists >= 500k indicators/s"),
    "csv": ("rows_per_s", 150_000, "CSV >= 150k rows/s"),
    "csv3": ("rows_per_s", 150_000, "CSV >= 150k rows/s"),
    "stix": ("indicators_per_s", 50_000, "STIX >= 50k indicators/s"),
}
STIX_RSS_GOAL_MB = 300  # the 100k-indicator bundle (the whole-file reader's goal)
BIG_RSS_GOAL_MB = 200  # the 1 GiB line and the 3M-indicator bundle
BIG_STIX_RATE_GOAL = 50_000
BASELINE_TIMEOUT_S = 600


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _ip(rng: random.Random) -> str:
    return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _domain(rng: random.Random) -> str:
    return f"{_hex(rng, 32)[: rng.randint(6, 14)]}.{rng.choice(['com', 'net', 'org', 'ru', 'xyz'])}"


def write_list(path: Path, lines: int, rng: random.Random) -> None:
    bits = (128, 160, 256)
    with path.open("w", encoding="utf-8") as out:
        out.write("# synthetic hash list\n# FORMAT: HASH[;COMMENT]\n")
        for i in range(lines - 2):
            roll = rng.random()
            if roll < 0.85:
                out.write(_hex(rng, rng.choice(bits)) + "\n")
            elif roll < 0.90:
                out.write(f"{_hex(rng, rng.choice(bits))};Loader campaign {i % 97}\n")
            elif roll < 0.95:
                out.write(f"{_hex(rng, 256)} - invoice_{i}.exe\n")
            elif roll < 0.97:
                out.write(rng.choice((_ip(rng), _domain(rng), f"http://{_domain(rng)}/g/{i}")) + "\n")
            elif roll < 0.985:
                out.write("# section\n")
            else:
                out.write("\n")


def write_csv(path: Path, rows: int, rng: random.Random) -> None:
    malware = ("Dridex", "TrickBot", "QakBot", "Emotet", "BazarLoader")
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("#" * 64 + "\r\n# synthetic Feodo-style C2 blocklist\r\n#\r\n")
        out.write('"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"\r\n')
        for _ in range(rows):
            out.write(
                f'"2024-05-07 13:30:18","{_ip(rng)}","{rng.choice((443, 447, 8080, 4643))}",'
                f'"{rng.choice(("online", "offline"))}","2024-05-08","{rng.choice(malware)}"\r\n'
            )


def write_csv3(path: Path, rows: int, rng: random.Random) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("#" * 64 + "\r\n# synthetic MalwareBazaar-style export\r\n#\r\n")
        out.write(
            '# "first_seen_utc", "sha256_hash", "md5_hash", "sha1_hash", "reporter", "file_name", '
            '"imphash", "ssdeep"\r\n'
        )
        for i in range(rows):
            out.write(
                f'"2024-05-07 13:30:18", "{_hex(rng, 256)}", "{_hex(rng, 128)}", "{_hex(rng, 160)}", '
                f'"abuse_ch", "sample_{i}.exe", "{_hex(rng, 128)}", '
                f'"3072:{_hex(rng, 64)}:{_hex(rng, 32)}"\r\n'
            )


def _pattern(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.40:
        return f"[file:hashes.'SHA-256' = '{_hex(rng, 256)}']"
    if roll < 0.55:
        return f"[file:hashes.MD5 = '{_hex(rng, 128)}']"
    if roll < 0.75:
        return f"[ipv4-addr:value = '{_ip(rng)}']"
    if roll < 0.90:
        return f"[domain-name:value = '{_domain(rng)}']"
    if roll < 0.95:
        return f"[url:value = 'http://{_domain(rng)}/gate.php']"
    return f"[domain-name:value = '{_domain(rng)}' OR ipv4-addr:value = '{_ip(rng)}']"


def write_stix(path: Path, indicators: int, rng: random.Random) -> None:
    identity = "identity--" + "0" * 8 + "-0000-4000-8000-" + "0" * 12
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": [\n')
        out.write(json.dumps({"type": "identity", "spec_version": "2.1", "id": identity, "name": "bench"}))
        for i in range(indicators):
            obj = {
                "type": "indicator",
                "spec_version": "2.1",
                "id": f"indicator--{i:08x}-0000-4000-8000-{rng.getrandbits(48):012x}",
                "created": "2024-05-07T13:30:18.000Z",
                "modified": "2024-05-07T13:30:18.000Z",
                "name": f"Synthetic indicator {i}",
                "indicator_types": ["malicious-activity"],
                "pattern": _pattern(rng),
                "pattern_type": "stix",
                "valid_from": "2024-05-07T13:30:18Z",
                "created_by_ref": identity,
            }
            out.write(",\n" + json.dumps(obj))
        out.write("\n]}\n")


WRITERS: dict[str, Callable[[Path, int, random.Random], None]] = {
    "list": write_list,
    "csv": write_csv,
    "csv3": write_csv3,
    "stix": write_stix,
}


def write_long_line(path: Path, size: int, rng: random.Random) -> None:
    """A digest, a line of ``size`` bytes of one hex digit (no line end in it), two more digests;
    gzipped when ``path`` ends in ``.gz`` (1 GiB of one byte gzips to ~1 MB: the bomb's shape)."""
    unit = b"f" * 32768
    with gzip.open(path, "wb", compresslevel=6) if path.suffix == ".gz" else path.open("wb") as out:
        out.write(f"{_hex(rng, 128)}\n".encode())
        for _ in range(size // len(unit)):
            out.write(unit)
        out.write(unit[: size % len(unit)])
        out.write(f"\n{_hex(rng, 256)}\n{_hex(rng, 160)}\n".encode())


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(path: str, baseline: str | None, no_cap: bool) -> None:
    """Parse one feed; print one JSON line of counts, times and memory (run in a fresh process)."""
    if baseline:
        sys.path.insert(0, baseline)  # that revision's feeds package, not this one
    from feeds import Expired, FeedError, Indicator, Rejected, Skipped, read_feed  # noqa: PLC0415 - after the path
    from feeds.options import FeedOptions  # noqa: PLC0415

    options = FeedOptions(max_gzip_ratio=None) if no_cap else None  # type: ignore[call-arg, unused-ignore]
    baseline_rss = _rss_mb()
    counts = {"indicators": 0, "rejected": 0, "expired": 0, "skipped": 0}
    refused = None
    start, cpu = time.perf_counter(), time.process_time()
    try:
        for record in read_feed(path, options=options):
            if type(record) is Indicator:
                counts["indicators"] += 1
            elif isinstance(record, Rejected):
                counts["rejected"] += 1
            elif isinstance(record, Expired):
                counts["expired"] += 1
            elif isinstance(record, Skipped):
                counts["skipped"] += 1
    except FeedError as exc:
        refused = str(exc)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({**counts, "refused": refused, "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "baseline_rss_mb": baseline_rss, "peak_rss_mb": _rss_mb()}))  # fmt: skip


def _run_child(path: Path, baseline: Path | None, no_cap: bool = False) -> dict[str, Any] | None:
    """One child run; None when it took longer than ``BASELINE_TIMEOUT_S`` (the old long-line reader)."""
    argv = [sys.executable, __file__, "--child", str(path)]
    argv += ["--child-baseline", str(baseline)] if baseline else []
    argv += ["--child-no-cap"] if no_cap else []
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=BASELINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _summary(runs: list[dict[str, Any]], units: int) -> dict[str, Any]:
    """Counts of the first run; the median time and its range; rates from the medians; the top RSS."""
    seconds = [r["seconds"] for r in runs]
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    median = statistics.median(seconds)
    first = runs[0]
    return {
        **{k: first[k] for k in ("indicators", "rejected", "expired", "skipped", "refused")},
        "runs": len(runs),
        "seconds": round(median, 3),
        "seconds_range": [round(min(seconds), 3), round(max(seconds), 3)],
        "cpu_seconds": round(cpu, 3),
        "indicators_per_s": round(first["indicators"] / median),
        "rows_per_s": round(units / median),
        "cpu_indicators_per_s": round(first["indicators"] / cpu),
        "cpu_rows_per_s": round(units / cpu),
        "baseline_rss_mb": round(max(r["baseline_rss_mb"] for r in runs), 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
    }


def measure(
    fmt: str, size: int, path: Path, repeat: int, baseline: Path | None, no_cap: bool = False
) -> dict[str, Any]:
    """``repeat`` runs of the child on ``path`` (alternating with the baseline's, when given)."""
    new: list[dict[str, Any]] = []
    old: list[dict[str, Any] | None] = []
    for _ in range(repeat):
        run = _run_child(path, None, no_cap)
        assert run is not None
        new.append(run)
        if baseline is not None:
            old.append(_run_child(path, baseline))
    units = 3 if fmt.startswith("long_line") else size  # lines, rows or indicator objects
    row = {
        "format": fmt,
        "size": size,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        **_summary(new, units),
    }
    if fmt.startswith("long_line"):
        row["text_mb_per_s"] = round(size / 1e6 / row["seconds"])  # the line's bytes, inflated
    if no_cap:
        row["gzip_ratio_cap"] = False
    if baseline is not None:
        finished = [r for r in old if r is not None]
        if finished:
            before = _summary(finished, units)
            row["old"] = before
            row["speed_new_over_old"] = round(before["seconds"] / row["seconds"], 2)
            row["rss_new_over_old"] = round(row["peak_rss_mb"] / before["peak_rss_mb"], 2)
        else:
            row["old"] = {"timed_out_after_s": BASELINE_TIMEOUT_S}
    return row


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    notes = []
    for row in results:
        if row["format"] not in GOALS or row["size"] != FULL_SIZES[row["format"]]:
            continue
        key, goal, text = GOALS[row["format"]]
        cpu = row[f"cpu_{key}"]
        verdict = "met" if row[key] >= goal else "met on CPU time only" if cpu >= goal else "NOT met"
        notes.append(f"{row['format']}: {row[key]:,} {key.replace('_per_s', '/s')} wall-clock "
                     f"({cpu:,} per CPU second) — goal {text}: {verdict}")  # fmt: skip
        if "speed_new_over_old" in row:
            ratio = row["speed_new_over_old"]
            notes.append(f"{row['format']}: {ratio}x the baseline's speed (median), peak RSS "
                         f"{row['peak_rss_mb']} vs {row['old']['peak_rss_mb']} MB")  # fmt: skip
    for fmt in ("list", "csv", "csv3"):
        sizes = sorted((r for r in results if r["format"] == fmt), key=lambda r: r["size"])
        if len(sizes) == 2:
            small, big = sizes
            grown = big["peak_rss_mb"] - small["peak_rss_mb"]
            flat = grown <= max(5.0, 0.05 * small["peak_rss_mb"])
            notes.append(f"{fmt}: peak RSS {small['peak_rss_mb']} MB at {small['size']:,} vs "
                         f"{big['peak_rss_mb']} MB at {big['size']:,} — flat memory: "
                         f"{'met' if flat else 'NOT met'}")  # fmt: skip
    for row in results:
        rss, fmt = row["peak_rss_mb"], row["format"]
        if fmt == "stix" and row["size"] == FULL_SIZES["stix"]:
            met = "met" if rss <= STIX_RSS_GOAL_MB else "NOT met"
            notes.append(
                f"stix: peak RSS {rss} MB for {row['size']:,} indicators — goal <= {STIX_RSS_GOAL_MB} MB: "
                f"{met}"
            )
        if fmt == "stix_big":
            ok = rss < BIG_RSS_GOAL_MB and row["indicators_per_s"] >= BIG_STIX_RATE_GOAL
            notes.append(f"stix_big: {row['size']:,} indicators ({row['file_mb']:,} MB) at "
                         f"{row['indicators_per_s']:,}/s, peak RSS {rss} MB — goal < {BIG_RSS_GOAL_MB} MB "
                         f"and >= {BIG_STIX_RATE_GOAL:,}/s: {'met' if ok else 'NOT met'}")  # fmt: skip
        if fmt == "long_line_gz":
            how = "without the gzip ratio cap" if row.get("gzip_ratio_cap") is False else "with the cap"
            what = (
                f"refused after {row['seconds']} s"
                if row["refused"]
                else (
                    f"read in {row['seconds']} s: {row['indicators']} indicators, {row['rejected']} rejected"
                )
            )
            notes.append(f"long_line_gz {how}: {what}, peak RSS {rss} MB — goal < {BIG_RSS_GOAL_MB} MB: "
                         f"{'met' if rss < BIG_RSS_GOAL_MB else 'NOT met'}")  # fmt: skip
        if fmt == "long_line" and "speed_new_over_old" in row:
            old = row["old"]
            notes.append(f"long_line ({row['size'] >> 20} MiB): {row['seconds']} s and {rss} MB; "
                         f"the baseline {old['seconds']} s and {old['peak_rss_mb']} MB")  # fmt: skip
    return notes


def _versus(row: dict[str, Any]) -> str:
    if "speed_new_over_old" in row:
        return f"{row['speed_new_over_old']}x, {row['rss_new_over_old']}x"
    return "timed out" if "old" in row else "-"


def table(results: list[dict[str, Any]]) -> str:
    """Two markdown tables: the ordinary feeds, then the hostile and huge ones."""
    lines = [
        "| feed | lines/rows/objects | file MB | indicators | seconds, median [range] | indicators/s "
        "| rows/s | per CPU second: indicators (rows) | peak RSS MB (before parsing) | new/old: speed, RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in results if r["format"] in FULL):
        low, high = r["seconds_range"]
        lines.append(
            f"| {r['format']} | {r['size']:,} | {r['file_mb']} | {r['indicators']:,} "
            f"| {r['seconds']} [{low}-{high}] | {r['indicators_per_s']:,} | {r['rows_per_s']:,} "
            f"| {r['cpu_indicators_per_s']:,} ({r['cpu_rows_per_s']:,}) "
            f"| {r['peak_rss_mb']} ({r['baseline_rss_mb']}) | {_versus(r)} |"
        )
    big = [r for r in results if r["format"] not in FULL]
    if big:
        lines += [
            "",
            "| feed | size | file MB | indicators, rejected | seconds | rate | peak RSS MB (before parsing) "
            "| new/old: speed, RSS |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for r in big:
        name = r["format"] + (" (no ratio cap)" if r.get("gzip_ratio_cap") is False else "")
        name += " — refused" if r["refused"] else ""
        size = f"{r['size'] / 2**20:,.0f} MiB line" if "text_mb_per_s" in r else f"{r['size']:,} objects"
        if r["refused"]:
            rate = "-"  # it stopped early: no rate to speak of
        elif "text_mb_per_s" in r:
            rate = f"{r['text_mb_per_s']:,} MB/s"
        else:
            rate = f"{r['indicators_per_s']:,} indicators/s"
        lines.append(
            f"| {name} | {size} | {r['file_mb']:,} | {r['indicators']:,}, {r['rejected']:,} | {r['seconds']} "
            f"| {rate} | {r['peak_rss_mb']} ({r['baseline_rss_mb']}) | {_versus(r)} |"
        )
    return "\n".join(lines)


FULL_SIZES = dict(FULL)


def _resolve(revision: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision], check=True, capture_output=True
    )
    return done.stdout.decode().strip()


def _checkout(revision: str, where: Path) -> Path:
    """The tree of ``revision`` in ``where`` (a detached worktree; removed by ``_drop``)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), revision],
                   check=True, capture_output=True)  # fmt: skip
    return where


def _drop(where: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False)


def _suffix(fmt: str) -> str:
    return {
        "stix": ".json",
        "stix_big": ".json",
        "csv": ".csv",
        "csv3": ".csv",
        "long_line_gz": ".txt.gz",
    }.get(fmt, ".txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="feeds 10x smaller, the big ones 16x (a smoke run)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per ordinary feed (median and range)")
    parser.add_argument("--baseline", metavar="REV", help="also run the feeds package of git revision REV")
    parser.add_argument("--baseline-big", action="store_true", help="...on the big bundle too (GBs of RAM)")
    parser.add_argument("--skip-big", action="store_true", help="only the ordinary feeds")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-baseline", help=argparse.SUPPRESS)
    parser.add_argument("--child-no-cap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.child_baseline, args.child_no_cap)
        return
    scale, big_scale = (10, 16) if args.quick else (1, 1)
    for fmt in FULL_SIZES:
        FULL_SIZES[fmt] = FULL[fmt] // scale
    plan: list[tuple[str, int, int, bool, bool]] = []  # format, size, repeat, with baseline, no gzip cap
    for fmt in ("list", "csv", "csv3", "stix"):
        plan.append((fmt, FULL_SIZES[fmt], args.repeat, True, False))
        if fmt in ("list", "csv"):
            plan.append((fmt, FULL_SIZES[fmt] // 2, args.repeat, True, False))
    if not args.skip_big:
        plan.append(("long_line", BIG["long_line"] // big_scale, 1, True, False))
        plan.append(("long_line_gz", BIG["long_line_gz"] // big_scale, 1, False, False))
        plan.append(("long_line_gz", BIG["long_line_gz"] // big_scale, 1, False, True))
        plan.append(("stix_big", BIG["stix_big"] // big_scale, 1, args.baseline_big, False))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        baseline = _checkout(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        try:
            for fmt, size, repeat, compare, no_cap in plan:
                path = Path(tmp) / f"{fmt}-{size}{_suffix(fmt)}"
                if not path.exists():
                    writer = (
                        write_long_line if fmt.startswith("long_line") else WRITERS[fmt.removesuffix("_big")]
                    )
                    writer(path, size, random.Random(SEED))
                row = measure(fmt, size, path, repeat, baseline if compare else None, no_cap)
                speed = f"{row['indicators_per_s']:,} indicators/s, {row['rows_per_s']:,} rows/s"
                refused = f" (refused: {row['refused']})" if row["refused"] else ""
                print(
                    f"  {fmt} {size:,}: {speed}, peak RSS {row['peak_rss_mb']} MB{refused}", file=sys.stderr
                )
                results.append(row)
                if not (fmt == "long_line_gz" and not no_cap):  # the next row reads the same file
                    path.unlink()
        finally:
            if baseline is not None:
                _drop(baseline)
    notes = verdicts(results)
    document = {
        "benchmark": "feeds.read_feed per format (auto-detection included), one subprocess per run",
        "quick": args.quick,
        "repeat": args.repeat,
        "seed": SEED,
        "baseline": _resolve(args.baseline) if args.baseline else None,
        "note": "seconds: the median of the runs, with their range; rates from the median; cpu_* rates "
        "divide by the child's CPU time (less sensitive to other load on the machine); 'old' is the "
        "baseline revision's feeds package on the same file, runs alternating with the new one's",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "results": results,
        "verdicts": notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(table(results))
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
