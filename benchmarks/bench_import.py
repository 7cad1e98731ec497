"""Import throughput and memory: ``ti-import run`` against the emulator in a separate process.

Measures, in one run and on the same machine, indicators/s for:

* a **sequential baseline** written here — one POST per indicator, waiting for each answer, as
  Microsoft's sample does;
* ``--mode single`` (one POST per indicator, ``--workers`` concurrent);
* ``--mode bulk`` (``Actions.BulkUpload`` batches);

at 0 ms and 50 ms emulator latency, and the importer process's peak RSS while importing a
1,000,000-line list. The importer runs as its own process (``python -m importer run``); rates are
end to end (process start to exit, feed parsing included). Results go to
``benchmarks/results/import.json`` and a table under ``## Import`` in ``benchmarks/README.md``.

    python benchmarks/bench_import.py            # the full run (a few minutes)
    python benchmarks/bench_import.py --quick    # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "import.json"
README = ROOT / "benchmarks" / "README.md"
CLIENT_ID, SECRET, TENANT = "ti-importer-demo", "demo-secret-not-for-production", "contoso-demo"
SINGLE_WORKERS = 64


@dataclass(frozen=True)
class Sizes:
    baseline: dict[int, int]  # latency ms -> indicators
    single: dict[int, int]
    bulk: dict[int, int]
    rss_lines: int


FULL = Sizes(
    baseline={0: 3000, 50: 150},
    single={0: 20_000, 50: 10_000},
    bulk={0: 300_000, 50: 300_000},
    rss_lines=1_000_000,
)
QUICK = Sizes(
    baseline={0: 300, 50: 20}, single={0: 1000, 50: 640}, bulk={0: 20_000, 50: 20_000}, rss_lines=50_000
)


@dataclass
class Measure:
    name: str
    latency_ms: int
    indicators: int
    seconds: float
    peak_rss_mb: float | None = None

    @property
    def rate(self) -> float:
        return self.indicators / self.seconds if self.seconds > 0 else 0.0


def write_list(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w") as out:
        for start in range(0, count, 10_000):
            out.write("".join(f"{rng.getrandbits(256):064x}\n" for _ in range(min(10_000, count - start))))
    return path


@contextmanager
def emulator(latency_ms: int) -> Iterator[str]:
    """The emulator as a separate process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", "emulator", "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"listening on (http://\S+)", proc.stdout.readline())
        if match is None:
            raise RuntimeError("the emulator did not start")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def reset(base: str) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session, session.post(f"{base}/_emulator/reset") as resp:
            resp.raise_for_status()

    asyncio.run(go())


async def sequential_baseline(base: str, values: list[str], concurrency: int = 1) -> float:
    """One POST per indicator, each awaited before the next (Microsoft's sample); returns seconds.

    With ``concurrency`` > 1: the same bare POSTs from that many tasks at once — no retries, no
    auth refresh, no pipeline — the ceiling a client can reach against this emulator here.
    """
    async with aiohttp.ClientSession() as session:
        form = {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "resource": "https://graph.windows.net",
        }
        async with session.post(f"{base}/{TENANT}/oauth2/token", data=form) as resp:
            token = (await resp.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        definition = {
            "Name": "baseline",
            "Title": "baseline",
            "Severity": "Medium",
            "Category": "Malware",
            "InternalDescription": "baseline",
            "UxDescription": "baseline",
            "Enabled": True,
        }
        async with session.post(f"{base}/V1.0/AlertDefinitions", json=definition, headers=headers) as resp:
            definition_id = (await resp.json())["Id"]
        started = time.perf_counter()
        await _post_each(session, base, headers, definition_id, values, concurrency)
        return time.perf_counter() - started


async def _post_each(
    session: aiohttp.ClientSession,
    base: str,
    headers: dict[str, str],
    definition_id: int,
    values: list[str],
    concurrency: int,
) -> None:
    """One POST per value from ``concurrency`` tasks, each waiting for its answer (1 = Microsoft's
    sample: strictly sequential)."""
    pending = iter(values)

    async def worker() -> None:
        for value in pending:
            body = {
                "Type": "Sha256",
                "Value": value,
                "DetectionFunction": "Equals",
                "Enabled": True,
                "AlertDefinition@odata.bind": f"AlertDefinitions({definition_id})",
            }
            async with session.post(
                f"{base}/V1.0/IndicatorsOfCompromise", json=body, headers=headers
            ) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"baseline POST answered {resp.status}")
                await resp.read()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def run_importer(
    base: str, feed: Path, mode: str, workers: int, work: Path
) -> tuple[float, float, dict[str, Any]]:
    """``ti-import run`` as its own process: (wall seconds, peak RSS MB, its JSON report)."""
    report = work / "report.json"
    env = {
        **os.environ,
        "TI_CLIENT_ID": CLIENT_ID,
        "TI_CLIENT_SECRET": SECRET,
        "TI_AUTH_URL": f"{base}/{TENANT}/oauth2/token",
        "TI_API_URL": f"{base}/V1.0/",
    }
    command = [
        sys.executable,
        "-m",
        "importer",
        "run",
        str(feed),
        "--mode",
        mode,
        "--workers",
        str(workers),
        "--no-progress",
        "--quiet",
        "--report",
        str(report),
        # A fresh state journal per measurement: each imports into an empty definition.
        "--state",
        str(work / f"state-{time.monotonic_ns()}.sqlite"),
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"ti-import run exited {proc.returncode}")
    data: dict[str, Any] = json.loads(report.read_text())
    return seconds, usage.ru_maxrss / 1024, data


