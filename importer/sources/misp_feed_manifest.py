"""A MISP feed's ``manifest.json``: the events it lists, those a pull reads, and the cursor it earns.

MISP publishes a feed as a folder: ``manifest.json`` maps each event's uuid to a summary of it
(``info``, ``Orgc``, ``Tag``, ``timestamp``: when the event last changed, in epoch seconds), and
``<uuid>.json`` holds the event. ``read_manifest`` streams the manifest (``feeds.jsonstream``: one
entry decoded at a time) and keeps, per event a pull must read, only its uuid and timestamp —
those newer than the cursor, oldest first. An entry that can never be read (a key that is not a
uuid — it becomes a file name and a URL —, no timestamp) is a ``problem`` named with its key.

``CursorTrack`` follows the reading: the feed's next cursor is the largest timestamp up to which
every event listed was read. An event that fails holds it below its own timestamp — an event of
the same second read earlier included — so the next run asks for it again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, TextIO

from feeds.jsonstream import JsonStream, JsonSyntaxError, Problem
from feeds.model import FeedError

__all__ = ["CursorTrack", "Entry", "Manifest", "cursor_seconds", "read_manifest"]

_log = logging.getLogger(__name__)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_MAX_ENTRY_CHARS = 1 << 20  # one entry's summary: a few hundred bytes; its tags at most a few KB
_SHOWN = 80  # characters of a bad key kept in a message


@dataclass(frozen=True, slots=True, order=True)
class Entry:
    """One event a pull reads: ordered by when it last changed, then by uuid."""

    timestamp: int
    uuid: str


@dataclass(slots=True)
class Manifest:
    """What a pull reads of a manifest: the events newer than its cursor, oldest first."""

    entries: list[Entry] = field(default_factory=list)
    listed: int = 0  # events the manifest lists, read or not
    problems: list[tuple[str, str]] = field(default_factory=list)  # (key, why it cannot be read)


def cursor_seconds(cursor: str | None) -> int | None:
    """The timestamp a kept cursor says (None: read every event)."""
    if cursor is None:
        return None
    if cursor.isascii() and cursor.isdigit():
        return int(cursor)
    _log.warning("ignored a MISP feed cursor that is not a timestamp: %.64r; reading every event", cursor)
    return None


def _seconds(value: Any) -> int | None:
    """A manifest ``timestamp``: epoch seconds as a number or as digits (MISP writes both)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 40:
        return value
    return None


def read_manifest(stream: TextIO, name: str, after: int | None) -> Manifest:
    """The events of the manifest text ``stream`` newer than ``after`` (None: all of them).

    FeedError when it is not a manifest at all: the pull then reads nothing."""
    manifest = Manifest()
    doc = JsonStream(stream, _MAX_ENTRY_CHARS)
    try:
        if doc.peek() != "{":
            doc.value()  # a syntax error if it is not JSON at all
            raise FeedError(f"{name} is not a MISP feed manifest: expected a JSON object of event uuids")
        for key in doc.members():
            summary = doc.value()
            manifest.listed += 1
            _take(manifest, key, summary, after)
        doc.finish()
    except JsonSyntaxError as exc:
        raise FeedError(
            f"{name} is not valid JSON ({exc.msg} at line {exc.line}, column {exc.column})"
        ) from None
    manifest.entries.sort()
    return manifest


def _take(manifest: Manifest, key: str, summary: Any, after: int | None) -> None:
    if not _UUID.fullmatch(key):
        manifest.problems.append((key[:_SHOWN], "the manifest lists an event whose key is not a uuid"))
        return
    if isinstance(summary, Problem):
        manifest.problems.append((key, f"its manifest entry cannot be read: {summary.reason}"))
        return
    stamp = _seconds(summary.get("timestamp")) if isinstance(summary, dict) else None
    if stamp is None:
        manifest.problems.append((key, "its manifest entry has no timestamp"))
        return
    if after is None or stamp > after:
        manifest.entries.append(Entry(stamp, key.lower()))


@dataclass(slots=True)
class CursorTrack:
    """The cursor earned while reading a manifest's entries in order (``reading`` each, ``failed``
    for one that could not be read, ``finished`` at the end); ``cursor`` None: no new one."""

    cursor: str | None = None
    _last: int | None = None
    _held: bool = False

    def reading(self, entry: Entry) -> None:
        if self._held:
            return
        # Every entry older than this one was read: the cursor may reach the last such second.
        if self._last is not None and entry.timestamp > self._last:
            self.cursor = str(self._last)
        self._last = entry.timestamp

    def failed(self) -> None:
        self._held = True

    def finished(self) -> None:
        if not self._held and self._last is not None:
            self.cursor = str(self._last)
