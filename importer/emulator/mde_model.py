"""The Defender for Endpoint Indicator entity: validation of a submitted one (field names are
case-sensitive) and the shape a listed one takes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from importer.emulator.replies import ApiError
from importer.emulator.store import Entity
from importer.emulator.values import is_domain, is_full_ip, is_hex_hash, is_url

__all__ = ["ACTIONS", "ENTITY_PROPERTIES", "INDICATOR_TYPES", "SEVERITIES", "expiry_epoch", "render",
           "validate_indicator"]

INDICATOR_TYPES = ("FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint", "IpAddress", "DomainName",
                   "Url")
ACTIONS = ("Alert", "Warn", "Block", "Audit", "BlockAndRemediate", "AlertAndBlock", "Allowed")
SEVERITIES = ("Informational", "Low", "Medium", "High")
_REQUIRED = ("indicatorValue", "indicatorType", "action", "title", "description")
# externalId is the client's own id for the indicator (API.md section 3; the entity page spells it
# externalID, the clients that send it and API.md spell it externalId: names are case-sensitive).
_OPTIONAL_TEXT = ("application", "recommendedActions", "educateUrl", "externalId")
_TIMES = ("expirationTime", "lastUpdateTime")
_KNOWN = frozenset((*_REQUIRED, *_OPTIONAL_TEXT, *_TIMES, "severity", "rbacGroupNames", "rbacGroupIds",
                    "generateAlert"))
# A listed (or submitted-and-returned) indicator: these properties, in this order, as the entity
# page lists them; educateUrl is accepted and kept but is not one of them.
ENTITY_PROPERTIES = ("id", "indicatorValue", "indicatorType", "action", "application", "externalId",
                     "sourceType", "createdBySource", "createdBy", "lastUpdatedBy", "creationTimeDateTimeUtc",
                     "expirationTime", "lastUpdateTime", "severity", "title", "description",
                     "recommendedActions", "rbacGroupNames", "rbacGroupIds", "generateAlert")
_HASH_LENGTHS = {"FileSha1": 40, "FileSha256": 64, "FileMd5": 32, "CertificateThumbprint": 40}


def _error(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _value_error(indicator_type: str, value: str) -> ApiError | None:
    shown = value[:200]
    if indicator_type in _HASH_LENGTHS:
        if not is_hex_hash(value, _HASH_LENGTHS[indicator_type]):
            return _error("InvalidHashValue", f"Invalid hash value: '{shown}' is not a {indicator_type}.")
    elif indicator_type == "IpAddress":
        if not is_full_ip(value):
            return _error("InvalidIpAddress", f"Invalid IP address: '{shown}' (a single dotted-quad IPv4 "
                          "address, or an IPv6 address with all 8 segments and no '::'; no ranges).")
    elif indicator_type == "DomainName":
        if not is_domain(value):
            return _error("InvalidDomainName", f"Invalid domain name: '{shown}'.")
    elif not is_url(value):
        return _error("InvalidUrl", f"Invalid URL: '{shown}'.")
    return None


def validate_indicator(body: Any) -> Entity:
    """The indicator's fields, or :class:`ApiError` 400 with the documented error code."""
    if not isinstance(body, dict):
        raise _error("InvalidRequestBody", "An indicator must be a JSON object.")
    for name in _REQUIRED:
        if body.get(name) in (None, ""):
            raise _error("MissingRequiredParameter", f"The parameter '{name}' is required (names are "
                         "case-sensitive).")
    for name in body:
        if name not in _KNOWN:
            raise _error("InvalidRequestBody", f"Unknown parameter '{name}' (names are case-sensitive).")
    fields: Entity = {}
    for name in (*_REQUIRED, *_OPTIONAL_TEXT):
        if name in body and body[name] is not None:
            if not isinstance(body[name], str):
                raise _error("InvalidRequestBody", f"'{name}' must be a string.")
            fields[name] = body[name]
    if fields["indicatorType"] not in INDICATOR_TYPES:
        raise _error("InvalidRequestBody", f"indicatorType must be one of {', '.join(INDICATOR_TYPES)}.")
    if fields["action"] not in ACTIONS:
        raise _error("InvalidRequestBody", f"action must be one of {', '.join(ACTIONS)}.")
    value_error = _value_error(fields["indicatorType"], fields["indicatorValue"])
    if value_error is not None:
        raise value_error
    generate_alert = body.get("generateAlert")
    if generate_alert is not None and not isinstance(generate_alert, bool):
        raise _error("InvalidRequestBody", "generateAlert must be a boolean.")
    if fields["action"] == "Audit" and generate_alert is not True:
        raise _error("InvalidRequestBody", "The Audit action requires generateAlert to be true.")
    fields["generateAlert"] = bool(generate_alert)
    severity = body.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise _error("InvalidRequestBody", f"severity must be one of {', '.join(SEVERITIES)}.")
    fields["severity"] = severity or "Informational"
    for name in _TIMES:
        stamp = body.get(name)
        if stamp is not None and expiry_epoch(stamp) is None:
            raise _error("InvalidRequestBody", f"{name} must be an ISO 8601 date and time.")
    fields["expirationTime"] = body.get("expirationTime")
    if body.get("lastUpdateTime") is not None:
        fields["lastUpdateTime"] = body["lastUpdateTime"]
    for name in ("rbacGroupNames", "rbacGroupIds"):
        groups = body.get(name)
        valid = groups is None or (isinstance(groups, list) and all(type(g) in (str, int) for g in groups))
        if not valid:
            raise _error("InvalidRequestBody", f"{name} must be a list of group names or ids.")
        fields[name] = groups or []
    return fields


def expiry_epoch(stamp: object) -> float | None:
    """An ISO 8601 date and time as epoch seconds (no offset: UTC), or None if it is not one."""
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def render(entity: Entity) -> Entity:
    """The indicator as the API shows it: every documented property, null where it has no value."""
    return {name: entity.get(name) for name in ENTITY_PROPERTIES}
