"""Peak RSS of ``ti-import run`` on big hash lists (1 M and 10 M lines), without and with the journal.

The emulator runs in its own process; the importer is a child process whose peak RSS comes from
``wait4`` and whose CPU time is the growth of ``RUSAGE_CHILDREN`` across the run. Each size runs
``--runs`` times with ``--no-state`` into a new alert definition each time, so the feed's own
duplicate filter (``SeenSet``) is all that grows with the feed; with ``--state`` (sizes in
``--state-lines``) the first run imports every line, committing each batch to the journal, and the
rerun answers "already present" from the journal alone. Figures are medians with their range.

It also times ``SeenSet.add`` in process against the design it replaced (a Python set of 64-bit
hashes), for new and for repeated indicators: the filter is on every indicator's path.

Goals (issue 15): a 10 M-line import under 250 MB peak RSS, 1 M under 150 MB. Results:
``benchmarks/results/memory.json`` and the *Memory* section of ``benchmarks/README.md``.

    python benchmarks/bench_memory.py [--lines 1000000 10000000] [--runs 3] [--big-runs N]
        [--state-lines 1000000]
        [--state-runs 3] [--add-count 1000000] [--before FILE] [--output FILE] [--no-readme]

``--before FILE`` puts another revision's results (this script's JSON, e.g. run from a checkout of
that revision with ``--output``) beside these in the README section.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ROOT, emulator_process, run_importer, update_readme_section, write_hash_list

from feeds.model import Kind
from importer.pipeline.present import SeenSet

RESULTS = ROOT / "benchmarks" / "results" / "memory.json"
GOALS_MB = {1_000_000: 150, 10_000_000: 250}


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    """The median of ``values`` and their range, as the results and the README give them."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "runs": [round(v, digits) for v in values]}  # fmt: skip


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(base: str, feed: Path, report: Path, name: str, *state: str) -> dict[str, Any]:
    cpu = children_cpu()
    run = run_importer(base, report, str(feed), "--name", name, *(state or ("--no-state",)))
    cpu = children_cpu() - cpu  # the importer's alone: the emulator is not reaped before the end
    totals = run.report["totals"]
    read = totals["records_read"]
    return {"seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb, "cpu_us_per_indicator": cpu / read * 1e6,
            "indicators_per_s": read / run.seconds, "imported": totals["imported"],
            "already_present": totals["already_present"]}  # fmt: skip


def reset(base: str) -> None:
    """Empty the emulator: ten million stored indicators would outlast the harness's 10 s to stop it."""
    request = urllib.request.Request(f"{base}/_emulator/reset", method="POST")
    with urllib.request.urlopen(request, timeout=600):
        pass


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "peak_rss_mb": spread([r["peak_rss_mb"] for r in runs]),
        "seconds": spread([r["seconds"] for r in runs]),
        "indicators_per_s": spread([r["indicators_per_s"] for r in runs], 0),
        "cpu_us_per_indicator": spread([r["cpu_us_per_indicator"] for r in runs], 2),
        "imported": [r["imported"] for r in runs],
        "already_present": [r["already_present"] for r in runs],
    }


class SetOfHashes:
    """The filter before issue 15: a Python set of the 64-bit ``hash`` of ``(kind, value)``."""

    def __init__(self) -> None:
        self._keys: set[int] = set()

    def add(self, kind: Kind, value: str) -> bool:
        key = hash((kind, value))
        if key in self._keys:
            return False
        self._keys.add(key)
        return True


