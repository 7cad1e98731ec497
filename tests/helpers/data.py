"""Definitions, connection settings, feeds and old journals for tests: what the code under test is given."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from feeds.model import Indicator, Kind
from importer.emulator import DEMO_CLIENT, Emulator
from importer.fields import COMMON, build_definition
from importer.model import DefinitionSpec
from importer.targets.registry import package
from importer.transport.connection import ConnectionSettings, Secret


# --- definitions and settings --------------------------------------------------------------------
def spec_for(
    name: str, target: str = "ti", *, expires_at: datetime | None = None, **given: Any
) -> DefinitionSpec:
    """A definition for ``target`` with the given option values (unchecked) and defaults for the rest."""
    spec = build_definition(COMMON + package(target).fields, name, **given)
    return spec if expires_at is None else replace(spec, expires_at=expires_at)


def feed_spec(name: str) -> DefinitionSpec:
    """The ti definition of a test feed called ``name`` (a title and description derived from it)."""
    return spec_for(name, title=f"Test {name}", description=f"test feed {name}")


def connection_settings(
    emu: Emulator, *, api: str = "ti", version: int = 1, **overrides: object
) -> ConnectionSettings:
    """Settings for the demo client against ``emu`` (``api``: "ti" or "mde"); any field overridable."""
    values: dict[str, object] = {
        "auth_url": emu.auth_url(version),
        "api_url": emu.ti_url if api == "ti" else emu.mde_url,
        "client_id": DEMO_CLIENT.client_id,
        "client_secret": Secret(DEMO_CLIENT.client_secret),
        "max_attempts": 4,
        "max_retry_seconds": 120.0,
        "total_timeout": 10.0,
        "connect_timeout": 2.0,
    }
    values.update(overrides)
    return ConnectionSettings(**values)  # type: ignore[arg-type]


# --- feeds and indicators ------------------------------------------------------------------------
def md5(n: int) -> str:
    return f"{n:032x}"


def md5_items(start: int, stop: int) -> list[tuple[Kind, str, str]]:
    """Acknowledged ``(kind, value, remote id)`` items, as the journal records them."""
    return [(Kind.MD5, md5(n), f"r{n}") for n in range(start, stop)]


def md5_keys(start: int, stop: int) -> list[tuple[Kind, str]]:
    return [(Kind.MD5, md5(n)) for n in range(start, stop)]


def sha1(n: int) -> str:
    return f"{n:040x}"


def sha256(n: int) -> str:
    return f"{n:064x}"


def sha1s(n: int, start: int = 0) -> list[Indicator]:
    """``n`` SHA-1 indicators numbered from ``start``, each from its line of ``feed.txt``."""
    return [Indicator(Kind.SHA1, sha1(i), f"feed.txt:{i + 1}") for i in range(start, start + n)]


def write_list(path: Path, count: int, *, seed: int = 1, bad_every: int = 0) -> Path:
    """A list feed of ``count`` random SHA-256 hashes; with ``bad_every``, a non-indicator line and
    a URL (which the ti target rejects) after every ``bad_every``-th hash."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(count):
            out.write(f"{rng.getrandbits(256):064x}\n")
            if bad_every and i % bad_every == 0:
                out.write(f"definitely not an indicator\nhttp://url.example/{i}\n")
    return path


def write_feed(path: Path, numbers: Sequence[int]) -> Path:
    """A list feed of ``sha256(n)`` for each of ``numbers``."""
    path.write_text("".join(f"{sha256(n)}\n" for n in numbers))
    return path


# --- journals as older versions left them --------------------------------------------------------
def as_schema(path: Path, version: int, *statements: str) -> None:
    """Make the journal at ``path`` look as schema ``version`` left it: ``statements`` undo what came
    after it (a table dropped, a column, an index added back), and the file says ``version``."""
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
        conn.commit()
    finally:
        conn.close()


def schema_version(path: Path) -> int:
    """The schema version the journal at ``path`` says it has."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
