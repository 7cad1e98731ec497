"""Turn CSV rows into records, once ``feeds.csvlayout`` has said where the indicators are.

``column_rows`` reads the *columns* layout, ``typed_rows`` the *type + value* layout; both take
the running ``csv.reader`` and the ``RowPosition`` ``feeds.csvfeed``'s line feeder shares with
them (it says where the current row starts; they tell it where the reader's last row ended).
This is the hot loop: cell reads are inlined on purpose, the column plan and the constructor
are bound once per file, a cell that is already a canonical digest skips its converter
(``csvvocab.HEX_KINDS``), indicators are built with ``Indicator.fast``, and a row whose metadata
cells repeat the row before's reuses its fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from feeds.canonical import InvalidValue
from feeds.csvlayout import Layout
from feeds.csvvocab import HEX_KINDS, NULLS, PACKED, SKIP_TYPES, TYPE_KINDS, Convert, is_null, type_key
from feeds.lines import LongLine
from feeds.model import Indicator, Record, Rejected, Skipped

__all__ = ["RowPosition", "column_rows", "long_line_records", "typed_rows"]

_RAW_LIMIT = 300  # characters of a rejected row kept in its ``raw``
_PACK_SPLIT = re.compile(r"[\s,;|]+").split
Meta = tuple[str | None, tuple[str, ...], int | None, datetime | None]
_NO_META: Meta = (None, (), None, None)


@dataclass(slots=True)
class RowPosition:
    """Where the ``csv.reader`` is, shared by ``feeds.csvfeed``'s line feeder and the row loops.

    The feeder only drops ``#`` and blank lines at a row boundary, which it recognises by the
    reader having taken exactly ``lines_read_at_row_end`` lines; records name ``row_line``.
    """

    lines_read_at_row_end: int = 0  # the reader's ``line_num`` after its last row (the loops set it)
    row_line: int = 0  # the physical line where the current row starts (the feeder sets it)
    last_comment: str | None = None  # the last ``#`` line the feeder dropped between rows
    # Over-long lines the feeder met and the loops have not reported yet, with their numbers.
    long_lines: list[tuple[int, LongLine]] = field(default_factory=list)


def long_line_records(position: RowPosition, name: str, limit: int) -> Iterator[Rejected]:
    """A ``Rejected`` for each over-long line not reported yet (the feeder passed an empty row)."""
    for line_number, line in position.long_lines:
        yield Rejected(f"{name}:{line_number}", line.head, line.reason(limit))
    position.long_lines.clear()


def _raw(row: Sequence[str], delimiter: str) -> str:
    text = delimiter.join(row).strip()
    return text if len(text) <= _RAW_LIMIT else text[:_RAW_LIMIT] + "..."


class _Meta:
    """Reads a row's metadata cells into Indicator fields, caching the repetitive ones."""

    def __init__(self, layout: Layout) -> None:
        self.description, self.first_seen = layout.description, layout.first_seen
        self.labels, self.confidence = layout.labels, layout.confidence
        roles = (self.description, self.first_seen, self.labels, self.confidence)
        used = sorted({index for index in roles if index >= 0})
        self.any = bool(used)
        self._labels: dict[str, tuple[str, ...]] = {"": ()}
        self._seen: tuple[str, datetime | None] = ("", None)
        # The raw metadata cells of the last full row and what they gave: feeds repeat them row
        # after row (one date, one family), so most rows cost one C call and one comparison.
        self._width = used[-1] + 1 if used else 0
        self._cells: Callable[[Sequence[str]], object] = itemgetter(*used) if used else len
        self._last_cells: object = None
        self._last: Meta = _NO_META

    def of(self, row: Sequence[str]) -> Meta:
        """The fields ``row``'s metadata cells give (one tuple, shared while the cells repeat)."""
        if not self.any:
            return _NO_META
        if len(row) < self._width:
            return self._read(row)
        cells = self._cells(row)
        if cells != self._last_cells:
            self._last_cells, self._last = cells, self._read(row)
        return self._last

    def _read(self, row: Sequence[str]) -> Meta:
        # Inline cell reads: this runs once per row with metadata, and calls cost more than the work.
        size = len(row)
        description = labels = confidence = None
        index = self.description
        if 0 <= index < size:
            cell = row[index].strip()
            description = None if is_null(cell) else cell
        index = self.labels
        if 0 <= index < size:
            cell = row[index].strip()
            labels = self._labels.get(cell)
            if labels is None:
                labels = tuple(t for t in (p.strip() for p in cell.split(",")) if not is_null(t))
                if len(self._labels) > 4096:
                    self._labels.clear()
                self._labels[cell] = labels
        index = self.confidence
        if 0 <= index < size:
            cell = row[index].strip()
            # ASCII digits only: int() refuses "²", which isdigit() accepts.
            ok = cell.isascii() and cell.isdigit() and len(cell) <= 3
            confidence = int(cell) if ok and int(cell) <= 100 else None
        index = self.first_seen
        if 0 <= index < size:
            cell = row[index].strip()
            if cell != self._seen[0]:
                self._seen = (cell, _timestamp(cell))
            return description, labels or (), confidence, self._seen[1]
        return description, labels or (), confidence, None


def _timestamp(cell: str) -> datetime | None:
    """An ISO-like date or time (naive ones are UTC, as feeds use); None when it is not one."""
    if is_null(cell):
        return None
    try:
        value = datetime.fromisoformat(cell)
    except ValueError:
        return None
    if value.tzinfo is None:
        try:  # parsing again with an offset is ~7x cheaper than datetime.replace(tzinfo=...)
            with_offset = datetime.fromisoformat(cell + "+00:00")
        except ValueError:
            with_offset = value
        # A date alone ("20161104") ignores the offset: those repeat, so the slow way costs little.
        value = with_offset if with_offset.tzinfo is not None else value.replace(tzinfo=UTC)
    return value


