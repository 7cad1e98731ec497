"""The dead-letter file (``--rejects``): one JSON line per record not imported, and reading it back.

Every line has ``feed`` (the alert definition's name), ``origin``, ``raw``, ``reason``,
``bucket`` (``rejected`` or ``failed``) and ``retryable``. Lines for indicators also carry
``kind`` and ``value`` (and the indicator's optional fields). A ``failed`` line — the target did
not take it after every retry, or a quota was full — is retryable and carries its alert
definition, so ``ti-import run --retry-from FILE`` can send exactly those again on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from feeds.model import Detection, Indicator, Kind, Rejected
from importer.errors import ConfigError
from importer.fields import definition_from_json, definition_to_json
from importer.model import DefinitionSpec, Field

__all__ = [
    "RejectsWriter",
    "RetryGroup",
    "read_retry_groups",
    "retry_indicators",
]


class RejectsWriter:
    """Appends dead-letter lines to a file (or discards them when no file was asked for)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines = 0
        self._handle: IO[str] | None = None
        if path is not None:
            try:
                self._handle = path.open("w", encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"the rejects file {path} cannot be written: {exc.strerror}") from None

    def parse_reject(self, feed: str, record: Rejected) -> None:
        self._write({"feed": feed, **record.to_json(), "bucket": "rejected", "retryable": False})

    def indicator(
        self,
        feed: str,
        indicator: Indicator,
        reason: str,
        *,
        failed: bool,
        definition: DefinitionSpec,
    ) -> None:
        line: dict[str, Any] = {
            "feed": feed,
            "origin": indicator.origin,
            "raw": indicator.value,
            "reason": reason,
            "bucket": "failed" if failed else "rejected",
            "retryable": failed,
            **{k: v for k, v in indicator.to_json().items() if k != "origin"},
        }
        if failed:
            line["definition"] = definition_to_json(definition)
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.lines += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


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
                except json.JSONDecodeError:
                    raise ConfigError(f"{path}:{number} is not a JSON line of a rejects file") from None
                if not isinstance(line, dict):
                    raise ConfigError(f"{path}:{number} is not a JSON object of a rejects file")
                yield number, line
    except FileNotFoundError:
        raise ConfigError(f"the rejects file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"the rejects file {path} cannot be read: {exc.strerror}") from None


def read_retry_groups(path: Path, rows: Iterable[Field[Any]]) -> list[RetryGroup]:
    """The definitions with retryable lines in ``path``, in first-seen order (one pass, small memory),
    read with ``rows`` (the run's per-feed options)."""
    rows = tuple(rows)
    groups: dict[str, RetryGroup] = {}
    for number, line in _lines(path):
        if not line.get("retryable"):
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
        if not line.get("retryable") or line.get("definition", {}).get("name") != definition_name:
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
