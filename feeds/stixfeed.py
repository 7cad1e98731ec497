"""STIX 2.0/2.1 feeds: each indicator-kind comparison in an indicator's pattern becomes an Indicator.

Input: a bundle, a lone STIX object, or a JSON list of objects (STIX 2.0 or 2.1; 2.0 has no
``pattern_type`` and may lack ``spec_version``). The JSON is read whole with ``json`` (a STIX
document is one value; a 100k-indicator bundle stays well under 300 MB).

Records, per object, in file order:
- an ``indicator`` whose pattern holds equality tests on ``file:hashes.(MD5|SHA-1|SHA-256)``,
  ``ipv4-addr:value``, ``ipv6-addr:value``, ``domain-name:value``, ``url:value`` or
  ``network-traffic:(dst_ref|src_ref).value`` yields one ``Indicator`` per such test, whatever
  OR/AND/FOLLOWEDBY joins them; ``LIKE 'abc%'``/``'%abc'``/``'%abc%'`` on domains and URLs
  yields StartWith/EndWith/Contains. Every other test (``file:name``, ``mutex:name``,
  ``MATCHES``, ``!=``...) yields one ``Rejected``; the network-traffic qualifiers ``dst_ref.type``,
  ``src_ref.type``, ``dst_port``, ``src_port`` and ``protocols`` are ignored, since they only
  describe the address beside them.
- a revoked indicator, or one whose ``valid_until`` is before ``options.now`` (default: the real
  UTC now), yields ONE ``Expired`` for the whole object (raw: its pattern) — it is not parsed.
- a pattern whose ``pattern_type`` is not ``stix`` (snort, yara, sigma...), that does not parse,
  or that holds nothing importable, yields one ``Rejected`` for the object.
- any other object yields ``Skipped(origin, what=<its type>)``.

Origins are ``<name>:<object id>`` (``bundle.json:indicator--8e2e2d2b-...``); an object without
an id is ``<name>:#<n>``, its 1-based position among the objects. STIX 1.x (XML or STIX 1
shaped JSON) and anything that is not JSON are refused with a one-sentence ``FeedError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TextIO

from feeds.canonical import InvalidValue, normalise, normalise_domain, normalise_ip, normalise_url, refang
from feeds.model import Detection, Expired, FeedError, Indicator, Kind, Record, Rejected, Skipped
from feeds.options import FeedOptions
from feeds.stixpattern import Comparison, PatternError, comparisons

__all__ = ["looks_like_stix1", "parse"]

_VALUE_KINDS = {"ipv4-addr": Kind.IPV4, "ipv6-addr": Kind.IPV6, "domain-name": Kind.DOMAIN, "url": Kind.URL}
_HASH_KINDS = {"MD5": Kind.MD5, "SHA1": Kind.SHA1, "SHA256": Kind.SHA256}
_ADDRESS_REFS = frozenset({"dst_ref", "src_ref"})
# network-traffic properties that only qualify the address beside them (MISP's ip|port export).
_QUALIFIERS = frozenset({"dst_port", "src_port", "protocols"})
_EQUALS = frozenset({"=", "=="})
_STIX1_JSON_KEYS = frozenset({"stix_header", "indicators", "observables", "ttps", "exploit_targets"})
_STIX1_HEAD = re.compile(
    r"<(?:[\w-]+:)?STIX_Package\b|xmlns(?::\w+)?=[\"']http://stix\.mitre\.org/stix-1"
    r"|\"stix_header\"\s*:|\"observable\"\s*:\s*\{"  # not "version": "1.x": STIX 2 software has one
)
_FRAGMENT = re.compile(r"[a-z0-9.-]+")

# What the feed says about an indicator: description, labels, confidence, first seen, expiry.
_Meta = tuple[str | None, tuple[str, ...], int | None, datetime | None, datetime | None]


def looks_like_stix1(head: str) -> bool:
    """Whether the first few KB of a file look like STIX 1.x (XML ``STIX_Package`` or STIX 1 JSON)."""
    return _STIX1_HEAD.search(head) is not None


def _stix1_error(name: str) -> FeedError:
    return FeedError(
        f"{name} is STIX 1.x, which ti-import does not read: convert it to STIX 2.1 first with "
        f"stix2-elevator (pip install stix2-elevator; stix2_elevator {name} > converted.json)."
    )


def _load(stream: TextIO, name: str) -> tuple[list[Any], str | None]:
    """The list of objects and the bundle's spec_version; FeedError if it is not STIX 2 JSON."""
    text = stream.read()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        if looks_like_stix1(text[:8192]):
            raise _stix1_error(name) from None
        raise FeedError(
            f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}), "
            "so it cannot be read as STIX 2."
        ) from None
    except RecursionError:
        raise FeedError(f"{name} is JSON nested too deeply to be a STIX 2 document.") from None
    del text
    if isinstance(document, list):
        return document, None
    if not isinstance(document, dict):
        raise FeedError(f"{name} is JSON but not STIX 2: expected a bundle, an object or a list of objects.")
    kind = document.get("type")
    if kind == "bundle":
        objects = document.get("objects", [])
        if not isinstance(objects, list):
            raise FeedError(f"{name} is a STIX bundle whose 'objects' is not a list.")
        version = document.get("spec_version")
        return objects, version if isinstance(version, str) else None
    if isinstance(kind, str):
        return [document], None
    if _STIX1_JSON_KEYS & document.keys() or str(document.get("version", "")).startswith("1."):
        raise _stix1_error(name)
    raise FeedError(f"{name} is JSON but not STIX 2: its top-level object has no 'type'.")


