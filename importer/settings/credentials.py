"""Where and as whom to connect: credentials and URLs from the environment or the config file, never argv.

The environment wins over the config file's ``[auth]`` and ``[target]`` tables. A secret read
from a config file that every user can read is used, with a warning to ``chmod 600`` it.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from importer.errors import ConfigError
from importer.settings.tables import get
from importer.transport.connection import ConnectionSettings, Secret

__all__ = ["connection_of"]

_log = logging.getLogger(__name__)


def connection_of(
    env: Mapping[str, str],
    *,
    target_t: Mapping[str, Any],
    auth_t: Mapping[str, Any],
    tuning_t: Mapping[str, Any],
    where: str,
    rate: float | None,
    config_path: Path | None,
    default_api_url: str,
) -> ConnectionSettings:
    auth_where, tuning_where = f"{where}: [auth]", f"{where}: [tuning]"
    client_id = env.get("TI_CLIENT_ID") or get(auth_t, "client_id", str, auth_where)
    if not client_id:
        raise ConfigError("no client id: set TI_CLIENT_ID or client_id in the config file's [auth] table")
    secret = env.get("TI_CLIENT_SECRET")
    if not secret:
        secret = get(auth_t, "client_secret", str, auth_where)
        if secret and config_path is not None:
            _warn_if_world_readable(config_path)
    if not secret:
        raise ConfigError(
            "no client secret: set TI_CLIENT_SECRET or client_secret in the config file's [auth] table"
        )
    auth_url = env.get("TI_AUTH_URL") or get(auth_t, "url", str, auth_where)
    if not auth_url:
        tenant = env.get("TI_TENANT") or get(auth_t, "tenant", str, auth_where)
        if not tenant:
            raise ConfigError("no token URL: set TI_AUTH_URL (the portal's authorization URL) or TI_TENANT")
        auth_url = f"https://login.windows.net/{tenant}/oauth2/token"
    api_url = env.get("TI_API_URL") or get(target_t, "api_url", str, f"{where}: [target]")
    api_url = api_url or default_api_url
    version = get(auth_t, "version", str, auth_where)
    if version not in (None, "v1", "v2"):
        raise ConfigError(f"{auth_where}: key 'version' must be 'v1' or 'v2', got {version!r}")
    numbers: dict[str, Any] = {}
    for key in ("connect_timeout", "total_timeout", "max_retry_seconds"):
        value = get(tuning_t, key, (int, float), tuning_where)
        if value is not None:
            numbers[key] = float(value)
    attempts = get(tuning_t, "max_attempts", int, tuning_where)
    if attempts is not None:
        numbers["max_attempts"] = attempts
    return ConnectionSettings(
        auth_url=auth_url,
        api_url=api_url,
        client_id=client_id,
        client_secret=Secret(secret),
        audience=get(auth_t, "audience", str, auth_where),
        auth_version=version,
        rate_per_minute=rate,
        **numbers,
    )


def _warn_if_world_readable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        _log.warning("%s holds a client secret and is readable by every user; chmod 600 it", path)
