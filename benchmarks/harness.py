"""What the benchmark scripts share: seeded hash lists, the emulator in its own process,
``ti-import run`` as a measured child process, and each script's section of ``benchmarks/README.md``.

The scripts run as ``python benchmarks/<script>.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.emulator import DEMO_CLIENT

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "benchmarks" / "README.md"


def write_hash_list(path: Path, count: int, seed: int) -> Path:
    """``count`` distinct-in-practice random SHA-256 lines, the same for the same seed."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for start in range(0, count, 10_000):
            out.write("".join(f"{rng.getrandbits(256):064x}\n" for _ in range(min(10_000, count - start))))
    return path


@contextmanager
def emulator_process(*flags: str) -> Iterator[str]:
    """``ti-import emulator`` (with ``flags``) in its own process on a free port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "emulator", "--host", "127.0.0.1", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", first)
        if match is None:
            raise RuntimeError(f"the emulator did not start: {first!r}")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class ImporterRun:
    seconds: float  # process start to exit
    peak_rss_mb: float
    report: dict[str, Any]  # its --report JSON
    cpu_seconds: float = 0.0  # user + system time of the importer process (not the emulator's)


def run_importer(base: str, report: Path, *argv: str) -> ImporterRun:
    """``ti-import run ARGV --no-progress --quiet --report REPORT`` against the emulator at ``base``,
    with the demo client's credentials, as a child process whose peak RSS comes from ``wait4``."""
    env = {
        **os.environ,
        "TI_CLIENT_ID": DEMO_CLIENT.client_id,
        "TI_CLIENT_SECRET": DEMO_CLIENT.client_secret,
        "TI_AUTH_URL": f"{base}/{DEMO_CLIENT.tenant}/oauth2/token",
        "TI_API_URL": f"{base}/V1.0/",
    }
    command = [sys.executable, "-m", "importer", "run", *argv]
    command += ["--no-progress", "--quiet", "--report", str(report)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"ti-import run exited {code}")
    cpu = usage.ru_utime + usage.ru_stime
    return ImporterRun(seconds, usage.ru_maxrss / 1024, json.loads(report.read_text()), cpu)


def update_readme_section(heading: str, section: str) -> None:
    """Replace (or append) the ``## heading`` section of the README, leaving the rest alone."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    README.write_text(text)
