"""What the Defender for Endpoint Indicators API accepts (API.md §3): kinds, limits, enumerations, pace.

``check_definition`` judges a feed's definition before anything is sent, naming the config key
at fault. ``MdePace`` is the documented call limits the client keeps to: sliding windows, not
even spacing (a window that allows 30 calls a minute allows them at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from feeds.model import Detection, Kind
from importer.errors import ConfigError
from importer.fields import DESCRIPTION, DETECTION_FUNCTION, SEVERITY, TITLE
from importer.model import DefinitionSpec
from importer.targets.base import TargetOption
from importer.targets.mde.fields import ACTION, GENERATE_ALERT

__all__ = [
    "ACTIONS",
    "BATCH_LIMIT",
    "CAP_CODE",
    "DEFAULT_API_URL",
    "DEFAULT_AUDIENCE",
    "MAX_TOP",
    "MDE_TYPES",
    "OPTIONS",
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


def _cap(value: str) -> str:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"must be a whole number, got {value!r}") from None
    if not 1 <= number <= TENANT_CAP:
        raise ValueError(f"must be between 1 and {TENANT_CAP:,}, got {number}")
    return str(number)


# The cap the run plans for (``HasHeadroom``, the cap's choice): the API's, or less to leave room
# for indicators added by hand in the portal.
OPTIONS: tuple[TargetOption, ...] = (
    TargetOption(
        "cap", f"the most indicators a run lets the tenant hold (default and most: {TENANT_CAP:,})",
        flag="--mde-cap", default=str(TENANT_CAP), check=_cap,
    ),
)  # fmt: skip
MDE_TYPES: Mapping[Kind, str] = {
    Kind.MD5: "FileMd5",
    Kind.SHA1: "FileSha1",
    Kind.SHA256: "FileSha256",
    Kind.IPV4: "IpAddress",
    Kind.IPV6: "IpAddress",
    Kind.DOMAIN: "DomainName",
    Kind.URL: "Url",
    Kind.CERT_SHA1: "CertificateThumbprint",  # a TLS certificate's SHA-1 (API.md §3's types)
}
ACTIONS = ("Alert", "Warn", "Block", "Audit", "BlockAndRemediate", "AlertAndBlock", "Allowed")
SEVERITIES = ("Informational", "Low", "Medium", "High")


@dataclass(frozen=True, slots=True)
class MdePace:
    """How fast to call: the documented sliding windows by default, a time scale for tests and
    benchmarks against a scaled emulator, and optional even spacing (``--rate``)."""

    import_per_minute: float = 30.0  # import and BatchDelete together, in any sliding minute
    batch_deletes_per_hour: int = 1500  # BatchDelete alone, in any sliding hour
    calls_per_minute: float = 100.0  # every other call...
    calls_per_hour: int = 1500  # ...and at most this many in any hour
    scale: float = 1.0  # a window's "minute" lasts 60 * scale seconds (the emulator's mde_window_scale)
    # Requests per (real) minute, evenly spaced, in each lane besides its windows: only when the
    # user asks for it (``--rate``). None: a lane sends as fast as its windows allow, bursts included.
    spacing_per_minute: float | None = None

    def __post_init__(self) -> None:
        rates = (
            self.import_per_minute,
            self.batch_deletes_per_hour,
            self.calls_per_minute,
            self.calls_per_hour,
            1.0 if self.spacing_per_minute is None else self.spacing_per_minute,
        )
        if min(*rates, self.scale) <= 0:
            raise ConfigError("the MDE pace needs positive rates and a positive time scale")

    def capped(self, rate_per_minute: float | None) -> MdePace:
        """This pace, its calls also spaced evenly at a configured ``rate_per_minute`` (None:
        unchanged). The windows stay: spacing can only make a lane slower."""
        if rate_per_minute is None:
            return self
        spacing = self.spacing_per_minute
        wanted = rate_per_minute if spacing is None else min(spacing, rate_per_minute)
        return replace(self, spacing_per_minute=wanted)


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
