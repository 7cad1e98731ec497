"""The per-feed options only the ``ti`` target has (rows beside ``importer.fields.COMMON``)."""

from __future__ import annotations

from typing import Any

from importer.checks import flag_bool, text
from importer.model import Field

__all__ = ["CATEGORY", "ENABLED", "FIELDS"]

CATEGORY: Field[str] = Field(
    "category", "ti: alert category, e.g. Malware (default SuspiciousNetworkTraffic)", text,
    "SuspiciousNetworkTraffic", target="ti",
)  # fmt: skip
ENABLED: Field[bool] = Field(
    "enabled", "ti: whether the alert definition raises alerts", flag_bool, True, target="ti", cli=False
)

FIELDS: tuple[Field[Any], ...] = (CATEGORY, ENABLED)
