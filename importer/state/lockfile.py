"""A lock file that names its holder: an ``flock`` taken without waiting, with pid, start and host inside.

The journal's lock (``schema``) and the host's tenant lock (``host_lock``) both refuse a second
run at once rather than queue it, and both name the run that holds them, so the person reading
the refusal knows which process to wait for or stop. The kernel drops an ``flock`` when its
holder's process ends, even by ``kill -9``, so a stale file never blocks anybody.

Where ``fcntl`` is absent (Windows), the same lock is a ``msvcrt.locking`` byte-range lock on one
byte far past the holder's line, so the line stays readable to the run that is refused; Windows
also drops it when the holding process ends.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

__all__ = ["LockHeld", "take_lock"]

try:
    import fcntl
except ImportError:  # Windows: no flock; ``_lock_now`` takes a byte-range lock through msvcrt
    fcntl = None  # type: ignore[assignment]

_FAR_BYTE = 1 << 30  # msvcrt locks a byte range; one byte here never covers the holder's line
_HELD_ERRNOS = (errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK))


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` says which in words ("pid 42 on host h, started ...")."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def take_lock(path: Path) -> IO[str]:
    """``flock`` ``path`` without waiting and write this process into it; ``LockHeld`` if another
    process holds it, ``OSError`` if the file cannot be opened or locked. Closing the returned
    file releases the lock."""
    # Not "a+": O_APPEND would put our line after the previous holder's instead of over it.
    lock = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+", encoding="utf-8")
    try:
        _lock_now(lock.fileno())
    except OSError as exc:
        lock.seek(0)
        holder = _holder(lock.read())
        lock.close()
        if exc.errno in _HELD_ERRNOS:
            raise LockHeld(holder) from None
        raise
    except BaseException:
        lock.close()
        raise
    me = {"pid": os.getpid(), "started": datetime.now(UTC).isoformat(timespec="seconds"),
          "host": socket.gethostname()}  # fmt: skip
    # Written over the last holder's line, then cut to length: a reader racing us sees that
    # line, ours, or (rarely) a mix it reports as "pid unknown" — not an empty file.
    lock.write(json.dumps(me) + "\n")
    lock.truncate()
    lock.flush()
    return lock


def _lock_now(fd: int) -> None:
    """Lock ``fd`` exclusively without waiting: ``OSError`` (one of ``_HELD_ERRNOS``) if held."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    msvcrt = importlib.import_module("msvcrt")  # by name: typeshed declares it for win32 only
    position = os.lseek(fd, 0, os.SEEK_CUR)
    os.lseek(fd, _FAR_BYTE, os.SEEK_SET)
    try:
        # Windows drops the lock when the handle is closed (``take_lock``'s caller closes it).
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    finally:
        os.lseek(fd, position, os.SEEK_SET)


def _holder(text: str) -> str:
    """The holder in words: "pid 42 on host h, started 2025-01-01T02:00:00+00:00"."""
    try:
        who = json.loads(text)
        return f"pid {int(who['pid'])} on host {who['host']}, started {who['started']}"
    except (ValueError, TypeError, KeyError):
        # A lock file of an older ti-import held only its pid ("42\n").
        pid = text.strip()
        return f"pid {pid}" if pid.isdigit() else "pid unknown"
