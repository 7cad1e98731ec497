"""Decide how a CSV feed's rows map to indicators: from its header, its cells, or ``--columns``.

The reader (``feeds.csvfeed``) hands over the first rows of the file; ``choose`` returns a
``Layout``, says whether the first row is a header, or raises ``FeedError``. The rules are
documented in ``feeds.csvfeed``'s docstring, which is the user's reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace

from feeds.canonical import InvalidValue
from feeds.csvvocab import (
    CERT_CONTEXT,
    COLUMN_KINDS,
    FILE_EXTENSIONS,
    GENERIC_NAMES,
    KNOWN_NAMES,
    META_NAMES,
    TYPE_NAMES,
    VALUE_NAMES,
    Convert,
    any_kind,
    header_key,
    is_null,
    is_type_word,
)
from feeds.model import FeedError, Kind

__all__ = ["Layout", "choose", "parse_spec"]

Row = Sequence[str]
_SPEC_KINDS = "md5, sha1, sha256, hash, hashes, ip, domain, hostname, url, cert_sha1, any"
# Header names that say the rows describe certificates (not file samples).
_CERT_WORDS = ("cert", "x509")
_CERT_NAMES = frozenset(("issuer", "subject", "issuer_cn", "subject_cn", "not_before", "not_after"))
_SPEC_META = ("description", "first_seen", "labels", "confidence")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a row's indicators are (``picks``, or ``type_index``/``value_index``) and its metadata."""

    picks: tuple[tuple[int, Convert], ...] = ()
    type_index: int = -1
    value_index: int = -1
    description: int = -1
    first_seen: int = -1
    labels: int = -1
    confidence: int = -1

    @property
    def typed(self) -> bool:
        return self.type_index >= 0


def _meta(keys: Sequence[str], given: dict[str, int] | None = None) -> Layout:
    """A layout with only metadata: the first column of each role among header keys (or ``given``)."""
    found: dict[str, int] = {}
    for index, key in enumerate(keys):
        role = META_NAMES.get(key)
        if role is not None and role not in found:
            found[role] = index
    found.update(given or {})
    return Layout(
        description=found.get("description", -1),
        first_seen=found.get("first_seen", -1),
        labels=found.get("labels", -1),
        confidence=found.get("confidence", -1),
    )


def _reads_as_indicator(cell: str) -> bool:
    cell = cell.strip()
    if is_null(cell):
        return False
    try:
        any_kind(cell)
    except InvalidValue:
        return False
    return True


def _header_like(row: Row) -> bool:
    """A row of names: at least one name we know, and no cell that reads as an indicator."""
    return any(header_key(c) in KNOWN_NAMES for c in row) and not any(_reads_as_indicator(c) for c in row)


def _type_words(cells: Sequence[str]) -> bool:
    """Most (60 %) of a column's cells are type words."""
    return bool(cells) and sum(map(is_type_word, cells)) >= 0.6 * len(cells)


def _values_beside(rows: Sequence[Row], type_at: int, usable: Sequence[bool]) -> int:
    """The column next to a type column whose cells mostly read as indicators; -1 if none."""
    size = len(_column(rows, type_at))
    for value_at in (type_at + 1, type_at - 1):
        usable_here = 0 <= value_at < len(usable) and usable[value_at]
        if usable_here and sum(map(_reads_as_indicator, _column(rows, value_at))) * 2 >= size:
            return value_at
    return -1


def _typed_by_header(keys: Sequence[str], rows: Sequence[Row]) -> tuple[int, int]:
    """The type and value columns of a *type + value* header: each by its name, else by its cells
    (a type column under any name, e.g. ``entity_type``; the values beside it). -1, -1 if none."""
    type_at = next((i for i, k in enumerate(keys) if k in TYPE_NAMES), -1)
    value_at = next((i for i, k in enumerate(keys) if k in VALUE_NAMES and i != type_at), -1)
    if type_at < 0 and value_at >= 0:
        # Names that say what a column is not (file_type, category...) are no type column.
        candidates = (i for i, k in enumerate(keys) if i != value_at and k not in KNOWN_NAMES)
        type_at = next((i for i in candidates if _type_words(_column(rows, i))), -1)
    elif type_at >= 0 and value_at < 0 and _type_words(_column(rows, type_at)):
        usable = [k not in KNOWN_NAMES or k in VALUE_NAMES for k in keys]
        value_at = _values_beside(rows, type_at, usable)
    return (type_at, value_at) if type_at >= 0 and value_at >= 0 else (-1, -1)


