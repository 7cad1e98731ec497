"""The feeds of a run, from FEED arguments with per-feed flags or from ``[[feed]]`` tables.

It loops over the per-feed rows (``importer.fields`` and each target's ``fields``) and knows
none by name but ``source`` and ``name``; what an API accepts is its target's
``check_definition``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from importer.errors import ConfigError
from importer.fields import NAME, build_definition, options_of
from importer.model import Field
from importer.settings.tables import check_keys, get
from importer.settings.values import CliOptions, FeedSettings
from importer.targets.base import TargetPackage
from importer.targets.registry import all_fields

__all__ = ["feeds_of"]


def feeds_of(
    cli: CliOptions, config: Mapping[str, Any], where: str, now: datetime, target: TargetPackage
) -> list[FeedSettings]:
    """Every feed of the run, checked: the ``[[feed]]`` tables, or the FEED arguments with their flags."""
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
        check_keys(table, frozenset({"source", *rows}), feed_where)
        feeds.append(feed_of(table, feed_where, now, target, rows))
    for source in cli.feeds:
        feeds.append(feed_of({"source": source, **cli.feed_options}, "the command line", now, target, rows))
    return feeds


def feed_of(
    table: Mapping[str, Any], where: str, now: datetime, target: TargetPackage, rows: Mapping[str, Field[Any]]
) -> FeedSettings:
    """One feed from its given values (a ``[[feed]]`` table, or a FEED argument with the flags)."""
    source = get(table, "source", str, where)
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
