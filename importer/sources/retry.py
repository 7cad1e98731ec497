"""The retryable lines of a rejects file as a source: ``ti-import run --retry-from FILE``.

A ``failed`` line of the dead-letter file (``importer.pipeline.rejects``) carries its indicator
and its alert definition; ``retry_jobs`` turns them into one job per definition, read in one
pass per job so a large file costs no memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
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

__all__ = ["RetryGroup", "read_retry_groups", "retry_indicators", "retry_jobs"]


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


def read_retry_groups(path: Path, rows: Iterable[Field[Any]]) -> list[RetryGroup]:
    """The definitions with retryable lines in ``path``, in first-seen order (one pass, small memory),
    read with ``rows`` (the run's per-feed options)."""
    rows = tuple(rows)
    groups: dict[str, RetryGroup] = {}
    for number, line in _lines(path):
        if not _retryable(line):
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


def retry_indicators(path: Path, definition_name: str) -> Iterator[Indicator | Rejected]:
    """The retryable indicators of one definition, rebuilt from their lines."""
    for number, line in _lines(path):
        definition = line.get("definition")
        if not _retryable(line) or not isinstance(definition, dict):
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


def retry_jobs(path: Path, rows: Iterable[Field[Any]]) -> list[FeedJob]:
    """One job per alert definition with retryable lines in the rejects file ``path``."""
    jobs = []
    for group in read_retry_groups(path, rows):

        @asynccontextmanager
        async def open_records(name: str = group.definition.name) -> AsyncIterator[Iterator[Record]]:
            yield retry_indicators(path, name)

        jobs.append(FeedJob(source=str(path), definition=group.definition, open=open_records))
    return jobs
