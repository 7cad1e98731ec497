"""The STIX 2.1 objects this target uploads (API.md §4): ids, patterns, indicators, identities, revocations.

Half of the target's wire (``client`` is the other: URLs, requests, answers). Everything here is
pure: given the same indicator and feed it builds the same object but for ``modified`` (and
``valid_from``/``created`` when the feed gives no first-seen time), so a rerun, a retry or a
revocation names the same object.

* **Ids** are uuid5 of a fixed namespace: an indicator's of (workspace, source system, kind,
  value), a feed's identity of (workspace, source system, feed name). One value is one object in
  a workspace's source system, whichever feed lists it (the service counts two live indicators of
  one source with one pattern as duplicates): feeds share values as on ``mde``, and the feed that
  sent a value last names it (``created_by_ref``, its label).
* **Patterns** compare one object path with one value, the value a STIX string literal (``\\`` and
  ``'`` escaped): ``[file:hashes.'SHA-256' = '…']``, ``[ipv4-addr:value = '…']``...
* **The stamp** digests what the object says (everything but ``modified``, and ``created`` and
  ``valid_from`` when they are only the time of sending) and its ``valid_until``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from feeds.canonical import InvalidValue, normalise
from feeds.model import Indicator, Kind, StixMeta
from feeds.stixpattern import PatternError, comparisons
from importer.model import RemoteIndicator, Stamp
from importer.targets.common import epoch_of, meta_digest
from importer.targets.sentinel.rules import PATTERN_PATHS

__all__ = [
    "NAMESPACE",
    "FeedScope",
    "identity_id",
    "identity_object",
    "indicator_id",
    "indicator_object",
    "kind_value_of",
    "pattern_of",
    "remote_of_listed",
    "revoked_object",
    "stamp_of_indicator",
    "stix_time",
]

# Fixed forever: every id this importer ever uploaded derives from it.
NAMESPACE = uuid.UUID("5b0f3a8e-2c71-4d5a-9e64-0c8f1b7d2e93")
_SEP = "\x1f"
_PATHS = {path: kind for kind, path in PATTERN_PATHS.items()}


@dataclass(frozen=True, slots=True)
class FeedScope:
    """One feed in one workspace: what every object of the feed carries besides its own content."""

    workspace_id: str
    source_system: str
    feed: str  # the definition's name: the identity's name and a label on each indicator
    identity: str  # the feed's identity id (``created_by_ref``): the definition's id
    markings: tuple[str, ...] = ()  # the feed's TLP marking, for indicators that name none
    expires_at: datetime | None = None  # the feed's default expiry (``valid_until``)


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, _SEP.join(parts)))


def indicator_id(workspace_id: str, source_system: str, kind: Kind, value: str, revoked: int = 0) -> str:
    """The indicator's STIX id: the same for the same value in a workspace's source system, until
    the value was revoked (``revoked`` times): revocation is permanent, so the next object for it
    is another id (``state.revocations``)."""
    parts = (workspace_id.lower(), source_system, str(kind), value)
    return "indicator--" + (_uuid(*parts) if not revoked else _uuid(*parts, f"after revocation {revoked}"))


def identity_id(workspace_id: str, source_system: str, feed: str) -> str:
    """The feed's identity id: its source of record, and the definition's id."""
    return "identity--" + _uuid(workspace_id.lower(), source_system, feed)


def stix_time(moment: datetime) -> str:
    """A STIX timestamp to the millisecond, in UTC (``2026-01-31T12:00:00.000Z``); naive is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _literal(value: str) -> str:
    """A STIX pattern string literal: the value quoted, its backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern_of(kind: Kind, value: str) -> str:
    """The pattern matching exactly this value (``[domain-name:value = 'example.com']``)."""
    return f"[{PATTERN_PATHS[kind]} = {_literal(value)}]"


def kind_value_of(pattern: Any) -> tuple[Kind, str] | None:
    """The (kind, canonical value) of a pattern with one comparison of ours; None for any other."""
    if not isinstance(pattern, str):
        return None
    try:
        found = list(comparisons(pattern, "2.1"))
    except PatternError:
        return None
    if len(found) != 1:
        return None
    object_type, path, op, value, is_string = found[0]
    if op not in ("=", "==") or not is_string or not path:
        return None
    shown = path[0] if len(path) == 1 else f"{path[0]}.'{path[1]}'"
    kind = _PATHS.get(f"{object_type}:{shown}")
    if kind is None:
        return None
    with suppress(InvalidValue):
        return kind, normalise(kind, value)
    return None


def _content(indicator: Indicator, scope: FeedScope) -> dict[str, Any]:
    """What the indicator object says besides its id and times (``valid_from`` when the feed gave one)."""
    stix = indicator.stix
    body: dict[str, Any] = {
        "created_by_ref": scope.identity,
        "pattern": pattern_of(indicator.kind, indicator.value),
        "pattern_type": "stix",
        "name": (stix.name if stix is not None and stix.name else None) or indicator.value,
    }
    if indicator.description:
        body["description"] = indicator.description
    labels = list(dict.fromkeys((*indicator.labels, scope.feed)))
    body["labels"] = labels
    if indicator.confidence is not None:
        body["confidence"] = indicator.confidence
    if stix is not None and stix.indicator_types:
        body["indicator_types"] = list(stix.indicator_types)
    if stix is not None and stix.kill_chain_phases:
        body["kill_chain_phases"] = [
            {"kill_chain_name": chain, "phase_name": phase} for chain, phase in stix.kill_chain_phases
        ]
    if stix is not None and stix.external_references:
        body["external_references"] = [json.loads(ref) for ref in stix.external_references]
    markings = stix.object_marking_refs if stix is not None and stix.object_marking_refs else scope.markings
    if markings:
        body["object_marking_refs"] = list(markings)
    expires = indicator.expires or scope.expires_at
    if expires is not None:
        body["valid_until"] = stix_time(expires)
    return body


def indicator_object(
    indicator: Indicator, scope: FeedScope, now: datetime, revoked: int = 0
) -> dict[str, Any]:
    """The indicator as uploaded at ``now`` (its ``modified``; also ``created`` and ``valid_from``
    when the feed gives no first-seen time), its value revoked ``revoked`` times before."""
    sent = stix_time(now)
    since = stix_time(indicator.first_seen) if indicator.first_seen is not None else sent
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": indicator_id(scope.workspace_id, scope.source_system, indicator.kind, indicator.value, revoked),
        "created": since,
        "modified": sent,
        "valid_from": since,
        **_content(indicator, scope),
    }


def stamp_of_indicator(indicator: Indicator, scope: FeedScope) -> Stamp:
    """The stamp of what ``indicator_object`` would upload (the same at any ``now``).

    Its digest leaves out what follows from the kind and value (the id, the pattern, the name when
    the feed gives none): a rerun stamps every held indicator, and most of a feed's share their
    metadata, so the digest is taken once per distinct metadata (``_meta_of``, cached)."""
    expires = indicator.expires or scope.expires_at
    meta = _meta_of(
        scope,
        indicator.description,
        indicator.labels,
        indicator.confidence,
        indicator.first_seen,
        indicator.stix,
    )
    return Stamp(meta, None if expires is None else epoch_of(stix_time(expires)))


@lru_cache(maxsize=4096)
def _meta_of(  # noqa: PLR0917 -- the cache's key: every field the digest covers
    scope: FeedScope,
    description: str | None,
    labels: tuple[str, ...],
    confidence: int | None,
    first_seen: datetime | None,
    stix: StixMeta | None,
) -> int:
    """The digest of an indicator's metadata as uploaded (see ``stamp_of_indicator``)."""
    probe = Indicator(Kind.MD5, "", "", description, labels, confidence, first_seen, stix=stix)
    body = _content(probe, scope)
    since = stix_time(first_seen) if first_seen is not None else None
    return meta_digest((
        body["created_by_ref"], None if stix is None else stix.name, body.get("description"), body["labels"],
        body.get("confidence"), body.get("indicator_types"), _json(body.get("kill_chain_phases")),
        _json(body.get("external_references")), body.get("object_marking_refs"), since,
    ))  # fmt: skip


