"""Logging for the command line: quiet by default (warnings, to stderr), ``-v`` for more, JSON on request.

``fatal`` prints what ended or failed a run in the same format as the log lines, so a log
collector reading ``--log-format json`` sees the one line that matters as JSON too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = ["JsonFormatter", "configure_logging", "fatal"]

_HANDLER_NAME = "ti-import"
_PROGRAM = "ti-import"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(
    verbosity: int = 0, fmt: Literal["text", "json"] = "text", stream: TextIO | None = None
) -> None:
    """0: warnings only; 1 (``-v``): info; 2+ (``-vv``): debug, including aiohttp's own loggers."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("ti-import: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access/client chatter is noise below -vv.
    logging.getLogger("aiohttp").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def fatal(message: str, exit_code: int, stream: TextIO | None = None) -> None:
    """One line on stderr for a problem that decides the exit code: ``ti-import: message``, or,
    when the log lines are JSON, a JSON object with their keys plus ``exit_code``."""
    out = stream or sys.stderr
    if not _json_logging():
        print(f"{_PROGRAM}: {message}", file=out)
        return
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "error",
        "logger": _PROGRAM,
        "message": message,
        "exit_code": exit_code,
    }
    print(json.dumps(line, ensure_ascii=False), file=out)


def _json_logging() -> bool:
    """Whether ``configure_logging`` set up JSON lines (its handler is the record of the choice)."""
    return any(
        handler.get_name() == _HANDLER_NAME and isinstance(handler.formatter, JsonFormatter)
        for handler in logging.getLogger().handlers
    )
