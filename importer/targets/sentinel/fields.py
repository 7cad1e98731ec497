"""The per-feed options only the ``sentinel`` target has (rows beside ``importer.fields.COMMON``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from importer.checks import one_of
from importer.model import Field

__all__ = ["FIELDS", "MARKING", "TLP_MARKINGS"]

# The TLP 1.0 marking definitions STIX 2.1 predefines (section 7.2.1.4): fixed ids every tool knows.
TLP_MARKINGS: Mapping[str, str] = {
    "white": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "red": "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}

MARKING: Field[str | None] = Field(
    "marking", "sentinel: TLP marking (white, green, amber, red) of indicators the feed leaves unmarked",
    one_of(("white", "green", "amber", "red"), fold=True), None, target="sentinel",
)  # fmt: skip

FIELDS: tuple[Field[Any], ...] = (MARKING,)