def add_cost(count: int, repeats: int = 3) -> dict[str, Any]:
    """ns per ``add`` of ``count`` new indicators, then of ``count // 4`` repeats, process CPU time;
    fresh strings every time (a feed's strings have not been hashed before they are added)."""
    designs: dict[str, Callable[[], Any]] = {"set_of_hashes": SetOfHashes, "seen_set": SeenSet}
    found: dict[str, dict[str, list[float]]] = {name: {"new": [], "duplicate": []} for name in designs}
    for repeat in range(repeats):
        for name, make in designs.items():  # interleaved, so drift on a shared machine hits both
            rng = random.Random(repeat)
            values = [f"{rng.getrandbits(256):064x}" for _ in range(count)]
            again = [value[:32] + value[32:] for value in values[: count // 4]]  # equal, not the same str
            gc.collect()
            add = make().add
            started = time.process_time()
            for value in values:
                add(Kind.SHA256, value)
            middle = time.process_time()
            for value in again:
                add(Kind.SHA256, value)
            ended = time.process_time()
            found[name]["new"].append((middle - started) / count * 1e9)
            found[name]["duplicate"].append((ended - middle) / len(again) * 1e9)
    return {
        "count": count,
        **{name: {k: spread(v, 0) for k, v in cases.items()} for name, cases in found.items()},
    }


def measure(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The runs, saved after each (a long run cut short keeps what it measured)."""
    cpus = len(os.sched_getaffinity(0))
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}",
        "runs": args.runs,
        "no_state": {},
        "state": {},
    }
    with tempfile.TemporaryDirectory() as tmp, emulator_process() as base:
        work = Path(tmp)
        report = work / "report.json"
        for lines in sorted(set(args.lines) | set(args.state_lines)):
            feed = write_hash_list(work / f"list-{lines}.txt", lines, seed=6)  # a smaller list: a prefix
            if lines in args.lines:
                count = args.runs if lines < 5_000_000 or args.big_runs is None else args.big_runs
                runs = []
                for i in range(count):
                    runs.append(one_run(base, feed, report, f"Memory {lines} {i}"))
                    reset(base)
                    results["no_state"][str(lines)] = summarise(runs)
                    save(results)
                print(lines, "no-state", results["no_state"][str(lines)]["peak_rss_mb"], flush=True)
            if lines in args.state_lines:
                imports, reruns, journal_mb = [], [], []
                for i in range(args.state_runs):
                    state = work / f"state-{lines}-{i}.sqlite"
                    name = f"Memory state {lines} {i}"
                    imports.append(one_run(base, feed, report, name, "--state", str(state)))
                    reruns.append(one_run(base, feed, report, name, "--state", str(state)))
                    journal_mb.append(state.stat().st_size / 2**20)
                    state.unlink()
                    reset(base)
                    results["state"][str(lines)] = {"import": summarise(imports), "rerun": summarise(reruns),
                                                    "journal_mb": spread(journal_mb)}  # fmt: skip
                    save(results)
                print(lines, "state", results["state"][str(lines)]["import"]["peak_rss_mb"], flush=True)
            feed.unlink()
    if args.add_count:
        results["add_ns"] = add_cost(args.add_count)
    return results


def goals(results: dict[str, Any]) -> dict[str, bool | None]:
    return {
        f"{lines:,}-line list, --no-state: peak RSS under {mb} MB": (
            None
            if str(lines) not in results["no_state"]
            else results["no_state"][str(lines)]["peak_rss_mb"]["max"] < mb
        )
        for lines, mb in GOALS_MB.items()
    }


def cell(figure: dict[str, Any] | None, digits: int = 1) -> str:
    if figure is None:
        return "-"
    fmt = f"{{:,.{digits}f}}"
    if len(figure["runs"]) == 1:
        return f"{fmt.format(figure['median'])} (1 run)"
    return f"{fmt.format(figure['median'])} [{fmt.format(figure['min'])}-{fmt.format(figure['max'])}]"


def section(results: dict[str, Any], before: dict[str, Any] | None, command: str) -> str:
    rows = [
        "## Memory",
        "",
        f"`{command}` — {results['machine']}; the emulator in its own process; each figure the median "
        "[min-max] of its runs (listed in `results/memory.json`); CPU is the importer "
        "process's user + system time per indicator read. Peak RSS is the importer's (`wait4`).",
        "",
        "| revision | run | lines | peak RSS (MB) | seconds | indicators/s | CPU µs per indicator |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, res in (("before (set of hashes)", before), ("this (`SeenSet` table)", results)):
        if res is None:
            continue
        for lines, fig in res.get("no_state", {}).items():
            rows.append(f"| {label} | import, `--no-state` | {int(lines):,} | {cell(fig['peak_rss_mb'])} | "
                        f"{cell(fig['seconds'])} | {cell(fig['indicators_per_s'], 0)} | "
                        f"{cell(fig.get('cpu_us_per_indicator'), 2)} |")  # fmt: skip
        for lines, both in res.get("state", {}).items():
            for step in ("import", "rerun"):
                fig = both[step]
                rows.append(f"| {label} | {step}, `--state` | {int(lines):,} | {cell(fig['peak_rss_mb'])} | "
                            f"{cell(fig['seconds'])} | {cell(fig['indicators_per_s'], 0)} | "
                            f"{cell(fig.get('cpu_us_per_indicator'), 2)} |")  # fmt: skip
    if before is not None and "note" in before:
        rows += ["", before["note"]]
    if "add_ns" in results:
        add = results["add_ns"]
        rows += ["", f"`add` alone, in process, {add['count']:,} new indicators then a quarter of them again "
                 "(ns per call, process CPU time, median [min-max] of 3, the two designs interleaved):", "",
                 "| design | new | duplicate |", "|---|---:|---:|"]  # fmt: skip
        for name, label in (("set_of_hashes", "set of hashes (before)"), ("seen_set", "`SeenSet` table")):
            rows.append(f"| {label} | {cell(add[name]['new'], 0)} | {cell(add[name]['duplicate'], 0)} |")
    rows += ["", "| goal | met |", "|---|:-:|"]
    rows += [
        f"| {goal} | {'-' if met is None else 'yes' if met else 'no'} |"
        for goal, met in results["goals"].items()
    ]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-runs", type=int, help="runs for lists of 5 M lines or more (default: --runs)")
    parser.add_argument("--state-lines", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--state-runs", type=int, default=3)
    parser.add_argument("--add-count", type=int, default=1_000_000, help="0: skip the in-process add timing")
    parser.add_argument("--before", type=Path, help="another revision's results, shown beside these")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    before = json.loads(args.before.read_text()) if args.before else None

    def save(results: dict[str, Any]) -> None:
        results["goals"] = goals(results)
        if before is not None:
            results["before"] = before
        args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    results = measure(args, save)
    save(results)
    print(json.dumps(results["goals"], indent=2))
    if not args.no_readme:
        command = " ".join(["python benchmarks/bench_memory.py", *sys.argv[1:]])
        update_readme_section("Memory", section(results, before, command))


if __name__ == "__main__":
    main()
