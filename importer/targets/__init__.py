"""Opening a target by name: one authenticated session, its limiter and retrier, and the target on top."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from importer.errors import ConfigError
from importer.targets.base import Target
from importer.transport.connection import ConnectionSettings
from importer.transport.stats import TransportStats

__all__ = ["TI_DEFAULT_AUDIENCE", "open_target"]

# The resource the legacy TI API's own samples ask a token for (API.md §1).
TI_DEFAULT_AUDIENCE = "https://graph.windows.net"


@asynccontextmanager
async def open_target(
    name: Literal["ti", "mde"],
    settings: ConnectionSettings,
    stats: TransportStats,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    bulk: bool = True,
    workers: int = 16,
) -> AsyncIterator[Target]:
    """The named target, ready to use until the block ends (the session is closed on exit)."""
    if name == "mde":
        # Paced at the documented limits (see importer/mde_client.py); tests and benchmarks that
        # need a scaled pace open it with targets.mde.open_mde_target(..., pace=MdePace(scale=...)).
        from importer.targets.mde.target import open_mde_target  # noqa: PLC0415

        async with open_mde_target(
            settings, stats, sleep=sleep, clock=clock, bulk=bulk, workers=workers
        ) as mde_target:
            yield mde_target
        return
    if name != "ti":
        raise ConfigError(f"unknown target {name!r}: use ti or mde")
    # Imported here: the target modules import targets.base, which runs this package first.
    from importer.targets.ti.client import TiClient  # noqa: PLC0415
    from importer.targets.ti.target import TiTarget  # noqa: PLC0415
    from importer.transport.http import open_http  # noqa: PLC0415

    async with open_http(
        settings, stats, default_audience=TI_DEFAULT_AUDIENCE, workers=workers, sleep=sleep, clock=clock
    ) as http:
        yield TiTarget(TiClient(http, settings.api_url), http.retrier, stats, bulk=bulk, workers=workers)
