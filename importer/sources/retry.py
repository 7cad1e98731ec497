"""The retryable lines of a rejects file as a source: ``ti-import run --retry-from FILE``.

A ``failed`` line of the dead-letter file (``importer.pipeline.rejects``) carries its indicator
and its alert definition; ``retry_jobs`` turns them into one job per definition, read in one
pass per job so a large file costs no memory.

A line of a config with ``[[destination]]`` tables names its ``destination``: a destination
retries the lines naming it and those naming none (a run of one destination takes them all);
``retry_census`` counts the lines per destination named, for a run to refuse or report the lines
it cannot place (``destinations.run``: a run of several refuses lines naming none).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from feeds.model import Detection, Indicator, Kind, Record, Rejected
from importer.errors import ConfigError
from importer.fields import definition_from_json
from importer.model import DefinitionSpec, Field
from importer.pipeline.job import FeedJob
from importer.pipeline.rejects import DESTINATION_KEY

__all__ = ["RetryGroup", "not_sent", "read_retry_groups", "retry_census", "retry_indicators", "retry_jobs"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryGroup:
    """The retryable lines of one alert definition in a rejects file."""

    definition: DefinitionSpec
    count: int


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                # ValueError: also a number past Python's digit limit; RecursionError: nesting.
                except (ValueError, RecursionError):
                    raise ConfigError(f"{path}:{number} is not a JSON line of a rejects file") from None
                if not isinstance(line, dict):
                    raise ConfigError(f"{path}:{number} is not a JSON object of a rejects file")
                yield number, line
    except FileNotFoundError:
        raise ConfigError(f"the rejects file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"the rejects file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:  # ``--retry-from`` given some other file: what we write is UTF-8
        raise ConfigError(f"{path} is not a rejects file: it is not UTF-8 text") from None


def _retryable(line: dict[str, Any]) -> bool:
    """A ``failed`` line; never a ``filtered`` one, whatever else it says: the feed's policy kept
    that out, and would again."""
    return bool(line.get("retryable")) and line.get("bucket") != "filtered"


def _owner(path: Path, number: int, line: dict[str, Any]) -> str | None:
    """The destination a line names; None: it names none."""
    owner = line.get(DESTINATION_KEY)
    if owner is not None and not isinstance(owner, str):
        raise ConfigError(f"{path}:{number}: key {DESTINATION_KEY!r} must be a destination's name")
    return owner


def _mine(path: Path, number: int, line: dict[str, Any], destination: str | None) -> bool:
    """Whether a retryable line is for ``destination``: it names it, or names none."""
    owner = _owner(path, number, line)
    return owner is None or owner == destination


def retry_census(path: Path) -> dict[str | None, int]:
    """How many retryable lines ``path`` holds per destination they name (None: naming none), in
    first-seen order."""
    counts: dict[str | None, int] = {}
    for number, line in _lines(path):
        if _retryable(line):
            owner = _owner(path, number, line)
            counts[owner] = counts.get(owner, 0) + 1
    return counts


def not_sent(path: Path, census: dict[str | None, int], names: Collection[str | None]) -> dict[str, int]:
    """The lines of ``census`` naming a destination not among ``names`` (the run's), by name:
    not the run's to send, and said so in a warning (they stay in ``path`` for a run that has it)."""
    others = {name: n for name, n in census.items() if name is not None and name not in names}
    if others:
        named = ", ".join(f"{name} ({n})" for name, n in others.items())
        _log.warning("%d retryable lines of %s name destinations not in this run, not sent: %s",
                     sum(others.values()), path, named)  # fmt: skip
    return others


def read_retry_groups(
    path: Path, rows: Iterable[Field[Any]], *, destination: str | None = None
) -> list[RetryGroup]:
    """The definitions with retryable lines for ``destination`` in ``path`` (those naming it or
    none), in first-seen order (one pass, small memory), read with ``rows`` (its per-feed options)."""
    rows = tuple(rows)
    groups: dict[str, RetryGroup] = {}
    for number, line in _lines(path):
        if not _retryable(line) or not _mine(path, number, line, destination):
            continue
        try:
            spec = definition_from_json(line["definition"], rows)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}:{number}: a retryable line lacks a valid 'definition'") from None
        group = groups.get(spec.name)
        groups[spec.name] = RetryGroup(
            spec if group is None else group.definition, 1 + (group.count if group else 0)
        )
    return list(groups.values())


def retry_indicators(
    path: Path, definition_name: str, *, destination: str | None = None
) -> Iterator[Indicator | Rejected]:
    """The retryable indicators of one definition for ``destination``, rebuilt from their lines."""
    for number, line in _lines(path):
        definition = line.get("definition")
        if not _retryable(line) or not isinstance(definition, dict):
            continue
        if not _mine(path, number, line, destination):
            continue
        if definition.get("name") != definition_name:
            continue
        origin = str(line.get("origin", f"{path.name}:{number}"))
        try:
            yield Indicator(
                kind=Kind(line["kind"]),
                value=str(line["value"]),
                origin=origin,
                description=line.get("description"),
                labels=tuple(line.get("labels", ())),
                confidence=line.get("confidence"),
                first_seen=datetime.fromisoformat(line["first_seen"]) if line.get("first_seen") else None,
                expires=datetime.fromisoformat(line["expires"]) if line.get("expires") else None,
                detection=Detection(line.get("detection", "Equals")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            yield Rejected(origin=origin, raw=json.dumps(line)[:500], reason=f"not a retryable line: {exc}")


def retry_jobs(path: Path, rows: Iterable[Field[Any]], *, destination: str | None = None) -> list[FeedJob]:
    """One job per alert definition with retryable lines for ``destination`` (naming it, or none)
    in the rejects file ``path``."""
    jobs = []
    for group in read_retry_groups(path, rows, destination=destination):

        @asynccontextmanager
        async def open_records(name: str = group.definition.name) -> AsyncIterator[Iterator[Record]]:
            yield retry_indicators(path, name, destination=destination)

        jobs.append(FeedJob(source=str(path), definition=group.definition, open=open_records))
    return jobs
