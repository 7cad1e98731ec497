"""The run's settings, from flags, the environment and a TOML config file: the only reader of either.

Precedence, highest first: command-line flags, environment variables, the config file, defaults.
Credentials come from the environment (``TI_CLIENT_ID``, ``TI_CLIENT_SECRET``, ``TI_AUTH_URL``,
``TI_API_URL``, ``TI_TENANT``) or from the config file's ``[auth]`` table — never from argv.
``TI_TENANT`` is a convenience: without ``TI_AUTH_URL`` it builds the legacy samples' token URL
``https://login.windows.net/<tenant>/oauth2/token``.

Every mistake is a ``ConfigError`` naming the file, the key and what is wrong, in one sentence.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from feeds.model import Detection
from importer.errors import ConfigError
from importer.model import DefinitionSpec
from importer.targets.mde.client import ACTIONS as MDE_ACTIONS
from importer.transport.connection import ConnectionSettings, Secret

__all__ = [
    "DEFAULT_API_URLS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_WORKERS",
    "CliOptions",
    "FeedSettings",
    "RunSettings",
    "Tuning",
    "default_definition_name",
    "load_run_settings",
    "parse_rate",
]

_log = logging.getLogger(__name__)

DEFAULT_API_URLS = {
    "ti": "https://ti.securitycenter.windows.com/V1.0/",
    "mde": "https://api.securitycenter.microsoft.com/api/",
}
DEFAULT_BATCH_SIZE = 500
DEFAULT_WORKERS = 16
SEVERITIES = ("Informational", "Low", "Medium", "High")
FORMATS = ("auto", "csv", "stix", "list")
_MAX_NAME, _MAX_TITLE, _MAX_DESCRIPTION, _MAX_ACTION = 100, 120, 350, 2000


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """One feed to import and the alert definition its indicators are grouped under."""

    source: str  # a path, "-" for stdin, or an http(s) URL
    definition: DefinitionSpec
    format: str = "auto"
    columns: str | None = None  # CSV column mapping override (feeds/csvfeed.py parses it)
    expire_days: int | None = None
    mirror: bool = False  # mirror mode: delete what the definition holds that the feed dropped


@dataclass(frozen=True, slots=True)
class Tuning:
    """How hard to push: request mode, batch size, worker count."""

    mode: Literal["bulk", "single"] = "bulk"
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = DEFAULT_WORKERS


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything ``ti-import run`` needs, resolved and checked."""

    target: Literal["ti", "mde"]
    connection: ConnectionSettings
    feeds: tuple[FeedSettings, ...]
    tuning: Tuning = field(default_factory=Tuning)
    dry_run: bool = False
    retry_from: Path | None = None  # a rejects file whose retryable lines are sent again


@dataclass(frozen=True, slots=True)
class CliOptions:
    """What the command line said; ``None`` means "not given" so lower layers may decide."""

    feeds: tuple[str, ...] = ()
    config: Path | None = None
    target: str | None = None
    format: str | None = None
    columns: str | None = None
    name: str | None = None
    title: str | None = None
    severity: str | None = None
    category: str | None = None
    description: str | None = None
    recommended_action: str | None = None
    detection_function: str | None = None
    expire_days: int | None = None
    action: str | None = None  # mde: what Defender does on a match
    rbac_groups: tuple[str, ...] | None = None  # mde: device groups the indicators apply to
    application: str | None = None  # mde: the application shown with the indicator
    mode: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    rate: str | None = None
    dry_run: bool = False
    retry_from: Path | None = None