def parse(stream: TextIO, name: str, options: FeedOptions) -> Iterator[Record]:
    """Read a STIX 2.x document; yields a record per importable test, rejected test or object."""
    objects, bundle_version = _load(stream, name)
    now = options.now or datetime.now(UTC)
    for index, obj in enumerate(objects, 1):
        if not isinstance(obj, dict):
            raw = json.dumps(obj)[:200]
            yield Rejected(f"{name}:#{index}", raw, "not a STIX object (a JSON object with a 'type')")
            continue
        obj_id = obj.get("id")
        origin = f"{name}:{obj_id}" if isinstance(obj_id, str) and obj_id else f"{name}:#{index}"
        kind = obj.get("type")
        if kind != "indicator":
            if isinstance(kind, str):
                yield Skipped(origin, kind)
            else:
                yield Rejected(origin, json.dumps(obj)[:200], "not a STIX object: it has no 'type'")
            continue
        yield from _indicator(obj, origin, bundle_version, now)


def _indicator(
    obj: dict[str, Any], origin: str, bundle_version: str | None, now: datetime
) -> Iterator[Record]:
    pattern = obj.get("pattern")
    raw = pattern if isinstance(pattern, str) else ""
    valid_until = obj.get("valid_until")
    expires = _timestamp(valid_until) if valid_until is not None else None
    if obj.get("revoked") is True:
        yield Expired(origin, raw, "the indicator is revoked")
        return
    if valid_until is not None and expires is None:
        yield Rejected(origin, raw, f"valid_until is not a STIX timestamp: {valid_until!r}")
        return
    if expires is not None and expires < now:
        yield Expired(origin, raw, f"valid_until {valid_until} has passed")
        return
    pattern_type = obj.get("pattern_type", "stix")
    if not isinstance(pattern_type, str) or pattern_type.lower() != "stix":
        reason = f"pattern_type {pattern_type!r} is not STIX patterning; only 'stix' patterns can be imported"
        yield Rejected(origin, raw, reason)
        return
    if not raw.strip():
        yield Rejected(origin, raw, "the indicator has no pattern")
        return
    version = obj.get("spec_version") or bundle_version or ("2.1" if "pattern_type" in obj else "2.0")
    try:
        found = comparisons(raw, version if isinstance(version, str) else "2.1")
    except PatternError as exc:
        yield Rejected(origin, raw, str(exc))
        return
    meta = _meta(obj, expires)
    produced = False
    for comparison in found:
        record = _record(comparison, origin, meta)
        if record is not None:
            produced = True
            yield record
    if not produced:
        yield Rejected(origin, raw, "the pattern holds no comparison that can become an indicator")


def _meta(obj: dict[str, Any], expires: datetime | None) -> _Meta:
    description = obj.get("description") or obj.get("name")
    labels: tuple[str, ...] = ()
    for key in ("labels", "indicator_types"):
        values = obj.get(key)
        if isinstance(values, list):
            labels += tuple(v for v in values if isinstance(v, str) and v not in labels)
    confidence = obj.get("confidence")
    if not isinstance(confidence, int) or isinstance(confidence, bool) or not 0 <= confidence <= 100:
        confidence = None
    valid_from = obj.get("valid_from")
    first_seen = _timestamp(valid_from) if isinstance(valid_from, str) else None
    return (description if isinstance(description, str) else None, labels, confidence, first_seen, expires)


