"""Benchmark of a feed's policy (``importer.policy``): indicators judged per second, and what loading costs.

Generates a 1,000,000-line list feed (same seed, same bytes): 85 % SHA-256 hashes, 5 % public IPv4
addresses, 4 % domains, 4 % URLs, 1 % private addresses and 1 % values on MISP's lists (public
resolvers, top sites); reads it once with ``feeds.read_feed`` (not timed: ``bench_parse`` times
reading), then times ``Policy.judge`` over every indicator:

- ``warninglists`` — the ``mde`` default: private blocks and every MISP warning list;
- ``private`` — the default elsewhere: private and reserved blocks only;
- ``rules`` — ``kinds`` and ``labels_none`` set as well as the lists (the judge with rules).

Loading is timed in a fresh child process each time (the lists load once per process): the
package's JSON read (``read``), our tables built from it (``index``), and the child's peak RSS.
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
HARMLESS = ("8.8.8.8", "1.1.1.1", "google.com", "update.microsoft.com", "https://www.microsoft.com/")

_CHILD = """
import json, resource, time
from importer.policy.warninglists import warning_index
started = time.perf_counter()
index = warning_index()
print(json.dumps({"seconds": time.perf_counter() - started, "read": index.load_seconds,
                  "index": index.build_seconds, "lists": len(index.lists),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
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
    runs = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, check=True, text=True)
        runs.append(json.loads(done.stdout))
    out: dict[str, Any] = {"lists": runs[0]["lists"]}
    for key in ("seconds", "read", "index", "rss_mb"):
        values = [run[key] for run in runs]
        out[key] = round(statistics.median(values), 3)
        out[f"{key}_range"] = [round(min(values), 3), round(max(values), 3)]
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
    lists = warning_index()
    policies = {
        "warninglists": Policy(warnings=lists),
        "private": Policy(),
        "rules": Policy(warnings=lists, kinds=("sha256", "ipv4", "domain", "url"), labels_none=("test",)),
    }  # fmt: skip
    judged = {name: time_judge(policy, indicators, args.repeat) for name, policy in policies.items()}
    rate = judged["warninglists"]["indicators_per_s"]
    result = {
        "machine": {
            "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()
        },
        "lines": lines,
        "repeat": args.repeat,
        "load": load,
        "judge": judged,
        "goal": {"what": f"warning lists on: >= {GOAL:,} indicators/s", "measured": rate,
                 "met": rate >= GOAL},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    low, high = load["seconds_range"]
    print(f"load (fresh process, median of {args.repeat}): {load['seconds']:.2f} s [{low:.2f}-{high:.2f}] "
          f"= read {load['read']:.2f} s + index {load['index']:.2f} s; "
          f"{load['lists']} lists; peak RSS {load['rss_mb']:.0f} MB")  # fmt: skip
    print(f"{'policy':<14}{'indicators':>12}{'filtered':>10}{'seconds':>10}{'range':>16}{'per s':>12}")
    for name, row in judged.items():
        low, high = row["range"]
        print(f"{name:<14}{row['indicators']:>12,}{row['filtered']:>10,}{row['seconds']:>10.3f}"
              f"{f'{low:.3f}-{high:.3f}':>16}{row['indicators_per_s']:>12,}")  # fmt: skip
    print(f"goal {result['goal']['what']}: {rate:,} -> {'met' if result['goal']['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
