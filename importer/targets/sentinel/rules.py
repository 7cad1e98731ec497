"""What the Sentinel STIX objects upload API accepts (API.md §4): kinds, limits, pace, names, options.

The target-level options (``OPTIONS``: the workspace, the source system, the ARM coordinates of
the read-back) are rows the settings read generically (``targets.base.TargetOption``). The pace
is one sliding window: 100 upload requests in any minute per client app, shared by every worker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from feeds.model import Kind
from importer.errors import ConfigError
from importer.model import DefinitionSpec
from importer.targets.base import TargetOption

__all__ = [
    "ARM_API_VERSION",
    "BATCH_LIMIT",
    "DEFAULT_API_URL",
    "DEFAULT_ARM_URL",
    "DEFAULT_AUDIENCE",
    "DEFAULT_SOURCE",
    "OPTIONS",
    "PATTERN_PATHS",
    "UPLOAD_API_VERSION",
    "SentinelPace",
    "check_definition",
]

DEFAULT_API_URL = "https://api.ti.sentinel.azure.com/"
DEFAULT_ARM_URL = "https://management.azure.com/"
# The v1 resource; the v2 scope is https://management.azure.com/.default (ARM takes the same token).
DEFAULT_AUDIENCE = "https://management.azure.com/"
UPLOAD_API_VERSION = "2024-02-01-preview"
ARM_API_VERSION = "2024-03-01"
BATCH_LIMIT = 100  # STIX objects per upload request
DEFAULT_SOURCE = "ti-importer"
_RESERVED_SOURCE = "microsoft sentinel"  # the service's own name: refused as a source system
# The STIX object path of each kind's pattern (``[<path> = '<value>']``).
PATTERN_PATHS: Mapping[Kind, str] = {
    Kind.MD5: "file:hashes.'MD5'",
    Kind.SHA1: "file:hashes.'SHA-1'",
    Kind.SHA256: "file:hashes.'SHA-256'",
    Kind.IPV4: "ipv4-addr:value",
    Kind.IPV6: "ipv6-addr:value",
    Kind.DOMAIN: "domain-name:value",
    Kind.URL: "url:value",
    Kind.CERT_SHA1: "x509-certificate:hashes.'SHA-1'",
}
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class SentinelPace:
    """How fast to upload: the documented window, and a time scale for a scaled emulator."""

    uploads_per_minute: int = 100  # per client app, in any sliding minute
    scale: float = 1.0  # a "minute" lasts 60 * scale seconds (the emulator's sentinel_window_scale)

    def __post_init__(self) -> None:
        if self.uploads_per_minute < 1 or self.scale <= 0:
            raise ConfigError("the Sentinel pace needs a positive rate and a positive time scale")

    @property
    def window(self) -> float:
        return 60.0 * self.scale


def _workspace_id(value: str) -> str:
    if _GUID.fullmatch(value.strip()) is None:
        raise ValueError(f"must be the workspace's GUID (Log Analytics workspace id), got {value!r}")
    return value.strip().lower()


def _source_system(value: str) -> str:
    if value.strip().casefold() == _RESERVED_SOURCE:
        raise ValueError("must not be 'Microsoft Sentinel': the service reserves that name for itself")
    return value.strip()


def _subscription(value: str) -> str:
    if _GUID.fullmatch(value.strip()) is None:
        raise ValueError(f"must be the subscription's GUID, got {value!r}")
    return value.strip()


def _arm_name(value: str) -> str:
    if "/" in value or "?" in value or "#" in value:
        raise ValueError(f"must be a name, not a path, got {value!r}")
    return value.strip()


OPTIONS: tuple[TargetOption, ...] = (
    TargetOption(
        "workspace_id", "a workspace id (the Log Analytics workspace's GUID)", flag="--workspace-id",
        env="TI_WORKSPACE_ID", required=True, check=_workspace_id, scopes_tenant=True,
    ),
    TargetOption(
        "source_system", f"the source system name shown in Sentinel (default {DEFAULT_SOURCE})",
        default=DEFAULT_SOURCE, check=_source_system, scopes_tenant=True,
    ),
    TargetOption("subscription_id", "the workspace's Azure subscription id (read-back)", check=_subscription),
    TargetOption("resource_group", "the workspace's resource group (read-back)", check=_arm_name),
    TargetOption("workspace_name", "the workspace's name (read-back)", check=_arm_name),
    TargetOption(
        "arm_url", f"the Azure Resource Manager URL (read-back; default {DEFAULT_ARM_URL})",
        default=DEFAULT_ARM_URL, kind="url",
    ),
)  # fmt: skip


def check_definition(spec: DefinitionSpec) -> None:
    """Nothing of a feed's definition can be refused by the API: its name becomes an identity's and
    a label, and ``marking`` is checked by its row. (The source system is a target option.)"""
    del spec
