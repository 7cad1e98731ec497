"""Benchmark of the state journal: a million-indicator import and its rerun, in batches of 500.

Phases, each over the same seeded synthetic keys (70 % sha256, 20 % ipv4, 10 % domains):

- ``import``: a first run — ``present`` (nothing found) then ``record_imported`` per batch;
- ``rerun``:  the next night — ``present`` (everything found) then ``mark_seen`` per batch;
- ``stale``:  mirror mode's scan of the whole definition after the rerun (finds nothing);
- ``mirror``: a third run whose feed lost 10 %: present/mark_seen, then ``stale`` + ``forget_keys``.

Prints rows/s per phase and the peak RSS of the process; writes ``benchmarks/results/journal.json``.
Keys are generated batch by batch, so the RSS is the journal's, not the benchmark's data.

    python benchmarks/bench_journal.py [--count 1000000] [--batch 500] [--state FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from feeds.model import Kind
from importer.state.journal import Journal

RESULTS = Path(__file__).resolve().parent / "results" / "journal.json"
DEFINITION = "bench-definition"

Phases = dict[str, dict[str, float]]  # phase name -> rows, seconds, rows_per_s


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
    started = time.perf_counter()
    yield
    seconds = time.perf_counter() - started
    phases[name] = {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--state", type=Path, help="journal file (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as scratch:
        state = args.state or Path(scratch) / "state.sqlite"
        result = run(args.count, args.batch, state, args.seed)
    print(
        f"import + rerun (present + record_imported / mark_seen): "
        f"{result['present_mark_seen_record_imported_seconds']:.2f} s; "
        f"peak RSS {result['peak_rss_mib']} MiB; file {result['file_mib']} MiB"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