def _from_header(keys: Sequence[str], rows: Sequence[Row]) -> Layout | None:
    """The layout the header names say (a type column also by its cells); None when no name is an
    indicator, type or value column."""
    meta = _meta(keys)
    type_at, value_at = _typed_by_header(keys, rows)
    if type_at >= 0:
        return replace(meta, type_index=type_at, value_index=value_at)
    picks = tuple((i, COLUMN_KINDS[k]) for i, k in enumerate(keys) if k in COLUMN_KINDS)
    if not picks:
        picks = tuple((i, any_kind) for i, k in enumerate(keys) if k in GENERIC_NAMES)
    return replace(meta, picks=picks) if picks else None


def _column(rows: Sequence[Row], index: int) -> list[str]:
    """The non-null stripped cells of one column."""
    cells = (row[index].strip() for row in rows if index < len(row))
    return [c for c in cells if not is_null(c)]


def _indicator_column(cells: Sequence[str]) -> bool:
    """Most cells read as indicators, and the "domains" are not mostly file names."""
    kinds: list[tuple[Kind, str]] = []
    for cell in cells:
        with suppress(InvalidValue):
            kinds.append(any_kind(cell))
    if not cells or len(kinds) < 0.8 * len(cells):
        return False
    files = sum(
        1 for kind, value in kinds if kind is Kind.DOMAIN and value.rpartition(".")[2] in FILE_EXTENSIONS
    )
    return files * 2 <= len(kinds)


def _from_content(rows: Sequence[Row], usable: Sequence[bool]) -> Layout | None:
    """The layout the cells say: a column of type words beside values, else columns of indicators."""
    for index, ok in enumerate(usable):
        if ok and _type_words(_column(rows, index)):
            value_at = _values_beside(rows, index, usable)
            if value_at >= 0:
                return Layout(type_index=index, value_index=value_at)
    picks = tuple((i, any_kind) for i, ok in enumerate(usable) if ok and _indicator_column(_column(rows, i)))
    return Layout(picks=picks) if picks else None


def parse_spec(spec: str) -> list[tuple[str, str]]:
    """``--columns`` as (column, role) pairs; column is a folded header name or a 1-based number."""
    pairs: list[tuple[str, str]] = []
    for item in spec.split(","):
        left, equals, right = (part.strip() for part in item.partition("="))
        if not equals or not left or not right:
            raise FeedError(
                f"--columns {spec!r} is not a list of COLUMN=KIND items (e.g. 'sha256_hash=sha256,3=domain' "
                "or 'type=Indicator_type,value=Data')."
            )
        if left.lower() in ("type", "value"):
            pairs.append((header_key(right), left.lower()))
            continue
        role = header_key(right)
        if role not in COLUMN_KINDS and role != "any" and role not in _SPEC_META:
            raise FeedError(
                f"--columns: unknown kind {right!r} for column {left!r} (use one of {_SPEC_KINDS}, "
                f"or {', '.join(_SPEC_META)}, or type=COLUMN,value=COLUMN)."
            )
        pairs.append((header_key(left), role))
    roles = {role for _, role in pairs}
    if ("type" in roles) != ("value" in roles):
        raise FeedError("--columns: the type + value layout needs both type=COLUMN and value=COLUMN.")
    if "type" in roles and roles - {"type", "value", *_SPEC_META}:
        raise FeedError("--columns: use either type=COLUMN,value=COLUMN or COLUMN=KIND items, not both.")
    if not roles - set(_SPEC_META):
        raise FeedError("--columns names no indicator column (e.g. 'url=url' or '3=domain').")
    return pairs


def _from_spec(pairs: Sequence[tuple[str, str]], keys: Sequence[str] | None) -> Layout:
    def index_of(column: str) -> int:
        if column.isdigit():
            # ASCII and short: int() refuses "²" (a digit to isdigit) and 5,000-digit numbers.
            if not column.isascii() or len(column) > 6:
                raise FeedError(f"--columns: {column[:20]!r} is not a column number a file can have.")
            if int(column) < 1:
                raise FeedError(f"--columns: column numbers start at 1, not {column}.")
            return int(column) - 1
        if keys is None:
            raise FeedError(f"--columns names column {column!r} but the file has no header; use its number.")
        if column not in keys:
            raise FeedError(f"--columns names column {column!r} but the header has: {', '.join(keys)}.")
        return keys.index(column)

    given: dict[str, int] = {}
    picks: list[tuple[int, Convert]] = []
    typed: dict[str, int] = {}
    for column, role in pairs:
        if role in ("type", "value"):
            typed[role] = index_of(column)
        elif role in _SPEC_META:
            given[role] = index_of(column)
        else:
            picks.append((index_of(column), any_kind if role == "any" else COLUMN_KINDS[role]))
    meta = _meta(keys or (), given)
    if typed:
        return replace(meta, type_index=typed["type"], value_index=typed["value"])
    return replace(meta, picks=tuple(picks))


