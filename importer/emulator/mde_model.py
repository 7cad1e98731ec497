"""Validation of the Defender for Endpoint Indicator entity (field names are case-sensitive)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from importer.emulator.replies import ApiError
from importer.emulator.store import Entity
from importer.emulator.values import is_domain, is_hex_hash, is_ip, is_url

__all__ = ["ACTIONS", "INDICATOR_TYPES", "SEVERITIES", "validate_indicator"]

INDICATOR_TYPES = ("FileSha1", "FileSha256", "FileMd5", "CertificateThumbprint", "IpAddress", "DomainName",
                   "Url")
ACTIONS = ("Alert", "Warn", "Block", "Audit", "BlockAndRemediate", "AlertAndBlock", "Allowed")
SEVERITIES = ("Informational", "Low", "Medium", "High")
_REQUIRED = ("indicatorValue", "indicatorType", "action", "title", "description")
_OPTIONAL_TEXT = ("application", "recommendedActions", "educateUrl")
_KNOWN = frozenset((*_REQUIRED, *_OPTIONAL_TEXT, "expirationTime", "severity", "rbacGroupNames",
                    "rbacGroupIds", "generateAlert"))
_HASH_LENGTHS = {"FileSha1": 40, "FileSha256": 64, "FileMd5": 32, "CertificateThumbprint": 40}


def _error(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _value_error(indicator_type: str, value: str) -> ApiError | None:
    shown = value[:200]
    if indicator_type in _HASH_LENGTHS:
        if not is_hex_hash(value, _HASH_LENGTHS[indicator_type]):
            return _error("InvalidHashValue", f"Invalid hash value: '{shown}' is not a {indicator_type}.")
    elif indicator_type == "IpAddress":
        if not is_ip(value):
            return _error("InvalidIpAddress", f"Invalid IP address: '{shown}' (a single IPv4 or IPv6 "
                          "address; no ranges).")
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
    expiration = body.get("expirationTime")
    if expiration is not None:
        try:
            if not isinstance(expiration, str):
                raise ValueError(expiration)
            datetime.fromisoformat(expiration)
        except ValueError:
            raise _error("InvalidRequestBody", "expirationTime must be an ISO 8601 date and time.") from None
    fields["expirationTime"] = expiration
    for name in ("rbacGroupNames", "rbacGroupIds"):
        groups = body.get(name)
        valid = groups is None or (isinstance(groups, list) and all(type(g) in (str, int) for g in groups))
        if not valid:
            raise _error("InvalidRequestBody", f"{name} must be a list of group names or ids.")
        fields[name] = groups or []
    return fields