def measure_all(sizes: Sizes, work: Path) -> list[Measure]:
    out: list[Measure] = []
    for latency in (0, 50):
        with emulator(latency) as base:
            values = [
                line.strip() for line in write_list(work / "base.txt", sizes.baseline[latency], 1).open()
            ]
            seconds = asyncio.run(sequential_baseline(base, values))
            out.append(Measure("sequential baseline", latency, len(values), seconds))
            reset(base)
            values = [line.strip() for line in write_list(work / "bare.txt", sizes.single[latency], 5).open()]
            seconds = asyncio.run(sequential_baseline(base, values, SINGLE_WORKERS))
            out.append(
                Measure(f"bare aiohttp, {SINGLE_WORKERS} concurrent (ceiling)", latency, len(values), seconds)
            )
            reset(base)
            feed = write_list(work / "single.txt", sizes.single[latency], 2)
            seconds, rss, report = run_importer(base, feed, "single", SINGLE_WORKERS, work)
            out.append(
                Measure(
                    f"--mode single --workers {SINGLE_WORKERS}",
                    latency,
                    report["totals"]["imported"],
                    seconds,
                    rss,
                )
            )
            reset(base)
            feed = write_list(work / "bulk.txt", sizes.bulk[latency], 3)
            seconds, rss, report = run_importer(base, feed, "bulk", 16, work)
            out.append(
                Measure("--mode bulk --workers 16", latency, report["totals"]["imported"], seconds, rss)
            )
            reset(base)
            if latency == 0:
                feed = write_list(work / "million.txt", sizes.rss_lines, 4)
                seconds, rss, report = run_importer(base, feed, "bulk", 16, work)
                out.append(
                    Measure(
                        f"--mode bulk, {sizes.rss_lines:,}-line list (RSS)",
                        latency,
                        report["totals"]["imported"],
                        seconds,
                        rss,
                    )
                )
                reset(base)
    return out


def goals(measures: list[Measure]) -> list[dict[str, Any]]:
    def find(prefix: str, latency: int) -> Measure:
        return next(m for m in measures if m.name.startswith(prefix) and m.latency_ms == latency)

    base0, single0 = find("sequential", 0), find("--mode single", 0)
    single50, bulk0 = find("--mode single", 50), find("--mode bulk --workers", 0)
    rss = find("--mode bulk,", 0)
    bound50 = SINGLE_WORKERS / 0.050
    return [
        {
            "goal": "single >= 3x sequential at 0 ms",
            "value": round(single0.rate / base0.rate, 2),
            "target": 3.0,
            "met": single0.rate >= 3 * base0.rate,
        },
        {
            "goal": f"single >= 85% of workers/latency ({bound50:.0f}/s) at 50 ms",
            "value": round(single50.rate / bound50, 3),
            "target": 0.85,
            "met": single50.rate >= 0.85 * bound50,
        },
        {
            "goal": "bulk >= 30,000 indicators/s end to end at 0 ms",
            "value": round(bulk0.rate),
            "target": 30_000,
            "met": bulk0.rate >= 30_000,
        },
        {
            "goal": f"{rss.indicators:,}-line list under 200 MB peak RSS",
            "value": round(rss.peak_rss_mb or 0, 1),
            "target": 200,
            "met": (rss.peak_rss_mb or 0) < 200,
        },
    ]


def table(measures: list[Measure], checks: list[dict[str, Any]], quick: bool) -> str:
    base = {m.latency_ms: m.rate for m in measures if m.name.startswith("sequential")}
    lines = [
        "## Import",
        "",
        f"`python benchmarks/bench_import.py{' --quick' if quick else ''}` — {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; the emulator in its own process; "
        "rates end to end (importer process start to exit).",
        "",
        "| run | latency | indicators | seconds | indicators/s | x sequential | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measures:
        ratio = m.rate / base[m.latency_ms] if base.get(m.latency_ms) else 0.0
        rss = f"{m.peak_rss_mb:.0f}" if m.peak_rss_mb is not None else "-"
        lines.append(
            f"| {m.name} | {m.latency_ms} ms | {m.indicators:,} | {m.seconds:.2f} | {m.rate:,.0f} "
            f"| {ratio:.1f} | {rss} |"
        )
    lines += [
        "",
        "The *bare aiohttp* row posts the same single requests from 64 tasks with nothing else (no retry,",
        "auth refresh or pipeline): it is what any client can get from this emulator on this machine, where",
        "the emulator and the importer share the CPUs. Single mode is measured against that ceiling too.",
    ]
    lines += ["", "| goal | measured | met |", "|---|---:|:-:|"]
    lines += [f"| {c['goal']} | {c['value']} | {'yes' if c['met'] else 'NO'} |" for c in checks]
    return "\n".join(lines) + "\n"


def update_readme(section: str) -> None:
    """Replace (or append) this benchmark's ``## Import`` section, leaving the rest alone."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Import\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    README.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as work:
        measures = measure_all(QUICK if args.quick else FULL, Path(work))
    checks = goals(measures)
    result = {
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "runs": [{**asdict(m), "indicators_per_second": round(m.rate, 1)} for m in measures],
        "goals": checks,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    section = table(measures, checks, args.quick)
    print(section)
    if not args.no_readme:
        update_readme(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
