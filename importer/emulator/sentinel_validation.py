"""What the STIX objects upload API accepts: the request's envelope (refused whole, 400) and each
object's properties (refused one by one, worded as the service words them)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from importer.emulator.replies import ApiError

__all__ = [
    "MAX_OBJECTS",
    "OBJECT_TYPES",
    "PATTERN_TYPES",
    "check_envelope",
    "check_object",
    "is_stix_id",
    "parse_timestamp",
]

MAX_OBJECTS = 100
OBJECT_TYPES = ("indicator", "attack-pattern", "threat-actor", "identity", "relationship")
# STIX 2.1's pattern-type open vocabulary (section 10.14).
PATTERN_TYPES = ("stix", "pcre", "sigma", "snort", "suricata", "yara")
_RESERVED_SOURCE = "microsoft sentinel"  # the service's own name for what it makes itself
_SPEC_VERSIONS = ("2.0", "2.1")
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ID = re.compile(rf"(?P<type>[a-z0-9]+(?:-[a-z0-9]+)*)--{_UUID}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_STIX_PATTERN = re.compile(r"\[\s*[a-z0-9-]+:[^\]]+\]")  # at least one [object-type:path op value]
# STIX 2.1 requires these beyond the common ones (sections 4.x); the indicator's are checked apart.
_REQUIRED_BY_TYPE = {
    "attack-pattern": ("name",),
    "threat-actor": ("name",),
    "identity": ("name",),
    "relationship": ("relationship_type", "source_ref", "target_ref"),
}
_MISSING = object()


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def check_envelope(body: Any) -> tuple[str, list[Any]]:
    """The request's source system and objects, or :class:`ApiError` 400 refusing the whole request."""
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object with 'sourcesystem' and 'stixobjects'.")
    source = body.get("sourcesystem")
    if source is None:
        raise _bad("The property 'sourcesystem' is required.")
    if not isinstance(source, str) or not source.strip():
        raise _bad("The property 'sourcesystem' must be a non-empty string.")
    if source.strip().casefold() == _RESERVED_SOURCE:
        raise _bad("The source system name 'Microsoft Sentinel' is reserved; choose another 'sourcesystem'.")
    objects = body.get("stixobjects")
    if objects is None:
        raise _bad("The property 'stixobjects' is required.")
    if not isinstance(objects, list) or not objects:
        raise _bad("The property 'stixobjects' must be a non-empty list of STIX objects.")
    if len(objects) > MAX_OBJECTS:
        raise _bad(f"Too many STIX objects: {len(objects)}; at most {MAX_OBJECTS} per request.")
    return source, objects


def is_stix_id(value: Any) -> bool:
    """Whether ``value`` is a STIX identifier, ``<type>--<uuid>``."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp with its offset (STIX writes ``Z``), or None if ``value`` is not one."""
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:  # well formed but no such date: 2026-02-30
        return None


def _message(prop: str, reason: str, value: Any) -> str:
    if value is _MISSING or value is None:
        shown = "NULL"
    else:
        shown = value if isinstance(value, str) else json.dumps(value)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
    return f"Error for Property={prop}: {reason}. Actual value: {shown}."


class _Checker:
    """Collects every error of one object (not just the first): a client fixes them all at once."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.errors: list[str] = []

    def fail(self, prop: str, reason: str) -> None:
        self.errors.append(_message(prop, reason, self.obj.get(prop, _MISSING)))

    def required(self, prop: str) -> Any:
        value = self.obj.get(prop)
        if value is None or value == "":
            self.fail(prop, "Required property is missing")
            return None
        return value

    def timestamp(self, prop: str, *, required: bool) -> datetime | None:
        value = self.required(prop) if required else self.obj.get(prop)
        if value is None:
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            self.fail(prop, "Invalid timestamp: expected RFC 3339, e.g. 2026-01-31T12:00:00.000Z")
        return parsed

    def optional(self, prop: str, test: Callable[[Any], bool], reason: str) -> None:
        value = self.obj.get(prop)
        if value is not None and not test(value):
            self.fail(prop, reason)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_common(check: _Checker) -> tuple[str | None, datetime | None]:
    """``type``, ``id``, ``spec_version``, ``created``, ``modified``: the type and modified time if valid."""
    kind = check.required("type")
    if kind is not None and kind not in OBJECT_TYPES:
        check.fail("type", f"Unsupported object type; supported: {', '.join(OBJECT_TYPES)}")
        kind = None
    stix_id = check.required("id")
    if stix_id is not None:
        match = _ID.fullmatch(stix_id) if isinstance(stix_id, str) else None
        if match is None:
            check.fail("id", "Invalid STIX identifier: expected '<type>--<uuid>'")
        elif isinstance(kind, str) and match["type"] != kind:
            check.fail("id", f"The identifier's type does not match the object's type '{kind}'")
    check.optional("spec_version", lambda v: v in _SPEC_VERSIONS,
                   "Unsupported spec_version; expected 2.0 or 2.1")
    check.timestamp("created", required=True)
    modified = check.timestamp("modified", required=True)
    check.optional("revoked", lambda v: isinstance(v, bool), "Expected a boolean")
    check.optional("labels", _is_strings, "Expected a list of strings")
    check.optional("created_by_ref", lambda v: isinstance(v, str) and v.startswith("identity--")
                   and _ID.fullmatch(v) is not None, "Expected an identity id 'identity--<uuid>'")
    return kind, modified


def _check_indicator(check: _Checker) -> None:
    pattern_type = check.required("pattern_type")
    if pattern_type is not None and pattern_type not in PATTERN_TYPES:
        check.fail("pattern_type", f"Unsupported pattern type; supported: {', '.join(PATTERN_TYPES)}")
    pattern = check.required("pattern")
    if pattern is not None and not isinstance(pattern, str):
        check.fail("pattern", "Expected a string")
    elif pattern_type == "stix" and pattern is not None and _STIX_PATTERN.search(pattern) is None:
        check.fail("pattern", "Invalid STIX pattern: expected e.g. [ipv4-addr:value = '203.0.113.1']")
    valid_from = check.timestamp("valid_from", required=True)
    valid_until = check.timestamp("valid_until", required=False)
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        check.fail("valid_until", "valid_until must be later than valid_from")
    check.optional("confidence", lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100,
                   "Expected an integer from 0 to 100")
    for prop in ("name", "description", "lang"):
        check.optional(prop, lambda v: isinstance(v, str), "Expected a string")
    check.optional("indicator_types", _is_strings, "Expected a list of strings")


def check_object(obj: Any) -> tuple[list[str], datetime | None]:
    """Every error message of one uploaded object (none: it is valid) and its ``modified`` time.

    Unknown properties (extensions, ``x_`` custom ones) are ignored, as the service does.
    """
    if not isinstance(obj, dict):
        return [_message("stixobject", "Expected a JSON object", obj)], None
    check = _Checker(obj)
    kind, modified = _check_common(check)
    if kind == "indicator":
        _check_indicator(check)
    for prop in _REQUIRED_BY_TYPE.get(kind or "", ()):
        check.required(prop)
    return check.errors, modified
