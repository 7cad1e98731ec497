"""STIX 2.0/2.1 feeds: each indicator-kind comparison in an indicator's pattern becomes an Indicator.

Input: a bundle, a lone STIX object, or a JSON list of objects (STIX 2.0 or 2.1; 2.0 has no
``pattern_type`` and may lack ``spec_version``). The JSON is read streaming, an object at a time
(``feeds.jsonstream``): memory follows the largest object, not the file, and records come out
as the objects are read — so a document that turns out broken (truncated, say) is refused after
the records of the objects before the break. A bundle's ``spec_version`` applies to the objects
after it (STIX 2.0 writers put it first; it only picks which pattern grammar is tried first).

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

- an object the reader cannot hold (over ``options.max_object_chars``, nested too deeply, with a
  number of thousands of digits or a lone surrogate escape) yields one ``Rejected`` and the
  objects after it are read.

Origins are ``<name>:<object id>`` (``bundle.json:indicator--8e2e2d2b-...``); an object without
an id is ``<name>:#<n>``, its 1-based position among the objects. STIX 1.x (XML or STIX 1
shaped JSON) and anything that is not JSON are refused with a one-sentence ``FeedError``.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TextIO

from feeds.canonical import InvalidValue, normalise, normalise_domain, normalise_ip, normalise_url, refang
from feeds.jsonstream import JsonStream, JsonSyntaxError, Problem
from feeds.model import Detection, Expired, FeedError, Indicator, Kind, Record, Rejected, Skipped, StixMeta
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
_TOP_KEYS = frozenset({"type", "spec_version", "id"})  # kept however big the rest of a document is
_MAX_ID = 200  # characters of an id kept in an origin (a real one has ~50)
_MAX_TIMESTAMP = 64  # longer text is no timestamp; and is not cached
_MAX_RAW = 2000  # characters of a pattern kept as a record's raw text

# What the feed says about an indicator: description, labels, confidence, first seen, expiry, and
# the STIX-only rest (``StixMeta``).
_Meta = tuple[str | None, tuple[str, ...], int | None, datetime | None, datetime | None]


def looks_like_stix1(head: str) -> bool:
    """Whether the first few KB of a file look like STIX 1.x (XML ``STIX_Package`` or STIX 1 JSON)."""
    return _STIX1_HEAD.search(head) is not None


def _stix1_error(name: str) -> FeedError:
    return FeedError(
        f"{name} is STIX 1.x, which ti-import does not read: convert it to STIX 2.1 first with "
        f"stix2-elevator (pip install stix2-elevator; stix2_elevator {name} > converted.json)."
    )


def _not_json(name: str, exc: JsonSyntaxError, head: str) -> FeedError:
    if looks_like_stix1(head):
        return _stix1_error(name)
    return FeedError(
        f"{name} is not valid JSON ({exc.msg} at line {exc.line}, column {exc.column}), "
        "so it cannot be read as STIX 2."
    )


def _objects(doc: JsonStream, name: str, max_chars: int) -> Iterator[tuple[Any, str | None]]:
    """Each STIX object of the document (or a ``Problem``), with the bundle's spec_version as known
    so far; FeedError when the document is JSON but not STIX 2."""
    first = doc.peek()
    if first == "[":
        yield from ((item, None) for item in doc.array())
        doc.finish()
        return
    if first != "{":
        doc.value()  # a syntax error if it is not JSON at all
        doc.finish()
        raise FeedError(f"{name} is JSON but not STIX 2: expected a bundle, an object or a list of objects.")
    top: dict[str, Any] = {}
    streamed = False
    trouble: Problem | None = None  # why the document, if it is one lone object, cannot be read
    held = 0
    for key in doc.members():
        if key == "objects" and doc.peek() == "[" and top.get("type", "bundle") == "bundle":
            # The bundle's objects, read one at a time; its spec_version counts for them when it
            # comes first (STIX 2.0 writers put it there; it only picks the grammar tried first).
            version = top.get("spec_version")
            streamed = True
            yield from ((item, version if isinstance(version, str) else None) for item in doc.array())
            continue
        value = doc.value()
        held += doc.last_size()
        if held > max_chars and key not in _TOP_KEYS and not isinstance(value, Problem):
            value = Problem("", f"a STIX object of more than {max_chars:,} characters, skipped unread")
        if isinstance(value, Problem):
            trouble = trouble or Problem(doc.head[:200], value.reason)
            value = None  # the key still tells what the document is (STIX 1 JSON, say)
        top[key] = value
    doc.finish()
    kind = top.get("type")
    if kind == "bundle":
        objects = top.get("objects", [])
        if not isinstance(objects, list):
            raise FeedError(f"{name} is a STIX bundle whose 'objects' is not a list.")
        version = top.get("spec_version")
        yield from ((item, version if isinstance(version, str) else None) for item in objects)
        return
    if streamed:
        what = f"its type is {kind!r}" if isinstance(kind, str) else "it has no 'type'"
        raise FeedError(f"{name} is JSON with 'objects' but not a STIX 2 bundle: {what}.")
    if isinstance(kind, str):
        yield trouble or top, None
        return
    if _STIX1_JSON_KEYS & top.keys() or str(top.get("version", "")).startswith("1."):
        raise _stix1_error(name)
    raise FeedError(f"{name} is JSON but not STIX 2: its top-level object has no 'type'.")


def parse(stream: TextIO, name: str, options: FeedOptions) -> Iterator[Record]:
    """Read a STIX 2.x document; yields a record per importable test, rejected test or object."""
    doc = JsonStream(stream, options.max_object_chars)
    now = options.now or datetime.now(UTC)
    index = 0
    try:
        for obj, bundle_version in _objects(doc, name, options.max_object_chars):
            index += 1
            if type(obj) is not dict:
                if isinstance(obj, Problem):
                    yield Rejected(f"{name}:#{index}", obj.raw, obj.reason)
                else:
                    yield Rejected(
                        f"{name}:#{index}", doc.last_raw(), "not a STIX object (a JSON object with a 'type')"
                    )
                continue
            obj_id = obj.get("id")
            if isinstance(obj_id, str) and obj_id:
                origin = f"{name}:{obj_id if len(obj_id) <= _MAX_ID else obj_id[:_MAX_ID] + '...'}"
            else:
                origin = f"{name}:#{index}"
            kind = obj.get("type")
            if kind != "indicator":
                if isinstance(kind, str):
                    yield Skipped(origin, kind[:_MAX_ID])
                else:
                    yield Rejected(origin, doc.last_raw(), "not a STIX object: it has no 'type'")
                continue
            yield from _indicator(obj, origin, bundle_version, now)
    except JsonSyntaxError as exc:
        raise _not_json(name, exc, doc.head) from None


def _indicator(
    obj: dict[str, Any], origin: str, bundle_version: str | None, now: datetime
) -> Iterator[Record]:
    pattern = obj.get("pattern")
    raw = pattern if isinstance(pattern, str) else ""
    shown = raw if len(raw) <= _MAX_RAW else raw[:_MAX_RAW] + "..."  # a record's raw text
    valid_until = obj.get("valid_until")
    expires = _timestamp(valid_until) if valid_until is not None else None
    if obj.get("revoked") is True:
        yield Expired(origin, shown, "the indicator is revoked")
        return
    if valid_until is not None and expires is None:
        yield Rejected(origin, shown, f"valid_until is not a STIX timestamp: {reprlib.repr(valid_until)}")
        return
    if expires is not None and expires < now:
        yield Expired(origin, shown, f"valid_until {valid_until} has passed")
        return
    pattern_type = obj.get("pattern_type", "stix")
    if not isinstance(pattern_type, str) or pattern_type.lower() != "stix":
        reason = (
            f"pattern_type {reprlib.repr(pattern_type)} is not STIX patterning; "
            "only 'stix' patterns can be imported"
        )
        yield Rejected(origin, shown, reason)
        return
    if not raw.strip():
        yield Rejected(origin, shown, "the indicator has no pattern")
        return
    version = obj.get("spec_version") or bundle_version or ("2.1" if "pattern_type" in obj else "2.0")
    try:
        found = comparisons(raw, version if isinstance(version, str) else "2.1")
    except PatternError as exc:
        yield Rejected(origin, shown, str(exc))
        return
    meta = _meta(obj, expires)
    stix = _stix_meta(obj)
    produced = False
    for comparison in found:
        record = _record(comparison, origin, meta, stix)
        if record is not None:
            produced = True
            yield record
    if not produced:
        yield Rejected(origin, shown, "the pattern holds no comparison that can become an indicator")


def _meta(obj: dict[str, Any], expires: datetime | None) -> _Meta:
    description = obj.get("description") or obj.get("name")
    labels: tuple[str, ...] = ()
    for key in ("labels", "indicator_types"):
        values = obj.get(key)
        if isinstance(values, list):
            # A set to test against: the lists may be hostile-long, and a tuple test is linear.
            known = set(labels)
            labels += tuple(v for v in values if isinstance(v, str) and v not in known)
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
    if not isinstance(value, str) or len(value) > _MAX_TIMESTAMP:
        return None  # and not cached: the cache holds short strings only
    return _parse_timestamp(value)


def _stix_meta(obj: dict[str, Any]) -> StixMeta | None:
    """The STIX-only properties a STIX target keeps (name, types, kill chain, references, TLP);
    None when the object has none. A malformed item of a list is left out, not the object.
    (Once per object of every STIX feed, whatever the target: what is absent costs a look-up.)"""
    name = obj.get("name")
    if not isinstance(name, str):
        name = None
    types = _texts(obj.get("indicator_types"))
    phases = _phases(obj["kill_chain_phases"]) if "kill_chain_phases" in obj else ()
    references = _references(obj["external_references"]) if "external_references" in obj else ()
    markings = _texts(obj.get("object_marking_refs"))
    if name is None and not (types or phases or references or markings):
        return None  # tested before building: a frozen dataclass costs more than the tests
    return StixMeta.fast(name, types, phases, references, markings)


def _phases(values: Any) -> tuple[tuple[str, str], ...]:
    return tuple(
        (phase["kill_chain_name"], phase["phase_name"])
        for phase in _items(values)
        if isinstance(phase.get("kill_chain_name"), str) and isinstance(phase.get("phase_name"), str)
    )


def _references(values: Any) -> tuple[str, ...]:
    return tuple(
        json.dumps(ref, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        for ref in _items(values)
        if isinstance(ref.get("source_name"), str)
    )


def _texts(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list):
        return ()
    if len(values) == 1 and isinstance(values[0], str):
        return (values[0],)  # the usual one ("malicious-activity"), without a generator
    return tuple(v for v in values if isinstance(v, str))


def _items(values: Any) -> list[dict[str, Any]]:
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


def _record(comparison: Comparison, origin: str, meta: _Meta, stix: StixMeta | None = None) -> Record | None:
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
    # ``fast``: the same Indicator for a fraction of the frozen dataclass's __init__ (see it).
    return Indicator.fast(kind, value, origin, *meta, detection, stix)


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
