"""Read one JSON document a value at a time from a text stream, in memory bounded by its largest value.

The STIX reader walks a document's outer structure itself (``members`` of the top-level object,
the elements of an ``array``) and decodes each element whole with the standard library's C
decoder (``json.JSONDecoder.raw_decode``) from a buffer read in 1 MiB chunks: a 1 GB bundle
costs one element at a time, and an element costs what ``json.loads`` costs for it.

A value that cannot be held is not decoded: one of more than ``max_chars`` characters, or
nested deeper than the interpreter's recursion limit, is skipped unread (by its brackets and
quotes, a chunk at a time) and comes out as a ``Problem``; so does a value holding an integer
of more than ``_MAX_DIGITS`` digits (``int()`` refuses those) or a lone UTF-16 surrogate escape
(``"\\ud800"`` decodes to a string no UTF-8 output can hold). Anything that is not JSON raises
``JsonSyntaxError`` with its line and column in the whole text.

Why not ijson: its C backend (3.6.0) crashes the interpreter (SIGSEGV) on an integer of more
than 4,300 digits, and with ``use_float=True`` turns any integer beyond 2**63 into an error for
the whole document; its pure-Python backend reads ~20x slower than this.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["JsonStream", "JsonSyntaxError", "Problem"]

_CHUNK = 1 << 20  # characters read at a time
_HEAD = 8192  # characters of the start kept for messages that look at it (STIX 1 detection)
_RAW = 200  # characters of a value kept as a problem's raw text
_MAX_DIGITS = 4000  # int() refuses more than 4300 by default; no STIX property needs a tenth of it
_WS = re.compile(r"[ \t\n\r]*")
_TOO_DEEP = "JSON nested too deeply to read"
# A cut value can only be told from a bad one near the end of the text read so far.
_NEAR_END = 8
# Where a lone surrogate could come from; the decoded value is only checked when this is found.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Skipping a value unread: in a string, its end or an escape; outside, a bracket or a quote.
_IN_STRING = re.compile(r'["\\]')
_STRUCTURE = re.compile(r'["{}\[\]]')
_SCALAR_END = re.compile(r"[,\]}: \t\n\r]")


class JsonSyntaxError(Exception):
    """The text is not JSON: ``msg`` (the decoder's words) at ``line``, ``column`` (1-based)."""

    def __init__(self, msg: str, line: int, column: int) -> None:
        msg = msg.removesuffix(" at")  # the decoder's "Unterminated string starting at"
        super().__init__(f"{msg} at line {line}, column {column}")
        self.msg, self.line, self.column = msg, line, column


class Problem:
    """A value skipped or refused: its first characters and why."""

    __slots__ = ("raw", "reason")

    def __init__(self, raw: str, reason: str) -> None:
        self.raw, self.reason = raw, reason

    def __repr__(self) -> str:
        return f"Problem({self.raw[:40]!r}, {self.reason!r})"


def _lone_surrogate(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) holds a surrogate; no recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JsonStream:
    """A JSON text read forwards: ``peek`` at the next character, walk ``members`` and ``array``s,
    decode a ``value`` whole; ``finish`` checks nothing follows the document."""

    def __init__(self, stream: TextIO, max_chars: int) -> None:
        self._read = stream.read
        self._max_chars = max_chars
        self._text = ""
        self._pos = 0
        self._eof = False
        self._lines = 0  # line ends in the text already dropped
        self._column = 0  # characters after the last line end in the text already dropped
        self._last = (0, 0)  # where the last value decoded lies in ``_text``
        self._digits = 0  # the length of an integer too long to convert, met while decoding
        self._decode = json.JSONDecoder(parse_int=self._int).raw_decode
        self._more()
        if self._text.startswith("\ufeff"):
            self._pos = 1  # a BOM the caller's decoder left
        self.head = self._text[:_HEAD]

    # -- the buffer ------------------------------------------------------------------------------

    def _int(self, digits: str) -> int:
        if len(digits) > _MAX_DIGITS:
            self._digits = len(digits)
            return 0
        return int(digits)

    def _more(self, at_least: int = 1) -> bool:
        """Drop what was read, read at least ``at_least`` more characters; False at the end."""
        if self._eof:
            return False
        chunk = self._read(max(at_least, _CHUNK))
        if not chunk:
            self._eof = True
            return False
        text, pos = self._text, self._pos
        if pos:
            lines = text.count("\n", 0, pos)
            self._lines += lines
            self._column = pos - text.rfind("\n", 0, pos) - 1 if lines else self._column + pos
        self._text = text[pos:] + chunk if pos < len(text) else chunk
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not blank ('' at the end), without taking it."""
        while True:
            self._pos = _WS.match(self._text, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._more():
                return ""

    def error(self, msg: str, at: int | None = None) -> JsonSyntaxError:
        """A syntax error at ``at`` (default: the current position) of the buffer."""
        text = self._text
        at = self._pos if at is None else at
        lines = text.count("\n", 0, at)
        column = at - text.rfind("\n", 0, at) if lines else self._column + at + 1
        return JsonSyntaxError(msg, self._lines + lines + 1, column)

    def finish(self) -> None:
        """Nothing but blanks may follow the document."""
        if self.peek():
            raise self.error("Extra data")

    def last_raw(self) -> str:
        """The first characters of the value decoded last (valid until the next read)."""
        start, end = self._last
        return self._text[start : min(end, start + _RAW)]

    def last_size(self) -> int:
        start, end = self._last
        return end - start

    # -- values ----------------------------------------------------------------------------------

    def value(self) -> Any:
        """The next value decoded, or a ``Problem`` when it is skipped unread or refused."""
        self.peek()
        text, start = self._text, self._pos
        try:
            value, end = self._decode(text, start)
        except json.JSONDecodeError as exc:
            return self._value_slowly(exc)
        except RecursionError:
            return self._skipped(_TOO_DEEP, "deeply nested value")
        if end == len(text) and not self._eof and text[end - 1].isdigit():
            return self._value_slowly(None)  # a number the read may have cut short
        self._pos = end
        self._last = (start, end)
        if self._digits or end - start > self._max_chars or _SURROGATE_ESCAPE.search(text, start, end):
            return self._checked(value, text[start : min(end, start + _RAW)])
        return value

    def _checked(self, value: Any, raw: str) -> Any:
        """``value``, or a Problem when it is too big or holds what no output can carry."""
        if self.last_size() > self._max_chars:  # read whole with its neighbours: the same limit
            self._digits = 0
            return Problem(raw, self._too_long())
        if self._digits:
            digits, self._digits = self._digits, 0
            return Problem(raw, f"holds a number of {digits:,} digits, more than any STIX property has")
        if _lone_surrogate(value):
            return Problem(raw, "holds a lone UTF-16 surrogate escape (such as \\ud800), which is not text")
        return value

    def _value_slowly(self, error: json.JSONDecodeError | None) -> Any:
        """Read more until the value at the current position decodes, is too big, or is wrong."""
        while True:
            text, start = self._text, self._pos
            if error is not None and (self._eof or not self._maybe_cut(error, len(text))):
                raise self.error(error.msg, error.pos)
            held = len(text) - start
            if held > self._max_chars:
                return self._skipped(self._too_long(), "value too long to read")
            # Double what is held (linear time for a big value), but stop just past the limit.
            self._more(max(1, min(held, self._max_chars + 1 - held)))
            text, start = self._text, self._pos
            try:
                value, end = self._decode(text, start)
            except json.JSONDecodeError as exc:
                error = exc
                continue
            except RecursionError:
                return self._skipped(_TOO_DEEP, "deeply nested value")
            if end == len(text) and not self._eof and text[end - 1].isdigit():
                error = None
                continue
            self._pos = end
            self._last = (start, end)
            return self._checked(value, text[start : min(end, start + _RAW)])

    def _too_long(self) -> str:
        return f"a JSON value of more than {self._max_chars:,} characters, skipped unread"

    @staticmethod
    def _maybe_cut(error: json.JSONDecodeError, size: int) -> bool:
        return error.pos >= size - _NEAR_END or error.msg.startswith("Unterminated string")

    def _skipped(self, reason: str, what: str) -> Problem:
        """Skip the value at the current position unread: a Problem, unless the text ends in it."""
        raw = self._text[self._pos : self._pos + _RAW]
        self._digits = 0
        try:
            self._skip()
        except JsonSyntaxError as exc:
            raise JsonSyntaxError(f"Unterminated {what}", exc.line, exc.column) from None
        return Problem(raw, reason)

    def _skip(self) -> None:
        """Move past the value at the current position by its brackets and quotes, keeping nothing."""
        first = self._text[self._pos]
        if first not in '{["':
            self._skip_scalar()
            return
        depth, in_string = 0, False
        while True:
            text, pos = self._text, self._pos
            found = (_IN_STRING if in_string else _STRUCTURE).search(text, pos)
            if found is None:
                self._pos = len(text)
                if not self._more():
                    raise self.error("Unterminated string" if in_string else "Expecting ',' delimiter")
                continue
            char, self._pos = found.group(), found.end()
            if in_string:
                if char == "\\":  # the escaped character is never the end
                    if self._pos == len(self._text) and not self._more():
                        raise self.error("Unterminated string")
                    self._pos += 1
                    continue
                in_string = False
            elif char == '"':
                in_string = True
                continue
            elif char in "{[":
                depth += 1
                continue
            else:
                depth -= 1
            if depth <= 0:
                return

    def _skip_scalar(self) -> None:
        while True:
            found = _SCALAR_END.search(self._text, self._pos)
            if found is not None:
                self._pos = found.start()
                return
            self._pos = len(self._text)
            if not self._more():
                return

    # -- structure -------------------------------------------------------------------------------

    def _expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"Expecting {char!r} delimiter")
        self._pos += 1

    def array(self) -> Iterator[Any]:
        """Each element of the array at the current position (a value or a ``Problem``)."""
        self._expect("[")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield self.value()
            char = self.peek()
            self._pos += 1
            if char == "]":
                return
            if char != ",":
                self._pos -= 1
                raise self.error("Expecting ',' delimiter")

    def members(self) -> Iterator[str]:
        """Each key of the object at the current position; the caller reads its value (``value``
        or ``array``) before asking for the next key."""
        self._expect("{")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self.error("Expecting property name enclosed in double quotes")
            key = self.value()
            self._expect(":")
            yield key if isinstance(key, str) else ""
            char = self.peek()
            self._pos += 1
            if char == "}":
                return
            if char != ",":
                self._pos -= 1
                raise self.error("Expecting ',' delimiter")
