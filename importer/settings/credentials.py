"""Where and as whom to connect: credentials and URLs from the environment or the config file, never argv.

The environment wins over the config file's ``[auth]`` and ``[target]`` tables. A secret read
from a config file that every user can read is used, with a warning to ``chmod 600`` it.

The credential is a client secret or, instead, a certificate: a PEM file of the app's certificate
and private key (``TI_CLIENT_CERT`` or ``[auth] client_cert``, relative to the config file), whose
key's password, if it is encrypted, comes from the environment only (``TI_CLIENT_CERT_PASSWORD``,
or the variable ``[auth] client_cert_password_env`` names). Exactly one of the two, or a
``ConfigError``; the certificate is loaded and checked here (``transport.assertion``).

Here too the network: the token and API URLs are checked (http(s), a usable port, https unless
the host is this machine or plain http is allowed), naming the variable or key they came from;
the CA bundle (``--ca-bundle``, ``SSL_CERT_FILE`` or ``[target] ca_bundle``) is loaded once;
``--allow-http`` (or ``[target] allow_http = true``) warns once; ``HTTPS_PROXY``, ``HTTP_PROXY``
and ``NO_PROXY`` are read for every request of the run.
"""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from importer.errors import ConfigError
from importer.settings.tables import get
from importer.settings.target_options import target_options_of, tenant_scope_of
from importer.targets.base import TargetPackage
from importer.transport.connection import (
    NO_SECRET,
    CertificateCredential,
    ConnectionSettings,
    CredentialNames,
    NetworkSettings,
    Secret,
)
from importer.transport.proxies import proxies_of
from importer.transport.tls import tls_context
from importer.transport.urls import url_problem

__all__ = ["connection_of"]

_log = logging.getLogger(__name__)
# The variable holding the key's password, unless the config names another.
_PASSWORD_VARIABLE = "TI_CLIENT_CERT_PASSWORD"  # noqa: S105 -- a variable's name, not a password
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    names: CredentialNames | None = None,
) -> ConnectionSettings:
    """The connection the environment and the config file's tables describe (``ca_bundle``,
    ``allow_http`` and ``window_scale``: the flags, which win over both), with ``target``'s own
    options (``option_flags``: those given as flags); its credentials from the variables ``names``
    (a ``[[destination]]``'s own; default ``TI_CLIENT_*``), which its errors' advice names."""
    names = names or CredentialNames()
    auth_where, target_where, tuning_where = f"{where}: [auth]", f"{where}: [target]", f"{where}: [tuning]"
    # Every key of the file is checked, also where the environment overrides it: a mistake in the
    # file must not wait to surface until the day the variable is unset.
    file_auth = {
        key: get(auth_t, key, str, auth_where)
        for key in ("client_id", "client_secret", "client_cert", "client_cert_password_env", "url", "tenant")
    }
    file_api_url = get(target_t, "api_url", str, target_where)
    client_id = env.get(names.client_id) or file_auth["client_id"]
    if not client_id:
        raise ConfigError(
            f"no client id: set {names.client_id} or client_id in the config file's [auth] table"
        )
    secret, certificate = _credential(env, file_auth, auth_where, config_path, names)
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
        client_secret=secret,
        client_cert=certificate,
        audience=get(auth_t, "audience", str, auth_where),
        auth_version=version,
        rate_per_minute=rate,
        network=network,
        target_options=options,
        tenant_scope=() if target is None else tenant_scope_of(target, options),
        names=names,
        **numbers,
    )


def _credential(
    env: Mapping[str, str],
    file_auth: Mapping[str, str | None],
    where: str,
    config_path: Path | None,
    names: CredentialNames,
) -> tuple[Secret, CertificateCredential | None]:
    """The client secret, or the certificate that stands in for it: exactly one of the two."""
    secret_key, cert_key = f"{where} key 'client_secret'", f"{where} key 'client_cert'"
    secret, secret_named = _given(env, names.client_secret, file_auth["client_secret"], secret_key)
    cert, cert_named = _given(env, names.client_cert, file_auth["client_cert"], cert_key)
    if secret and cert:
        raise ConfigError(
            f"both a client secret ({secret_named}) and a client certificate ({cert_named}) are given: "
            "keep one"
        )
    if secret:
        if secret_named == secret_key and config_path is not None:
            _warn_if_world_readable(config_path, "a client secret")
        return Secret(secret), None
    if not cert:
        raise ConfigError(
            f"no client secret: set {names.client_secret} (or {names.client_cert}, a certificate instead), "
            "or client_secret (or client_cert) in the config file's [auth] table"
        )
    path = Path(cert)
    if cert_named == cert_key and config_path is not None:
        # Like ca_bundle: the config file's neighbour, wherever cron runs it from.
        path = config_path.absolute().parent / path
    return NO_SECRET, _certificate(env, path, cert_named, file_auth["client_cert_password_env"], where)


def _certificate(
    env: Mapping[str, str], path: Path, named: str, password_env: str | None, where: str
) -> CertificateCredential:
    """The certificate credential in ``path``, its key decrypted with the password from the environment."""
    # Only a certificate run pays for cryptography and PyJWT.
    from importer.transport.assertion import load_certificate  # noqa: PLC0415

    if password_env is not None and not _VARIABLE_NAME.fullmatch(password_env):
        raise ConfigError(
            f"{where} key 'client_cert_password_env' must name an environment variable (the password "
            "itself is never kept in the config file)"
        )
    variable = password_env or _PASSWORD_VARIABLE
    password = env.get(variable)
    _warn_if_world_readable(path, "a private key")
    given = Secret(password) if password else None
    return load_certificate(path, given, named=named, password_from=variable, now=datetime.now(UTC))


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


def _warn_if_world_readable(path: Path, what: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        _log.warning("%s holds %s and is readable by every user; chmod 600 it", path, what)
