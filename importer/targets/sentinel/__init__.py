"""The ``sentinel`` target: Microsoft Sentinel's STIX objects upload API (API.md §4).

``client`` is the only code that knows its URLs and requests (and paces uploads by the documented
limit), ``stix`` the objects it uploads, ``target`` drives both for the pipeline, ``rules`` holds
what the API accepts and the target's own settings (``OPTIONS``: the workspace, the source
system, ARM's read-back), and ``fields`` its own per-feed options. ``TARGET`` is its entry in
``importer.targets.registry``.
"""

from __future__ import annotations

from importer.targets.base import TargetPackage
from importer.targets.sentinel.fields import FIELDS
from importer.targets.sentinel.rules import (
    BATCH_LIMIT,
    DEFAULT_API_URL,
    DEFAULT_AUDIENCE,
    OPTIONS,
    check_definition,
)
from importer.targets.sentinel.target import open_sentinel_target

__all__ = ["TARGET"]

TARGET = TargetPackage(
    name="sentinel",
    summary="Microsoft Sentinel's STIX objects upload API (a workspace's threat intelligence)",
    default_api_url=DEFAULT_API_URL,
    default_audience=DEFAULT_AUDIENCE,
    fields=FIELDS,
    max_batch=BATCH_LIMIT,
    # One object per value in a workspace's source system (deterministic ids): feeds share values.
    unique_values=True,
    check_definition=check_definition,
    open=open_sentinel_target,
    options=OPTIONS,
)
