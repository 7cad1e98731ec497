"""Benchmark of the mde target's pacing, end to end: ``ti-import run --target mde`` loading a tenant's
full 15,000 indicators into the emulator process, against the sliding window's bound.

Each run starts a fresh emulator process (``ti-import emulator --latency-ms 1500``: every API answer
leaves 1.5 s after its request arrived; an empty tenant and empty rate windows) and runs the CLI as
a child process with a fresh state journal: a list of 15,000 SHA-256 hashes, ``--target mde
--batch-size 500 --workers 30``, i.e. 30 import calls. Two pacings, alternating, ``--runs`` each:

* ``window`` — this importer as it is: up to 30 import calls at once into an empty window;
* ``even`` — ``--rate 30/min`` added: one call every 2 s, the spacing the mde target used before
  it paced by the windows (the previous commit's import lane), for the before/after;
* with ``--baseline REV``, also ``REV`` itself: the same command run from a temporary git worktree
  of that revision (removed afterwards), the before as it was shipped.

The bound: everything the window allows at once goes at once, so the import takes one latency,
plus a minute for each further window it needs (none for 30 calls), plus transfer; the run itself
adds one latency for the definition's look-up (a definition it creates needs no listing). The
time reported is the process's, start to exit (Python start-up included), and the report's own
``duration_seconds``. 429s come from the emulator's count (goal ≤ 1 % of calls).
Medians of the runs with their ranges.

Writes ``benchmarks/results/mde.json`` and the ``## MDE`` section of ``benchmarks/README.md``.

    python benchmarks/bench_mde.py [--runs 3] [--latency-ms 1500] [--no-before] [--baseline REV] [--no-readme]
    python benchmarks/bench_mde.py --render   # redraw the README section from the results file
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

from harness import ROOT, emulator_process, update_readme_section, write_hash_list

from importer.emulator import DEMO_CLIENT

RESULTS = ROOT / "benchmarks" / "results" / "mde.json"
COUNT = 15_000  # the tenant's cap
BATCH = 500  # the most one import call takes
WORKERS = 30  # as many as the window allows at once
WINDOW_CALLS = 30  # import calls in any sliding minute, documented
MODES = {"window": [], "even": ["--rate", "30/min"]}


@dataclass
class Run:
    mode: str
    seconds: float  # the process, start to exit
    report_seconds: float  # the report's duration_seconds
    imported: int
    requests: int  # API calls, per the report (the token's not included)
    throttled: int  # 429s, per the emulator
    exit_code: int


def emulator_state(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/_emulator/state", timeout=10) as answer:
        state: dict[str, Any] = json.load(answer)
        return state


def one_run(mode: str, feed: Path, work: Path, latency_ms: int, index: int, tree: Path = ROOT) -> Run:
    with emulator_process("--latency-ms", str(latency_ms)) as base:
        env = {
            **os.environ,
            "TI_CLIENT_ID": DEMO_CLIENT.client_id,
            "TI_CLIENT_SECRET": DEMO_CLIENT.client_secret,
            "TI_AUTH_URL": f"{base}/{DEMO_CLIENT.tenant}/oauth2/v2.0/token",
            "TI_API_URL": f"{base}/api/",
            "PYTHONPATH": str(tree),  # the code of this tree, not the installed one
        }
        report = work / f"report-{mode}-{index}.json"
        command = [
            sys.executable, "-m", "importer", "run", str(feed), "--target", "mde",
            "--batch-size", str(BATCH), "--workers", str(WORKERS), *MODES.get(mode, []),
            "--state", str(work / f"state-{mode}-{index}.sqlite"),
            "--no-progress", "--quiet", "--report", str(report),
        ]  # fmt: skip
        started = time.perf_counter()
        code = subprocess.run(command, env=env, cwd=tree, check=False).returncode
        seconds = time.perf_counter() - started
        state = emulator_state(base)
    answer = json.loads(report.read_text())
    statuses = state["requests_by_status"]
    tenant = state["tenants"][DEMO_CLIENT.tenant]
    return Run(
        mode=mode,
        seconds=round(seconds, 3),
        report_seconds=float(answer["duration_seconds"]),
        imported=int(tenant["mde_indicators"]),
        requests=int(answer["transport"]["requests"]),
        throttled=int(statuses.get("429", 0)),
        exit_code=code,
    )


def bound_seconds(latency_ms: int, calls: int) -> float:
    """The import's floor under the window: one latency per full window, a minute between windows."""
    windows = math.ceil(calls / WINDOW_CALLS)
    return (windows - 1) * 60.0 + latency_ms / 1000


def summary(runs: list[Run], key: str) -> dict[str, float]:
    values = [getattr(r, key) for r in runs]
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}


def span(s: dict[str, float]) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]"


