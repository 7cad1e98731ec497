"""Seeded fuzzing of the command lines: config files, ``--retry-from`` files and flag values that are
broken the ways an operator or a hostile file breaks them end in a documented exit code, never a
traceback.

Every case runs ``importer.cli.main`` in-process (``ti-import run`` against the emulator on
loopback, ``ti-import parse`` on local files): mutated TOML configs (values of every type swapped
in, NaN and infinities, huge numbers, lines dropped or added, the text cut or its bytes flipped),
random bytes and UTF-16 as a config, TOML nested thousands deep, random and mutated rejects files
for ``--retry-from``, and random values for the flags. The exit code must be one ``run --help``
lists (0, 1, 2, 3, 130; argparse's usage errors are 2) and stderr must hold no traceback. Same
seed, same cases: a failure names its case. The feed contents are fuzzed in ``tests/feeds``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from importer.cli import main
from importer.emulator import Emulator
from tests.helpers import use_emulator, write_list

SEED = int(os.environ.get("FUZZ_SEED", "1313"))
CASES = int(os.environ.get("FUZZ_CASES", "700"))  # ~4 s; FUZZ_SEED and FUZZ_CASES explore further
DOCUMENTED = {0, 1, 2, 3, 130}

# Sources a mutated config or flag may name: never a host off this machine.
SAFE_SOURCES = ("feed.txt", "feed.csv", "missing.txt", "folder", "", "feed.txt.gz", "../feed.txt")

BASE_CONFIG = """\
[target]
name = "ti"

[tuning]
mode = "bulk"
batch_size = 50
workers = 4
rate = "60000/min"
connect_timeout = 5
total_timeout = 10.0
max_attempts = 2
max_retry_seconds = 5

[[feed]]
source = "feed.txt"
name = "Fuzz list"
severity = "High"
expire_days = 30
expire_refresh = 0.5
format = "list"

