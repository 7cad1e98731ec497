"""Helpers the test modules share (no test module imports another): building definitions by target."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from importer.fields import COMMON, build_definition
from importer.model import DefinitionSpec
from importer.targets.registry import package


def spec_for(
    name: str, target: str = "ti", *, expires_at: datetime | None = None, **given: Any
) -> DefinitionSpec:
    """A definition for ``target`` with the given option values (unchecked) and defaults for the rest."""
    spec = build_definition(COMMON + package(target).fields, name, **given)
    return spec if expires_at is None else replace(spec, expires_at=expires_at)
