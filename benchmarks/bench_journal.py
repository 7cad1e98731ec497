"""Benchmark of the state journal: a million-indicator import and its rerun, in batches of 500.

Phases, each over the same seeded synthetic keys (70 % sha256, 20 % ipv4, 10 % domains):

- ``import``: a first run — ``present`` (nothing found) then ``record_imported`` per batch;
- ``rerun``:  the next night — ``present`` (everything found) then ``mark_seen`` per batch;
- ``stale``:  mirror mode's scan of the whole definition after the rerun (finds nothing);
- ``mirror``: a third run whose feed lost 10 %: present/mark_seen, then ``stale`` + ``forget_keys``.

Each run is its own process (a fresh journal, its own peak RSS), ``--runs`` of them (default 3);
the result is each figure's median with its range [min, max], wall and CPU (the process's user +
system time) per phase, and the load average before and after (the machine may be shared).
Writes ``benchmarks/results/journal.json``. Keys are generated batch by batch, so the RSS is the
journal's, not the benchmark's data.

    python benchmarks/bench_journal.py [--runs 3] [--count 1000000] [--batch 500] [--state FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from feeds.model import Kind
from importer.state.journal import Journal

RESULTS = Path(__file__).resolve().parent / "results" / "journal.json"
DEFINITION = "bench-definition"

Phases = dict[str, dict[str, float]]  # phase name -> rows, seconds, cpu_seconds, rows_per_s


def keys(count: int, batch: int, seed: int) -> Iterator[list[tuple[Kind, str]]]:
    """``count`` distinct-enough synthetic keys in batches (same seed, same keys)."""
    rng = random.Random(seed)
    for start in range(0, count, batch):
        out: list[tuple[Kind, str]] = []
        for i in range(start, min(start + batch, count)):
            roll = rng.random()
            if roll < 0.7:
                out.append((Kind.SHA256, rng.randbytes(32).hex()))
            elif roll < 0.9:
                out.append((Kind.IPV4, f"{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}.{rng.randrange(256)}"))
            else:
                out.append((Kind.DOMAIN, f"h{rng.randbytes(6).hex()}.example{i % 97}.com"))
        yield out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextlib.contextmanager
def timed(phases: Phases, name: str, rows: int) -> Iterator[None]:
    """Time the block as phase ``name`` over ``rows`` rows: noted in ``phases`` and printed."""
    started, cpu = time.perf_counter(), time.process_time()
    yield
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    phases[name] = {
        "rows": rows,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "rows_per_s": round(rows / seconds),
    }
    print(
        f"{name:>8}: {rows:>9,} rows in {seconds:6.2f} s = {rows / seconds:>10,.0f} rows/s "
        f"(peak RSS {peak_rss_mib():.0f} MiB)",
        flush=True,
    )


def import_phase(journal: Journal, chunks: Iterable[list[tuple[Kind, str]]], run_id: int) -> None:
    """A first run: each batch asked ``present``, and what is new recorded as imported."""
    remote = 0
    for chunk in chunks:
        held = journal.present(DEFINITION, chunk)
        new = [
            (kind, value, str(remote + n))
            for n, (kind, value) in enumerate(chunk)
            if (kind, value) not in held
        ]
        remote += len(new)
        journal.record_imported(DEFINITION, new, run_id)


def rerun_phase(journal: Journal, chunks: Iterable[list[tuple[Kind, str]]], run_id: int) -> int:
    """The next night: each batch asked ``present`` and marked seen; returns how many were found."""
    found = 0
    for chunk in chunks:
        held = journal.present(DEFINITION, chunk)
        found += len(held)
        journal.mark_seen(DEFINITION, list(held), run_id)
    return found


def mirror_phase(journal: Journal, chunks: Iterable[list[tuple[Kind, str]]], run_id: int, batch: int) -> int:
    """A night whose feed lost a tenth of its batches, in mirror mode; returns how many were forgotten."""
    for n, chunk in enumerate(chunks):
        if n % 10 == 9:
            continue  # this night's feed lost a tenth of its lines
        journal.mark_seen(DEFINITION, list(journal.present(DEFINITION, chunk)), run_id)
    # By key, as mirror mode forgets what the target deleted (remote ids are not indexed).
    doomed: list[tuple[Kind, str]] = []
    forgotten = 0
    for kind, value, _remote_id in journal.stale(DEFINITION, run_id):
        doomed.append((kind, value))
        if len(doomed) == batch:
            journal.forget_keys(DEFINITION, doomed)
            forgotten += len(doomed)
            doomed = []
    journal.forget_keys(DEFINITION, doomed)
    return forgotten + len(doomed)


def run(count: int, batch: int, state: Path, seed: int) -> dict[str, Any]:
    """The four phases on one journal at ``state``; returns what ``main`` writes as the result."""
    phases: Phases = {}
    # ``begin_run`` and ``count`` (each merges the log) stay outside the timed blocks, as in the
    # published results: the phases stay comparable with them.
    with Journal.open(state, target="ti", tenant="bench https://api.example client") as journal:
        run_id = journal.begin_run()
        with timed(phases, "import", count):
            import_phase(journal, keys(count, batch, seed), run_id)
        stored = journal.count(DEFINITION)

        run_id = journal.begin_run()
        with timed(phases, "rerun", count):
            found = rerun_phase(journal, keys(count, batch, seed), run_id)

        with timed(phases, "stale", stored):
            stale = sum(1 for _ in journal.stale(DEFINITION, run_id))

        run_id = journal.begin_run()
        with timed(phases, "mirror", count):
            forgotten = mirror_phase(journal, keys(count, batch, seed), run_id, batch)
        remaining = journal.count(DEFINITION)

    counts = {
        "stored": stored,
        "found_on_rerun": found,
        "stale_after_rerun": stale,
        "forgotten_in_mirror": forgotten,
        "remaining_after_mirror": remaining,
    }
    return summary(count, batch, seed, state, counts, phases)


def summary(
    count: int, batch: int, seed: int, state: Path, counts: dict[str, int], phases: Phases
) -> dict[str, Any]:
    """The result: parameters, counts, phases, totals, peak RSS, file size and the platform."""
    total = sum(phases[name]["seconds"] for name in ("import", "rerun"))
    size = sum(p.stat().st_size for p in state.parent.glob(state.name + "*"))
    return {
        "count": count,
        "batch": batch,
        "seed": seed,
        **counts,
        "phases": phases,
        "present_mark_seen_record_imported_seconds": round(total, 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "file_mib": round(size / 2**20, 1),
        "sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and ranges over runs of ``run``; the counts must agree (the keys are seeded)."""
    first = runs[0]
    phases = {
        name: {
            "rows": first["phases"][name]["rows"],
            "seconds": spread([r["phases"][name]["seconds"] for r in runs]),
            "cpu_seconds": spread([r["phases"][name]["cpu_seconds"] for r in runs]),
            "rows_per_s": round(
                first["phases"][name]["rows"] / statistics.median(r["phases"][name]["seconds"] for r in runs)
            ),
        }
        for name in first["phases"]
    }
    counted = ("stored", "found_on_rerun", "stale_after_rerun", "forgotten_in_mirror",
               "remaining_after_mirror")  # fmt: skip
    for key in counted:
        if len({r[key] for r in runs}) != 1:
            raise RuntimeError(f"runs disagree on {key}")
    return {
        **{k: first[k] for k in ("count", "batch", "seed", *counted, "sqlite", "python", "machine")},
        "runs": len(runs),
        "phases": phases,
        "present_mark_seen_record_imported_seconds": spread(
            [r["present_mark_seen_record_imported_seconds"] for r in runs]
        ),
        "peak_rss_mib": spread([r["peak_rss_mib"] for r in runs]),
        "file_mib": spread([r["file_mib"] for r in runs]),
        "load_average": [r["load_average"] for r in runs],
        "each_run": runs,
    }


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    """One run in a child process (its own peak RSS); returns its result."""
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as scratch:
        out = Path(scratch) / "one.json"
        command = [sys.executable, __file__, "--one", "--count", str(args.count), "--batch", str(args.batch)]
        command += ["--seed", str(args.seed), "--out", str(out)]
        before = os.getloadavg()
        subprocess.run(command, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        result["load_average"] = {"before": [round(x, 2) for x in before],
                                  "after": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--state", type=Path, help="journal file (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs", type=int, default=3, help="runs, each its own process (medians, ranges)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one run, in process
    args = parser.parse_args()
    if args.one or args.state is not None:
        with tempfile.TemporaryDirectory(prefix="bench-journal-") as scratch:
            state = args.state or Path(scratch) / "state.sqlite"
            result = run(args.count, args.batch, state, args.seed)
    else:
        result = aggregate([one_run(args) for _ in range(args.runs)])
        phases = result["phases"]
        for name, phase in phases.items():
            s, c = phase["seconds"], phase["cpu_seconds"]
            print(
                f"{name:>8}: median {s['median']:.2f} s [{s['min']:.2f}-{s['max']:.2f}], "
                f"CPU {c['median']:.2f} s [{c['min']:.2f}-{c['max']:.2f}], {phase['rows_per_s']:,} rows/s"
            )
        print(f"peak RSS {result['peak_rss_mib']} MiB; file {result['file_mib']} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