[[feed]]
source = "feed.csv"
format = "csv"
columns = "1=sha256"
detection_function = "Equals"
"""

KEYS = (
    "name", "api_url", "ca_bundle", "allow_http", "url", "tenant", "client_id", "client_secret",
    "audience", "version", "mode", "batch_size", "workers", "rate", "connect_timeout",
    "total_timeout", "max_attempts", "max_retry_seconds", "source", "severity", "expire_days",
    "expire_refresh", "format", "columns", "title", "description", "detection_function",
    "recommended_action", "mirror", "download_timeout", "max_download_bytes", "rbac_groups",
    "category", "unknown_key",
)  # fmt: skip


def _text(rng: random.Random, size: int = 12) -> str:
    # No ':' or '/': a random string never forms a URL to some host.
    alphabet = string.ascii_letters + string.digits + " .-_=,#é中\t"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size)))


def toml_value(rng: random.Random) -> str:
    """A TOML literal of any type, odd ones favoured."""
    choices: list[Callable[[], str]] = [
        lambda: str(rng.choice([0, -1, 1, 2, 49, 5000, 5001, 36_500, 36_501, 3_000_000, 2**63 - 1])),
        lambda: "9" * rng.choice([20, 400, 5000]),
        lambda: rng.choice(["nan", "inf", "-inf", "+nan", "1e308", "0.0", "-0.5", "0.5", "1.5", "3.25"]),
        lambda: json.dumps(_text(rng), ensure_ascii=False),
        lambda: rng.choice(['""', '"bulk"', '"single"', '"600/min"', '"0/s"', '"ti"', '"mde"', '"High"']),
        lambda: rng.choice(["true", "false"]),
        lambda: "[" + ", ".join(toml_value(rng) for _ in range(rng.randint(0, 3))) + "]",
        lambda: "{ a = " + toml_value(rng) + " }",
        lambda: rng.choice(["1979-05-27T07:32:00Z", "1979-05-27", "07:32:00"]),
        lambda: '"\\ud800"',  # a surrogate escape: not valid TOML
        lambda: "[" * rng.randint(1, 50) + "]" * rng.randint(0, 50),
    ]
    return rng.choice(choices)()


# Values each flag or key takes, so that a case with several of them often gets past the first.
GOOD: dict[str, tuple[str, ...]] = {
    "batch_size": ("1", "50", "500"), "workers": ("1", "4"), "rate": ("60000/min", "1000/s"),
    "expire_days": ("1", "30", "36500"), "expire_refresh": ("0.5", "0.9"), "severity": ("High", "low"),
    "format": ("auto", "list", "csv"), "columns": ("1=sha256",), "mode": ("bulk", "single"),
    "mirror_max_share": ("0.5", "1"), "download_timeout": ("5", "0.5"), "name": ("A name",),
    "title": ("T",), "detection_function": ("Equals", "contains"), "target": ("ti", "mde"),
    "max_download_bytes": ("1000", "1"), "connect_timeout": ("1", "2.5"), "max_attempts": ("1", "3"),
}  # fmt: skip


# Rates the limiter would honour by waiting minutes (1/min, 1/h) are left out: a run keeps them.
RATES = ("60000/min", "1000/s", "3600000/h", "0/min", "-5/s", "fast", "6e3/min", "9" * 400, "nan", "")


def _safe_value(key: str, rng: random.Random) -> str:
    if key == "source":
        return json.dumps(rng.choice(SAFE_SOURCES))
    if key == "rate":
        return json.dumps(rng.choice(RATES)) if rng.random() < 0.8 else rng.choice(["nan", "inf", "0", "-1"])
    if key in GOOD and rng.random() < 0.4:
        good = rng.choice(GOOD[key])
        return good if good.replace(".", "").isdigit() else json.dumps(good)
    return toml_value(rng)


def mutate_config(rng: random.Random, text: str) -> bytes:
    lines = text.splitlines()
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
        kind = rng.choices(range(6), weights=(50, 10, 15, 5, 10, 10))[0]
        assigned = [i for i, line in enumerate(lines) if "=" in line]
        if kind == 0 and assigned:  # a value of another type or range
            i = rng.choice(assigned)
            key = lines[i].split("=")[0].strip()
            lines[i] = f"{key} = {_safe_value(key, rng)}"
        elif kind == 1 and lines:  # a line dropped
            del lines[rng.randrange(len(lines))]
        elif kind == 2:  # a key added, known or not, in any table
            key = rng.choice(KEYS)
            lines.insert(rng.randint(0, len(lines)), f"{key} = {_safe_value(key, rng)}")
        elif kind == 3:  # a table header added or repeated
            table = rng.choice(["[target]", "[auth]", "[tuning]", "[[feed]]", "[feed]", "[x]", "[[tuning]]"])
            lines.insert(rng.randint(0, len(lines)), table)
        elif kind == 4:  # cut short
            text = "\n".join(lines)
            lines = text[: rng.randrange(len(text) + 1)].splitlines()
        else:  # bytes flipped
            data = bytearray("\n".join(lines).encode())
            for _ in range(rng.randint(1, 6)):
                if data:
                    data[rng.randrange(len(data))] = rng.choice([*b'"[]{}=\\\n#.', rng.randrange(256)])
            return bytes(data)
    return ("\n".join(lines) + "\n").encode()


def deep_config(rng: random.Random) -> bytes:
    depth = rng.choice([200, 1_000, 5_000, 20_000])
    opener, closer = rng.choice([("[", "]"), ("{a=", "}")])
    return f'[[feed]]\nsource = "feed.txt"\nx = {opener * depth}{closer * depth}\n'.encode()


def random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 10, 300, 3000])))


def retry_file(rng: random.Random) -> bytes:
    """A rejects file as ``--retry-from`` reads it, mutated; or anything else."""
    line = {
        "feed": "Fuzz retry", "origin": "feed.txt:1", "raw": "x", "reason": "failed", "bucket": "failed",
        "retryable": True, "kind": "sha256", "value": f"{rng.getrandbits(256):064x}",
        "definition": {"name": "Fuzz retry", "severity": "Medium", "expire_days": 30, "expires_at": None},
    }  # fmt: skip
    kind = rng.randrange(5)
    if kind == 0:
        return random_bytes(rng)
    if kind == 1:
        return ("[" * 100_000).encode()
    if kind == 2:
        return ("1" * 5000 + "\n").encode()
    # A retryable line with one field replaced by a value of any JSON type.
    target = line if kind == 3 else line["definition"]
    assert isinstance(target, dict)
    key = rng.choice(sorted(target))
    target[key] = rng.choice([None, 0, -1, 10**30, 1.5, "", _text(rng), [], {}, [1, "a"], {"name": 5}, True])
    return (json.dumps(line) + "\n").encode() * rng.randint(1, 3)


FLAG_VALUES: tuple[Callable[[random.Random], str], ...] = (
    lambda rng: rng.choice(["0", "-1", "1", "50", "5000", "5001", "36500", "36501", "3000000"]),
    lambda rng: rng.choice(["nan", "inf", "-inf", "1e400", "0.5", "1.0", "", " ", "abc"]),
    lambda rng: "9" * rng.choice([20, 5000]),
    lambda rng: rng.choice(RATES),
    _text,
)
RUN_FLAGS = (
    "--batch-size", "--workers", "--rate", "--expire-days", "--expire-refresh", "--severity",
    "--format", "--columns", "--mode", "--mirror-max-share", "--download-timeout", "--name",
    "--title", "--detection-function", "--target", "--max-download-bytes",
)  # fmt: skip


@dataclass
class Case:
    label: str
    argv: list[str]  # after ``ti-import``


def config_case(rng: random.Random, tmp: Path, number: int) -> Case:
    config = tmp / f"config{number}.toml"
    maker = rng.random()
    if maker < 0.7:
        config.write_bytes(mutate_config(rng, BASE_CONFIG))
    elif maker < 0.8:
        config.write_bytes(random_bytes(rng))
    elif maker < 0.9:
        config.write_bytes(deep_config(rng))
    else:
        config.write_bytes(BASE_CONFIG.encode(rng.choice(["utf-16", "utf-32", "utf-8-sig", "latin-1"])))
    extra = rng.sample(["--dry-run", "--no-state", "-q", "--reconcile"], rng.randint(0, 3))
    return Case(f"#{number} config {config.read_bytes()[:300]!r}", ["run", "--config", str(config), *extra])


def retry_case(rng: random.Random, tmp: Path, number: int) -> Case:
    retry = tmp / f"retry{number}.jsonl"
    retry.write_bytes(retry_file(rng))
    return Case(
        f"#{number} retry {retry.read_bytes()[:300]!r}", ["run", "--no-state", "--retry-from", str(retry)]
    )


def run_flags_case(rng: random.Random, tmp: Path, number: int) -> Case:
    journal = ["--state", str(tmp / "state.sqlite"), "--mirror"]
    argv = ["run", str(tmp / "feed.txt"), *(["--no-state"] if rng.random() < 0.7 else journal)]
    for flag in rng.sample(RUN_FLAGS, rng.randint(1, 3)):
        good = GOOD.get(flag[2:].replace("-", "_"))
        if flag == "--rate":
            value = rng.choice(RATES)
        elif good and rng.random() < 0.6:
            value = rng.choice(good)
        else:
            value = rng.choice(FLAG_VALUES)(rng)
        argv += [flag, value]
    if rng.random() < 0.3:
        outputs = ["-", str(tmp / "feed.txt"), str(tmp / "folder"), str(tmp / f"out{number}.json"), ""]
        argv += [rng.choice(["--report", "--rejects"]), rng.choice(outputs)]
    return Case(f"#{number} {argv}", argv)


def parse_case(rng: random.Random, tmp: Path, number: int) -> Case:
    local = [str(tmp / name) for name in ("feed.txt", "feed.csv", "missing.txt", "folder", "config0.toml")]
    source = rng.choice([*local, "https://feeds.example/x.txt", "ftp://h/x"])
    argv = ["parse", source]
    if rng.random() < 0.5:
        argv += ["--format", rng.choice(["auto", "csv", "list", "stix", "json", ""])]
    if rng.random() < 0.5:
        argv += ["--columns", rng.choice(FLAG_VALUES)(rng)]
    if rng.random() < 0.3:
        argv += ["--rejects", rng.choice([source, str(tmp / "folder"), str(tmp / f"rejects{number}.jsonl")])]
    return Case(f"#{number} {argv}", argv)


MAKERS = (config_case, config_case, config_case, retry_case, run_flags_case, run_flags_case, parse_case)


def _call(argv: list[str]) -> int:
    if argv[0] == "run":
        argv = ["run", "--no-progress", *argv[1:]]
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's usage errors
        return exc.code if isinstance(exc.code, int) else 2


async def test_fuzzed_configs_retry_files_and_flags_end_in_a_documented_exit_code(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    use_emulator(monkeypatch, emulator)
    monkeypatch.chdir(tmp_path)
    feed = write_list(tmp_path / "feed.txt", 30, bad_every=10)
    before = feed.read_bytes()
    (tmp_path / "feed.csv").write_text("id,sha256\n" + "".join(f"{i},{i:064x}\n" for i in range(1, 20)))
    (tmp_path / "folder").mkdir()
    rng = random.Random(SEED)
    seen: dict[int, int] = {}
    for number in range(CASES):
        case = rng.choice(MAKERS)(rng, tmp_path, number)
        try:
            code = await asyncio.to_thread(_call, case.argv)
        except BaseException as exc:
            pytest.fail(f"{case.label}: raised {type(exc).__name__}: {exc}")
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, f"{case.label}:\n{captured.err}"
        assert code in DOCUMENTED, f"{case.label}: exit {code}\n{captured.err}"
        seen[code] = seen.get(code, 0) + 1
    assert feed.read_bytes() == before  # no output of any case overwrote the feed
    # The generator reaches both ends: runs that import and refusals.
    assert seen.get(0, 0) > 20 and seen.get(2, 0) > 100, seen
