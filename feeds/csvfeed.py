"""Read CSV feeds, streaming, into indicator records (the ``csv`` format of ``feeds.read_feed``).

Reading. The standard ``csv`` module reads the stream row by row; nothing holds more than the
first few dozen lines. The delimiter is sniffed among ``,`` tab ``;`` ``|`` (the one that splits
the first rows into the most rows of one width > 1; ``,`` when none does); ``"`` quotes fields,
which may hold delimiters, doubled quotes and newlines; spaces after a delimiter are skipped
(``", "`` separators). Lines starting with ``#`` and blank lines between rows are banners,
comments and trailers, never rows. Cells that are empty, ``n/a``, ``-``, ``none``, ``null`` hold
no value. Each record's origin is ``name:line``, the physical line where its row starts.

Layout (first match wins).
1. ``--columns SPEC`` (``FeedOptions.columns``), a comma-separated list of items:
   ``COLUMN=KIND`` where COLUMN is a header name (any case) or a 1-based column number and KIND
   is ``md5``, ``sha1``, ``sha256``, ``hash`` (kind from length), ``hashes`` (several per cell),
   ``ip``, ``domain``, ``hostname`` (domain or IP), ``url``, ``c2`` (host, port dropped, or URL),
   ``cert_sha1`` (a certificate thumbprint) or ``any`` (kind from the text);
   ``COLUMN=description|first_seen|labels|confidence`` for metadata; or the *type + value*
   layout as ``type=COLUMN,value=COLUMN``. Only the columns named are read as indicators.
   Examples: ``sha256_hash=sha256,dst_ip=ip``, ``3=domain``, ``type=Indicator_type,value=Data``.
2. A header: the first row, or else the ``#`` comment line just before it (abuse.ch's
   ``# "first_seen_utc","sha256_hash",...``), when it holds a known column name and no
   indicator. *Type + value* when it has a type column (``type``, ``Indicator_type``,
   ``entity_type``..., or under any other name a column whose cells are mostly type words) and
   a value column (``value``, ``Data``, ``indicator``..., or the column beside a named type
   column whose cells read as indicators); otherwise *columns*: each column named for a kind
   (``sha256_hash``, ``md5``, ``dst_ip``, ``ip``, ``domain``, ``hostname``, ``url``...; see
   ``feeds.csvvocab``) is read as that kind — ``C2``, ``C&C``, ``CnC``, ``callback``, ``server``
   (any case, ``_server``/``_host`` variants) as hosts, domain or IP by the value, a ``:port``
   dropped, a URL kept as a URL; ``cert_sha1``, ``certificate``, ``thumbprint``... as
   certificate thumbprints (``cert_sha1``); ``ja3``/``ja3_md5``/``ja3s`` cells are rejected with
   their reason (an MD5 of a TLS client hello: no file hash, no certificate, no target stores
   it). Generic names (``indicator``, ``ioc``) only when no such column exists. Columns known not
   to hold indicators (imphash, ssdeep, tlsh, ``urlhaus_link``, ``link``, ids, ports, file
   names, free text) are never read. In a list of certificates — the ``#`` banner says
   "certificate" (abuse.ch's SSLBL), or a header name does (``issuer``, ``cert_*``) — SHA-1
   columns hold certificate thumbprints, unless a column is named for thumbprints already.
3. The cells of the first rows, for columns whose names say nothing: a column of type words
   (``sha256``, ``ip-dst``...) beside a column of values is *type + value*; else every column
   whose cells mostly (80 %) read as hashes, IPs, domains or URLs is read (kind from the text).
   A first row of plain names above such columns is taken as an unknown header.
Otherwise the file is refused: "no indicator columns found; name them with --columns".

Type + value vocabulary: ``ip``, ``ip-dst``, ``ip-src``, ``ip_port``, ``ipaddress``, ``ipv4``,
``ipv6`` (port dropped); ``domain``, ``fqdn``; ``hostname`` (domain or IP); ``url``, ``uri``;
``md5``, ``sha1``, ``sha256``, ``hash``; ``file`` (a cell packing several hashes, in any order);
``x509-fingerprint-sha1``, ``cert-sha1``, ``certificate`` (``cert_sha1``); ``c2``, ``callback``,
``server`` (hosts); MISP composites like ``filename|md5`` or ``ip-dst|port`` give their indicator
parts. ``ja3``/``ja3-fingerprint-md5`` rows are rejected with the JA3 reason; ``description``
rows are ``Skipped``; any other type (email, regkey, filename, file_path_name, link, text,
user_agent...) is ``Rejected`` with "unsupported indicator type '...'" — a typed row is read
by its type, never guessed from its value.

Records: every indicator cell yields an ``Indicator`` (several per row share the origin) or,
when ``feeds.canonical`` refuses it, a ``Rejected`` with its reason; a row with no indicator
value at all is one ``Rejected``. Description/comment/note, first_seen/date, tags/signature/
malware and confidence columns fill the indicators' fields. A malformed file (a quoted field
running past the ``csv`` size limit) raises ``FeedError`` naming the line.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from feeds.csvlayout import choose
from feeds.csvrows import RowPosition, column_rows, long_line_records, typed_rows
from feeds.lines import LongLine
from feeds.lines import lines as bounded_lines
from feeds.model import FeedError, Record
from feeds.options import FeedOptions

__all__ = ["parse"]

_DELIMITERS = (",", "\t", ";", "|")
_SAMPLE_ROWS = 64  # content lines read ahead to decide delimiter, header and layout
_SAMPLE_LINES = 2000  # ...unless a banner is this long
_SAMPLE_CHARS = 1 << 20  # ...or the lines read ahead hold this much text (long lines)
# A banner saying the file lists certificates (abuse.ch's "SSL Certificate Blacklist (SHA1
# Fingerprints)"): its SHA-1 columns are certificate thumbprints.
_CERTIFICATES = re.compile(r"\bcertificates?\b|\bx\.?509\b|\bthumbprints?\b", re.IGNORECASE)


def _feed(lines: Iterable[str | LongLine], position: RowPosition, offset: int = 0) -> Iterator[str]:
    """Pass physical lines to ``csv.reader``, dropping ``#`` and blank lines found between rows.

    ``position`` is shared with the row loop, which sets ``lines_read_at_row_end``; this sets
    ``row_line`` and ``last_comment``. A ``#`` line inside a quoted field is passed on: it is
    only dropped at a row boundary. ``offset`` counts the lines already dropped before ``lines``.
    An over-long line goes to ``position.long_lines`` with its number, and the reader gets an
    empty line in its place: an empty row, on which the row loop reports it (in file order).
    """
    physical, passed = offset, 0
    for line in lines:
        physical += 1
        if type(line) is LongLine:
            position.long_lines.append((physical, line))
            if passed == position.lines_read_at_row_end:
                position.row_line = physical
            passed += 1
            yield "\n"
            continue
        assert isinstance(line, str)  # for mypy: the LongLine case is above
        if passed == position.lines_read_at_row_end:
            first = line[:1]
            if first in {"#", "\n", "\r"}:
                if first == "#":
                    position.last_comment = line
                continue
            position.row_line = physical
        passed += 1
        yield line


def _head(stream: TextIO, limit: int) -> tuple[list[str | LongLine], Iterator[str | LongLine], bool, int]:
    """The first lines (enough to hold ``_SAMPLE_ROWS`` content lines), the rest, whether at EOF,
    and how many leading banner lines were dropped (only the last few before the data are kept)."""
    lines = bounded_lines(stream, limit)
    head: list[str | LongLine] = []
    content = dropped = chars = 0
    for line in lines:
        if type(line) is LongLine:
            text = ""  # not a banner line: a row, though one that says nothing of the layout
            content += 1
        else:
            assert isinstance(line, str)  # for mypy: the LongLine case is above
            text = line
            if not head and not dropped and text[:1] == "\ufeff":
                text = text[1:]  # a BOM the decoder left is not part of the header
            if text[:1] not in ("#", "\n", "\r"):
                content += 1
        head.append(line if type(line) is LongLine else text)
        chars += len(text)
        if content >= _SAMPLE_ROWS or (content and (len(head) >= _SAMPLE_LINES or chars > _SAMPLE_CHARS)):
            return head, lines, False, dropped
        if not content and (len(head) >= _SAMPLE_LINES or chars > _SAMPLE_CHARS):
            dropped += len(head) - 1  # a huge banner: keep memory flat, keep its last line
            del head[:-1]
            chars = len(text)
    return head, lines, True, dropped


def _sample(head: list[str | LongLine], delimiter: str) -> tuple[list[list[str]], str | None]:
    """The rows of ``head`` read with ``delimiter``, and the comment line just before the first row."""
    position = RowPosition()
    reader = csv.reader(_feed(head, position), delimiter=delimiter, skipinitialspace=True, strict=False)
    rows: list[list[str]] = []
    comment = None
    try:
        for row in reader:
            if not rows:
                comment = position.last_comment
            position.lines_read_at_row_end = reader.line_num
            if any(cell.strip() for cell in row):
                rows.append(row)
    except csv.Error:
        pass  # a huge field in the sample: the main loop reports it with its line
    return rows, comment


def _sniff(head: list[str | LongLine]) -> str:
    """The delimiter that splits most rows into one width > 1 (ties: the earlier in ``_DELIMITERS``)."""
    best, best_score = ",", (0, 0)
    for delimiter in _DELIMITERS:
        rows, _ = _sample(head, delimiter)
        widths: dict[int, int] = {}
        for row in rows:
            width = len(row)
            while width and not row[width - 1].strip():
                width -= 1  # trailing empty columns do not make a row wider
            widths[width] = widths.get(width, 0) + 1
        count, width = max(((n, w) for w, n in widths.items()), default=(0, 0))
        score = (count, width) if width > 1 else (0, 0)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _banner_says_certificates(head: list[str | LongLine]) -> bool:
    """Whether the ``#`` lines above the first row say the file lists certificates."""
    for line in head:
        if type(line) is LongLine or not isinstance(line, str):
            return False
        if line[:1] not in ("#", "\n", "\r"):
            return False
        if _CERTIFICATES.search(line):
            return True
    return False


