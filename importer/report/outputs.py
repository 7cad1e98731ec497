"""Where a run's output files go (the JSON report, the rejects file): stdout, or a regular file
replaced atomically.

``-`` means stdout. Any other path must be a regular file or not exist yet: an existing device,
folder or FIFO is refused (``check_output``), since writing a temporary file and renaming it
over one would replace a device such as ``/dev/full`` with a plain file, and a folder would keep
a stray temporary file. A symbolic link is followed: the file it points to is replaced, the link
stays.

``AtomicFile`` writes beside the target, and ``commit`` flushes, syncs and renames it over the
target, so a reader sees the old file or the whole new one. Every failure to write (a full disk,
a read-only file system, the file-size limit) is one ``ConfigError`` sentence naming the file,
and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, TextIO

from importer.errors import ConfigError

__all__ = [
    "AtomicFile",
    "OutputFile",
    "StdoutFile",
    "check_output",
    "check_outputs",
    "is_stdout",
    "open_output",
    "same_file",
]

STDOUT_NAME = "-"


def is_stdout(path: Path | str) -> bool:
    """Whether ``path`` is ``-``: stdout."""
    return str(path) == STDOUT_NAME


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output(path: Path, what: str) -> None:
    """A ConfigError if ``path`` exists and is not a regular file (links followed); ``what``
    names it in the sentence ("the report")."""
    if is_stdout(path):
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:  # also a dangling link: the file is created where it points
        return
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be written: {_reason(exc)}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"{what} {path} is {_kind(mode)}, not a regular file: give a file's path, or '-' for stdout"
        )


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode where both exist (hard links, links,
    ``..``), else the same path once resolved (an output not written yet)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(outputs: Mapping[str, Path | None], inputs: Mapping[Path, str]) -> None:
    """Refuse, before anything is read, an output (its name -> its path, None: not asked for)
    that is not a regular file, is one of the run's ``inputs`` (path -> what it is: a feed, the
    state journal...), or is another output: writing it would destroy what the run reads."""
    given = [(what, path) for what, path in outputs.items() if path is not None]
    for index, (what, path) in enumerate(given):
        for other_what, other in given[:index]:
            if is_stdout(path) != is_stdout(other):
                continue
            if is_stdout(path):
                raise ConfigError(f"{other_what} and {what} cannot both go to stdout ('-')")
            if same_file(path, other):
                raise ConfigError(f"{other_what} and {what} are one file, {path}: give each its own")
        if is_stdout(path):
            continue
        check_output(path, what)
        for source, source_what in inputs.items():
            if same_file(path, source):
                raise ConfigError(
                    f"{what} {path} is {source_what}: writing it would destroy what the run reads"
                )


class OutputFile(Protocol):
    """Text written to one output; ``commit`` makes it final, ``discard`` drops it (both idempotent).
    A failure to write is a ``ConfigError`` naming the output."""

    def write(self, text: str) -> None: ...
    def commit(self) -> None: ...
    def discard(self) -> None: ...


class StdoutFile:
    """Text to stdout (``-``), flushed on ``commit``; nothing to undo on ``discard``.

    A reader that goes away (``| head``) is a ConfigError like a full disk: the run stops, and
    stdout is pointed at the null device so the interpreter's last flush cannot fail again."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.what = what
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout  # looked up late: tests and ``| head`` replace it

    def write(self, text: str) -> None:
        try:
            self.stream.write(text)
        except OSError as exc:
            raise self._failed(exc) from None

    def commit(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def discard(self) -> None:
        return None

    def _failed(self, exc: OSError) -> ConfigError:
        if isinstance(exc, BrokenPipeError):
            _silence(self.stream)
            return ConfigError(f"{self.what} cannot be written to stdout: its reader closed it")
        return ConfigError(f"{self.what} cannot be written to stdout: {_reason(exc)}")


def _silence(stream: TextIO) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real descriptor (tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


class AtomicFile:
    """A regular file written beside its target under a unique temporary name and renamed over
    it by ``commit``; ``discard`` (or any failed write) removes the temporary file."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        check_output(path, what)
        # The link's target, not the link: renaming over a link would replace the link itself.
        self.target = Path(os.path.realpath(path))
        self.temporary = self.target.with_name(f"{self.target.name}.{secrets.token_hex(4)}.tmp")
        try:
            # O_EXCL: never through a link or FIFO someone placed at the temporary name. Mode
            # 0o666 less the umask, as the file would have had written directly.
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise ConfigError(f"{what} {path} cannot be written: {_reason(exc)}") from None
        self._handle: TextIO | None = os.fdopen(fd, "w", encoding="utf-8")
        self._committed = False

    def write(self, text: str) -> None:
        if self._handle is None:
            return
        try:
            self._handle.write(text)
        except OSError as exc:
            self.discard()
            raise self._failed(exc) from None

    def commit(self) -> None:
        """Flush, sync and rename over the target (a full disk often shows only at the flush)."""
        handle = self._handle
        if handle is None:
            return
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            self._handle = None
            # Checked again: the path may have become a device or folder while the run went on.
            check_output(self.path, self.what)
            os.replace(self.temporary, self.target)
            self._committed = True
        except OSError as exc:
            self.discard()
            raise self._failed(exc) from None
        except ConfigError:
            self.discard()
            raise

    def discard(self) -> None:
        if self._committed:
            return
        if self._handle is not None:
            # Closing flushes what is buffered, which fails the same way on a full disk.
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None
        with contextlib.suppress(OSError):
            os.remove(self.temporary)

    def _failed(self, exc: OSError) -> ConfigError:
        return ConfigError(f"{self.what} {self.path} cannot be written: {_reason(exc)}")


def open_output(path: Path, what: str) -> OutputFile:
    """``path`` as an output: stdout for ``-``, else an ``AtomicFile`` (a ConfigError if refused)."""
    return StdoutFile(what) if is_stdout(path) else AtomicFile(path, what)
