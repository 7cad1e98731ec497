"""What the Defender for Endpoint Indicators API accepts (API.md §3): kinds, limits, enumerations, pace.

``check_definition`` judges a feed's definition before anything is sent, naming the config key
at fault. ``MdePace`` is the documented call rates the client keeps to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from feeds.model import Detection, Kind
from importer.errors import ConfigError
from importer.fields import DESCRIPTION, DETECTION_FUNCTION, SEVERITY, TITLE
from importer.model import DefinitionSpec
from importer.targets.mde.fields import ACTION, GENERATE_ALERT

__all__ = [
    "ACTIONS",
    "BATCH_LIMIT",
    "CAP_CODE",
    "DEFAULT_API_URL",
    "DEFAULT_AUDIENCE",
    "MAX_TOP",
    "MDE_TYPES",
    "SEVERITIES",
    "TENANT_CAP",
    "MdePace",
    "check_definition",
]

DEFAULT_API_URL = "https://api.securitycenter.microsoft.com/api/"
DEFAULT_AUDIENCE = "https://api.securitycenter.microsoft.com"  # v2 scope: this + "/.default"
BATCH_LIMIT = 500  # indicators per import call, ids per BatchDelete call
MAX_TOP = 10000  # the largest $top the list call takes
TENANT_CAP = 15000  # active indicators per tenant
CAP_CODE = "IndicatorLimitExceeded"  # the error code of an indicator refused because the cap is full
MDE_TYPES: Mapping[Kind, str] = {
    Kind.MD5: "FileMd5",
    Kind.SHA1: "FileSha1",
    Kind.SHA256: "FileSha256",
    Kind.IPV4: "IpAddress",
    Kind.IPV6: "IpAddress",
    Kind.DOMAIN: "DomainName",
    Kind.URL: "Url",
}
ACTIONS = ("Alert", "Warn", "Block", "Audit", "BlockAndRemediate", "AlertAndBlock", "Allowed")
SEVERITIES = ("Informational", "Low", "Medium", "High")


@dataclass(frozen=True, slots=True)
class MdePace:
    """How fast to call: the documented limits by default, and a time scale for tests and benchmarks."""

    import_per_minute: float = 30.0  # import and BatchDelete together
    batch_deletes_per_hour: int = 1500  # BatchDelete alone, in any hour
    calls_per_minute: float = 100.0  # every other call...
    calls_per_hour: int = 1500  # ...and at most this many in any hour
    scale: float = 1.0  # a "minute" lasts 60 * scale seconds

    def __post_init__(self) -> None:
        rates = (
            self.import_per_minute,
            self.batch_deletes_per_hour,
            self.calls_per_minute,
            self.calls_per_hour,
        )
        if min(*rates, self.scale) <= 0:
            raise ConfigError("the MDE pace needs positive rates and a positive time scale")

    def capped(self, rate_per_minute: float | None) -> MdePace:
        """This pace, no faster than a configured ``rate_per_minute`` (None: unchanged)."""
        if rate_per_minute is None:
            return self
        return replace(
            self,
            import_per_minute=min(self.import_per_minute, rate_per_minute),
            calls_per_minute=min(self.calls_per_minute, rate_per_minute),
        )


def check_definition(spec: DefinitionSpec) -> None:
    """Refuse, as one ConfigError sentence naming the key, a definition the API would refuse for
    every indicator."""
    for key, value in ((TITLE.key, spec[TITLE]), (DESCRIPTION.key, spec[DESCRIPTION])):
        if not value or not value.strip():
            raise ConfigError(f"key {key!r} is empty (the MDE API requires it)")
    action = spec[ACTION]
    if action not in ACTIONS:
        raise ConfigError(f"key 'action' must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action == "Audit" and not spec[GENERATE_ALERT]:
        raise ConfigError("the MDE action Audit requires generate_alert = true")
    if spec[SEVERITY] not in SEVERITIES:
        raise ConfigError(f"key 'severity' must be one of {', '.join(SEVERITIES)}, got {spec[SEVERITY]!r}")
    detection = spec[DETECTION_FUNCTION]
    if detection is not None and detection is not Detection.EQUALS:
        raise ConfigError(f"the mde target matches exact values only, not detection {detection}")