def _json(value: Sequence[Any] | None) -> list[str] | None:
    """Each item as compact JSON text with sorted keys (a digest compares sets of texts)."""
    if value is None:
        return None
    return [json.dumps(item, sort_keys=True, separators=(",", ":")) for item in value]


def revoked_object(remote_id: str, kind: Kind, value: str, scope: FeedScope, now: datetime) -> dict[str, Any]:
    """A last version of an indicator that left the feed: ``revoked`` (permanent), at ``now``."""
    sent = stix_time(now)
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": remote_id,
        "created": sent,
        "modified": sent,
        "created_by_ref": scope.identity,
        "pattern": pattern_of(kind, value),
        "pattern_type": "stix",
        "valid_from": sent,
        "labels": [scope.feed],
        "revoked": True,
    }


def identity_object(scope: FeedScope, description: str | None, when: datetime) -> dict[str, Any]:
    """The feed's identity: the source of record every indicator of the feed names."""
    body: dict[str, Any] = {
        "type": "identity",
        "spec_version": "2.1",
        "id": scope.identity,
        "created": stix_time(when),
        "modified": stix_time(when),
        "name": scope.feed,
        "identity_class": "system",
    }
    if description:
        body["description"] = description
    return body


def remote_of_listed(entry: Any, scope: FeedScope) -> RemoteIndicator | None:
    """An ARM ``queryIndicators`` item of this feed (its label) as a RemoteIndicator; None for one
    that is revoked, of another feed, or not a pattern of ours. Its id is the STIX id (ARM's
    ``externalId``; ARM's own ``name`` is another), else the one this importer gives the value; its
    stamp is unknown (None): the listing does not carry all that the stamp covers (kill chain,
    references, markings)."""
    if not isinstance(entry, dict):
        return None
    props = entry.get("properties")
    if not isinstance(props, dict) or props.get("revoked") is True:
        return None
    labels = props.get("labels")
    if not isinstance(labels, list) or scope.feed not in labels:
        return None
    found = kind_value_of(props.get("pattern"))
    if found is None:
        return None
    kind, value = found
    # The object's own STIX id when the listing gives it (a value revoked before has another id).
    external = props.get("externalId")
    if isinstance(external, str) and external.startswith("indicator--"):
        return RemoteIndicator(kind, value, external)
    return RemoteIndicator(kind, value, indicator_id(scope.workspace_id, scope.source_system, kind, value))
