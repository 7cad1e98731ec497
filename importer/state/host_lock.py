"""One import per target and tenant on this host, whatever the journal: a lock keyed by both.

Two runs on one tenant both see an indicator as new and post it twice. The journal's own lock
(``schema``) covers one journal file only, and a ``--no-state`` run has none; this lock covers
the tenant. It lives in ``$XDG_RUNTIME_DIR/ti-importer`` (else in the default journal's folder),
in a file named by a digest of the target and tenant key, never by the tenant's text. Like the
journal's, it refuses at once and names the run holding it (``lockfile``).

The file stays behind after the run: deleting it on release would let a run that opened it a
moment earlier lock an unlinked file while a third run locks a new one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from importer.errors import ConfigError
from importer.state.journal import default_state_path
from importer.state.lockfile import LockHeld, take_lock

__all__ = ["default_lock_dir", "hold_tenant", "tenant_lock_path"]


def default_lock_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$XDG_RUNTIME_DIR/ti-importer`` when that is set and absolute, else the default journal's folder."""
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and Path(runtime).is_absolute():
        return Path(runtime) / "ti-importer"
    return default_state_path(env, home).parent


def tenant_lock_path(folder: Path, target: str, tenant: str) -> Path:
    digest = hashlib.sha256(f"{target}\0{tenant}".encode()).hexdigest()[:16]
    return folder / f"tenant-{digest}.lock"


@contextmanager
def hold_tenant(folder: Path, target: str, tenant: str) -> Iterator[None]:
    """Hold this host's lock of ``(target, tenant)`` (a tenant key) for the block; a
    ``ConfigError`` naming the other run if one holds it."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder of the run locks {folder}: {_reason(exc)}") from None
    where = tenant_lock_path(folder, target, tenant)
    try:
        lock = take_lock(where)
    except LockHeld as held:
        raise ConfigError(
            f"another ti-import run is importing into this {target} tenant ({held.holder}); wait for "
            "it to finish, or stop it: two runs on one tenant post every indicator twice"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot take the run lock {where}: {_reason(exc)}") from None
    try:
        yield
    finally:
        lock.close()  # closing the descriptor releases the flock


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
