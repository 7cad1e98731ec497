"""What a definition already holds of some indicators: the check after a write whose answer was lost.

A lost answer may hide a write that landed, so before sending again ``target`` asks which of the
pending indicators the definition now holds: one ``$filter`` lookup per value for a few, or one
paging of the whole definition when that takes fewer calls.
"""

from __future__ import annotations

import asyncio

from feeds.model import Indicator
from importer.targets.common import value_key
from importer.targets.ti.client import PAGE, TiClient
from importer.targets.ti.rules import TI_TYPES

__all__ = ["stored_of"]

_LOOKUP_CONCURRENCY = 8  # parallel per-value lookups


async def stored_of(
    client: TiClient, definition_id: str, pending: list[Indicator]
) -> dict[tuple[str, str], str]:
    """Which of ``pending`` the definition holds: per-value lookups, or one paging if cheaper."""
    stored: dict[tuple[str, str], str] = {}
    if len(pending) > _LOOKUP_CONCURRENCY:
        held = await client.count_iocs(definition_id)
        if (held + PAGE - 1) // PAGE < len(pending):
            async for page in client.iocs_of(definition_id):
                for entity in page:
                    if isinstance(entity.get("Type"), str) and isinstance(entity.get("Value"), str):
                        stored.setdefault(
                            value_key(entity["Type"], entity["Value"]), str(entity.get("Id", ""))
                        )
            return stored
    gate = asyncio.Semaphore(_LOOKUP_CONCURRENCY)

    async def look_up(indicator: Indicator) -> None:
        ioc_type = TI_TYPES[indicator.kind]
        async with gate:
            found = await client.find_iocs(definition_id, ioc_type, indicator.value)
        if found:
            stored[value_key(ioc_type, indicator.value)] = str(found[0].get("Id", ""))

    await asyncio.gather(*(look_up(i) for i in pending))
    return stored
