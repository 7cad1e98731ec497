"""Reading a pulled TAXII collection: the newest version of each object, what it retires, STIX as ever.

The pull spools each object of each page as one JSON line (``Spool``), noting per STIX id the
latest ``modified`` seen. Reading it back then keeps only that version: an older one is counted
``skipped`` ("an older version"), since a newer version replaces it (STIX versioning). Each kept
object goes through the STIX reader of ``feeds`` (``feeds.FORMATS["stix"]``: its pattern parser,
its revocation and ``valid_until`` rules) — the one way this project reads an indicator.

A kept version that the STIX reader calls ``Expired`` (``revoked: true``, a past ``valid_until``)
retires its indicators: the same object, read once more without those two keys, says which
values they are, and they become the pull's ``removals`` — unless another live object of the pull
lists the same value. The run deletes the removals from the target (``state.retired``).

Each kept version also tells the pull's ``PulledVersions`` which keys its id produces now (a
retired one: none), so that the journal can take off the target what an earlier version of the
id produced and this one no longer does (``state.versions``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from feeds import FORMATS
from feeds.model import Expired, Indicator, Kind, Record, Rejected, Skipped
from feeds.options import FeedOptions
from importer.sources.pull import PulledVersions

__all__ = ["Spool", "read_spool"]

_STIX = FORMATS["stix"]
_OLDER = "indicator (an older version)"
_Key = tuple[Kind, str]


def _when(value: Any) -> datetime:
    """A STIX timestamp to compare versions by; anything else sorts first."""
    if isinstance(value, str) and len(value) <= 64:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


@dataclass(slots=True)
class Spool:
    """The pulled objects as JSON lines in ``out``, and each id's newest version."""

    out: TextIO
    newest: dict[str, datetime] = field(default_factory=dict)
    objects: int = 0

    def add(self, obj: Any) -> None:
        self.out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.objects += 1
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            when = _when(obj.get("modified"))
            if obj["id"] not in self.newest or when > self.newest[obj["id"]]:
                self.newest[obj["id"]] = when


def _kept(lines: TextIO, newest: dict[str, datetime]) -> Iterator[tuple[str, Any, bool]]:
    """Each spooled object as ``(line, object, newest)``; the newest version of an id once only."""
    pending = dict(newest)  # an id leaves once its newest version was given
    for line in lines:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # it was written by json.dumps: never, but say so
            yield line, None, True
            continue
        obj_id = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(obj_id, str):
            yield line, obj, True
            continue
        when = pending.get(obj_id)
        if when is not None and _when(obj.get("modified")) == when:
            del pending[obj_id]
            yield line, obj, True
        else:
            yield line, obj, False


def _retired_keys(obj: dict[str, Any], name: str, options: FeedOptions) -> list[_Key]:
    """The values an expired version names, read as if it were live."""
    alive = {key: value for key, value in obj.items() if key not in ("revoked", "valid_until")}
    return [
        (record.kind, record.value)
        for record in _STIX(io.StringIO(json.dumps(alive)), name, options)
        if isinstance(record, Indicator)
    ]


def _removals(lines: TextIO, newest: dict[str, datetime], name: str, options: FeedOptions) -> set[_Key]:
    """Pass 1: the values the kept versions retire (few: held in memory)."""
    removals: set[_Key] = set()
    for line, obj, kept in _kept(lines, newest):
        if not kept or not isinstance(obj, dict) or not ("revoked" in obj or "valid_until" in obj):
            continue
        if any(isinstance(record, Expired) for record in _STIX(io.StringIO(line), name, options)):
            removals.update(_retired_keys(obj, name, options))
    return removals


def read_spool(
    lines: TextIO,
    newest: dict[str, datetime],
    name: str,
    options: FeedOptions,
    removals: set[_Key],
    *,
    versions: PulledVersions | None = None,
) -> Iterator[Record]:
    """Pass 2: the records of the kept versions (``removals`` filled first, then emptied of every
    value a live object lists); an older version is one ``Skipped``. ``versions`` is told the keys
    each kept version produced (``PulledVersions``)."""
    removals.update(_removals(lines, newest, name, options))
    lines.seek(0)
    for line, obj, kept in _kept(lines, newest):
        if obj is None:
            yield Rejected(f"{name}:#?", line[:200], "not a JSON object")
            continue
        if not kept:
            yield Skipped(f"{name}:{obj.get('id')}", _OLDER)
            continue
        object_id = obj.get("id") if versions is not None and isinstance(obj, dict) else None
        said = False  # the version says the id's keys: some indicator, or none at all (retired)
        for record in _STIX(io.StringIO(line), name, options):
            if isinstance(record, Indicator):
                removals.discard((record.kind, record.value))
                if versions is not None and isinstance(object_id, str):
                    versions.produced(object_id, record.kind, record.value)
                said = True
            elif isinstance(record, Expired):
                said = True
            yield record
        if versions is not None and isinstance(object_id, str):
            # A version we cannot read (a pattern of nothing importable) keeps what the id had.
            versions.read(object_id, replaced=said)
