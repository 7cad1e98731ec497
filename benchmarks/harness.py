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


# A real feed's shape (abuse.ch- and ThreatFox-like exports): mostly file hashes, then network
# indicators. Fractions of the lines; URLs included although the ti target rejects them.
MIX = (("sha256", 0.35), ("md5", 0.20), ("sha1", 0.10), ("ipv4", 0.15), ("domain", 0.12), ("url", 0.08))
_FIRST_OCTETS = (23, 31, 45, 62, 77, 89, 91, 103, 146, 185, 193, 212)  # public, unreserved blocks
_TLDS = ("com", "net", "org", "ru", "info", "xyz", "top")


def write_mixed_list(path: Path, count: int, seed: int) -> dict[str, int]:
    """``count`` seeded lines of the kinds in ``MIX`` (shuffled together, distinct in practice);
    returns how many lines of each kind were written."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [share for _, share in MIX]
    written = dict.fromkeys(kinds, 0)
    with path.open("w") as out:
        for start in range(0, count, 10_000):
            lines = []
            for kind in rng.choices(kinds, weights, k=min(10_000, count - start)):
                written[kind] += 1
                lines.append(_mixed_value(rng, kind))
            out.write("\n".join(lines) + "\n")
    return written


def _mixed_value(rng: random.Random, kind: str) -> str:
    if kind in ("sha256", "md5", "sha1"):
        bits = {"sha256": 256, "md5": 128, "sha1": 160}[kind]
        return f"{rng.getrandbits(bits):0{bits // 4}x}"
    host = f"{rng.choice(_FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if kind == "ipv4":
        return host
    label = rng.choice(("cdn", "login", "update", "files"))
    name = f"{rng.getrandbits(40):010x}.{label}{rng.randrange(1000)}"
    domain = f"{name}.{rng.choice(_TLDS)}"
    if kind == "domain":
        return domain
    return f"http://{domain}/{rng.getrandbits(32):08x}/{rng.choice(('gate.php', 'bin.exe', 'x.js', 'a'))}"


@contextmanager
def emulator_process(*flags: str) -> Iterator[str]:
    """``ti-import emulator`` (with ``flags``) in its own process on a free port; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "emulator", "--host", "127.0.0.1", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    base = ""
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", first)
        if match is None:
            raise RuntimeError(f"the emulator did not start: {first!r}")
        base = match.group(1)
        _EMULATORS[base] = process.pid
        yield base
    finally:
        _EMULATORS.pop(base, None)
        process.terminate()
        process.wait(timeout=10)


_EMULATORS: dict[str, int] = {}  # base URL -> pid of the emulator process serving it


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot, all processes (Linux; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ImporterRun:
    seconds: float  # process start to exit
    peak_rss_mb: float
    report: dict[str, Any]  # its --report JSON
    cpu_seconds: float = 0.0  # user + system time of the importer process (not the emulator's)
    emulator_cpu_seconds: float = 0.0  # the emulator's CPU meanwhile
    # CPU the rest of the machine used meanwhile (other people's work): 0 on a quiet machine;
    # next to the 2 CPUs x seconds there were, it says how shared the measurement was.
    others_cpu_seconds: float = 0.0


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
    emulator = _EMULATORS.get(base)
    emulator_cpu = process_cpu_seconds(emulator) if emulator else 0.0
    machine = machine_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    machine = machine_cpu_seconds() - machine
    emulator_cpu = (process_cpu_seconds(emulator) if emulator else 0.0) - emulator_cpu
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"ti-import run exited {code}")
    cpu = usage.ru_utime + usage.ru_stime
    others = max(0.0, machine - cpu - emulator_cpu)
    return ImporterRun(
        seconds, usage.ru_maxrss / 1024, json.loads(report.read_text()), cpu, emulator_cpu, others
    )


def update_readme_section(heading: str, section: str) -> None:
    """Replace (or append) the ``## heading`` section of the README, leaving the rest alone."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    README.write_text(text)