# An ASCII cell that deleting these bytes empties is lower-case hex: its own canonical digest.
# bytes.translate builds its table per call from 16 bytes; str.translate and a regex fullmatch
# cost ~3x as much on a 64-character cell.
_LOWER_HEX = b"0123456789abcdef"


def _convert(convert: Convert, packed: bool, cell: str, origin: str, meta: Meta) -> Iterator[Record]:
    description, labels, confidence, first_seen = meta
    for value in _PACK_SPLIT(cell) if packed else (cell,):
        if not value:
            continue
        try:
            kind, canonical = convert(value)
        except InvalidValue as exc:
            yield Rejected(origin, value, str(exc))
            continue
        yield Indicator.fast(kind, canonical, origin, description, labels, confidence, first_seen)


def column_rows(
    reader: Any, position: RowPosition, layout: Layout, name: str, delimiter: str, *, limit: int
) -> Iterator[Record]:
    """Records of the *columns* layout: each picked column's cell is a value of its kind."""
    # The per-file plan: for each picked column, its converter, whether it packs several values,
    # and the lengths at which a lower-case hex cell is already its canonical digest.
    picks = tuple(
        (index, convert, convert in PACKED, HEX_KINDS.get(convert, {})) for index, convert in layout.picks
    )
    metas = _Meta(layout)
    make, lower_hex, nulls = Indicator.fast, _LOWER_HEX, NULLS
    prefix = name + ":"
    for row in reader:
        position.lines_read_at_row_end = reader.line_num
        origin = prefix + str(position.row_line)
        meta = None
        width = len(row)
        for index, convert, packed, hex_kinds in picks:
            if index >= width:
                continue
            cell = row[index]
            kind = hex_kinds.get(len(cell))
            if kind is None or not cell.isascii() or cell.encode().translate(None, lower_hex):
                # Not a canonical digest: strip, skip nulls, and let the converter decide.
                cell = cell.strip()
                if not cell or (len(cell) <= 4 and cell.lower() in nulls):
                    continue
                if meta is None:
                    meta = metas.of(row)
                    description, labels, confidence, first_seen = meta
                if packed:
                    yield from _convert(convert, packed, cell, origin, meta)
                    continue
                try:
                    kind, cell = convert(cell)
                except InvalidValue as exc:
                    yield Rejected(origin, cell, str(exc))
                    continue
            elif meta is None:
                meta = metas.of(row)
                description, labels, confidence, first_seen = meta
            yield make(kind, cell, origin, description, labels, confidence, first_seen)
        if meta is None:
            if any(cell.strip() for cell in row):
                yield Rejected(origin, _raw(row, delimiter), "no indicator value in this row")
            elif not row and position.long_lines:  # the feeder's stand-in for an over-long line
                yield from long_line_records(position, name, limit)


def _type_of(cell: str) -> tuple[str, tuple[Convert | None, ...]]:
    """What a type cell says: "kind" or "composite" with converters, "skip", "missing" or "unsupported"."""
    key = type_key(cell)
    if key in TYPE_KINDS:
        return "kind", (TYPE_KINDS[key],)
    if key in SKIP_TYPES:
        return "skip", ()
    if is_null(key):
        return "missing", ()
    if "|" in key:
        parts = tuple(TYPE_KINDS.get(part) for part in key.split("|"))
        if any(parts):
            return "composite", parts
    return "unsupported", ()


def typed_rows(
    reader: Any, position: RowPosition, layout: Layout, name: str, delimiter: str, *, limit: int
) -> Iterator[Record]:
    """Records of the *type + value* layout: the type cell says what the value cell is."""
    type_at, value_at = layout.type_index, layout.value_index
    metas = _Meta(layout)
    types: dict[str, tuple[str, tuple[Convert | None, ...]]] = {}
    for row in reader:
        position.lines_read_at_row_end = reader.line_num
        width = len(row)
        type_cell = row[type_at].strip() if type_at < width else ""
        value = row[value_at].strip() if value_at < width else ""
        resolved = types.get(type_cell)
        if resolved is None:
            resolved = _type_of(type_cell)
            if len(types) < 1024:
                types[type_cell] = resolved
        what, converts = resolved
        origin = f"{name}:{position.row_line}"
        if what == "skip":
            yield Skipped(origin, f"a '{type_cell}' row, not an indicator")
        elif what == "missing" and is_null(value):
            if any(cell.strip() for cell in row):
                yield Rejected(origin, _raw(row, delimiter), "no indicator value in this row")
            elif not row and position.long_lines:  # the feeder's stand-in for an over-long line
                yield from long_line_records(position, name, limit)
        elif what == "missing":
            yield Rejected(origin, value, "no indicator type given for this value")
        elif what == "unsupported":
            yield Rejected(origin, value or _raw(row, delimiter), f"unsupported indicator type '{type_cell}'")
        elif is_null(value):
            yield Rejected(origin, _raw(row, delimiter), f"no value for indicator type '{type_cell}'")
        elif what == "kind":
            convert = converts[0]
            assert convert is not None  # "kind" always carries its converter
            yield from _convert(convert, convert in PACKED, value, origin, metas.of(row))
        else:
            parts = value.split("|", len(converts) - 1)
            if len(parts) != len(converts):
                reason = f"a '{type_cell}' value needs {len(converts)} parts separated by '|'"
                yield Rejected(origin, value, reason)
                continue
            meta = metas.of(row)
            for part_convert, part in zip(converts, parts, strict=True):
                if part_convert is not None:
                    yield from _convert(part_convert, part_convert in PACKED, part.strip(), origin, meta)
