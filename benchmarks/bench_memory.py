"""Peak RSS of ``ti-import run`` with the state journal on a 1,000,000-line list: import, then rerun.

The emulator runs in its own process; the importer is a child process whose peak RSS comes from
``wait4``. The first run imports every line into a new alert definition, committing each batch
to the journal; the rerun answers "already present" from the journal alone (no listing) and
sends nothing. Goal (issue 6): under 200 MB peak RSS. Results: ``benchmarks/results/memory.json``.

    python benchmarks/bench_memory.py [--lines N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID, SECRET, TENANT = "ti-importer-demo", "demo-secret-not-for-production", "contoso-demo"


def write_list(path: Path, count: int, seed: int = 6) -> Path:
    rng = random.Random(seed)
    with path.open("w") as out:
        for start in range(0, count, 10_000):
            out.write("".join(f"{rng.getrandbits(256):064x}\n" for _ in range(min(10_000, count - start))))
    return path


def run_importer(base: str, feed: Path, state: Path, report: Path) -> dict[str, Any]:
    env = {**os.environ, "TI_CLIENT_ID": CLIENT_ID, "TI_CLIENT_SECRET": SECRET,
           "TI_AUTH_URL": f"{base}/{TENANT}/oauth2/token", "TI_API_URL": f"{base}/V1.0/"}  # fmt: skip
    command = [sys.executable, "-m", "importer", "run", str(feed), "--name", "Million", "--no-progress",
               "--quiet", "--state", str(state), "--report", str(report)]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"ti-import run exited {code}")
    totals = json.loads(report.read_text())["totals"]
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "imported": totals["imported"], "already_present": totals["already_present"],
            "indicators_per_s": round(totals["records_read"] / seconds)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        feed = write_list(work / "million.txt", args.lines)
        emulator = subprocess.Popen([sys.executable, "-m", "importer", "emulator", "--port", "0"],
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
        try:
            assert emulator.stdout is not None
            match = re.search(r"listening on (http://\S+)", emulator.stdout.readline())
            if match is None:
                raise RuntimeError("the emulator did not start")
            base = match.group(1)
            state, report = work / "state.sqlite", work / "report.json"
            results = {
                "lines": args.lines,
                "import": run_importer(base, feed, state, report),
                "rerun": run_importer(base, feed, state, report),
                "journal_mb": round(state.stat().st_size / 2**20, 1),
            }
        finally:
            emulator.terminate()
            emulator.wait(10)
    results["goal"] = "under 200 MB peak RSS"
    results["met"] = all(results[run]["peak_rss_mb"] < 200 for run in ("import", "rerun"))
    print(json.dumps(results, indent=2))
    if args.lines == 1_000_000:
        (ROOT / "benchmarks" / "results" / "memory.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
