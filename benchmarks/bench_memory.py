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
import tempfile
from pathlib import Path
from typing import Any

from harness import ROOT, emulator_process, run_importer, write_hash_list


def measure(base: str, feed: Path, state: Path, report: Path) -> dict[str, Any]:
    run = run_importer(base, report, str(feed), "--name", "Million", "--state", str(state))
    totals = run.report["totals"]
    return {"seconds": round(run.seconds, 1), "peak_rss_mb": round(run.peak_rss_mb, 1),
            "imported": totals["imported"], "already_present": totals["already_present"],
            "indicators_per_s": round(totals["records_read"] / run.seconds)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        feed = write_hash_list(work / "million.txt", args.lines, seed=6)
        with emulator_process() as base:
            state, report = work / "state.sqlite", work / "report.json"
            results = {
                "lines": args.lines,
                "import": measure(base, feed, state, report),
                "rerun": measure(base, feed, state, report),
                "journal_mb": round(state.stat().st_size / 2**20, 1),
            }
    results["goal"] = "under 200 MB peak RSS"
    results["met"] = all(results[run]["peak_rss_mb"] < 200 for run in ("import", "rerun"))
    print(json.dumps(results, indent=2))
    if args.lines == 1_000_000:
        (ROOT / "benchmarks" / "results" / "memory.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
