"""The dead-letter file (``--rejects``): one JSON line per record not imported (read back: ``sources.retry``).

Every line has ``feed`` (the alert definition's name), ``origin``, ``raw``, ``reason``,
``bucket`` (``rejected`` or ``failed``) and ``retryable``. Lines for indicators also carry
``kind`` and ``value`` (and the indicator's optional fields). A ``failed`` line — the target did
not take it after every retry, or a quota was full — is retryable and carries its alert
definition, so ``ti-import run --retry-from FILE`` can send exactly those again on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from feeds.model import Indicator, Rejected
from importer.errors import ConfigError
from importer.fields import definition_to_json
from importer.model import DefinitionSpec

__all__ = ["RejectsWriter"]


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
