"""The run's settings, from flags, the environment and a TOML config file: the only reader of either.

Precedence, highest first: command-line flags, environment variables, the config file, defaults.
Credentials come from the environment (``TI_CLIENT_ID``, ``TI_CLIENT_SECRET``, ``TI_AUTH_URL``,
``TI_API_URL``, ``TI_TENANT``) or from the config file's ``[auth]`` table — never from argv.
``TI_TENANT`` is a convenience: without ``TI_AUTH_URL`` it builds the legacy samples' token URL
``https://login.windows.net/<tenant>/oauth2/token``.

Per-feed options are the rows of ``importer.fields`` and of each target's ``fields``: this module
loops over them and knows none by name but ``source`` and ``name``; what an API accepts is its
target's ``check_definition``. Every mistake is a ``ConfigError`` naming the file, the key and
what is wrong, in one sentence. ``values`` holds the frozen results, ``feeds`` the per-feed
tables, ``credentials`` the connection, ``tables`` the TOML reading they share.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from importer.errors import ConfigError
from importer.settings.credentials import connection_of
from importer.settings.destinations import (
    check_names,
    credential_names,
    destination_env,
    destination_tables,
    tables_of,
    target_of,
)
from importer.settings.feeds import DESTINATIONS_KEY, feeds_of
from importer.settings.tables import check_keys, first_given, get, read_config
from importer.settings.target_options import check_foreign, option_keys
from importer.settings.values import (
    DEFAULT_BATCH_SIZE,
    CliOptions,
    Destination,
    FeedSettings,
    OutputOptions,
    RunSettings,
    StateOptions,
    Tuning,
)
from importer.targets.base import TargetPackage
from importer.targets.registry import DEFAULT_TARGET, TARGETS, package
from importer.transport.connection import CredentialNames

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CliOptions",
    "Destination",
    "FeedSettings",
    "OutputOptions",
    "RunSettings",
    "StateOptions",
    "Tuning",
    "load_destinations",
    "load_run_settings",
    "parse_rate",
]

_log = logging.getLogger(__name__)
_MAX_WORKERS = 256
# What [target] may hold beside [[destination]] tables: how to reach the APIs, the same for all.
_SHARED_TARGET_KEYS = frozenset({"ca_bundle", "allow_http", "window_scale"})
_TABLE_KEYS: dict[str, frozenset[str]] = {
    # ca_bundle and allow_http are here, with the API's URL: they say how to reach it (and the feeds).
    # With every target's own options (``TargetPackage.options``): one of another target is
    # refused by name (``target_options.check_foreign``), not as an unknown key.
    "target": frozenset({"name", "api_url", "ca_bundle", "allow_http", "window_scale"})
    | option_keys(TARGETS.values()),
    # client_cert: a PEM file instead of the secret; its key's password only from the environment.
    "auth": frozenset({"url", "tenant", "client_id", "client_secret", "audience", "version"})
    | {"client_cert", "client_cert_password_env"},
    "tuning": frozenset(
        {
            "mode",
            "batch_size",
            "workers",
            "rate",
            "connect_timeout",
            "total_timeout",
            "max_attempts",
            "max_retry_seconds",
        }
    ),
}


# The type of each key, checked wherever the key is present — also when a flag or a variable wins
# over it: a mistake in the file must not wait until the day the override is gone.
_KEY_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "target": {
        "name": str,
        "api_url": str,
        "ca_bundle": str,
        "allow_http": bool,
        "window_scale": (int, float),
        **dict.fromkeys(option_keys(TARGETS.values()), str),
    },
    "auth": {key: str for key in _TABLE_KEYS["auth"]},
    "tuning": {
        "mode": str,
        "batch_size": int,
        "workers": int,
        "rate": (str, int, float),
        "connect_timeout": (int, float),
        "total_timeout": (int, float),
        "max_attempts": int,
        "max_retry_seconds": (int, float),
    },
}
# Numbers of [tuning] that only the connection uses, and their ranges: (low, whether low itself
# is allowed, high). A day bounds the waits: past it a run is stuck, not patient (and a number of
# 400 digits would not even be a float).
_DAY = 86_400
_RANGES: dict[str, tuple[int, bool, int]] = {
    "connect_timeout": (0, False, _DAY),
    "total_timeout": (0, False, _DAY),
    "max_retry_seconds": (0, True, _DAY),  # 0: no retry after the first failure
    "max_attempts": (1, True, 1000),
}


def load_run_settings(
    cli: CliOptions, env: Mapping[str, str] | None = None, *, now: datetime | None = None
) -> RunSettings:
    """Merge flags, environment and config file into checked ``RunSettings`` (or raise ConfigError):
    the run's one destination (a config of several ``[[destination]]`` tables: ``--destination``
    must pick one)."""
    destinations = load_destinations(cli, env, now=now)
    if len(destinations) > 1:
        names = ", ".join(d.name for d in destinations)
        raise ConfigError(
            f"this command takes one destination, and the config has {names}: give --destination NAME"
        )
    return destinations[0].settings


def load_destinations(
    cli: CliOptions, env: Mapping[str, str] | None = None, *, now: datetime | None = None
) -> tuple[Destination, ...]:
    """Every destination of the run (``--destination``: those named), each with its checked settings.
    A config without ``[[destination]]`` tables is one destination, named after its target."""
    env = os.environ if env is None else env
    config: dict[str, Any] = read_config(cli.config) if cli.config is not None else {}
    where = str(cli.config) if cli.config is not None else "the command line"
    for table, keys in _TABLE_KEYS.items():
        if table in config:
            check_keys(config[table], keys, f"{where}: [{table}]")
            _check_types(config[table], _KEY_TYPES.get(table, {}), f"{where}: [{table}]")
    unknown = set(config) - set(_TABLE_KEYS) - {"feed", "destination"}
    if unknown:
        raise ConfigError(f"{where}: unknown table or key {sorted(unknown)[0]!r}")
    now = now or datetime.now(UTC)
    if "destination" in config:
        return _destinations(cli, env, config, where, now)
    target_t: dict[str, Any] = config.get("target", {})
    target = _target(cli, target_t, f"{where}: [target]")
    settings = _settings(cli, env, config, where, now, target=target, target_t=target_t,
                         auth_t=config.get("auth", {}), tuning_t=config.get("tuning", {}))  # fmt: skip
    if not settings.feeds and cli.retry_from is None:
        raise ConfigError(
            "no feed to import: give FEED arguments, --config with [[feed]] tables, or --retry-from"
        )
    for name in cli.destinations:
        if name != target.name:
            raise ConfigError(
                f"--destination {name!r}: the config has no [[destination]] tables, so its one destination "
                f"is named after its target, {target.name!r}"
            )
    return (Destination(target.name, settings),)


def _settings(
    cli: CliOptions,
    env: Mapping[str, str],
    config: Mapping[str, Any],
    where: str,
    now: datetime,
    *,
    target: TargetPackage,
    target_t: Mapping[str, Any],
    auth_t: Mapping[str, Any],
    tuning_t: Mapping[str, Any],
    destination: str | None = None,
    credentials: CredentialNames | None = None,
) -> RunSettings:
    """One destination's settings: its target's, its feeds (``destination``: those that go to it),
    its credentials from the variables ``credentials`` names (default: the run's ``TI_CLIENT_*``)."""
    check_foreign(target, TARGETS.values(), cli.target_options, target_t, f"{where}: [target]")
    feeds = feeds_of(cli, config, where, now, target, destination=destination)
    names = [f.definition.name for f in feeds]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(
                f"{where}: two feeds share the alert definition name {name!r}; give each a --name"
            )
    tuning, rate = _tuning(cli, tuning_t, f"{where}: [tuning]", target)
    connection = connection_of(
        env,
        target_t=target_t,
        auth_t=auth_t,
        tuning_t=tuning_t,
        where=where,
        rate=rate,
        config_path=cli.config,
        default_api_url=target.default_api_url,
        ca_bundle=cli.ca_bundle,
        allow_http=cli.allow_http,
        window_scale=cli.window_scale,
        target=target,
        option_flags=cli.target_options,
        names=credentials,
    )
    return RunSettings(
        target=target.name,
        connection=connection,
        feeds=tuple(feeds),
        tuning=tuning,
        dry_run=cli.dry_run,
        retry_from=cli.retry_from,
        destination=destination,
    )


def _destinations(
    cli: CliOptions, env: Mapping[str, str], config: Mapping[str, Any], where: str, now: datetime
) -> tuple[Destination, ...]:
    """The destinations of a config with ``[[destination]]`` tables (see ``settings.destinations``)."""
    _refuse_single_target_ways(cli, config, where)
    tables = destination_tables(config, where)
    known = [str(table["name"]) for table in tables]
    check_names(cli.destinations, known, "--destination")
    for index, feed in enumerate(config.get("feed", []), start=1):
        listed = feed.get(DESTINATIONS_KEY) if isinstance(feed, dict) else None
        if listed is not None:
            named = f"{where}: [[feed]] #{index} key {DESTINATIONS_KEY!r}"
            if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed) or not listed:
                raise ConfigError(f"{named} must be a list of destination names")
            check_names(listed, known, named)
    out = []
    for table in tables:
        name = str(table["name"])
        if cli.destinations and name not in cli.destinations:
            continue
        here = f"{where}: [[destination]] {name!r}"
        target = target_of(table, here)
        target_t, auth_t = tables_of(table, config.get("target", {}), target, here)
        tuning_t = {**config.get("tuning", {}), **{k: table[k] for k in ("workers", "rate") if k in table}}
        try:
            settings = _settings(
                cli, destination_env(table, env, here), config, where, now, target=target,
                target_t=target_t, auth_t=auth_t, tuning_t=tuning_t, destination=name,
                credentials=credential_names(table),
            )  # fmt: skip
        except ConfigError as exc:
            raise ConfigError(f"destination {name!r}: {exc}") from None
        if not settings.feeds and cli.retry_from is None:  # with --retry-from: its lines may be there
            _log.info("destination %s: no feed goes to it; left out of the run", name)
            continue
        out.append(Destination(name, settings))
    if not out:
        raise ConfigError("no feed to import: no [[feed]] table goes to the destinations of this run")
    return tuple(out)


