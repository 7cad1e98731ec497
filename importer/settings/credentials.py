"""Where and as whom to connect: credentials and URLs from the environment or the config file, never argv.

The environment wins over the config file's ``[auth]`` and ``[target]`` tables. A secret read
from a config file that every user can read is used, with a warning to ``chmod 600`` it.

Here too the network: the token and API URLs are checked (http(s), a usable port, https unless
the host is this machine or plain http is allowed), naming the variable or key they came from;
the CA bundle (``--ca-bundle``, ``SSL_CERT_FILE`` or ``[target] ca_bundle``) is loaded once;
``--allow-http`` (or ``[target] allow_http = true``) warns once; ``HTTPS_PROXY``, ``HTTP_PROXY``
and ``NO_PROXY`` are read for every request of the run.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from importer.errors import ConfigError
from importer.settings.tables import get
from importer.settings.target_options import target_options_of, tenant_scope_of
from importer.targets.base import TargetPackage
from importer.transport.connection import ConnectionSettings, NetworkSettings, Secret
from importer.transport.proxies import proxies_of
from importer.transport.tls import tls_context
from importer.transport.urls import url_problem

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
    ca_bundle: Path | None = None,
    allow_http: bool = False,
    window_scale: float | None = None,
    target: TargetPackage | None = None,
    option_flags: Mapping[str, str] | None = None,
) -> ConnectionSettings:
    """The connection the environment and the config file's tables describe (``ca_bundle``,
    ``allow_http`` and ``window_scale``: the flags, which win over both), with ``target``'s own
    options (``option_flags``: those given as flags)."""
    auth_where, target_where, tuning_where = f"{where}: [auth]", f"{where}: [target]", f"{where}: [tuning]"
    # Every key of the file is checked, also where the environment overrides it: a mistake in the
    # file must not wait to surface until the day the variable is unset.
    file_auth = {
        key: get(auth_t, key, str, auth_where) for key in ("client_id", "client_secret", "url", "tenant")
    }
    file_api_url = get(target_t, "api_url", str, target_where)
    client_id = env.get("TI_CLIENT_ID") or file_auth["client_id"]
    if not client_id:
        raise ConfigError("no client id: set TI_CLIENT_ID or client_id in the config file's [auth] table")
    secret = env.get("TI_CLIENT_SECRET")
    if not secret:
        secret = file_auth["client_secret"]
        if secret and config_path is not None:
            _warn_if_world_readable(config_path)
    if not secret:
        raise ConfigError(
            "no client secret: set TI_CLIENT_SECRET or client_secret in the config file's [auth] table"
        )
    network = _network(
        env, target_t, target_where, ca_bundle=ca_bundle, allow_http=allow_http, config_path=config_path
    )
    auth_url = _url(env, "TI_AUTH_URL", file_auth["url"], f"{auth_where} key 'url'", network)
    if not auth_url:
        tenant, named = _given(env, "TI_TENANT", file_auth["tenant"], f"{auth_where} key 'tenant'")
        if not tenant:
            raise ConfigError("no token URL: set TI_AUTH_URL (the portal's authorization URL) or TI_TENANT")
        auth_url = f"https://login.windows.net/{tenant}/oauth2/token"
        _check_url(auth_url, f"the token URL built from {named}", network)
    api_url = _url(env, "TI_API_URL", file_api_url, f"{target_where} key 'api_url'", network)
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
    numbers["window_scale"] = _window_scale(window_scale, target_t, target_where)
    options = () if target is None else target_options_of(
        target, flags=option_flags or {}, env=env, table=target_t, where=target_where,
        check_url=lambda url, named: _check_url(url, named, network),
    )  # fmt: skip
    return ConnectionSettings(
        auth_url=auth_url,
        api_url=api_url or default_api_url,
        client_id=client_id,
        client_secret=Secret(secret),
        audience=get(auth_t, "audience", str, auth_where),
        auth_version=version,
        rate_per_minute=rate,
        network=network,
        target_options=options,
        tenant_scope=() if target is None else tenant_scope_of(target, options),
        **numbers,
    )


def _window_scale(flag: float | None, target_t: Mapping[str, Any], where: str) -> float:
    """``--window-scale``, else ``[target] window_scale``, else 1: the share of real time the target's
    rate windows last. A test aid for an emulator whose windows are scaled alike; a real API's
    windows are real time, so more than 1 (slower than documented) is refused as a mistake too."""
    from_file = get(target_t, "window_scale", (int, float), where)
    named = "--window-scale" if flag is not None else f"{where} key 'window_scale'"
    value = flag if flag is not None else from_file
    if value is None:
        return 1.0
    if isinstance(value, bool) or not 0 < value <= 1:
        raise ConfigError(f"{named} must be more than 0 and at most 1, got {value!r}")
    return float(value)


def _given(env: Mapping[str, str], variable: str, from_file: str | None, key: str) -> tuple[str | None, str]:
    """The variable's value if set (the environment wins), else the file's; and which one it was."""
    if env.get(variable):
        return env[variable], variable
    return from_file, key


def _url(
    env: Mapping[str, str], variable: str, from_file: str | None, key: str, network: NetworkSettings
) -> str | None:
    url, named = _given(env, variable, from_file, key)
    if url:
        _check_url(url, named, network)
    return url


def _check_url(url: str, named: str, network: NetworkSettings) -> None:
    # Here, not at the first request: a bad port or a plain-http URL is the user's to fix, said
    # once and naming where it came from, not a traceback or "the answer was not valid JSON".
    problem = url_problem(url, allow_http=network.allow_http)
    if problem is not None:
        raise ConfigError(f"{named} {problem}")


def _network(
    env: Mapping[str, str],
    target_t: Mapping[str, Any],
    where: str,
    *,
    ca_bundle: Path | None,
    allow_http: bool,
    config_path: Path | None,
) -> NetworkSettings:
    """The CA bundle (--ca-bundle, else SSL_CERT_FILE, else [target] ca_bundle, relative to the file)
    checked by building its TLS context now, and whether plain http may leave the machine."""
    file_bundle = get(target_t, "ca_bundle", str, where)
    file_allow = get(target_t, "allow_http", bool, where)
    bundle: Path | None = None
    named = ""
    if ca_bundle is not None:
        bundle, named = ca_bundle, "--ca-bundle"
    elif env.get("SSL_CERT_FILE"):
        bundle, named = Path(env["SSL_CERT_FILE"]), "SSL_CERT_FILE"
    elif file_bundle:
        bundle, named = Path(file_bundle), f"{where} key 'ca_bundle'"
        if config_path is not None:  # like a [[feed]] path: the file's neighbour, wherever cron runs
            bundle = config_path.absolute().parent / bundle
    if bundle is not None:
        try:
            tls_context(str(bundle))
        except ConfigError as error:
            raise ConfigError(f"{named}: {error}") from None
    allowed = allow_http or bool(file_allow)
    if allowed:
        # Once per run: the setting, not each URL, is what the operator chose.
        _log.warning(
            "plain http is allowed (--allow-http): the client secret, the token and the indicators may "
            "cross the network unencrypted, for anyone on the way to read or change"
        )
    return NetworkSettings(
        ca_bundle=None if bundle is None else str(bundle), allow_http=allowed, proxies=proxies_of(env)
    )


def _warn_if_world_readable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        _log.warning("%s holds a client secret and is readable by every user; chmod 600 it", path)
