"""MISP events (the ``misp`` format): each attribute MISP marks for detection (``to_ids``) becomes indicators.

Input: one event (``{"Event": {...}}``, or the event object itself), a JSON list of events, or a
restSearch answer (``{"response": [{"Event": ...}, ...]}``, or an attribute search's
``{"response": {"Attribute": [...]}}``). The JSON is read streaming (``feeds.jsonstream``): each
event is decoded whole, one at a time — memory follows the largest event (or attribute of an
attribute search), never the file. An event over ``options.max_object_chars`` is one ``Rejected``.

Records, for each attribute of the event and of its objects (``Object[].Attribute``), in order:

- ``to_ids`` false (or ``deleted`` true): ``Skipped`` — MISP's own judgement that the attribute
  is context, not something to detect (a link, a comment, a file's size, a repeated hash).
- the indicator types: ``md5``, ``sha1``, ``sha256``; ``filename|md5``/``|sha1``/``|sha256`` and
  ``malware-sample`` (the hash kept, the name dropped); ``ip-src``, ``ip-dst`` and their
  ``|port`` forms (the port dropped); ``domain``; ``hostname`` (and ``hostname|port``);
  ``domain|ip`` (both); ``url``; ``x509-fingerprint-sha1`` (``cert_sha1``). A value that is not
  valid for its type is ``Rejected`` with the reason.
- ``ja3-fingerprint-md5`` is ``Rejected`` with the JA3 reason (see ``feeds.csvvocab``); every
  other type (``filename``, ``regkey|value``, ``sha512``, ``email-src``...) is ``Rejected`` with
  "unsupported indicator type '<type>'" — never guessed from its value (a file name reads as a domain).

Each indicator carries the event's ``info`` as its description; the event's tags, then the
attribute's, as labels (``tlp:white``, ``misp-galaxy:...="..."`` as MISP writes them); and as
first seen the attribute's ``first_seen``, else its ``timestamp``, else the event's ``timestamp``.
Origins are ``<name>:<attribute uuid>`` (``<name>:event <n> attribute <k>`` without one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from feeds.canonical import (
    InvalidValue,
    normalise_cert_sha1,
    normalise_domain,
    normalise_hash,
    normalise_ip,
    normalise_url,
)
from feeds.csvvocab import JA3_REASON
from feeds.jsonstream import JsonStream, JsonSyntaxError, Problem
from feeds.model import FeedError, Indicator, Kind, Record, Rejected, Skipped
from feeds.options import FeedOptions

__all__ = ["parse"]

Convert = Callable[[str], tuple[Kind, str]]
_MAX_ID = 200  # characters of a uuid kept in an origin (a real one has 36)
_MAX_RAW = 300  # characters of a value kept as a record's raw text
_TRUE = (True, 1, "1", "true", "True")


def _hash(kind: Kind) -> Convert:
    def convert(raw: str) -> tuple[Kind, str]:
        found, value = normalise_hash(raw)
        if found is not kind:
            raise InvalidValue(f"not a {kind} hash: {len(value)} hex digits ({found})")
        return kind, value

    return convert


def _ip(raw: str) -> tuple[Kind, str]:
    return normalise_ip(raw)


def _host(raw: str) -> tuple[Kind, str]:
    """A host name; an address in a ``hostname`` attribute is read as one."""
    try:
        return Kind.DOMAIN, normalise_domain(raw)
    except InvalidValue:
        if raw[:1].isdigit() or ":" in raw:
            return normalise_ip(raw)
        raise


def _url(raw: str) -> tuple[Kind, str]:
    return Kind.URL, normalise_url(raw)


def _cert(raw: str) -> tuple[Kind, str]:
    return Kind.CERT_SHA1, normalise_cert_sha1(raw)


def _ja3(raw: str) -> tuple[Kind, str]:
    raise InvalidValue(JA3_REASON)


_MD5, _SHA1, _SHA256 = _hash(Kind.MD5), _hash(Kind.SHA1), _hash(Kind.SHA256)
# For each MISP type, a converter per '|'-separated part of its value (None: a part dropped).
_TYPES: dict[str, tuple[Convert | None, ...]] = {
    "md5": (_MD5,),
    "sha1": (_SHA1,),
    "sha256": (_SHA256,),
    "filename|md5": (None, _MD5),
    "filename|sha1": (None, _SHA1),
    "filename|sha256": (None, _SHA256),
    "malware-sample": (None, _MD5),
    "ip-src": (_ip,),
    "ip-dst": (_ip,),
    "ip-src|port": (_ip, None),
    "ip-dst|port": (_ip, None),
    "domain": (_host,),
    "hostname": (_host,),
    "hostname|port": (_host, None),
    "domain|ip": (_host, _ip),
    "url": (_url,),
    "x509-fingerprint-sha1": (_cert,),
    "ja3-fingerprint-md5": (_ja3,),
}


def _not_json(name: str, exc: JsonSyntaxError) -> FeedError:
    return FeedError(
        f"{name} is not valid JSON ({exc.msg} at line {exc.line}, column {exc.column}), "
        "so it cannot be read as MISP events."
    )


def _not_misp(name: str) -> FeedError:
    return FeedError(
        f'{name} is JSON but not MISP: expected an event ({{"Event": ...}}), a list of events '
        'or a restSearch answer ({"response": [...]}).'
    )


def _is_event(value: Any) -> bool:
    return isinstance(value, dict) and ("Attribute" in value or "Object" in value or "info" in value)


def _events(doc: JsonStream, name: str) -> Iterator[Any]:
    """Each event of the document (a dict, or a ``Problem``); attribute searches give one pseudo-event
    per attribute. FeedError when the document is JSON but holds no MISP event."""
    first = doc.peek()
    if first == "[":
        for item in doc.array():
            yield item.get("Event", item) if isinstance(item, dict) else item
        doc.finish()
        return
    if first != "{":
        doc.value()  # a syntax error if it is not JSON at all
        doc.finish()
        raise _not_misp(name)
    top: dict[str, Any] = {}
    found = False
    for key in doc.members():
        if key == "Event":
            found = True
            yield doc.value()
        elif key == "response" and doc.peek() == "[":
            found = True
            for item in doc.array():
                yield item.get("Event", item) if isinstance(item, dict) else item
        elif key == "response" and doc.peek() == "{":
            found = True
            yield from _attribute_search(doc)
        else:
            top[key] = doc.value()
    doc.finish()
    if not found:
        if not _is_event(top):
            raise _not_misp(name)
        yield top  # a bare event object, as some exports write it


def _attribute_search(doc: JsonStream) -> Iterator[Any]:
    """``{"Attribute": [...]}`` of an attribute restSearch: each attribute as an event of its own
    (with the ``Event`` it names, when the answer includes it)."""
    for key in doc.members():
        if key != "Attribute" or doc.peek() != "[":
            doc.value()
            continue
        for attribute in doc.array():
            if isinstance(attribute, dict):
                event = attribute.get("Event")
                yield {**(event if isinstance(event, dict) else {}), "Attribute": [attribute]}
            else:
                yield attribute


def parse(stream: TextIO, name: str, options: FeedOptions) -> Iterator[Record]:
    """Read MISP events; yields a record per attribute (or per part of a composite attribute)."""
    doc = JsonStream(stream, options.max_object_chars)
    number = 0
    try:
        for event in _events(doc, name):
            number += 1
            if isinstance(event, Problem):
                yield Rejected(f"{name}:event {number}", event.raw, event.reason)
            elif not isinstance(event, dict):
                yield Rejected(f"{name}:event {number}", doc.last_raw(), "not a MISP event (a JSON object)")
            else:
                yield from _event(event, f"{name}:event {number}", name)
    except JsonSyntaxError as exc:
        raise _not_json(name, exc) from None


def _event(event: dict[str, Any], where: str, name: str) -> Iterator[Record]:
    info = event.get("info")
    description = info if isinstance(info, str) and info.strip() else None
    labels = _tags(event)
    stamp = _epoch(event.get("timestamp"))
    position = 0
    for attribute in _attributes(event):
        position += 1
        if not isinstance(attribute, dict):
            yield Rejected(f"{where} attribute {position}", str(attribute)[:_MAX_RAW], "not a MISP attribute")
            continue
        uuid = attribute.get("uuid")
        origin = (
            f"{name}:{uuid[:_MAX_ID]}" if isinstance(uuid, str) and uuid else f"{where} attribute {position}"
        )
        yield from _attribute(attribute, origin, description, labels, stamp)


def _attributes(event: dict[str, Any]) -> Iterator[Any]:
    """The event's attributes, then each object's, in order."""
    attributes = event.get("Attribute")
    if isinstance(attributes, list):
        yield from attributes
    objects = event.get("Object")
    if isinstance(objects, list):
        for obj in objects:
            inner = obj.get("Attribute") if isinstance(obj, dict) else None
            if isinstance(inner, list):
                yield from inner


def _attribute(
    attribute: dict[str, Any],
    origin: str,
    description: str | None,
    labels: tuple[str, ...],
    stamp: datetime | None,
) -> Iterator[Record]:
    kind = attribute.get("type")
    kind = kind if isinstance(kind, str) else "?"
    if attribute.get("deleted") in _TRUE:
        yield Skipped(origin, f"a deleted '{kind[:_MAX_ID]}' attribute")
        return
    if attribute.get("to_ids") not in _TRUE:
        yield Skipped(origin, f"a '{kind[:_MAX_ID]}' attribute with to_ids false")
        return
    value = attribute.get("value")
    if not isinstance(value, str) or not value.strip():
        yield Rejected(origin, str(value)[:_MAX_RAW], f"a '{kind[:_MAX_ID]}' attribute without a text value")
        return
    raw = value if len(value) <= _MAX_RAW else value[:_MAX_RAW] + "..."
    converts = _TYPES.get(kind.lower())
    if converts is None:
        yield Rejected(origin, raw, f"unsupported indicator type '{kind[:_MAX_ID]}'")
        return
    parts = value.split("|", len(converts) - 1) if len(converts) > 1 else [value]
    if len(parts) != len(converts):
        yield Rejected(origin, raw, f"a '{kind}' value needs {len(converts)} parts separated by '|'")
        return
    first_seen = _when(attribute.get("first_seen")) or _epoch(attribute.get("timestamp")) or stamp
    own = _tags(attribute)
    both = labels + tuple(tag for tag in own if tag not in labels) if own else labels
    for convert, part in zip(converts, parts, strict=True):
        if convert is None:
            continue
        try:
            found, canonical = convert(part.strip())
        except InvalidValue as exc:
            yield Rejected(origin, part.strip()[:_MAX_RAW], str(exc))
            continue
        yield Indicator.fast(found, canonical, origin, description, both, None, first_seen)


def _tags(holder: dict[str, Any]) -> tuple[str, ...]:
    """The tag names of an event or attribute (``Tag: [{name}]``, or ``EventTag``/``AttributeTag``)."""
    names: list[str] = []
    for key in ("Tag", "EventTag", "AttributeTag"):
        entries = holder.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            tag = entry.get("Tag", entry) if isinstance(entry, dict) else None
            tag_name = tag.get("name") if isinstance(tag, dict) else None
            if isinstance(tag_name, str) and tag_name.strip() and tag_name not in names:
                names.append(tag_name.strip())
    return tuple(names)


def _epoch(value: Any) -> datetime | None:
    """A MISP ``timestamp`` (seconds since the epoch, as text or a number); None if it is not one."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 36:
        return datetime.fromtimestamp(value, UTC)
    return None


def _when(value: Any) -> datetime | None:
    """An ISO 8601 ``first_seen`` (naive: UTC); None if it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
