"""The ``[[destination]]`` tables of a config file: each a tenant and target of one run, checked, with
the environment its credentials come from.

A destination names the **environment variables** holding its credentials (``client_id_env``,
``client_secret_env`` or ``client_cert_env``), never the values: the config file may be shared,
the variables are the secret store's (a systemd ``EnvironmentFile``, a container's secrets). Its
connection is then read as a single-target run's (``credentials.connection_of``), its credentials
from the variables it names (``credential_names``: a ``CredentialNames``, which its errors' advice
names too), from an environment without ``TI_CLIENT_ID``, ``TI_CLIENT_SECRET``, ``TI_CLIENT_CERT``
and the URL and target-option variables: one variable set for the whole process must not leak
into every tenant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from importer.errors import ConfigError
from importer.settings.tables import check_keys, get
from importer.settings.target_options import option_keys
from importer.targets.base import TargetPackage
from importer.targets.registry import TARGETS, package
from importer.transport.connection import CredentialNames

__all__ = [
    "DESTINATION_KEYS",
    "check_names",
    "credential_names",
    "destination_env",
    "destination_tables",
    "tables_of",
    "target_of",
]

# Per destination: where and as whom, and its own worker budget and pace.
DESTINATION_KEYS = frozenset(
    {"name", "target", "api_url", "auth_url", "tenant", "audience", "version", "workers", "rate"}
    | {"client_id_env", "client_secret_env", "client_cert_env", "client_cert_password_env"}
) | option_keys(TARGETS.values())
# The variables a single-target run reads its credentials and URLs from: a destination's own.
_RUN_VARIABLES = frozenset(
    {"TI_CLIENT_ID", "TI_CLIENT_SECRET", "TI_CLIENT_CERT", "TI_AUTH_URL", "TI_API_URL", "TI_TENANT"}
)
# The table's key naming each credential's variable, and its field of ``CredentialNames``.
_CREDENTIALS = (
    ("client_id_env", "client_id"),
    ("client_secret_env", "client_secret"),
    ("client_cert_env", "client_cert"),
)
# A metrics label, a log word and a --destination argument: short, no spaces or quotes.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def destination_tables(config: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """The ``[[destination]]`` tables, their keys and names checked (unique, label-safe)."""
    tables = config.get("destination")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{where}: 'destination' must be an array of tables, written [[destination]]")
    names: list[str] = []
    for index, table in enumerate(tables, start=1):
        here = f"{where}: [[destination]] #{index}"
        check_keys(table, DESTINATION_KEYS, here)
        name = get(table, "name", str, here)
        if not name or not _NAME.fullmatch(name):
            raise ConfigError(
                f"{here}: key 'name' is required: letters, digits, '.', '_' or '-' (at most 64), got {name!r}"
            )
        if name in names:
            raise ConfigError(f"{where}: two [[destination]] tables are named {name!r}")
        names.append(name)
    return tables


def check_names(wanted: Sequence[str], known: Sequence[str], what: str) -> None:
    """Refuse a name in ``wanted`` (``--destination`` or a feed's ``destinations``) not in ``known``."""
    for name in wanted:
        if name not in known:
            raise ConfigError(f"{what} names the destination {name!r}; the config has {', '.join(known)}")


def tables_of(table: Mapping[str, Any], shared_target: Mapping[str, Any], target: TargetPackage,
              where: str) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The ``[target]`` and ``[auth]`` tables a single-target run would have for this destination
    (``shared_target``: the config's ``[target]``, the network keys every destination shares)."""
    own = option_keys((target,))
    for key in sorted(set(table) & option_keys(TARGETS.values()) - own):
        owner = next(entry.name for entry in TARGETS.values() if key in option_keys((entry,)))
        raise ConfigError(f"{where}: key {key!r} applies to the {owner} target only, not {target.name}")
    target_t = {**shared_target, **{key: table[key] for key in table if key in own}}
    if table.get("api_url") is not None:
        target_t["api_url"] = table["api_url"]
    auth_t = {key: table[key] for key in ("tenant", "audience", "version", "client_cert_password_env")
              if key in table}  # fmt: skip
    if table.get("auth_url") is not None:
        auth_t["url"] = table["auth_url"]
    return target_t, auth_t


def target_of(table: Mapping[str, Any], where: str) -> TargetPackage:
    name = get(table, "target", str, where)
    if not name:
        raise ConfigError(f"{where}: key 'target' is required ({', '.join(TARGETS)})")
    try:
        return package(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: key 'target': {exc}") from None


def credential_names(table: Mapping[str, Any]) -> CredentialNames:
    """The variables this destination's credentials are read from (``client_secret_env``'s...);
    one it does not name keeps the run's name, which ``destination_env`` leaves unset."""
    given = {field: str(table[key]) for key, field in _CREDENTIALS if table.get(key) is not None}
    return CredentialNames(**given)


def destination_env(table: Mapping[str, Any], env: Mapping[str, str], where: str) -> dict[str, str]:
    """The environment the destination's connection is read from: the process's, less the run's
    credential, URL and target-option variables, with the variables it names checked (set, and
    kept even when one is named like a run's)."""
    own = {option.env for entry in TARGETS.values() for option in entry.options if option.env}
    out = {key: value for key, value in env.items() if key not in _RUN_VARIABLES and key not in own}
    if table.get("client_id_env") is None:
        raise ConfigError(f"{where}: key 'client_id_env' is required: the variable holding its client id")
    if table.get("client_secret_env") is None and table.get("client_cert_env") is None:
        raise ConfigError(
            f"{where}: give client_secret_env (the variable of its client secret) or client_cert_env "
            "(of its certificate's PEM file)"
        )
    for key, _ in _CREDENTIALS:
        name = get(table, key, str, where)
        if name is None:
            continue
        if not _VARIABLE.fullmatch(name):
            raise ConfigError(f"{where}: key {key!r} must name an environment variable, got {name!r}")
        if not env.get(name):
            raise ConfigError(f"{where}: key {key!r} names the environment variable {name}, which is not set")
        out[name] = env[name]
    return out
