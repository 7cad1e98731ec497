"""Decide a feed's format from its first ~64 KB of text (csv, stix, misp or list); extension breaks ties.

Content decides, in this order:

1. Binary (NUL bytes, or mostly undecodable bytes) is refused; so is XML that is not STIX 1.x
   (STIX 1.x goes to the ``stix`` reader, whose refusal explains the conversion).
2. JSON (``{`` or a ``[`` opening a list of objects) is ``misp`` when it opens with MISP's
   ``{"Event":``, ``[{"Event":`` or ``{"response":``, or holds an ``"Attribute": [`` list and no
   STIX ``"objects"`` or ``"pattern"``; otherwise ``stix``.
3. Nothing but blank and comment lines: an empty ``list`` (a valid feed of zero records).
   Lines starting with ``;`` are comments to the list reader, and here too unless the cells
   they split into hold indicators (a ``;``-separated CSV whose first column is empty).
4. ``csv`` when a header names indicator columns (the first row, or a ``#`` comment line just
   above it, as abuse.ch writes it), when rows are quoted, or when a delimiter (``,`` tab
   ``;`` ``|``) splits nine rows in ten into the same number (>= 2) of cells and some cell other
   than the first holds indicators too.
5. Rows of "an indicator, a delimiter, free text" fit both readers (they read them the same
   way); the extension decides (``.csv``/``.tsv``: csv), else ``list`` — so LOKI's
   ``HASH;DESCRIPTION`` (with a variable number of ``;``) is a list.
6. Everything else is a ``list``: one indicator per line, trailing text allowed.
"""

from __future__ import annotations

import csv
import re
from collections import Counter

from feeds.canonical import InvalidValue, classify
from feeds.csvvocab import COLUMN_KINDS, GENERIC_NAMES, TYPE_NAMES, VALUE_NAMES, header_key
from feeds.model import FeedError
from feeds.stixfeed import looks_like_stix1

__all__ = ["FORMAT_NAMES", "check_text", "detect_format"]

FORMAT_NAMES = ("csv", "stix", "misp", "list")
_SAMPLE_LINES = 200
_DELIMITERS = (",", "\t", ";", "|")
_CSV_EXTENSIONS = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
_INDICATOR_HEADERS = frozenset(COLUMN_KINDS) | GENERIC_NAMES | TYPE_NAMES | VALUE_NAMES
# MISP's wrappers (an event, a list of events, a restSearch answer), or a bare event's attributes.
_MISP_START = re.compile(r'(?:\[\s*)?\{\s*"(?:Event|response)"\s*:')
_MISP_ATTRIBUTES = re.compile(r'"Attribute"\s*:\s*\[')
_STIX_KEYS = re.compile(r'"(?:objects|pattern|spec_version)"\s*:')
_COMMENTS = ("#", "//")  # and ";" when no ";"-separated cell holds an indicator (rule 3)


def check_text(head: str, name: str) -> None:
    """Refuse a head that is not text: NUL bytes, or too many bytes that are not UTF-8."""
    if "\x00" in head:
        raise FeedError(f"{name} is a binary file (it holds NUL bytes), not a text feed.")
    bad = head.count("\ufffd")
    if bad > 16 and bad * 10 > len(head):
        raise FeedError(f"{name} is not UTF-8 text (most of its first bytes do not decode), not a feed.")


def _is_indicator(cell: str) -> bool:
    cell = cell.strip().strip("\"'")
    if not cell or any(c.isspace() for c in cell):
        return False
    try:
        classify(cell)
    except InvalidValue:
        return False
    return True


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
    except csv.Error:
        return [line]


def _names_columns(line: str) -> bool:
    """Whether a line is a header naming at least one indicator column (and holds no indicator)."""
    for delimiter in _DELIMITERS:
        cells = [c.strip() for c in _cells(line, delimiter)]
        if len(cells) < 2:
            continue
        if any(_is_indicator(c) for c in cells):
            return False
        if any(header_key(c) in _INDICATOR_HEADERS for c in cells):
            return True
    return False


def _sample(head: str) -> tuple[list[str], str | None]:
    """Up to ``_SAMPLE_LINES`` data lines, and the comment line right above the first of them."""
    lines = head.splitlines()
    if len(lines) > 1 and not head.endswith(("\n", "\r")):
        lines.pop()  # the head may end mid-line
    data: list[str] = []
    above: str | None = None
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(_COMMENTS):
            if not data:
                above = stripped.lstrip("#/").strip()
            continue
        data.append(stripped)
        if len(data) >= _SAMPLE_LINES:
            break
    return data, above


def _table_shape(data: list[str]) -> tuple[str, int] | None:
    """The delimiter that splits nine rows in ten into one width >= 2, and that width."""
    best: tuple[str, int] | None = None
    best_share = 0.0
    for delimiter in _DELIMITERS:
        if not any(delimiter in line for line in data):
            continue
        widths = Counter(len(_cells(line, delimiter)) for line in data)
        width, count = widths.most_common(1)[0]
        share = count / len(data)
        if width >= 2 and share >= 0.9 and share > best_share:
            best, best_share = (delimiter, width), share
    return best


def _other_cells_hold_indicators(data: list[str], delimiter: str) -> bool:
    rows = [_cells(line, delimiter) for line in data[:50]]
    hits = sum(1 for row in rows if any(_is_indicator(cell) for cell in row[1:]))
    return hits * 2 >= len(rows)


def _looks_like_misp(start: str) -> bool:
    if _MISP_START.match(start):
        return True
    return _MISP_ATTRIBUTES.search(start) is not None and _STIX_KEYS.search(start) is None


def detect_format(head: str, name: str) -> str:
    """``"csv"``, ``"stix"``, ``"misp"`` or ``"list"`` for a feed whose first ~64 KB of text is ``head``."""
    check_text(head, name)
    start = head.lstrip()
    if start.startswith("{") or (start.startswith("[") and start[1:].lstrip()[:1] in ("{", "]", "")):
        return "misp" if _looks_like_misp(start) else "stix"
    if start.startswith("<"):
        if looks_like_stix1(head):
            return "stix"  # the STIX reader refuses it with the conversion advice
        kind = "an HTML page" if "<html" in start[:2048].lower() else "XML"
        raise FeedError(f"{name} is {kind}, not a CSV, STIX 2 JSON or plain-list feed.")
    data, above = _sample(head)
    by_extension = "csv" if name.lower().endswith(_CSV_EXTENSIONS) else "list"
    commented = all(line.startswith(";") for line in data) and not _other_cells_hold_indicators(data, ";")
    if not data or commented:
        return "list"  # nothing but comments (the list reader's "; ..." too): an empty list
    if (above is not None and _names_columns(above)) or _names_columns(data[0]):
        return "csv"
    if sum(1 for line in data if line.startswith('"')) * 2 >= len(data):
        return "csv"
    shape = _table_shape(data)
    if shape is None:
        if len(data) > 1 and header_key(data[0]) in _INDICATOR_HEADERS and by_extension == "csv":
            return "csv"  # a one-column CSV under its header
        return "list"
    delimiter, _ = shape
    if _other_cells_hold_indicators(data, delimiter):
        return "csv"
    if all(_is_indicator(_cells(line, delimiter)[0]) for line in data[:50]):
        return by_extension  # "indicator, text": both readers agree; follow the file's name
    return "csv"