@lru_cache(maxsize=4096)
def _parse_timestamp(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _timestamp(value: Any) -> datetime | None:
    """A STIX timestamp as an aware datetime (naive ones taken as UTC); None if it is not one."""
    return _parse_timestamp(value) if isinstance(value, str) else None


def _record(comparison: Comparison, origin: str, meta: _Meta) -> Record | None:
    """The record one comparison yields; None for the network-traffic qualifiers (ignored)."""
    object_type, path, op, value, is_string = comparison
    kind: Kind | None  # None: an address reference, its kind read from the value
    if object_type in _VALUE_KINDS and path == ("value",):
        kind = _VALUE_KINDS[object_type]
    elif object_type == "file" and len(path) == 2 and path[0] == "hashes":
        kind = _HASH_KINDS.get(path[1].upper().replace("-", ""))
        if kind is None:
            reason = f"{comparison.path_text()} is not a hash kind a target can hold (MD5, SHA-1, SHA-256)"
            return Rejected(origin, comparison.text(), reason)
    elif object_type == "network-traffic" and path[0] in _ADDRESS_REFS and path[1:] == ("value",):
        kind = None
    elif object_type == "network-traffic" and (path[0] in _QUALIFIERS or path[1:] == ("type",)):
        return None
    else:
        reason = f"{comparison.path_text()} is not an indicator kind a target can hold"
        return Rejected(origin, comparison.text(), reason)
    detection = Detection.EQUALS
    try:
        if op not in _EQUALS and op != "LIKE":
            raise InvalidValue(f"the operator {op} cannot become an indicator (only = and LIKE can)")
        if not is_string:
            raise InvalidValue("the value is not a string")
        if op in _EQUALS:
            if kind is None:
                kind, value = _address(value)
            else:
                value = normalise(kind, value)
        elif op == "LIKE" and kind in (Kind.DOMAIN, Kind.URL):
            detection, value = _like(kind, value)
        else:
            raise InvalidValue("LIKE can only become an indicator on domain-name and url values")
    except InvalidValue as exc:
        return Rejected(origin, comparison.text(), str(exc))
    return Indicator(kind, value, origin, *meta, detection=detection)


def _address(raw: str) -> tuple[Kind, str]:
    """A network-traffic address reference: an IP address, else a domain name."""
    try:
        return normalise_ip(raw)
    except InvalidValue:
        pass
    try:
        return Kind.DOMAIN, normalise_domain(raw)
    except InvalidValue:
        raise InvalidValue("not an IP address or domain name") from None


def _like(kind: Kind, raw: str) -> tuple[Detection, str]:
    """A LIKE value as a detection function and the value without its '%' wildcards."""
    if "_" in raw:
        raise InvalidValue("a LIKE value with '_' (any one character) cannot become an indicator")
    leading, trailing = raw.startswith("%"), raw.endswith("%") and len(raw) > 1
    core = raw[1 if leading else 0 : -1 if trailing else None]
    if not core or "%" in core:
        raise InvalidValue("only LIKE 'abc%', '%abc' and '%abc%' can become an indicator")
    if not leading and not trailing:
        return Detection.EQUALS, normalise(kind, core)
    if leading and trailing:
        detection = Detection.CONTAINS
    else:
        detection = Detection.ENDS_WITH if leading else Detection.STARTS_WITH
    return detection, _fragment(kind, core, whole_start=not leading)


def _fragment(kind: Kind, core: str, *, whole_start: bool) -> str:
    """Part of a domain or URL in canonical form as far as a part can be (lower-case, refanged)."""
    text = refang(core.strip())
    if kind is Kind.DOMAIN:
        inner = text.strip(".")
        try:
            canonical = normalise_domain(inner)
        except InvalidValue:
            canonical = inner.lower()
            if not _FRAGMENT.fullmatch(canonical):
                raise InvalidValue("not part of a domain name") from None
        return text[: len(text) - len(text.lstrip("."))] + canonical + text[len(text.rstrip(".")) :]
    if not text or any(c.isspace() for c in text):
        raise InvalidValue("not part of a URL: empty or contains whitespace")
    if whole_start and "://" in text:
        try:
            return normalise_url(text)
        except InvalidValue:
            pass
    return text
