"""An emulator of Azure AD's token endpoint, the legacy custom TI API, the MDE Indicators API and
Microsoft Sentinel's STIX upload API (and its ARM read-back), with seeded fault injection; tests,
benchmarks and the demo run against it.

It imports nothing else from ``importer``: it emulates the contract, not our code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from importer.emulator.config import (
    DEMO_CLIENT,
    DEMO_WORKSPACE,
    ClientApp,
    EmulatorConfig,
    Faults,
    SentinelWorkspace,
)

if TYPE_CHECKING:
    from importer.emulator.server import Emulator, running_emulator

__all__ = [
    "DEMO_CLIENT",
    "DEMO_WORKSPACE",
    "ClientApp",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "SentinelWorkspace",
    "running_emulator",
]

_SERVER_NAMES = frozenset({"Emulator", "running_emulator"})


def __getattr__(name: str) -> Any:
    # The server (and with it aiohttp.web) loads on first use: ``ti-import run`` builds its command
    # line from every sub-command's module, and must not pay for a server it never starts.
    if name in _SERVER_NAMES:
        from importer.emulator import server  # noqa: PLC0415 -- deferred on purpose (see above)

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