def _refuse_single_target_ways(cli: CliOptions, config: Mapping[str, Any], where: str) -> None:
    """With ``[[destination]]`` tables, each names its target, URLs and credentials: the single
    target's flags, ``[auth]`` and ``[target]``'s own keys would say it twice, or for which one?"""
    if cli.target is not None:
        raise ConfigError("--target is for a config without [[destination]] tables: each names its target")
    if cli.target_options:
        raise ConfigError(
            f"a target option flag (--{sorted(cli.target_options)[0].replace('_', '-')}) is for a config "
            "without [[destination]] tables: set the option in its [[destination]] table"
        )
    if "auth" in config:
        raise ConfigError(
            f"{where}: [auth] is for a single target: with [[destination]] tables each names the variables "
            "of its credentials (client_id_env, client_secret_env or client_cert_env) and its tenant"
        )
    shared = set(config.get("target", {})) - _SHARED_TARGET_KEYS
    if shared:
        raise ConfigError(
            f"{where}: [target] key {sorted(shared)[0]!r} belongs in each [[destination]] table; [target] "
            f"keeps only what they share ({', '.join(sorted(_SHARED_TARGET_KEYS))})"
        )


def _check_types(table: Mapping[str, Any], types: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    for key, kind in types.items():
        get(table, key, kind, where)
    for key, (low, low_allowed, high) in _RANGES.items():
        value = table.get(key)
        if value is None or (low < value <= high) or (low_allowed and value == low):
            continue
        lower = f"from {low:,} to" if low_allowed else f"more than {low:,} and at most"
        raise ConfigError(f"{where}: key {key!r} must be {lower} {high:,}, got {value!r}")


def _target(cli: CliOptions, table: Mapping[str, Any], where: str) -> TargetPackage:
    if cli.target is not None:  # argparse offered the known names only
        return package(cli.target)
    name = get(table, "name", str, where)
    try:
        return package(name or DEFAULT_TARGET)
    except ConfigError as exc:
        raise ConfigError(f"{where}: key 'name': {exc}") from None


def _given_where(flag: str, cli_value: object, key: str, where: str) -> str:
    """Who set a tuning value, for its error: the flag if given, else the file's table and key."""
    return flag if cli_value is not None else f"{where}: key {key!r}"


def _tuning(
    cli: CliOptions, table: Mapping[str, Any], where: str, target: TargetPackage
) -> tuple[Tuning, float | None]:
    mode = cli.mode or get(table, "mode", str, where) or "bulk"
    if mode not in ("bulk", "single"):
        named = _given_where("--mode", cli.mode, "mode", where)
        raise ConfigError(f"{named}: the mode must be 'bulk' or 'single', got {mode!r}")
    # The default fits every target: one whose requests take fewer (sentinel: 100) gets its most.
    default_batch = min(DEFAULT_BATCH_SIZE, target.max_batch)
    batch_size = first_given(cli.batch_size, get(table, "batch_size", int, where), default_batch)
    workers = first_given(cli.workers, get(table, "workers", int, where), Tuning().workers)
    if not 1 <= batch_size <= target.max_batch:
        named = _given_where("--batch-size", cli.batch_size, "batch_size", where)
        raise ConfigError(
            f"{named}: the batch size must be between 1 and {target.max_batch} (the most one request "
            f"to the {target.name} target takes), got {batch_size}"
        )
    if not 1 <= workers <= _MAX_WORKERS:
        named = _given_where("--workers", cli.workers, "workers", where)
        raise ConfigError(
            f"{named}: the number of workers must be between 1 and {_MAX_WORKERS}, got {workers}"
        )
    rate_text = cli.rate or get(table, "rate", (str, int, float), where)
    rate = None
    if rate_text is not None:
        try:
            rate = parse_rate(str(rate_text))
        except ConfigError as exc:
            raise ConfigError(f"{_given_where('--rate', cli.rate, 'rate', where)}: {exc}") from None
    return Tuning(mode=mode, batch_size=batch_size, workers=workers), rate  # type: ignore[arg-type]


def parse_rate(text: str) -> float:
    """``"600/min"``, ``"10/s"``, ``"36000/h"`` or a bare number (per minute) → requests per minute."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|min|minute|h|hour))?\s*", text)
    # Finite: 400 digits read as a float are "inf", which no limiter means.
    if match is None or not 0 < float(match.group(1)) < math.inf:
        raise ConfigError(f"the rate must look like '600/min', '10/s' or '36000/h', got {text!r}")
    value, unit = float(match.group(1)), match.group(2) or "min"
    return value * 60 if unit.startswith("s") else value / 60 if unit.startswith("h") else value
