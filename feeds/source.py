"""Open a feed as text: a path, ``-`` (stdin) or a binary stream; gzip by magic bytes; UTF-8.

``open_feed`` reads the first ``HEAD_BYTES`` (after gunzipping) so the format can be detected,
then hands back a text stream that still starts at the first byte: nothing is read twice, and
non-seekable inputs (pipes, stdin, gzip) work the same as files. Text is UTF-8 with the BOM
removed and undecodable bytes replaced (U+FFFD), opened with ``newline=""`` as the format
parsers expect. Every failure to open or read is a ``FeedError`` whose message names the source;
so is a gzip feed that inflates to more than ``max_gzip_ratio`` times its compressed bytes (past
``GZIP_RATIO_FLOOR``), found as it is read.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import sys
import zlib
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from feeds.model import FeedError
from feeds.options import DEFAULT_MAX_GZIP_RATIO, GZIP_RATIO_FLOOR

__all__ = ["HEAD_BYTES", "STDIN_NAME", "OpenedFeed", "display_name", "open_feed", "read_error"]

HEAD_BYTES = 64 * 1024
STDIN_NAME = "<stdin>"
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = codecs.BOM_UTF8
# Containers we recognise only to say what to do with them.
_OTHER_MAGIC = (
    (b"PK\x03\x04", "a zip archive: extract it first"),
    (b"BZh", "bzip2-compressed: decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (unxz)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: extract it first"),
    (codecs.BOM_UTF16_LE, "UTF-16 text: convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8)"),
    (codecs.BOM_UTF16_BE, "UTF-16 text: convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8)"),
)


@dataclass(slots=True)
class OpenedFeed:
    """A feed opened for reading: its decoded head (for detection), the full text stream, its name."""

    name: str
    head: str
    stream: TextIO
    compressed: bool
    _owned: BinaryIO | None

    def close(self) -> None:
        """Close what ``open_feed`` opened (a caller's own binary stream is left open)."""
        if self._owned is not None:
            self._owned.close()


class _Counted(io.RawIOBase):
    """A binary stream that counts the bytes read through it (a gzip file's compressed bytes)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        size = len(data)
        memoryview(buffer).cast("B")[:size] = data
        self.count += size
        return size


class _Inflated(io.RawIOBase):
    """A gzip stream's inflated bytes, refused once they outgrow the compressed bytes ``max_ratio`` times.

    Memory is bounded anyway (everything downstream streams); the cap bounds the time a gzip bomb
    can cost: a feed that inflates a thousandfold is not a list of indicators. Past
    ``GZIP_RATIO_FLOOR`` only, so a small feed of one repeated line is never refused.
    """

    def __init__(self, gz: gzip.GzipFile, compressed: _Counted, max_ratio: int, name: str) -> None:
        super().__init__()
        self._gz = gz
        self._compressed = compressed
        self._max_ratio = max_ratio
        self._name = name
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = self._gz.readinto(buffer)
        self.count += size
        if self.count > GZIP_RATIO_FLOOR and self.count > self._max_ratio * self._compressed.count:
            raise FeedError(
                f"{self._name} inflates to more than {self._max_ratio} times its compressed size, "
                "which no feed does (a gzip bomb?); if it is genuine, gunzip it and read the plain file."
            )
        return size


class _Rejoined(io.RawIOBase):
    """Bytes already read from a stream, followed by the rest of that stream: a rewind without seek."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._head.nbytes:
            size = min(view.nbytes, self._head.nbytes)
            view[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(view.nbytes)
        view[: len(data)] = data
        return len(data)


def display_name(source: str | os.PathLike[str] | BinaryIO) -> str:
    """How messages and origins name a source: the path as given, ``<stdin>``, or the stream's name."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        return STDIN_NAME if text == "-" else text
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def read_error(name: str, exc: BaseException) -> FeedError:
    """The one sentence for a failure while reading the bytes (I/O error, corrupt gzip)."""
    if isinstance(exc, gzip.BadGzipFile | zlib.error | EOFError):
        return FeedError(f"{name} is a corrupt or truncated gzip file ({exc or type(exc).__name__}).")
    return FeedError(f"cannot read {name}: {_os_reason(exc)}.")


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "it is a directory, not a file"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end (pipes and raw files return short reads)."""
    chunks: list[bytes] = []
    wanted = size
    while wanted > 0:
        chunk = stream.read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


def _open_binary(source: str | os.PathLike[str] | BinaryIO, name: str) -> tuple[BinaryIO, bool]:
    """The binary stream and whether we opened it (and so must close it)."""
    if not isinstance(source, str | os.PathLike):
        return source, False
    if os.fspath(source) == "-":
        return sys.stdin.buffer, False
    try:
        return open(source, "rb"), True  # closed by OpenedFeed.close
    except OSError as exc:
        raise FeedError(f"cannot read {name}: {_os_reason(exc)}.") from None


def _refuse_container(head: bytes, name: str) -> None:
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            raise FeedError(f"{name} is {what}.")


def _gunzipped(stream: BinaryIO, max_ratio: int | None, name: str) -> BinaryIO:
    """The inflated bytes of a gzip stream (capped at ``max_ratio`` times the compressed ones)."""
    if max_ratio is None:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    compressed = _Counted(stream)
    gz = gzip.GzipFile(fileobj=compressed, mode="rb")
    return io.BufferedReader(_Inflated(gz, compressed, max_ratio, name), buffer_size=HEAD_BYTES)


def open_feed(
    source: str | os.PathLike[str] | BinaryIO,
    name: str | None = None,
    *,
    max_gzip_ratio: int | None = DEFAULT_MAX_GZIP_RATIO,
) -> OpenedFeed:
    """Open ``source`` for reading as UTF-8 text; FeedError (naming it) if it cannot be read.

    A gzip feed that inflates to more than ``max_gzip_ratio`` times the compressed bytes read
    (None: no cap) raises FeedError when the reading gets there."""
    shown = name if name is not None else display_name(source)
    raw, owned = _open_binary(source, shown)
    try:
        head = _read_up_to(raw, HEAD_BYTES)
        stream: BinaryIO = io.BufferedReader(_Rejoined(head, raw), buffer_size=HEAD_BYTES)
        compressed = head.startswith(_GZIP_MAGIC)
        if compressed:
            stream = _gunzipped(stream, max_gzip_ratio, shown)
            head = _read_up_to(stream, HEAD_BYTES)
            stream = io.BufferedReader(_Rejoined(head, stream), buffer_size=HEAD_BYTES)
        _refuse_container(head, shown)
        if head.startswith(_UTF8_BOM):
            stream.read(len(_UTF8_BOM))
            head = head[len(_UTF8_BOM) :]
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        head_text = decoder.decode(head, final=len(head) < HEAD_BYTES)
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    except FeedError:
        if owned:
            raw.close()
        raise
    except (OSError, EOFError, zlib.error) as exc:
        if owned:
            raw.close()
        raise read_error(shown, exc) from None
    return OpenedFeed(shown, head_text, text, compressed, raw if owned else None)
