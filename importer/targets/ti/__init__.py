"""The ``ti`` target: Defender ATP's retired custom threat intelligence API (API.md §2).

``client`` is the only code that knows its URLs and JSON, ``target`` drives it for the pipeline
(lost answers, bisection), ``rules`` holds what the API accepts and ``fields`` its own per-feed
options. ``TARGET`` is its entry in ``importer.targets.registry``.
"""

from __future__ import annotations

from importer.targets.base import TargetPackage
from importer.targets.ti.fields import FIELDS
from importer.targets.ti.rules import BULK_LIMIT, DEFAULT_API_URL, DEFAULT_AUDIENCE, check_definition
from importer.targets.ti.target import open_ti_target

__all__ = ["TARGET"]

TARGET = TargetPackage(
    name="ti",
    summary="Defender ATP's custom threat intelligence API (retired; the emulator serves it)",
    default_api_url=DEFAULT_API_URL,
    default_audience=DEFAULT_AUDIENCE,
    fields=FIELDS,
    max_batch=BULK_LIMIT,
    unique_values=False,
    check_definition=check_definition,
    open=open_ti_target,
)
