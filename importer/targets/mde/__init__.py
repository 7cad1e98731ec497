"""The ``mde`` target: the Defender for Endpoint Indicators API (API.md §3).

``client`` is the only code that knows its URLs and JSON (and paces calls by the documented
limits), ``target`` drives it for the pipeline, ``rules`` holds what the API accepts and
``fields`` its own per-feed options. ``TARGET`` is its entry in ``importer.targets.registry``.
"""

from __future__ import annotations

from importer.targets.base import TargetPackage
from importer.targets.mde.fields import FIELDS
from importer.targets.mde.rules import (
    BATCH_LIMIT,
    DEFAULT_API_URL,
    DEFAULT_AUDIENCE,
    OPTIONS,
    check_definition,
)
from importer.targets.mde.target import open_mde_target

__all__ = ["TARGET"]

TARGET = TargetPackage(
    name="mde",
    summary="the Defender for Endpoint Indicators API",
    default_api_url=DEFAULT_API_URL,
    default_audience=DEFAULT_AUDIENCE,
    fields=FIELDS,
    max_batch=BATCH_LIMIT,
    unique_values=True,
    check_definition=check_definition,
    open=open_mde_target,
    options=OPTIONS,
)