def parse(stream: TextIO, name: str, options: FeedOptions) -> Iterator[Record]:
    """The records of the CSV feed ``stream`` (see the module docstring for the rules)."""
    head, rest, at_eof, offset = _head(stream, options.max_line_bytes)
    delimiter = _sniff(head)
    rows, comment = _sample(head, delimiter)
    if rows and not at_eof:
        rows.pop()  # the last sampled row may be cut short by the end of the sample
    comment_cells = None
    if comment is not None:
        comment_cells = next(
            csv.reader([comment.lstrip("#").strip()], skipinitialspace=True, delimiter=delimiter), None
        )
    try:
        certificates = _banner_says_certificates(head)
        layout, header_row = choose(rows, comment_cells, options.columns, certificates=certificates)
    except FeedError as exc:
        raise FeedError(f"{name}: {exc}") from None
    position = RowPosition()
    reader = csv.reader(
        _feed(itertools.chain(head, rest), position, offset),
        delimiter=delimiter,
        skipinitialspace=True,
        strict=False,
    )
    rows_of = typed_rows if layout.typed else column_rows
    try:
        if header_row:  # the first row with content, as the sample counted rows
            for row in reader:
                position.lines_read_at_row_end = reader.line_num
                if any(cell.strip() for cell in row):
                    break
            yield from long_line_records(position, name, options.max_line_bytes)
        yield from rows_of(reader, position, layout, name, delimiter, limit=options.max_line_bytes)
    except csv.Error as exc:
        raise FeedError(
            f"{name}:{position.row_line}: unreadable CSV row ({exc}); is a quote unbalanced?"
        ) from None
    # Over-long lines inside a quoted field (the row loop reports the others as it meets them).
    yield from long_line_records(position, name, options.max_line_bytes)
