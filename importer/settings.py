"""The run's settings, from flags, the environment and a TOML config file: the only reader of either.

Precedence, highest first: command-line flags, environment variables, the config file, defaults.
Credentials come from the environment (``TI_CLIENT_ID``, ``TI_CLIENT_SECRET``, ``TI_AUTH_URL``,
``TI_API_URL``, ``TI_TENANT``) or from the config file's ``[auth]`` table — never from argv.
``TI_TENANT`` is a convenience: without ``TI_AUTH_URL`` it builds the legacy samples' token URL
``https://login.windows.net/<tenant>/oauth2/token``.

Per-feed options are the rows of ``importer.fields`` and of each target's ``fields``: this module
loops over them and knows none by name but ``source`` and ``name``; what an API accepts is its
target's ``check_definition``. Every mistake is a ``ConfigError`` naming the file, the key and
what is wrong, in one sentence.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from importer.errors import ConfigError
from importer.fields import NAME, build_definition, options_of
from importer.model import DefinitionSpec, Field, InFlight, Options
from importer.targets.base import TargetPackage
from importer.targets.registry import DEFAULT_TARGET, all_fields, package
from importer.transport.connection import ConnectionSettings, Secret

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CliOptions",
    "FeedSettings",
    "OutputOptions",
    "RunSettings",
    "StateOptions",
    "Tuning",
    "load_run_settings",
    "parse_rate",
]

_log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BATCH_SIZE = 500
_MAX_WORKERS = 256


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """One feed to import, how to read it, and the alert definition its indicators are grouped under."""

    source: str  # a path, "-" for stdin, or an http(s) URL
    definition: DefinitionSpec
    options: Options = field(default_factory=Options)  # the ``reading`` rows (format, columns, mirror)

    def __getitem__(self, option: Field[T]) -> T:
        return self.options[option]


@dataclass(frozen=True, slots=True)
class Tuning:
    """How hard to push: request mode, batch size, and ``workers`` — the requests in flight."""

    mode: Literal["bulk", "single"] = "bulk"
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = InFlight().requests

    @property
    def in_flight(self) -> InFlight:
        return InFlight(self.workers)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything ``ti-import run`` needs, resolved and checked."""

    target: str  # a name in importer.targets.registry
    connection: ConnectionSettings
    feeds: tuple[FeedSettings, ...]
    tuning: Tuning = field(default_factory=Tuning)
    dry_run: bool = False
    retry_from: Path | None = None  # a rejects file whose retryable lines are sent again


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """Where a run's results go (all from the command line)."""

    report: Path | None = None
    rejects: Path | None = None
    progress: bool = True
    quiet: bool = False  # no summary table on stdout (cron)


@dataclass(frozen=True, slots=True)
class StateOptions:
    """The state journal and what rides on it: reconciling and the mirror guard."""

    path: Path | None = None  # None: no journal; each run lists every definition instead
    reconcile: bool = False  # list the target and repair the journal for every feed
    mirror_max_share: float = 0.5  # most of a definition mirror mode may delete in one run
    force: bool = False  # delete past the guard


@dataclass(frozen=True, slots=True)
class CliOptions:
    """What the command line said; ``None`` means "not given" so lower layers may decide."""

    feeds: tuple[str, ...] = ()
    config: Path | None = None
    target: str | None = None
    feed_options: Mapping[str, Any] = field(default_factory=dict)  # per-feed flags given, by row key
    mode: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    rate: str | None = None
    dry_run: bool = False
    retry_from: Path | None = None


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
    config: dict[str, Any] = _read_config(cli.config) if cli.config is not None else {}
    where = str(cli.config) if cli.config is not None else "the command line"
    for table, keys in _TABLE_KEYS.items():
        if table in config:
            _check_keys(config[table], keys, f"{where}: [{table}]")
    unknown = set(config) - set(_TABLE_KEYS) - {"feed"}
    if unknown:
        raise ConfigError(f"{where}: unknown table or key {sorted(unknown)[0]!r}")
    target_t: dict[str, Any] = config.get("target", {})
    target = package(cli.target or _get(target_t, "name", str, f"{where}: [target]") or DEFAULT_TARGET)

    feeds = _feeds(cli, config, where, now or datetime.now(UTC), target)
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
    tuning_t: dict[str, Any] = config.get("tuning", {})
    tuning, rate = _tuning(cli, tuning_t, f"{where}: [tuning]", target)
    connection = _connection(
        env,
        target_t=target_t,
        auth_t=config.get("auth", {}),
        tuning_t=tuning_t,
        where=where,
        rate=rate,
        config_path=cli.config,
        default_api_url=target.default_api_url,
    )
    return RunSettings(
        target=target.name,
        connection=connection,
        feeds=tuple(feeds),
        tuning=tuning,
        dry_run=cli.dry_run,
        retry_from=cli.retry_from,
    )