def section(result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    bound = result["bound_seconds"]
    run_bound = bound + latency / 1000
    baseline = result["baseline"]
    baseline_note = f"; *{baseline}*: that revision itself, from a temporary git worktree" if baseline else ""
    lines = [
        "## MDE",
        "",
        f"`python benchmarks/bench_mde.py --runs {result['runs_per_mode']} --latency-ms {latency}"
        + (f" --baseline {baseline}" if baseline else "")
        + "` — "
        f"{result['machine']['cpus']} CPUs, Python {result['machine']['python']}: `ti-import run --target "
        f"mde` (the CLI, a fresh journal) loading {COUNT:,} SHA-256 hashes in batches of {BATCH} "
        f"({math.ceil(COUNT / BATCH)} import calls) with {WORKERS} workers into a fresh emulator process "
        f"per run (`ti-import emulator --latency-ms {latency}`: every API answer {latency / 1000:g} s after "
        "its request; documented limits, real time). *window*: the importer as it is; *even*: the same "
        "with `--rate 30/min`, one call every 2 s, as the mde target paced before"
        + baseline_note
        + ". Seconds are the "
        "process's (start to exit, Python start-up included) and the report's `duration_seconds`; "
        f"medians of {result['runs_per_mode']} runs, [ranges]. The window's bound for the import: "
        f"{bound:g} s (all {math.ceil(COUNT / BATCH)} calls fit one window: one latency) plus transfer; "
        f"the run's: {run_bound:g} s, one more latency for the definition's look-up before it (a "
        "definition created in the run needs no listing).",
        "",
        "| pacing | seconds (process) | seconds (report) | report ÷ run's bound | API calls a run | imported "
        "| 429s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, stats in result["modes"].items():
        lines.append(
            f"| {mode} | {span(stats['seconds'])} | {span(stats['report_seconds'])} | "
            f"{stats['report_seconds']['median'] / run_bound:.2f} | {stats['requests']} | "
            f"{stats['imported']:,} | {stats['throttled']} |"
        )
    lines += ["", "| goal | measured | met |", "|---|---:|:-:|"]
    met = {True: "yes", False: "NO", None: "-"}
    lines += [f"| {g['goal']} | {g['value']} | {met[g['met']]} |" for g in result["goals"]]
    return "\n".join(lines) + "\n"


def goals(modes: dict[str, dict[str, Any]], runs: list[Run]) -> list[dict[str, Any]]:
    window = modes["window"]
    calls = sum(r.requests for r in runs if r.mode == "window")
    throttled = sum(r.throttled for r in runs if r.mode == "window")
    checks = [
        {
            "goal": f"{COUNT:,} at 1.5 s a call in ≤ 8 s (process, median)",
            "value": f"{window['seconds']['median']:.2f} s",
            "met": window["seconds"]["median"] <= 8.0,
        },
        {
            "goal": "429s ≤ 1 % of calls (window, all runs)",
            "value": f"{throttled} of {calls}",
            "met": throttled <= 0.01 * calls,
        },
        {
            "goal": "every run imported all and exited 0",
            "value": ", ".join(f"{r.imported:,}/{r.exit_code}" for r in runs if r.mode == "window"),
            "met": all(r.imported == COUNT and r.exit_code == 0 for r in runs),
        },
    ]
    for mode in modes:
        if mode != "window":
            ratio = modes[mode]["seconds"]["median"] / window["seconds"]["median"]
            goal = f"(for reference) {mode} ÷ window, process"
            checks.append({"goal": goal, "value": f"{ratio:.1f}x", "met": None})
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per pacing (default 3)")
    parser.add_argument("--latency-ms", type=int, default=1500, help="the emulator's latency (default 1500)")
    parser.add_argument("--no-before", action="store_true", help="skip the even-spacing runs (~1 min each)")
    parser.add_argument("--baseline", metavar="REV", help="also run this git revision (a temporary worktree)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    parser.add_argument("--render", action="store_true", help="only redraw the README section from --output")
    args = parser.parse_args()
    if args.render:
        update_readme_section("MDE", section(json.loads(args.output.read_text())))
        return 0
    modes = ["window"] if args.no_before else ["window", "even"]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-mde-") as temporary:
        work = Path(temporary)
        feed = write_hash_list(work / "hashes.txt", COUNT, seed=15)
        trees = {mode: ROOT for mode in modes}
        if args.baseline:
            baseline = work / "baseline"
            git = ["git", "-C", str(ROOT)]
            subprocess.run([*git, "worktree", "add", "--detach", str(baseline), args.baseline], check=True)
            modes.append(args.baseline)
            trees[args.baseline] = baseline
        try:
            for index in range(args.runs):
                for mode in modes:  # alternating, so a slow spell of the machine hits each alike
                    run = one_run(mode, feed, work, args.latency_ms, index, trees[mode])
                    print(json.dumps(asdict(run)), flush=True)
                    runs.append(run)
        finally:
            if args.baseline:
                subprocess.run([*git, "worktree", "remove", "--force", str(baseline)], check=True)
    by_mode = {
        mode: {
            "seconds": summary([r for r in runs if r.mode == mode], "seconds"),
            "report_seconds": summary([r for r in runs if r.mode == mode], "report_seconds"),
            "imported": min(r.imported for r in runs if r.mode == mode),
            "throttled": sum(r.throttled for r in runs if r.mode == mode),
            "requests": max(r.requests for r in runs if r.mode == mode),
        }
        for mode in modes
    }
    result = {
        "latency_ms": args.latency_ms,
        "count": COUNT,
        "batch": BATCH,
        "workers": WORKERS,
        "runs_per_mode": args.runs,
        "baseline": args.baseline,
        "bound_seconds": bound_seconds(args.latency_ms, math.ceil(COUNT / BATCH)),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "modes": by_mode,
        "runs": [asdict(r) for r in runs],
        "goals": goals(by_mode, runs),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    text = section(result)  # (``--render`` re-draws it from a results file, without running)
    print(text)
    if not args.no_readme:
        update_readme_section("MDE", text)
    return 0 if all(g["met"] is not False for g in result["goals"]) else 1


if __name__ == "__main__":
    sys.exit(main())
