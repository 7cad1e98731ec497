"""The targets by name: the one place that imports target packages (a new target is one line here).

Settings ask it for a target's defaults, per-feed rows and API rules; the run asks it to open one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from importer.errors import ConfigError
from importer.fields import COMMON
from importer.model import Field, InFlight
from importer.targets import mde, sentinel, ti
from importer.targets.base import Target, TargetPackage
from importer.transport.connection import ConnectionSettings
from importer.transport.stats import TransportStats

__all__ = ["DEFAULT_TARGET", "TARGETS", "all_fields", "open_target", "package"]

TARGETS: Mapping[str, TargetPackage] = {
    entry.name: entry for entry in (ti.TARGET, mde.TARGET, sentinel.TARGET)
}
DEFAULT_TARGET = "ti"


def package(name: str) -> TargetPackage:
    """The named target's entry; a ConfigError naming the known ones otherwise."""
    found = TARGETS.get(name)
    if found is None:
        raise ConfigError(f"unknown target {name!r}: use {' or '.join(TARGETS)}")
    return found


def all_fields() -> tuple[Field[Any], ...]:
    """Every per-feed option: the shared rows, then each target's own (for flags and config keys)."""
    return COMMON + tuple(row for entry in TARGETS.values() for row in entry.fields)


@asynccontextmanager
async def open_target(
    name: str,
    settings: ConnectionSettings,
    stats: TransportStats,
    *,
    in_flight: InFlight | None = None,
    bulk: bool = True,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Target]:
    """The named target on one authenticated session, until the block ends (then closed)."""
    opener = package(name).open
    async with opener(
        settings, stats, in_flight=in_flight or InFlight(), bulk=bulk, sleep=sleep, clock=clock
    ) as target:
        yield target
