"""The dead-letter file (``--rejects``): one JSON line per record not imported (read back: ``sources.retry``).

Every line has ``feed`` (the alert definition's name), ``origin``, ``raw``, ``reason``,
``bucket`` (``rejected``, ``failed`` or ``filtered``) and ``retryable``. Lines for indicators also carry
``kind`` and ``value`` (and the indicator's optional fields). A ``failed`` line — the target did
not take it after every retry, or a quota was full — is retryable and carries its alert
definition, so ``ti-import run --retry-from FILE`` can send exactly those again on its own. A
``filtered`` line — the feed's policy kept it out (``importer.policy``) — is never retryable: the
same policy would keep it out again.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from feeds.model import Indicator, Rejected
from importer.errors import ConfigError
from importer.fields import definition_to_json
from importer.model import DefinitionSpec
from importer.pipeline.signals import removed_on_hard_exit
from importer.report.outputs import AtomicFile, OutputFile, open_output

__all__ = ["RejectsWriter"]


class RejectsWriter:
    """Appends dead-letter lines to a file (or discards them when no file was asked for).

    The file (``report.outputs``) is ``-`` for stdout or a regular file written under a temporary
    name and renamed over ``path`` by ``close``: the last run's file stays whole until this one's
    is. A line that cannot be written (a full disk, the file-size limit) raises one ``ConfigError``
    and drops the temporary file; later lines are not written (the pipeline stops the run on that
    error, and the report still counts every record)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines = 0
        self._out: OutputFile | None = None
        self._cleanup = contextlib.ExitStack()
        if path is not None:
            self._out = open_output(path, "the rejects file")
            if isinstance(self._out, AtomicFile):
                # A second signal exits at once, without ``close``: no temporary file is left behind.
                self._cleanup.enter_context(removed_on_hard_exit(str(self._out.temporary)))

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

    def filtered(self, feed: str, indicator: Indicator, reason: str) -> None:
        """A line for an indicator the feed's policy kept out (not retryable)."""
        line: dict[str, Any] = {
            "feed": feed,
            "origin": indicator.origin,
            "raw": indicator.value,
            "reason": reason,
            "bucket": "filtered",
            "retryable": False,
            **{k: v for k, v in indicator.to_json().items() if k != "origin"},
        }
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        if self._out is None:
            return
        try:
            self._out.write(json.dumps(line, ensure_ascii=False) + "\n")
        except ConfigError:
            self._give_up()
            raise
        self.lines += 1

    def close(self) -> None:
        """Make the file final (renamed over ``path``); a ConfigError if that fails (the
        temporary file is removed then)."""
        out, self._out = self._out, None
        try:
            if out is not None:
                out.commit()
        finally:
            self._cleanup.close()

    def _give_up(self) -> None:
        if self._out is not None:
            self._out.discard()
            self._out = None
        self._cleanup.close()
