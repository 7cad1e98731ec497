"""A pytest plugin (``-p tests.no_fcntl``) that runs a session as if ``fcntl`` did not exist.

Windows has no ``fcntl``; ``importer.state.lockfile`` then locks through ``msvcrt.locking``. This
plugin hides ``fcntl`` from every later import and installs a stand-in ``msvcrt`` whose
``locking`` behaves as Windows documents it (``LK_NBLCK``: lock now or raise ``OSError``, here with
``EDEADLOCK`` as the C runtime sets it) on top of a real kernel lock, so the lock tests exercise
the Windows path of our code against real processes.
"""

from __future__ import annotations

import errno
import fcntl
import sys
import types

_flock, _LOCK_EX, _LOCK_NB, _LOCK_UN = fcntl.flock, fcntl.LOCK_EX, fcntl.LOCK_NB, fcntl.LOCK_UN
LK_UNLCK, LK_LOCK, LK_NBLCK = 0, 1, 2  # msvcrt's values


def _locking(fd: int, mode: int, nbytes: int) -> None:
    if nbytes < 1:
        raise OSError(errno.EINVAL, "nbytes must be positive")
    if mode == LK_UNLCK:
        _flock(fd, _LOCK_UN)
        return
    if mode != LK_NBLCK:
        raise OSError(errno.EINVAL, "only LK_NBLCK and LK_UNLCK are emulated")
    try:
        _flock(fd, _LOCK_EX | _LOCK_NB)
    except BlockingIOError:
        raise OSError(errno.EDEADLK, "Resource deadlock avoided") from None


def _install() -> None:
    if "importer.state.lockfile" in sys.modules:
        raise RuntimeError("load this plugin before importer.state.lockfile is imported")
    stand_in = types.ModuleType("msvcrt")
    stand_in.locking = _locking  # type: ignore[attr-defined]
    stand_in.LK_UNLCK, stand_in.LK_LOCK, stand_in.LK_NBLCK = LK_UNLCK, LK_LOCK, LK_NBLCK  # type: ignore[attr-defined]
    sys.modules["msvcrt"] = stand_in
    sys.modules["fcntl"] = None  # type: ignore[assignment]  # ``import fcntl`` now raises ImportError

    from importer.state import lockfile  # noqa: PLC0415  # after hiding fcntl, on purpose

    if getattr(lockfile, "fcntl") is not None:  # noqa: B009  # a private name, read on purpose
        raise RuntimeError("importer.state.lockfile still sees fcntl")


_install()
