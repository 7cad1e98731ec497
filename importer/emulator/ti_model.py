"""Validation of the TI API's entities: AlertDefinition and IndicatorOfCompromise bodies."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

from importer.emulator.replies import ApiError
from importer.emulator.store import Entity
from importer.emulator.values import is_domain, is_hex_hash, is_ip

__all__ = [
    "CATEGORIES",
    "DETECTION_FUNCTIONS",
    "IOC_TYPES",
    "SEVERITIES",
    "bad_request",
    "parse_bind",
    "validate_definition",
    "validate_ioc",
]

SEVERITIES = ("Informational", "Low", "Medium", "High")
# The full enum lived only in the service's $metadata; these are the categories seen in the docs
# and samples plus Defender's alert categories of the time.
CATEGORIES = (
    "Backdoor", "CommandAndControl", "CredentialAccess", "DefenseEvasion", "Discovery", "Exploit",
    "Exfiltration", "Execution", "InitialAccess", "LateralMovement", "Malware", "Persistence",
    "PrivilegeEscalation", "Ransomware", "SuspiciousActivity", "SuspiciousNetworkTraffic", "Trojan",
    "UnwantedSoftware",
)
IOC_TYPES = ("Sha1", "Sha256", "Md5", "IpAddress", "DomainName")
DETECTION_FUNCTIONS = ("Equals", "StartWith", "EndWith", "Contains")
_HASH_LENGTHS = {"Sha1": 40, "Sha256": 64, "Md5": 32}
_PARTIAL = {  # the alphabet a partial (non-Equals) value of each type may use
    "Sha1": re.compile(r"[0-9a-fA-F]{1,40}"),
    "Sha256": re.compile(r"[0-9a-fA-F]{1,64}"),
    "Md5": re.compile(r"[0-9a-fA-F]{1,32}"),
    "IpAddress": re.compile(r"[0-9a-fA-F.:]{1,45}"),
    "DomainName": re.compile(r"[A-Za-z0-9._-]{1,253}"),
}
_READ_ONLY = frozenset(("Id", "CreatedAt", "CreatedBy", "LastModifiedAt", "LastModifiedBy",
                        "AlertDefinitionId"))
# property -> (max length, required on create, nullable)
_DEFINITION_TEXT = {
    "Name": (100, True, False),
    "Title": (120, True, False),
    "InternalDescription": (350, True, False),
    "UxDescription": (500, True, False),
    "RecommendedAction": (2000, False, True),
}
_BIND = "AlertDefinition@odata.bind"
_BIND_RE = re.compile(r"(?:.*/)?AlertDefinitions\((\d{1,18})\)", re.IGNORECASE)


def bad_request(message: str, target: str | None = None) -> ApiError:
    return ApiError(400, "BadRequest", message, target=target)


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"The request body must be a JSON object describing {what}.")
    return body


def _enabled(value: Any) -> bool:
    # Microsoft's Python sample sends true, its PowerShell sample "true": both were accepted.
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise bad_request("Enabled must be a boolean (true or false).", "Enabled")


def _enum(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = body[name]
    if not isinstance(value, str) or value not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}; got {value!r}.", name)
    return value


def _check_unknown(body: dict[str, Any], known: frozenset[str], type_name: str) -> None:
    for name in body:
        if name in known or name in _READ_ONLY or name.startswith("@odata."):
            continue
        raise bad_request(f"The property '{name}' does not exist on type '{type_name}'. "
                          "Property names are case-sensitive.", name)


_DEFINITION_FIELDS = frozenset((*_DEFINITION_TEXT, "Severity", "Category", "Enabled"))
_IOC_FIELDS = frozenset(("Type", "Value", "DetectionFunction", "Enabled", "ExpiresAt", _BIND))


def validate_definition(body: Any, *, partial: bool) -> Entity:
    """The writable fields of an AlertDefinition body; all required ones unless ``partial`` (PATCH)."""
    body = _object(body, "an alert definition")
    _check_unknown(body, _DEFINITION_FIELDS, "AlertDefinition")
    fields: Entity = {}
    for name, (limit, required, nullable) in _DEFINITION_TEXT.items():
        if name not in body:
            if required and not partial:
                raise bad_request(f"The property '{name}' is required.", name)
            continue
        value = body[name]
        if value is None and nullable:
            fields[name] = None
            continue
        if not isinstance(value, str) or not value.strip():
            raise bad_request(f"{name} must be a non-empty string.", name)
        if len(value) > limit:
            raise bad_request(f"{name} must be at most {limit} characters; got {len(value)}.", name)
        fields[name] = value
    for name, allowed in (("Severity", SEVERITIES), ("Category", CATEGORIES)):
        if name in body:
            fields[name] = _enum(body, name, allowed)
        elif not partial:
            raise bad_request(f"The property '{name}' is required.", name)
    if "Enabled" in body:
        fields["Enabled"] = _enabled(body["Enabled"])
    elif not partial:
        fields["Enabled"] = True
    return fields


def parse_bind(value: Any) -> int:
    """The definition id named by ``"AlertDefinition@odata.bind": "AlertDefinitions(<id>)"``."""
    definition_id = _bind_id(value) if isinstance(value, str) else None
    if definition_id is None:
        raise bad_request(f"{_BIND} must look like 'AlertDefinitions(<id>)'; got {value!r}.", _BIND)
    return definition_id


@functools.lru_cache(maxsize=256)
def _bind_id(value: str) -> int | None:
    # Cached: a bulk upload names the same definition in each of its items (~1 µs an item).
    match = _BIND_RE.fullmatch(value)
    return None if match is None else int(match.group(1))


def _check_value(ioc_type: str, value: Any, detection: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request("Value must be a non-empty string.", "Value")
    if detection == "Equals":
        if ioc_type in _HASH_LENGTHS:
            valid = is_hex_hash(value, _HASH_LENGTHS[ioc_type])
        elif ioc_type == "IpAddress":
            valid = is_ip(value)
        else:
            valid = is_domain(value)
    else:
        valid = _PARTIAL[ioc_type].fullmatch(value) is not None
    if not valid:
        raise bad_request(f"Value {value[:100]!r} is not a valid {ioc_type}.", "Value")
    return value


def _expires_at(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise bad_request("ExpiresAt must be null or an ISO 8601 date and time.", "ExpiresAt")


def validate_ioc(body: Any, *, current: Entity | None = None) -> tuple[Entity, int | None]:
    """The IOC's writable fields merged over ``current`` (PATCH), and the bound definition id if given.

    On create (``current`` is None) the bind is required; the caller checks the definition exists.
    """
    body = _object(body, "an indicator of compromise")
    _check_unknown(body, _IOC_FIELDS, "IndicatorOfCompromise")
    fields: Entity = {} if current is None else {
        k: current[k] for k in ("Type", "Value", "DetectionFunction", "Enabled", "ExpiresAt")}
    for name in ("Type", "Value", "DetectionFunction"):
        if name not in body and current is None:
            raise bad_request(f"The property '{name}' is required.", name)
    if "Type" in body:
        fields["Type"] = _enum(body, "Type", IOC_TYPES)
    if "DetectionFunction" in body:
        fields["DetectionFunction"] = _enum(body, "DetectionFunction", DETECTION_FUNCTIONS)
    if "Value" in body or "Type" in body or "DetectionFunction" in body:
        fields["Value"] = _check_value(fields["Type"], body.get("Value", fields.get("Value")),
                                       fields["DetectionFunction"])
    if "Enabled" in body:
        fields["Enabled"] = _enabled(body["Enabled"])
    elif current is None:
        fields["Enabled"] = True
    if "ExpiresAt" in body:
        fields["ExpiresAt"] = _expires_at(body["ExpiresAt"])
    elif current is None:
        fields["ExpiresAt"] = None
    definition_id: int | None = None
    if _BIND in body:
        definition_id = parse_bind(body[_BIND])
    elif current is None:
        raise bad_request(f"The property '{_BIND}' is required: an IOC belongs to one alert definition.",
                          _BIND)
    return fields, definition_id
