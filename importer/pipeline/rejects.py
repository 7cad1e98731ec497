"""The dead-letter file (``--rejects``): one JSON line per record not imported (read back: ``sources.retry``).

Every line has ``feed`` (the alert definition's name), ``origin``, ``raw``, ``reason``,
``bucket`` (``rejected``, ``failed`` or ``filtered``) and ``retryable``. Lines for indicators also carry
``kind`` and ``value`` (and the indicator's optional fields). A ``failed`` line — the target did
not take it after every retry, or a quota was full — is retryable and carries its alert
definition, so ``ti-import run --retry-from FILE`` can send exactly those again on its own. A
``filtered`` line — the feed's policy kept it out (``importer.policy``) — is never retryable: the
same policy would keep it out again.

A run of several destinations keeps one file: each destination writes through its own view
(``for_destination``), whose lines also carry ``destination`` (its name), and the run closes the
file once they all ended. A destination of a config's ``[[destination]]`` table run alone names
itself too; a run without such tables writes its lines as it always did, without the key.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from feeds.model import Indicator, Rejected
from importer.errors import ConfigError
from importer.fields import definition_to_json
from importer.model import DefinitionSpec
from importer.pipeline.signals import removed_on_hard_exit
from importer.report.outputs import AtomicFile, OutputFile, open_output

__all__ = ["DESTINATION_KEY", "RejectsWriter"]

DESTINATION_KEY = "destination"  # the line's destination, in a file of a config with [[destination]]s


class RejectsWriter:
    """Appends dead-letter lines to a file (or discards them when no file was asked for).

    The file (``report.outputs``) is ``-`` for stdout or a regular file written under a temporary
    name and renamed over ``path`` by ``close``: the last run's file stays whole until this one's
    is. A line that cannot be written (a full disk, the file-size limit) raises one ``ConfigError``
    and drops the temporary file; every later line raises it again, so no destination sharing the
    file loses a line unsaid (the pipeline stops its run on that error; the report still counts
    every record)."""

    def __init__(self, path: Path | None, *, destination: str | None = None) -> None:
        self.path = path
        self.destination = destination  # named in each line; None: a run without [[destination]]s
        self.lines = 0
        self._file = _File(path) if path is not None else None
        self._owner = True  # closes the file; a destination's view (``for_destination``) does not

    def for_destination(self, name: str) -> RejectsWriter:
        """A writer of this file whose lines name the destination ``name``; its ``close`` leaves
        the file to this writer's, once every destination has ended."""
        view = RejectsWriter(None, destination=name)
        view.path, view._file, view._owner = self.path, self._file, False
        return view

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
        if self._file is None:
            return
        if self.destination is not None:
            line[DESTINATION_KEY] = self.destination
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.lines += 1

    def close(self) -> None:
        """Make the file final (renamed over ``path``); a ConfigError if that fails (the
        temporary file is removed then). A destination's view leaves that to the run's writer."""
        if self._owner and self._file is not None:
            self._file.close()


class _File:
    """The one output of a rejects file, however many destinations write to it.

    Each line is written whole under a lock: the destinations' pipelines share the event loop's
    thread today, but a line half written by two threads would be two lines lost."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._failed: ConfigError | None = None
        self._cleanup = contextlib.ExitStack()
        self._out: OutputFile | None = open_output(path, "the rejects file")
        if isinstance(self._out, AtomicFile):
            # A second signal exits at once, without ``close``: no temporary file is left behind.
            self._cleanup.enter_context(removed_on_hard_exit(str(self._out.temporary)))

    def write(self, text: str) -> None:
        with self._lock:
            if self._failed is not None:
                raise ConfigError(str(self._failed))
            if self._out is None:  # closed: a line after the end has nowhere to go, and says so
                raise ConfigError("the rejects file was closed before every line was written")
            try:
                self._out.write(text)
            except ConfigError as exc:
                self._failed = exc
                self._give_up()
                raise

    def close(self) -> None:
        with self._lock:
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
