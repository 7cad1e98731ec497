"""Benchmark of the sentinel target's pacing, end to end: ``ti-import run --target sentinel`` uploading
30,000 indicators into the emulator process, against the 100-requests-a-minute window.

Each run starts a fresh emulator process (``ti-import emulator --sentinel-window-scale S
--latency-ms L``: a "minute" of the upload window lasts ``60 * S`` seconds, every answer leaves
``L`` ms after its request arrived) and runs the CLI as a child process with a fresh state journal:
a list of 30,000 SHA-256 hashes, ``--target sentinel --window-scale S`` (the client's window
scaled alike), 100 objects a request: 300 uploads, and one for the feed's identity.

The bound: the window lets 100 uploads go at once and then 100 more each time a minute has passed
since the first of them, so ``N`` uploads need at least ``(ceil(N / 100) - 1)`` minutes (plus
one round trip). **Share of the allowed rate** = that least time / the uploads' measured time (the
report's ``duration_seconds``; the goal is ≥ 95 %). **429s** come from the emulator's count
(goal ≤ 1 % of calls: the pace is kept ahead, not discovered). Medians of the runs with ranges.

Writes ``benchmarks/results/sentinel.json``.

    python benchmarks/bench_sentinel.py [--runs 3] [--count 30000] [--scale 0.05] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, emulator_process, write_hash_list

from importer.emulator import DEMO_CLIENT, DEMO_WORKSPACE

RESULTS = ROOT / "benchmarks" / "results" / "sentinel.json"
PER_REQUEST = 100  # STIX objects per upload
PER_WINDOW = 100  # uploads per minute per app


@dataclass
class Run:
    seconds: float  # the process, start to exit
    report_seconds: float  # the report's duration_seconds
    uploads: int  # API calls, per the report
    least_seconds: float  # the least time the window allows for them
    share: float  # least_seconds / report_seconds
    throttled: int  # 429s, per the emulator
    imported: int
    held: int  # indicators in the workspace afterwards
    duplicates: int  # sentinel_duplicate_patterns


def emulator_state(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/_emulator/state", timeout=10) as answer:
        state: dict[str, Any] = json.load(answer)
        return state


def one_run(feed: Path, work: Path, scale: float, latency_ms: int, index: int) -> Run:
    with emulator_process("--sentinel-window-scale", str(scale), "--latency-ms", str(latency_ms)) as base:
        env = {
            **os.environ,
            "TI_CLIENT_ID": DEMO_CLIENT.client_id,
            "TI_CLIENT_SECRET": DEMO_CLIENT.client_secret,
            "TI_AUTH_URL": f"{base}/{DEMO_CLIENT.tenant}/oauth2/v2.0/token",
            "TI_API_URL": f"{base}/",
            "TI_WORKSPACE_ID": DEMO_WORKSPACE.workspace_id,
        }
        report = work / f"report-{index}.json"
        state_file = work / f"state-{index}.sqlite"
        command = [
            sys.executable, "-m", "importer", "run", str(feed), "--target", "sentinel",
            "--window-scale", str(scale), "--state", str(state_file), "--no-progress", "--quiet",
            "--report", str(report),
        ]  # fmt: skip
        started = time.perf_counter()
        code = subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"ti-import run exited {code}")
        state = emulator_state(base)
    data = json.loads(report.read_text())
    uploads = int(data["transport"]["requests"])
    least = (math.ceil(uploads / PER_WINDOW) - 1) * 60.0 * scale
    totals = state["totals"]
    return Run(
        seconds=round(seconds, 2),
        report_seconds=round(float(data["duration_seconds"]), 2),
        uploads=uploads,
        least_seconds=round(least, 2),
        share=round(least / float(data["duration_seconds"]), 4),
        throttled=int(state["requests_by_status"].get("429", 0)),
        imported=int(data["totals"]["imported"]),
        held=int(totals["sentinel_indicators"]),
        duplicates=int(totals["sentinel_duplicate_patterns"]),
    )


def summary(runs: list[Run]) -> dict[str, Any]:
    def median(name: str) -> dict[str, float]:
        values = [float(getattr(run, name)) for run in runs]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {
        "share_of_allowed_rate": median("share"),
        "report_seconds": median("report_seconds"),
        "process_seconds": median("seconds"),
        "throttled_share_of_calls": max(run.throttled / run.uploads for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--scale", type=float, default=0.05, help="a window's minute lasts 60 * SCALE s")
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        feed = write_hash_list(work / "hashes.txt", args.count, seed=16)
        runs = []
        for index in range(args.runs):
            run = one_run(feed, work, args.scale, args.latency_ms, index)
            print(json.dumps(asdict(run)), flush=True)
            runs.append(run)
    result = {
        "benchmark": "sentinel",
        "command": f"python benchmarks/bench_sentinel.py --runs {args.runs} --count {args.count} "
        f"--scale {args.scale} --latency-ms {args.latency_ms}",
        "count": args.count,
        "window_scale": args.scale,
        "latency_ms": args.latency_ms,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "system": platform.system()},
        "summary": summary(runs),
        "runs": [asdict(run) for run in runs],
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