def _name_like(cell: str) -> bool:
    """A cell that reads as a column name: a letter, no '.', ':', '/' or '@', not a long hex run."""
    if any(c in cell for c in "./:@") or not any(c.isalpha() for c in cell):
        return False
    return len(cell) < 16 or any(c.isalpha() and c.lower() not in "abcdef" for c in cell)


def _converts(row: Row, layout: Layout) -> bool:
    """Whether any indicator cell of ``row`` converts (a header row's names do not)."""
    if layout.typed:
        cells = [row[layout.value_index]] if layout.value_index < len(row) else []
        return any(_reads_as_indicator(c) for c in cells)
    for index, convert in layout.picks:
        cell = row[index].strip() if index < len(row) else ""
        try:
            if not is_null(cell) and convert(cell.split(",")[0].strip()):
                return True
        except InvalidValue:
            pass
    return False


def _unknown_header(row: Row, layout: Layout) -> bool:
    """A row of names where the rows below have indicators: every cell a name, none converts.

    Strict on purpose: a first data row with a bad value must be rejected, not eaten as a header.
    """
    indexes = [layout.value_index] if layout.typed else [i for i, _ in layout.picks]
    if not any(i < len(row) and row[i].strip() for i in indexes):
        return False
    cells = [c.strip() for c in row if c.strip()]
    return all(_name_like(c) for c in cells) and not _converts(row, layout)


def _as_certificates(layout: Layout, keys: Sequence[str] | None, certificates: bool) -> Layout:
    """In a list of certificates — its banner says so (``certificates``), or a header name such as
    ``issuer`` or ``cert_*`` does — the SHA-1 columns hold certificate thumbprints, not file hashes.
    Unless a column is named for thumbprints already: then the others are file hashes."""
    thumbprint = COLUMN_KINDS["cert_sha1"]
    if any(convert is thumbprint for _, convert in layout.picks):
        return layout
    named = any(w in k for k in keys or () for w in _CERT_WORDS) or bool(_CERT_NAMES & set(keys or ()))
    if not (certificates or named):
        return layout
    return replace(layout, picks=tuple((i, CERT_CONTEXT.get(c, c)) for i, c in layout.picks))


def choose(
    rows: Sequence[Row], comment: Row | None, spec: str | None, *, certificates: bool = False
) -> tuple[Layout, bool]:
    """The layout of a file starting with ``rows`` (after the ``comment`` line, if any), and
    whether ``rows[0]`` is its header. ``certificates``: the file's banner says it lists
    certificates. Raises ``FeedError`` when no indicator column is found."""
    pairs = parse_spec(spec) if spec else None
    if not rows:
        return Layout(), False
    first = rows[0]
    named = [column for column, _ in pairs or () if not column.isdigit()]

    def names_all(row: Row) -> bool:
        """The spec names columns and ``row`` has every one of those names."""
        keys = {header_key(c) for c in row}
        return bool(named) and all(column in keys for column in named)

    header: Row | None = None
    if _header_like(first) or names_all(first):
        header = first
    elif comment is not None and (_header_like(comment) or names_all(comment)):
        header = comment
    keys = [header_key(c) for c in header] if header is not None else None
    data = rows[1:] if header is first else rows
    layout = _from_spec(pairs, keys) if pairs else _from_header(keys, data) if keys is not None else None
    if layout is None:
        width = max(len(row) for row in rows)
        # Known names (imphash, reporter, port...) are never indicator columns, whatever their cells.
        usable = [keys is None or i >= len(keys) or keys[i] not in KNOWN_NAMES for i in range(width)]
        layout = _from_content(data, usable)
        if layout is None and header is None and len(data) > 1:
            # The first row may still be a header of unknown names: judge by the rows below it.
            layout = _from_content(data[1:], usable)
        if layout is None:
            raise FeedError("no indicator columns found; name them with --columns")
    if not pairs:  # what --columns names is what the user said
        layout = _as_certificates(layout, keys, certificates)
    if header is None and _unknown_header(first, layout) and any(_converts(row, layout) for row in rows[1:]):
        return layout, True
    return layout, header is first
