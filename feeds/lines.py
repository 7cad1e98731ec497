"""Read a text stream as lines in bounded memory: a line over the limit is reported and skipped unread.

Both line readers split lines as ``open(newline="")`` does (``\\n``, ``\\r\\n`` or a lone ``\\r``)
and hold at most about ``limit`` characters of any one line, so a 1 GiB line costs the time to
read it and no memory:

- ``blocks`` (the list reader's): text in blocks of whole lines; a line found over the limit
  while it is still unfinished comes out as a ``LongLine`` in its place. A block may still hold
  a line a little over the limit (up to the block size): the caller checks the lines it reads.
- ``lines`` (the CSV reader's): each line with its end, as iterating the stream gives them;
  a line over the limit comes out as a ``LongLine``.

The limit counts UTF-8 bytes without the line end; a line is first measured in characters (a
character is 1 to 4 bytes), so only lines over a quarter of the limit cost more than a length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TextIO

__all__ = ["HEAD_CHARS", "LongLine", "blocks", "lines", "too_long"]

HEAD_CHARS = 200  # the start of an over-long line kept as its record's raw text
_BLOCK = 1 << 18  # characters read at a time
_LINE_ENDS = "\r\n"
_ENDS = ("\n", "\r")


class LongLine:
    """A line over the limit, in place of its text: its start and its length in characters."""

    __slots__ = ("head", "length")

    def __init__(self, head: str, length: int) -> None:
        self.head = head[:HEAD_CHARS] + ("..." if length > HEAD_CHARS else "")
        self.length = length

    def reason(self, limit: int) -> str:
        return (
            f"a line of {self.length:,} characters, over the limit of {limit:,} bytes a line "
            "(max_line_bytes); skipped unread"
        )

    def __repr__(self) -> str:
        return f"LongLine({self.head[:20]!r}..., {self.length})"


def too_long(line: str, limit: int) -> bool:
    """Whether ``line`` (no line end) holds more than ``limit`` bytes as UTF-8."""
    size = len(line)
    if size > limit:
        return True
    if size * 4 <= limit or line.isascii():  # isascii() is a flag lookup, not a scan
        return False
    return len(line.encode("utf-8", "surrogatepass")) > limit


def _line_end(text: str, start: int = 0) -> int:
    """The index of the first ``\\r`` or ``\\n`` in ``text`` from ``start``; -1 if none."""
    lf, cr = text.find("\n", start), text.find("\r", start)
    if lf < 0 or 0 <= cr < lf:
        return cr
    return lf


class _Skipper:
    """Reads past the rest of an over-long line in chunks, keeping none of it."""

    __slots__ = ("after_cr", "read")

    def __init__(self, read: Callable[[int], str]) -> None:
        self.read = read
        self.after_cr = False  # the last line ended at a CR that was the last character read

    def drop_lf(self, chunk: str) -> str:
        """``chunk`` without the LF completing a CRLF whose CR ended the previous chunk."""
        if self.after_cr:
            self.after_cr = False
            if chunk.startswith("\n"):
                return chunk[1:]
        return chunk

    def skip(self, length: int) -> tuple[int, str]:
        """Read to the end of the line; its full length in characters and the text after its end."""
        while chunk := self.read(_BLOCK):
            end = _line_end(chunk)
            if end < 0:
                length += len(chunk)
                continue
            length += end
            rest = chunk[end + 1 :]
            if chunk[end] == "\r":
                if rest:
                    rest = rest.removeprefix("\n")
                else:
                    self.after_cr = True
            return length, rest
        return length, ""


def blocks(stream: TextIO, limit: int) -> Iterator[str | LongLine]:
    """The text in blocks of whole lines (the last may lack its end), and ``LongLine``s in place.

    A block holds every line that ends in it; a line still unfinished at the end of the text read
    so far is carried into the next block, unless it already exceeds ``limit`` characters: then
    the rest of it is skipped and a ``LongLine`` takes its place. A long carry makes the next
    read as long, so a line near a large limit is still read in linear time.
    """
    read = stream.read
    skipper = _Skipper(read)
    carry = ""
    while chunk := read(max(_BLOCK, len(carry))):
        chunk = skipper.drop_lf(chunk)
        text = carry + chunk if carry else chunk
        # After the last line end, LF or CR (CR-only files), but not a CR that is the final
        # character: it may be the first half of a CRLF split by the read.
        cut = max(text.rfind("\n"), text.rfind("\r", 0, len(text) - 1)) + 1
        carry = text[cut:]
        if cut:
            yield text[:cut]
        if len(carry) <= limit:
            continue
        # The unfinished line is over the limit already: the rest of it is not worth keeping.
        if carry.endswith("\r"):  # it did end, at a CR; an LF may follow in the next read
            skipper.after_cr = True
            yield LongLine(carry, len(carry) - 1)
            carry = ""
            continue
        length, carry = skipper.skip(len(carry))
        yield LongLine(text[cut : cut + HEAD_CHARS], length)
    if carry:
        yield carry


def lines(stream: TextIO, limit: int) -> Iterator[str | LongLine]:
    """Each line with its end, as ``for line in stream`` gives them; ``LongLine`` for one over ``limit``.

    ``readline(size)`` never reads past a line end, so a line is read whole when short; one that
    fills ``size`` is over the limit, and its rest is read and dropped a chunk at a time. The one
    subtlety: a piece cut right after a CR cannot tell whether an LF follows (a CRLF), so the
    next character is read to find out.
    """
    readline = stream.readline
    size = limit + 2  # room for a line at the limit and its CRLF
    quick = limit // 4  # a line this short is within the limit, whatever its characters
    line = readline(size)
    while line:
        if len(line) <= quick:
            yield line
            line = readline(size)
            continue
        body = line.rstrip(_LINE_ENDS)
        # Shorter than asked for, or ending in LF: the whole line (a CR at its end was followed
        # by something else, readline looked), or the last one.
        if len(line) < size or line.endswith("\n"):
            yield LongLine(body, len(body)) if too_long(body, limit) else line
            line = readline(size)
            continue
        length, blank_cr, line = _rest_of(readline, line, size, len(body))
        yield LongLine(body, length)
        if blank_cr:
            yield "\r"


def _rest_of(readline: Callable[[int], str], piece: str, size: int, length: int) -> tuple[int, bool, str]:
    """Skip the rest of the line ``piece`` began: its full length, whether a blank CR line came
    next (read while looking for an LF), and the next line read."""
    want = size
    while not piece.endswith(_ENDS):
        piece = readline(_BLOCK)
        if not piece:
            return length, False, ""
        want = _BLOCK
        length += len(piece.rstrip(_LINE_ENDS))
    if piece.endswith("\n") or len(piece) < want:
        return length, False, readline(size)
    # A CR that filled the piece: it ended the line, and an LF may be the next character.
    first = readline(1)
    if first == "\n" or not first:
        return length, False, readline(size) if first else ""
    if first != "\r":
        return length, False, first + readline(size - 1)  # the same as readline(size) there
    # A CR again: a blank line of its own, or with the LF after it a blank CRLF line.
    rest = readline(size)
    if rest == "\n":
        return length, False, "\r\n"
    return length, True, rest