def _tuning(
    cli: CliOptions, table: Mapping[str, Any], where: str, target: TargetPackage
) -> tuple[Tuning, float | None]:
    mode = cli.mode or _get(table, "mode", str, where) or "bulk"
    if mode not in ("bulk", "single"):
        raise ConfigError(f"the mode must be 'bulk' or 'single', got {mode!r}")
    batch_size = _first(cli.batch_size, _get(table, "batch_size", int, where), DEFAULT_BATCH_SIZE)
    workers = _first(cli.workers, _get(table, "workers", int, where), Tuning().workers)
    if not 1 <= batch_size <= target.max_batch:
        raise ConfigError(
            f"the batch size must be between 1 and {target.max_batch} (the most one request to the "
            f"{target.name} target takes), got {batch_size}"
        )
    if not 1 <= workers <= _MAX_WORKERS:
        raise ConfigError(f"the number of workers must be between 1 and {_MAX_WORKERS}, got {workers}")
    rate_text = cli.rate or _get(table, "rate", (str, int, float), where)
    rate = parse_rate(str(rate_text)) if rate_text is not None else None
    return Tuning(mode=mode, batch_size=batch_size, workers=workers), rate  # type: ignore[arg-type]


def parse_rate(text: str) -> float:
    """``"600/min"``, ``"10/s"``, ``"36000/h"`` or a bare number (per minute) → requests per minute."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|min|minute|h|hour))?\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"the rate must look like '600/min', '10/s' or '36000/h', got {text!r}")
    value, unit = float(match.group(1)), match.group(2) or "min"
    return value * 60 if unit.startswith("s") else value / 60 if unit.startswith("h") else value


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


def _feeds(
    cli: CliOptions, config: Mapping[str, Any], where: str, now: datetime, target: TargetPackage
) -> list[FeedSettings]:
    tables = config.get("feed", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{where}: 'feed' must be an array of tables, written [[feed]]")
    if tables and cli.feeds:
        raise ConfigError("give feeds either as arguments or as [[feed]] tables in --config, not both")
    if tables and cli.feed_options:
        raise ConfigError(
            "feed options such as --name or --severity apply to FEED arguments; "
            "with --config set them in each [[feed]] table"
        )
    if NAME.key in cli.feed_options and len(cli.feeds) > 1:
        raise ConfigError("--name names one feed's alert definition; use a config file for several feeds")
    rows = {row.key: row for row in all_fields()}
    feeds = []
    for index, table in enumerate(tables, start=1):
        feed_where = f"{where}: [[feed]] #{index}"
        _check_keys(table, frozenset({"source", *rows}), feed_where)
        feeds.append(_feed(table, feed_where, now, target, rows))
    for source in cli.feeds:
        feeds.append(_feed({"source": source, **cli.feed_options}, "the command line", now, target, rows))
    return feeds


def _feed(
    table: Mapping[str, Any], where: str, now: datetime, target: TargetPackage, rows: Mapping[str, Field[Any]]
) -> FeedSettings:
    source = _get(table, "source", str, where)
    if not source:
        raise ConfigError(f"{where}: key 'source' is required (a path, '-' or an http(s) URL)")
    given: dict[str, Any] = {}
    for key, value in table.items():
        row = rows.get(key)
        if row is None or value is None:
            continue
        try:
            checked = row.check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: key {key!r} {exc}") from None
        if row.target not in (None, target.name):
            raise ConfigError(
                f"{where}: key {key!r} applies to the {row.target} target only (this run's target is "
                f"{target.name})"
            )
        # An empty text where the default is derived from the feed means "the default".
        if not (checked == "" and row.derive is not None):
            given[key] = checked
    name = given.pop(NAME.key, None) or NAME.default_for(source, "")
    definition_rows = (row for row in rows.values() if row.target in (None, target.name))
    spec = build_definition(
        definition_rows,
        name,
        source=source,
        now=now,
        **{key: value for key, value in given.items() if rows[key].part == "definition"},
    )
    try:
        target.check_definition(spec)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return FeedSettings(source=source, definition=spec, options=options_of(rows.values(), given))


def _connection(
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
    api_url = api_url or default_api_url
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
