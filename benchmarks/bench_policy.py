"""Benchmark of a feed's policy (``importer.policy``): indicators judged per second, and what loading costs.

Generates a 1,000,000-line list feed (same seed, same bytes): 85 % SHA-256 hashes, 5 % public IPv4
addresses, 4 % domains, 4 % URLs, 1 % private addresses and 1 % values on MISP's lists (public
resolvers, top sites); reads it once with ``feeds.read_feed`` (not timed: ``bench_parse`` times
reading), then times ``Policy.judge`` over every indicator:

- ``warninglists`` — the ``mde`` default: private blocks and every MISP warning list;
- ``private`` — the default elsewhere: private and reserved blocks only;
- ``rules`` — ``kinds`` and ``labels_none`` set as well as the lists (the judge with rules).

Loading is timed in a fresh child process each time (the lists load once per process), in a new
cache folder: ``cold`` from the package's JSON (``read``, our tables built: ``index``; the compiled
cache written), then ``warm`` from that cache, as a nightly run loads them; each with the child's
peak RSS and what loading added to it (``added_mb``). Goals: >= 300,000 indicators/s, a warm load
<= 0.5 s, <= 60 MB added.
Every measurement runs ``--repeat`` times (default 3): the median and its range. Writes
``benchmarks/results/policy.json``; prints a table. ``--quick``: 100,000 lines, a smoke run.

    python benchmarks/bench_policy.py [--quick] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from feeds import read_feed
from feeds.model import Indicator
from importer.policy import Policy
from importer.policy.warninglists import warning_index

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "policy.json"
SEED = 20240507
LINES = 1_000_000
GOAL = 300_000  # indicators a second through the filter, warning lists on
GOAL_LOAD = 0.5  # seconds to load the lists from the compiled cache (a nightly run's case)
GOAL_RSS = 60  # MB the lists add to a process's peak RSS, loaded from the cache
HARMLESS = ("8.8.8.8", "1.1.1.1", "google.com", "update.microsoft.com", "https://www.microsoft.com/")

# A fresh process loads the lists with the compiled cache in argv[1]: from the package (and writes
# the cache) when the folder holds none, else from the cache. "added": the peak RSS over the RSS
# the process had before loading (Python, the importer's modules).
_CHILD = """
import json, resource, sys, time
from pathlib import Path
from importer.policy.warninglists import warning_index
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
index = warning_index((), Path(sys.argv[1]))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "read": index.load_seconds, "index": index.build_seconds,
                  "lists": len(index.lists), "source": index.source, "rss_mb": peak,
                  "added_mb": peak - before}))
"""


def write_feed(path: Path, lines: int) -> None:
    rng = random.Random(SEED)
    with path.open("w") as out:
        for n in range(lines):
            roll = rng.random()
            if roll < 0.85:
                value = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
            elif roll < 0.90:
                value = ".".join(str(rng.randrange(low, 255)) for low in (11, 0, 0, 1))
            elif roll < 0.94:
                value = f"c2-{n}.{rng.choice(('evil', 'bad'))}{n % 997}.{rng.choice(('com', 'net', 'ru'))}"
            elif roll < 0.98:
                value = f"http://dl-{n}.payload{n % 991}.com/{n}.bin"
            elif roll < 0.99:
                value = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            else:
                value = rng.choice(HARMLESS)
            out.write(value + "\n")


def read_indicators(path: Path) -> list[Indicator]:
    return [record for record in read_feed(path, "list") if isinstance(record, Indicator)]


def time_judge(policy: Policy, indicators: list[Indicator], repeat: int) -> dict[str, Any]:
    judge = policy.judge
    seconds, filtered = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        filtered = sum(1 for indicator in indicators if judge(indicator) is not None)
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {
        "indicators": len(indicators),
        "filtered": filtered,
        "seconds": round(median, 4),
        "range": [round(min(seconds), 4), round(max(seconds), 4)],
        "indicators_per_s": round(len(indicators) / median),
    }


def time_load(repeat: int) -> dict[str, Any]:
    """Per repeat, in a new cache folder: a cold load (from the package, writing the cache), then a
    warm one (from the cache), each in a fresh process."""
    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            for name in ("cold", "warm"):
                done = subprocess.run(
                    [sys.executable, "-c", _CHILD, folder], capture_output=True, check=True, text=True
                )
                runs[name].append(json.loads(done.stdout))
    out: dict[str, Any] = {}
    for name, rows in runs.items():
        assert {row["source"] for row in rows} == {"package" if name == "cold" else "cache"}, rows
        summary: dict[str, Any] = {"lists": rows[0]["lists"], "source": rows[0]["source"]}
        for key in ("seconds", "read", "index", "rss_mb", "added_mb"):
            values = [row[key] for row in rows]
            summary[key] = round(statistics.median(values), 3)
            summary[f"{key}_range"] = [round(min(values), 3), round(max(values), 3)]
        out[name] = summary
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 lines: a smoke run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    lines = LINES // 10 if args.quick else LINES

    load = time_load(args.repeat)
    with tempfile.TemporaryDirectory() as folder:
        feed = Path(folder) / "feed.txt"
        write_feed(feed, lines)
        indicators = read_indicators(feed)
    with tempfile.TemporaryDirectory() as folder:
        lists = warning_index((), Path(folder))  # as a run's producer does (the memo after this)
    policies = {
        "warninglists": Policy(warnings=lists),
        "private": Policy(),
        "rules": Policy(warnings=lists, kinds=("sha256", "ipv4", "domain", "url"), labels_none=("test",)),
    }  # fmt: skip
    judged = {name: time_judge(policy, indicators, args.repeat) for name, policy in policies.items()}
    rate = judged["warninglists"]["indicators_per_s"]
    warm = load["warm"]
    goals = [
        {"what": f"warning lists on: >= {GOAL:,} indicators/s", "measured": rate, "met": rate >= GOAL},
        {"what": f"load from the cache: <= {GOAL_LOAD} s", "measured": warm["seconds"],
         "met": warm["seconds"] <= GOAL_LOAD},
        {"what": f"added peak RSS, loaded from the cache: <= {GOAL_RSS} MB", "measured": warm["added_mb"],
         "met": warm["added_mb"] <= GOAL_RSS},
    ]  # fmt: skip
    result = {
        "machine": {
            "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()
        },
        "lines": lines,
        "repeat": args.repeat,
        "load": load,
        "judge": judged,
        "goals": goals,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in load.items():
        low, high = row["seconds_range"]
        a_low, a_high = row["added_mb_range"]
        print(f"load {name} (from the {row['source']}, fresh process, median of {args.repeat}): "
              f"{row['seconds']:.2f} s [{low:.2f}-{high:.2f}] = read {row['read']:.2f} s + index "
              f"{row['index']:.2f} s; {row['lists']} lists; peak RSS {row['rss_mb']:.0f} MB, "
              f"added {row['added_mb']:.0f} MB [{a_low:.0f}-{a_high:.0f}]")  # fmt: skip
    print(f"{'policy':<14}{'indicators':>12}{'filtered':>10}{'seconds':>10}{'range':>16}{'per s':>12}")
    for name, row in judged.items():
        low, high = row["range"]
        print(f"{name:<14}{row['indicators']:>12,}{row['filtered']:>10,}{row['seconds']:>10.3f}"
              f"{f'{low:.3f}-{high:.3f}':>16}{row['indicators_per_s']:>12,}")  # fmt: skip
    for goal in goals:
        print(f"goal {goal['what']}: {goal['measured']:,} -> {'met' if goal['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