_FEED_KEYS = frozenset(
    {
        "source",
        "format",
        "columns",
        "name",
        "title",
        "severity",
        "category",
        "description",
        "recommended_action",
        "detection_function",
        "expire_days",
        "enabled",
        "mirror",
        "action",
        "generate_alert",
        "rbac_groups",
        "application",
    }
)
_TABLE_KEYS: dict[str, frozenset[str]] = {
    "target": frozenset({"name", "api_url"}),
    "auth": frozenset({"url", "tenant", "client_id", "client_secret", "audience", "version"}),
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


def load_run_settings(
    cli: CliOptions, env: Mapping[str, str] | None = None, *, now: datetime | None = None
) -> RunSettings:
    """Merge flags, environment and config file into checked ``RunSettings`` (or raise ConfigError)."""
    env = os.environ if env is None else env
    now = now or datetime.now(UTC)
    config: dict[str, Any] = _read_config(cli.config) if cli.config is not None else {}
    where = str(cli.config) if cli.config is not None else "the command line"
    for table, keys in _TABLE_KEYS.items():
        if table in config:
            _check_keys(config[table], keys, f"{where}: [{table}]")
    unknown = set(config) - set(_TABLE_KEYS) - {"feed"}
    if unknown:
        raise ConfigError(f"{where}: unknown table or key {sorted(unknown)[0]!r}")
    target_t: dict[str, Any] = config.get("target", {})
    auth_t: dict[str, Any] = config.get("auth", {})
    tuning_t: dict[str, Any] = config.get("tuning", {})

    target = cli.target or _get(target_t, "name", str, f"{where}: [target]") or "ti"
    if target not in ("ti", "mde"):
        raise ConfigError(f"the target must be 'ti' or 'mde', got {target!r}")

    feeds = _feeds(cli, config, where, now)
    if not feeds and cli.retry_from is None:
        raise ConfigError(
            "no feed to import: give FEED arguments, --config with [[feed]] tables, or --retry-from"
        )
    names = [f.definition.name for f in feeds]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(
                f"{where}: two feeds share the alert definition name {name!r}; give each a --name"
            )

    tuning_where = f"{where}: [tuning]"
    mode = cli.mode or _get(tuning_t, "mode", str, tuning_where) or "bulk"
    if mode not in ("bulk", "single"):
        raise ConfigError(f"the mode must be 'bulk' or 'single', got {mode!r}")
    batch_size = _first(cli.batch_size, _get(tuning_t, "batch_size", int, tuning_where), DEFAULT_BATCH_SIZE)
    workers = _first(cli.workers, _get(tuning_t, "workers", int, tuning_where), DEFAULT_WORKERS)
    if not 1 <= batch_size <= 5000:
        raise ConfigError(f"the batch size must be between 1 and 5000, got {batch_size}")
    if not 1 <= workers <= 256:
        raise ConfigError(f"the number of workers must be between 1 and 256, got {workers}")
    rate_text = cli.rate or _get(tuning_t, "rate", (str, int, float), tuning_where)
    rate = parse_rate(str(rate_text)) if rate_text is not None else None

    connection = _connection(
        env,
        target_t=target_t,
        auth_t=auth_t,
        tuning_t=tuning_t,
        where=where,
        rate=rate,
        config_path=cli.config,
        target=target,
    )
    return RunSettings(
        target=target,  # type: ignore[arg-type]  # checked above
        connection=connection,
        feeds=tuple(feeds),
        tuning=Tuning(mode=mode, batch_size=batch_size, workers=workers),  # type: ignore[arg-type]
        dry_run=cli.dry_run,
        retry_from=cli.retry_from,
    )


def parse_rate(text: str) -> float:
    """``"600/min"``, ``"10/s"``, ``"36000/h"`` or a bare number (per minute) → requests per minute."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|min|minute|h|hour))?\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"the rate must look like '600/min', '10/s' or '36000/h', got {text!r}")
    value, unit = float(match.group(1)), match.group(2) or "min"
    return value * 60 if unit.startswith("s") else value / 60 if unit.startswith("h") else value


def default_definition_name(source: str) -> str:
    """A feed's default alert definition name: its file name (or URL's last segment)."""
    if source == "-":
        return "stdin"
    path = urlsplit(source).path if "://" in source else source
    return (PurePosixPath(path.replace("\\", "/")).name or source)[:_MAX_NAME]


def _first(*values: int | None) -> int:
    # Not `or`: an explicit 0 in the file is a mistake to report, not a request for the default.
    return next(v for v in values if v is not None)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"the config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from None


def _check_keys(table: object, allowed: frozenset[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def _get(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    # bool is an int in Python; a TOML `true` where a number belongs is still a mistake.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: key {key!r} must be a {names}, got {value!r}")
    return value


def _feeds(cli: CliOptions, config: Mapping[str, Any], where: str, now: datetime) -> list[FeedSettings]:
    tables = config.get("feed", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: 'feed' must be an array of tables, written [[feed]]")
    metadata_flags = (
        cli.name,
        cli.title,
        cli.severity,
        cli.category,
        cli.description,
        cli.recommended_action,
        cli.detection_function,
        cli.expire_days,
        cli.format,
        cli.columns,
        cli.action,
        cli.rbac_groups,
        cli.application,
    )
    if tables and cli.feeds:
        raise ConfigError("give feeds either as arguments or as [[feed]] tables in --config, not both")
    if tables and any(flag is not None for flag in metadata_flags):
        raise ConfigError(
            "feed options such as --name or --severity apply to FEED arguments; "
            "with --config set them in each [[feed]] table"
        )
    if cli.name is not None and len(cli.feeds) > 1:
        raise ConfigError("--name names one feed's alert definition; use a config file for several feeds")
    feeds = []
    for index, table in enumerate(tables, start=1):
        feed_where = f"{where}: [[feed]] #{index}"
        _check_keys(table, _FEED_KEYS, feed_where)
        feeds.append(_feed({k: v for k, v in table.items()}, feed_where, now))
    for source in cli.feeds:
        given = {
            "source": source,
            "format": cli.format,
            "columns": cli.columns,
            "name": cli.name,
            "title": cli.title,
            "severity": cli.severity,
            "category": cli.category,
            "description": cli.description,
            "recommended_action": cli.recommended_action,
            "detection_function": cli.detection_function,
            "expire_days": cli.expire_days,
            "action": cli.action,
            "rbac_groups": list(cli.rbac_groups) if cli.rbac_groups is not None else None,
            "application": cli.application,
        }
        feeds.append(_feed({k: v for k, v in given.items() if v is not None}, "the command line", now))
    return feeds


def _feed(table: Mapping[str, Any], where: str, now: datetime) -> FeedSettings:
    source = _get(table, "source", str, where)
    if not source:
        raise ConfigError(f"{where}: key 'source' is required (a path, '-' or an http(s) URL)")
    fmt = _get(table, "format", str, where) or "auto"
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: key 'format' must be one of {', '.join(FORMATS)}, got {fmt!r}")
    name = _get(table, "name", str, where) or default_definition_name(source)
    title = _get(table, "title", str, where) or f"Threat intelligence: {name}"
    description = (
        _get(table, "description", str, where)
        or f"Indicators imported by ti-importer from {default_definition_name(source)}."
    )
    for key, text, limit in (
        ("name", name, _MAX_NAME),
        ("title", title, _MAX_TITLE),
        ("description", description, _MAX_DESCRIPTION),
    ):
        if len(text) > limit:
            raise ConfigError(f"{where}: key {key!r} is {len(text)} characters long; the API allows {limit}")
    severity = _get(table, "severity", str, where) or "Medium"
    if severity.capitalize() not in SEVERITIES:
        raise ConfigError(f"{where}: key 'severity' must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    category = _get(table, "category", str, where) or "SuspiciousNetworkTraffic"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", category):
        raise ConfigError(
            f"{where}: key 'category' must be one word such as Malware or Trojan, got {category!r}"
        )
    action = _get(table, "recommended_action", str, where)
    if action is not None and len(action) > _MAX_ACTION:
        raise ConfigError(f"{where}: key 'recommended_action' is longer than {_MAX_ACTION} characters")
    detection = _detection(_get(table, "detection_function", str, where), where)
    expire_days = _get(table, "expire_days", int, where)
    if expire_days is not None and expire_days < 1:
        raise ConfigError(f"{where}: key 'expire_days' must be a positive number of days, got {expire_days}")
    enabled = _get(table, "enabled", bool, where)
    mde_action = _get(table, "action", str, where) or "Audit"
    if mde_action not in MDE_ACTIONS:
        choices = ", ".join(MDE_ACTIONS)
        raise ConfigError(f"{where}: key 'action' must be one of {choices}, got {mde_action!r}")
    generate_alert = _get(table, "generate_alert", bool, where)
    rbac_groups = _get(table, "rbac_groups", list, where) or []
    if not all(isinstance(group, str) and group for group in rbac_groups):
        raise ConfigError(f"{where}: key 'rbac_groups' must be a list of device group names")
    spec = DefinitionSpec(
        name=name,
        title=title,
        description=description,
        severity=severity.capitalize(),
        category=category,
        recommended_action=action,
        enabled=True if enabled is None else enabled,
        detection=detection,
        expires_at=now + timedelta(days=expire_days) if expire_days is not None else None,
        action=mde_action,
        generate_alert=True if generate_alert is None else generate_alert,
        rbac_group_names=tuple(rbac_groups),
        application=_get(table, "application", str, where),
    )
    columns = _get(table, "columns", str, where)
    mirror = bool(_get(table, "mirror", bool, where))
    return FeedSettings(
        source=source, definition=spec, format=fmt, columns=columns, expire_days=expire_days, mirror=mirror
    )


def _detection(text: str | None, where: str) -> Detection | None:
    if text is None:
        return None
    for detection in Detection:
        if text.lower() == detection.value.lower():
            return detection
    choices = ", ".join(d.value for d in Detection)
    raise ConfigError(f"{where}: the detection function must be one of {choices}, got {text!r}")


def _connection(
    env: Mapping[str, str],
    *,
    target_t: Mapping[str, Any],
    auth_t: Mapping[str, Any],
    tuning_t: Mapping[str, Any],
    where: str,
    rate: float | None,
    config_path: Path | None,
    target: str,
) -> ConnectionSettings:
    auth_where, tuning_where = f"{where}: [auth]", f"{where}: [tuning]"
    client_id = env.get("TI_CLIENT_ID") or _get(auth_t, "client_id", str, auth_where)
    if not client_id:
        raise ConfigError("no client id: set TI_CLIENT_ID or client_id in the config file's [auth] table")
    secret = env.get("TI_CLIENT_SECRET")
    if not secret:
        secret = _get(auth_t, "client_secret", str, auth_where)
        if secret and config_path is not None:
            _warn_if_world_readable(config_path)
    if not secret:
        raise ConfigError(
            "no client secret: set TI_CLIENT_SECRET or client_secret in the config file's [auth] table"
        )
    auth_url = env.get("TI_AUTH_URL") or _get(auth_t, "url", str, auth_where)
    if not auth_url:
        tenant = env.get("TI_TENANT") or _get(auth_t, "tenant", str, auth_where)
        if not tenant:
            raise ConfigError("no token URL: set TI_AUTH_URL (the portal's authorization URL) or TI_TENANT")
        auth_url = f"https://login.windows.net/{tenant}/oauth2/token"
    api_url = env.get("TI_API_URL") or _get(target_t, "api_url", str, f"{where}: [target]")
    api_url = api_url or DEFAULT_API_URLS[target]
    version = _get(auth_t, "version", str, auth_where)
    if version not in (None, "v1", "v2"):
        raise ConfigError(f"{auth_where}: key 'version' must be 'v1' or 'v2', got {version!r}")
    numbers: dict[str, Any] = {}
    for key in ("connect_timeout", "total_timeout", "max_retry_seconds"):
        value = _get(tuning_t, key, (int, float), tuning_where)
        if value is not None:
            numbers[key] = float(value)
    attempts = _get(tuning_t, "max_attempts", int, tuning_where)
    if attempts is not None:
        numbers["max_attempts"] = attempts
    return ConnectionSettings(
        auth_url=auth_url,
        api_url=api_url,
        client_id=client_id,
        client_secret=Secret(secret),
        audience=_get(auth_t, "audience", str, auth_where),
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
