"""The feeds of a run, from FEED arguments with per-feed flags or from ``[[feed]]`` tables.

It loops over the per-feed rows (``importer.fields`` and each target's ``fields``) and knows
none by name but ``source``, ``name`` and the CSV-only ``columns``; what an API accepts is its
target's ``check_definition``.

A relative path in a ``[[feed]]`` table is the config file's neighbour: cron and systemd start
the run in another folder than the one the file was written in. A relative FEED argument stays
relative to the current folder, as a shell user expects.

With ``[[destination]]`` tables (``settings.destinations``) the feeds are read once per
destination (``destination``): a ``[[feed]]``'s ``destinations`` key lists those it goes to
(default: all), and a key of another target's option (``category`` for a ``sentinel``
destination) is ignored there, said at -v, rather than refused: it is meant for the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from importer.errors import ConfigError
from importer.fields import COLUMNS, FORMAT, NAME, build_definition, options_of
from importer.model import Field
from importer.settings.tables import check_keys, get
from importer.settings.values import CliOptions, FeedSettings
from importer.sources.secrets import resolve_secrets
from importer.targets.base import TargetPackage
from importer.targets.registry import all_fields

__all__ = ["DESTINATIONS_KEY", "feeds_of"]

_log = logging.getLogger(__name__)
DESTINATIONS_KEY = "destinations"  # a [[feed]]'s list of the [[destination]] names it goes to


def feeds_of(
    cli: CliOptions,
    config: Mapping[str, Any],
    where: str,
    now: datetime,
    target: TargetPackage,
    *,
    env: Mapping[str, str] | None = None,
    destination: str | None = None,
) -> list[FeedSettings]:
    """Every feed of the run, checked: the ``[[feed]]`` tables, or the FEED arguments with their flags;
    with ``destination`` (a ``[[destination]]``'s name), the tables that go to it."""
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
        check_keys(table, frozenset({"source", DESTINATIONS_KEY, *rows}), feed_where)
        if DESTINATIONS_KEY in table:
            if destination is None:
                raise ConfigError(
                    f"{feed_where}: key {DESTINATIONS_KEY!r} names [[destination]] tables, and the "
                    "config file has none"
                )
            if destination not in table[DESTINATIONS_KEY]:
                continue
        given = {key: value for key, value in table.items() if key != DESTINATIONS_KEY}
        feeds.append(
            feed_of(given, feed_where, now, target, rows, folder=_folder_of(cli.config), env=env,
                    lenient=destination is not None)
        )  # fmt: skip
    for source in cli.feeds:
        given = {"source": source, **cli.feed_options}
        feeds.append(feed_of(given, "the command line", now, target, rows, env=env))
    return feeds


def _folder_of(config: Path | None) -> Path | None:
    # Absolute, so the sources in the report and the rejects file say where they were read.
    return None if config is None else config.absolute().parent


def _resolve_source(source: str, folder: Path | None) -> str:
    """``source`` as a path read from ``folder`` (None: the current one); '-' and URLs unchanged."""
    if folder is None or source == "-" or "://" in source:
        return source
    path = Path(source).expanduser()  # no shell expanded "~" in a file
    return str(path if path.is_absolute() else folder / path)


def feed_of(
    table: Mapping[str, Any],
    where: str,
    now: datetime,
    target: TargetPackage,
    rows: Mapping[str, Field[Any]],
    *,
    folder: Path | None = None,
    env: Mapping[str, str] | None = None,
    lenient: bool = False,
) -> FeedSettings:
    """One feed from its given values (a ``[[feed]]`` table, or a FEED argument with the flags);
    a relative path ``source`` is read from ``folder`` when given (a config file's); the secrets
    its credentials name are read from ``env`` (default: the process environment); ``lenient``:
    a key of another target's option is ignored (one of several destinations), not refused."""
    source = get(table, "source", str, where)
    if not source:
        raise ConfigError(f"{where}: key 'source' is required (a path, '-' or an http(s) URL)")
    source = _resolve_source(source, folder)
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
            if lenient:
                _log.info("%s: key %r applies to the %s target only: ignored for this %s destination",
                          where, key, row.target, target.name)  # fmt: skip
                continue
            raise ConfigError(
                f"{where}: key {key!r} applies to the {row.target} target only (this run's target is "
                f"{target.name})"
            )
        # An empty text where the default is derived from the feed means "the default".
        if not (checked == "" and row.derive is not None):
            given[key] = checked
    name = given.pop(NAME.key, None) or NAME.default_for(source, "")
    _check_columns(given, name, where)
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
    options = resolve_secrets(
        options_of(rows.values(), given), source, where, os.environ if env is None else env
    )
    return FeedSettings(source=source, definition=spec, options=options)


def _check_columns(given: Mapping[str, Any], name: str, where: str) -> None:
    """A column mapping only means something to the CSV reader: with another format, it is a mistake.

    With ``format`` left to detection the format is known only when the feed is read; the feeds
    reader refuses the mapping there (``feeds.read_feed``)."""
    fmt = given.get(FORMAT.key, FORMAT.default)
    if given.get(COLUMNS.key) is not None and fmt not in ("auto", "csv"):
        raise ConfigError(
            f"{where}: key 'columns' applies to CSV feeds only, and feed {name!r} has format {fmt!r}"
        )
