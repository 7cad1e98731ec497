"""Benchmark of the feed parsers: indicators/s and peak RSS per format, on seeded synthetic feeds.

Generates, in a temporary directory (same seed, same bytes):

- ``list``: a plain list — 85 % bare hashes (md5/sha1/sha256), 10 % ``HASH;DESC`` or
  ``HASH - file.exe``, 2 % IPs/domains/URLs, 3 % comments and blank lines;
- ``csv``: a Feodo-style CSV (quoted, ``#`` banner, header ``first_seen_utc,dst_ip,dst_port,
  c2_status,last_online,malware``): one indicator per row;
- ``csv3``: a MalwareBazaar-style CSV: three hash columns per row plus imphash/ssdeep/name;
- ``stix``: a STIX 2.1 bundle of indicators (sha256, md5, ipv4, domain, url patterns; 5 % OR
  compounds) plus a few non-indicator objects.

Lists and CSV are measured at two sizes (full and half) to show memory independent of size.
Each measurement runs ``feeds.read_feed`` (auto-detection included) in its own subprocess, so
the peak RSS (``ru_maxrss``) is that feed's alone; the child's RSS before parsing (interpreter
and imports) is reported beside it. Writes ``benchmarks/results/parse.json``; prints a table.

    python benchmarks/bench_parse.py [--quick] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "parse.json"
SEED = 20240507
FULL = {"list": 1_000_000, "csv": 1_000_000, "csv3": 1_000_000, "stix": 100_000}
GOALS = {
    "list": ("indicators_per_s", 500_000, "lists >= 500k indicators/s"),
    "csv": ("rows_per_s", 150_000, "CSV >= 150k rows/s"),
    "csv3": ("rows_per_s", 150_000, "CSV >= 150k rows/s"),
    "stix": ("indicators_per_s", 50_000, "STIX >= 50k indicators/s"),
}
STIX_RSS_GOAL_MB = 300


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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(path: str) -> None:
    """Parse one feed; print one JSON line of counts, times and memory (run in a fresh process)."""
    from feeds import Expired, Indicator, Rejected, Skipped, read_feed  # noqa: PLC0415 - only the child parses

    baseline = _rss_mb()
    counts = {"indicators": 0, "rejected": 0, "expired": 0, "skipped": 0}
    start, cpu = time.perf_counter(), time.process_time()
    for record in read_feed(path):
        if type(record) is Indicator:
            counts["indicators"] += 1
        elif isinstance(record, Rejected):
            counts["rejected"] += 1
        elif isinstance(record, Expired):
            counts["expired"] += 1
        elif isinstance(record, Skipped):
            counts["skipped"] += 1
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({**counts, "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "baseline_rss_mb": baseline, "peak_rss_mb": _rss_mb()}))  # fmt: skip


def measure(fmt: str, size: int, path: Path, repeat: int) -> dict[str, Any]:
    """Run the child ``repeat`` times on ``path``; keep the fastest run (the least disturbed)."""
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    units = size  # lines, rows or indicator objects
    return {
        "format": fmt,
        "size": size,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        **{k: best[k] for k in ("indicators", "rejected", "expired", "skipped")},
        "seconds": round(best["seconds"], 3),
        "cpu_seconds": round(best["cpu_seconds"], 3),
        "indicators_per_s": round(best["indicators"] / best["seconds"]),
        "rows_per_s": round(units / best["seconds"]),
        "cpu_indicators_per_s": round(best["indicators"] / best["cpu_seconds"]),
        "cpu_rows_per_s": round(units / best["cpu_seconds"]),
        "baseline_rss_mb": round(best["baseline_rss_mb"], 1),
        "peak_rss_mb": round(best["peak_rss_mb"], 1),
    }


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    notes = []
    for row in results:
        if row["size"] != FULL_SIZES[row["format"]]:
            continue
        key, goal, text = GOALS[row["format"]]
        cpu = row[f"cpu_{key}"]
        verdict = "met" if row[key] >= goal else "met on CPU time only" if cpu >= goal else "NOT met"
        notes.append(f"{row['format']}: {row[key]:,} {key.replace('_per_s', '/s')} wall-clock "
                     f"({cpu:,} per CPU second) — goal {text}: {verdict}")  # fmt: skip
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
        if row["format"] == "stix" and row["size"] == FULL_SIZES["stix"]:
            ok = row["peak_rss_mb"] <= STIX_RSS_GOAL_MB
            notes.append(f"stix: peak RSS {row['peak_rss_mb']} MB for {row['size']:,} indicators — goal "
                         f"<= {STIX_RSS_GOAL_MB} MB: {'met' if ok else 'NOT met'}")  # fmt: skip
    return notes


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| feed | lines/rows/objects | file MB | indicators | rejected | seconds | indicators/s "
        "| rows/s | per CPU second: indicators (rows) | peak RSS MB (before parsing) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['format']} | {r['size']:,} | {r['file_mb']} | {r['indicators']:,} | {r['rejected']:,} "
            f"| {r['seconds']} | {r['indicators_per_s']:,} | {r['rows_per_s']:,} "
            f"| {r['cpu_indicators_per_s']:,} ({r['cpu_rows_per_s']:,}) "
            f"| {r['peak_rss_mb']} ({r['baseline_rss_mb']}) |"
        )
    return "\n".join(lines)


FULL_SIZES = dict(FULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="feeds 10x smaller (a smoke run)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per feed; the fastest is kept")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    scale = 10 if args.quick else 1
    for fmt in FULL_SIZES:
        FULL_SIZES[fmt] = FULL[fmt] // scale
    plan = [(fmt, FULL_SIZES[fmt]) for fmt in ("list", "csv", "csv3", "stix")]
    plan[3:3] = [("list", FULL_SIZES["list"] // 2), ("csv", FULL_SIZES["csv"] // 2)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        for fmt, size in plan:
            path = Path(tmp) / f"{fmt}-{size}.{'json' if fmt == 'stix' else 'csv' if 'csv' in fmt else 'txt'}"
            WRITERS[fmt](path, size, random.Random(SEED))
            row = measure(fmt, size, path, args.repeat)
            speed = f"{row['indicators_per_s']:,} indicators/s, {row['rows_per_s']:,} rows/s"
            print(f"  {fmt} {size:,}: {speed}, peak RSS {row['peak_rss_mb']} MB", file=sys.stderr)
            results.append(row)
            path.unlink()
    results.sort(key=lambda r: (list(FULL).index(r["format"]), r["size"]))
    notes = verdicts(results)
    document = {
        "benchmark": "feeds.read_feed per format (auto-detection included), one subprocess per feed",
        "quick": args.quick,
        "repeat": args.repeat,
        "seed": SEED,
        "note": "seconds are wall-clock; cpu_* rates divide by the child's CPU time (less sensitive "
        "to other load on the machine)",
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
