"""Plain indicator lists: one indicator per line, the first token counts, the rest may describe it.

Handles what real lists do: ``#``, ``//`` and ``;`` comment lines (commented-out examples
included), blank lines, trailing text after whitespace, ``;``, ``,``, ``|`` or `` - ``
(``HASH;DESC``, LOKI's ``HASH;SCORE;DESC``, ``hash - filename``), mixed hashes, IPs, domains and
URLs, upper-case hex. A line whose first token is no indicator (a title such as ``Part 1 of 3:
...``, a 63-digit "sha256") is ``Rejected`` with its line and the reason from
``feeds.canonical``. The trailing text becomes the description; a LOKI score (an integer 0-100
before a second ``;``) becomes the confidence.

A bare hex digest, by far the common line, takes a fast path (one regex match); everything else
goes through ``canonical.classify``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import fields
from typing import Protocol, TextIO

from feeds.canonical import HASH_KINDS, InvalidValue, classify
from feeds.model import Detection, Indicator, Kind, Record, Rejected
from feeds.options import FeedOptions

__all__ = ["parse"]

# The hot path: a lower-case digest alone on its line; the group that matched gives the kind.
_BARE = re.compile(r"[ \t]*(?:([0-9a-f]{64})|([0-9a-f]{40})|([0-9a-f]{32}))\s*\Z")
_BARE_KINDS = (Kind.MD5, Kind.SHA256, Kind.SHA1, Kind.MD5)
# A digest followed by a separator and text: the optional LOKI score, then the description.
_DESCRIBED = re.compile(
    r"[ \t]*([0-9a-fA-F]{64}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32})(?=[\s;,|]|\Z)"
    r"[\s;,|-]*(?:(100|\d{1,2})[ \t]*;)?[\s;,|-]*(.*\S)?\s*\Z"
)
_TOKEN_SEPARATORS = re.compile(r"[;,|]")
_DESCRIPTION_LEAD = " \t;,|-"
_COMMENT_STARTS = ("#", "//", ";")
_MAX_TEXT = 500  # a description or a rejected line beyond this is cut: reports stay readable


class _MakeIndicator(Protocol):
    def __call__(
        self,
        kind: Kind,
        value: str,
        origin: str,
        *,
        description: str | None = ...,
        confidence: int | None = ...,
    ) -> Indicator: ...


def _checked_fast_indicator() -> _MakeIndicator:
    """``Indicator(kind, value, origin, ...)`` without the frozen dataclass's slow ``__init__``.

    The generated ``__init__`` of a frozen dataclass sets each of the nine slots through
    ``object.__setattr__`` (~1.2 us, more than everything else a bare-hash line costs); writing
    the slots through their descriptors is ~3x cheaper. Used only while the model has exactly
    the fields below and no ``__post_init__``; tests check it builds equal objects.
    """
    names = tuple(field.name for field in fields(Indicator))
    if names != _EXPECTED_FIELDS or hasattr(Indicator, "__post_init__"):
        return Indicator
    new = object.__new__
    set_kind, set_value, set_origin, set_description, set_labels = (
        getattr(Indicator, name).__set__ for name in names[:5]
    )
    set_confidence, set_first_seen, set_expires, set_detection = (
        getattr(Indicator, name).__set__ for name in names[5:]
    )
    equals = Detection.EQUALS

    def make(
        kind: Kind, value: str, origin: str, *, description: str | None = None, confidence: int | None = None
    ) -> Indicator:
        obj = new(Indicator)
        set_kind(obj, kind)
        set_value(obj, value)
        set_origin(obj, origin)
        set_description(obj, description)
        set_labels(obj, ())
        set_confidence(obj, confidence)
        set_first_seen(obj, None)
        set_expires(obj, None)
        set_detection(obj, equals)
        return obj

    return make


_EXPECTED_FIELDS = (
    "kind",
    "value",
    "origin",
    "description",
    "labels",
    "confidence",
    "first_seen",
    "expires",
    "detection",
)
fast_indicator = _checked_fast_indicator()


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _describe(rest: str) -> tuple[str | None, int | None]:
    """The description (and a LOKI-style score as confidence) from the text after the token."""
    rest = rest.strip().lstrip(_DESCRIPTION_LEAD).rstrip()
    if not rest:
        return None, None
    score, sep, tail = rest.partition(";")
    if sep and score.isdigit() and int(score) <= 100:
        return (_clip(tail.strip()) or None), int(score)
    return _clip(rest), None


def _split(stripped: str) -> tuple[str, str]:
    """The first token of a line and the text after it (URLs are cut at whitespace only)."""
    parts = stripped.split(None, 1)
    token = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    if "://" not in token:
        cut = _TOKEN_SEPARATORS.search(token)
        if cut is not None:
            at = cut.start()
            rest = token[at:] + (" " + rest if rest else "")
            token = token[:at]
    return token, rest


def _slow_line(stripped: str, origin: str) -> Record:
    """A line that is not a bare digest: classify its first token, or reject the line."""
    token, rest = _split(stripped)
    try:
        kind, value = classify(token)
    except InvalidValue as exc:
        reason = str(exc)
        if reason.startswith("not a hash") and len(stripped.split(None, 2)) >= 2:
            reason = f"a line of prose or a title, not an indicator ({token!r} is {reason})"
        return Rejected(origin, _clip(stripped), reason)
    description, confidence = _describe(rest)
    return Indicator(kind, value, origin, description=description, confidence=confidence)


def parse(stream: TextIO, name: str, options: FeedOptions) -> Iterator[Record]:
    """Yield one record per non-blank, non-comment line of ``stream``; never raises for a line."""
    del options  # a list has no columns and no expiry: nothing to configure
    make = fast_indicator
    bare = _BARE.match
    described = _DESCRIBED.match
    kinds = HASH_KINDS
    bare_kinds = _BARE_KINDS
    prefix = name + ":"
    for lineno, line in enumerate(stream, 1):
        match = bare(line)
        if match is not None:
            group = match.lastindex or 3  # never None: one alternative matched
            yield make(bare_kinds[group], match.group(group), prefix + str(lineno))
            continue
        match = described(line)
        if match is not None:
            token, score, description = match.groups()
            if description is not None and len(description) > _MAX_TEXT:
                description = _clip(description)
            yield make(
                kinds[len(token)],
                token.lower(),
                prefix + str(lineno),
                description=description,
                confidence=None if score is None else int(score),
            )
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith(_COMMENT_STARTS):
            continue
        yield _slow_line(stripped, prefix + str(lineno))
