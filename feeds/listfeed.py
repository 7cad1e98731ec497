"""Plain indicator lists: one indicator per line, the first token counts, the rest may describe it.

Handles what real lists do: ``#``, ``//`` and ``;`` comment lines (commented-out examples
included), blank lines, trailing text after whitespace, ``;``, ``,``, ``|`` or `` - ``
(``HASH;DESC``, LOKI's ``HASH;SCORE;DESC``, ``hash - filename``), mixed hashes, IPs, domains and
URLs, upper-case hex. A line whose first token is no indicator (a title such as ``Part 1 of 3:
...``, a 63-digit "sha256") is ``Rejected`` with its line and the reason from
``feeds.canonical``. The trailing text becomes the description; a LOKI score (an integer 0-100
before a second ``;``) becomes the confidence. Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``
(as ``open(newline="")`` splits them), and line numbers count them so. A line over
``options.max_line_bytes`` is one ``Rejected`` whatever it holds, its rest skipped unread
(``feeds.lines``): memory and time stay bounded on a feed of one endless line.

Speed: the stream is read in blocks and split by one regex whose first alternative is a bare
lower-case digest (the common line) — no per-line regex call, no per-line string for it; every
indicator is built by ``Indicator.fast``, not the frozen dataclass's slow ``__init__``.
Everything else goes through ``canonical.classify``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TextIO

from feeds.canonical import HASH_KINDS, InvalidValue, classify
from feeds.lines import LongLine, blocks, too_long
from feeds.model import Indicator, Kind, Record, Rejected
from feeds.options import FeedOptions

__all__ = ["parse"]

# One match per line: groups 1-3 a bare lower-case digest (sha256, sha1, md5); 4-6 a digest (any
# case) with trailing text: the digest, a LOKI score, the description; 7 any other non-empty
# line; an empty line matches with no group. Every alternative consumes a character, so a block
# ending in a line end never yields a phantom empty line. The blanks and separators around a
# digest are bounded (a line with more is read by group 7, alike), so a digest line is longer than
# its description by at most ``_BOUNDED``: only a long description, or a group 7 line, needs its
# length checked against the line limit (never below ``MIN_LINE_BYTES``).
_LINE = re.compile(
    r"[ \t]{0,64}+(?:([0-9a-f]{64})|([0-9a-f]{40})|([0-9a-f]{32}))[ \t]{0,64}+(?:\r\n|\n|\r|\Z)"
    r"|[ \t]{0,64}+([0-9a-fA-F]{64}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32})(?=[\s;,|]|\Z)"
    r"[ \t;,|-]{0,64}+(?:(100|\d{1,2})[ \t]{0,64}+;)?[ \t;,|-]{0,64}+([^\r\n]*)(?:\r\n|\n|\r|\Z)"
    r"|([^\r\n]+)(?:\r\n|\n|\r|\Z)"
    r"|\r\n|\n|\r"
)
_BOUNDED = 400  # at most this much of a digest line (groups 1-6) is not its description
_GROUP_KINDS = (Kind.MD5, Kind.SHA256, Kind.SHA1, Kind.MD5)
_TOKEN_SEPARATORS = re.compile(r"[;,|]")
_DESCRIPTION_LEAD = " \t;,|-"
_COMMENT_STARTS = ("#", "//", ";")
_MAX_TEXT = 500  # a description or a rejected line beyond this is cut: reports stay readable


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _describe(rest: str) -> tuple[str | None, int | None]:
    """The description (and a LOKI-style score as confidence) from the text after the token."""
    rest = rest.strip().lstrip(_DESCRIPTION_LEAD).rstrip()
    if not rest:
        return None, None
    score, sep, tail = rest.partition(";")
    # ASCII digits only, three at most: int() refuses "²" and a 5,000-digit string.
    if sep and score.isascii() and score.isdigit() and len(score) <= 3 and int(score) <= 100:
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


def _described(match: re.Match[str], origin: str, limit: int) -> Record:
    """A digest with trailing text (``_LINE`` groups 4-6): the description and LOKI score."""
    token, score, description = match.group(4, 5, 6)
    if len(description) > limit - _BOUNDED:
        line = match.group(0).rstrip("\r\n")
        if too_long(line, limit):
            return _long(line, origin, limit)
    description = description.rstrip()
    return Indicator.fast(
        HASH_KINDS[len(token)],
        token.lower(),
        origin,
        description=_clip(description) if description else None,
        confidence=None if score is None else int(score),
    )


def _long(line: str, origin: str, limit: int) -> Rejected:
    long = LongLine(line, len(line))
    return Rejected(origin, long.head, long.reason(limit))


def _other_line(line: str, origin: str, limit: int) -> Record | None:
    """A line that does not start with a digest: a comment, another kind, or a reject."""
    if len(line) * 4 > limit and too_long(line, limit):
        return _long(line, origin, limit)
    stripped = line.strip()
    if not stripped or stripped.startswith(_COMMENT_STARTS):
        return None
    token, rest = _split(stripped)
    try:
        kind, value = classify(token)
    except InvalidValue as exc:
        reason = str(exc)
        if reason.startswith("not a hash") and len(stripped.split(None, 2)) >= 2:
            reason = f"a line of prose or a title, not an indicator ({token!r} is {reason})"
        return Rejected(origin, _clip(stripped), reason)
    description, confidence = _describe(rest)
    return Indicator.fast(kind, value, origin, description=description, confidence=confidence)


def parse(stream: TextIO, name: str, options: FeedOptions) -> Iterator[Record]:
    """Yield one record per non-blank, non-comment line of ``stream``; never raises for a line."""
    limit = options.max_line_bytes  # a list has no columns and no expiry: only the limit applies
    make = Indicator.fast
    kinds = _GROUP_KINDS
    prefix = name + ":"
    lineno = 0
    for block in blocks(stream, limit):
        if type(block) is LongLine:
            lineno += 1
            yield Rejected(prefix + str(lineno), block.head, block.reason(limit))
            continue
        assert isinstance(block, str)  # for mypy: blocks yields text or LongLine
        for match in _LINE.finditer(block):
            lineno += 1
            group = match.lastindex
            if group is None:
                continue  # an empty line
            if group < 4:
                yield make(kinds[group], match.group(group), prefix + str(lineno))
                continue
            if group < 7:
                yield _described(match, prefix + str(lineno), limit)
                continue
            record = _other_line(match.group(7), prefix + str(lineno), limit)
            if record is not None:
                yield record
